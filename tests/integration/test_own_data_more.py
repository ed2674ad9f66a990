"""Users' own data on the first try: regression (Auto MPG) through the whole first-day flow of
own_data.py, and a numeric-only binary set whose first pull request is the data switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops_ml.lineage.dvclock import METRICS_PATH
from tests import datasets
from tests.integration.own_data import (
    check_new_baseline,
    first_day,
    switch_to_own_data,
    template_main,
)

pytestmark = pytest.mark.slow


def test_first_day_on_regression_data(tmp_path: Path) -> None:
    own = first_day(tmp_path / "repo", datasets.cars())
    assert "make repro" in own.init_output


def test_the_first_pr_of_numeric_binary_data_is_a_new_baseline(tmp_path: Path) -> None:
    """Breast cancer: 30 float columns and a 0/1 integer target; its first pull request
    (the data switch itself) against the template's Adult `main`."""
    dataset = datasets.breast_cancer()
    own = switch_to_own_data(template_main(tmp_path / "repo"), dataset)
    assert "positive  '1', the minority class" in own.init_output
    metrics = json.loads((own.repo / METRICS_PATH).read_text())
    assert metrics["roc_auc"] > 0.95
    check_new_baseline(own.repo, dataset)
