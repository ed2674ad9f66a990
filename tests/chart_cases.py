"""Inputs of the report's chart (`gitops_ml.pr.chart`), shared by its parse and browser tests.

Deltas and intervals are those of real paired bootstraps of the Adult classifier (a challenger
that trades precision for recall) and of a regression model, rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def interval(delta: float, low: float, high: float) -> dict[str, Any]:
    return {"delta": delta, "low": low, "high": high, "real": low > 0 or high < 0}


#: metric -> {delta, low, high, real}, as `report.delta_intervals` returns it (binary task).
BINARY = {
    "roc_auc": interval(-0.002569, -0.0049, -0.0003),
    "accuracy": interval(-0.005649, -0.0093, -0.0021),
    "precision": interval(-0.025791, -0.036, -0.0155),
    "recall": interval(0.039034, 0.0281, 0.0502),
    "f1": interval(0.010676, -0.0012, 0.0221),
    "log_loss": interval(0.008435, 0.0037, 0.0131),
    "brier": interval(-0.000614, -0.0021, 0.0009),
}
REGRESSION = {
    "rmse": interval(-60.25, -95.5, -21.75),
    "mae": interval(-21.2, -40.1, 3.3),
    "r2": interval(0.01, 0.004, 0.016),
}
#: The committed metrics of two models (the champion not re-scored: no intervals).
CHAMPION = {
    "accuracy": 0.876651, "average_precision": 0.834206, "brier": 0.086898, "f1": 0.720612,
    "log_loss": 0.273298, "n_test": 9769, "precision": 0.786835, "recall": 0.664671,
    "roc_auc": 0.9303,
}  # fmt: skip
CHALLENGER = {
    "accuracy": 0.871002, "average_precision": 0.829113, "brier": 0.089512, "f1": 0.731288,
    "log_loss": 0.281733, "n_test": 9769, "precision": 0.761044, "recall": 0.703705,
    "roc_auc": 0.927731,
}  # fmt: skip

#: name -> (input of `delta_chart`, primary metric)
CASES: dict[str, tuple[Mapping[str, Mapping[str, Any]], str]] = {
    "binary": (BINARY, "roc_auc"),
    "binary_primary_log_loss": (BINARY, "log_loss"),
    # average_precision has no bootstrap: its delta alone, beside the others' intervals.
    "binary_primary_average_precision": (
        {"average_precision": {"delta": -0.005093}, **BINARY},
        "average_precision",
    ),
    "all_real_better": (
        {"roc_auc": interval(0.012, 0.008, 0.016), "accuracy": interval(0.02, 0.011, 0.03)},
        "roc_auc",
    ),
    "identical_models": ({"roc_auc": interval(0.0, 0.0, 0.0)}, "roc_auc"),
    "regression_rmse": (REGRESSION, "rmse"),
    "regression_r2": (REGRESSION, "r2"),
    "multiclass": (
        {
            "accuracy": interval(0.0031, -0.0012, 0.0075),
            "balanced_accuracy": interval(0.0102, 0.0041, 0.0163),
            "f1_macro": interval(0.0088, 0.0020, 0.0151),
            "log_loss": interval(-0.0211, -0.0302, -0.0125),
        },
        "accuracy",
    ),
}
