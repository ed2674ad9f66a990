"""Workspaces for the tune stage's tests: a train split and a params.yaml with tuning on.

The tune stage reads only the train split and params, so a workspace is those two files; the
data sets are the Adult training file (a sample) and the real sets of tests/datasets.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gitops_ml.stages import tune
from tests.conftest import REGRESSION_GATE, template_settings
from tests.datasets import Dataset

MULTICLASS_GATE = {
    "primary": "f1_macro",
    "thresholds": {},
    "max_regression": {"f1_macro": 0.01},
    "worst_slice": None,
}
#: The shipped space of each model is the template's to edit: tests declare their own.
SPACES = {
    "hist_gradient_boosting": {"learning_rate": [0.05, 0.2], "max_leaf_nodes": [7, 15]},
    "logistic_regression": {"C": [0.1, 10.0]},
    "random_forest": {"min_samples_leaf": [1, 10]},
    "ridge": {"alpha": [0.1, 100.0]},
}


def settings(
    dataset: Dataset | None = None,
    *,
    model: str = "hist_gradient_boosting",
    hyperparams: dict[str, Any] | None = None,
    **tune_values: Any,
) -> dict[str, Any]:
    """The template's settings with tuning on (unless `enabled=False`); `dataset` None: Adult."""
    raw = template_settings()
    if dataset is not None:
        raw["data"].update(
            source="parquet",
            path="data/source/data.parquet",
            target=dataset.target,
            task=dataset.task,
            positive_label=None,
        )
        raw["evaluate"]["slices"] = []
        if dataset.task == "regression":
            raw["gate"].update(REGRESSION_GATE)
        elif dataset.task == "multiclass":
            raw["gate"].update(MULTICLASS_GATE)
    raw["train"].update(model=model, hyperparams=hyperparams or {})
    raw["tune"].update(
        {"enabled": True, "space": {model: SPACES[model]}, "connect_timeout": 5, **tune_values}
    )
    return raw


def workspace(directory: Path, frame: pd.DataFrame, raw: dict[str, Any]) -> Path:
    """Write the train split and params.yaml into `directory`; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(directory / "train.parquet", index=False)
    (directory / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return directory


def tune_args(ws: Path, output: str = "tuned.json") -> list[str]:
    return [
        "--train",
        str(ws / "train.parquet"),
        "--output",
        str(ws / output),
        "--params",
        str(ws / "params.yaml"),
    ]


def run_tune(ws: Path, output: str = "tuned.json") -> bytes:
    """Run the stage's main in this process; return the bytes it wrote."""
    assert tune.main(tune_args(ws, output)) == 0
    return (ws / output).read_bytes()


def chosen(data: bytes) -> dict[str, Any]:
    return json.loads(data)["hyperparams"]
