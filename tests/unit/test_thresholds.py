"""The threshold rules are one function that the gate and the drift check share."""

from __future__ import annotations

import ast
from pathlib import Path

from gitops_ml import thresholds
from gitops_ml.monitor import drift
from gitops_ml.pr import gate
from tests.conftest import ROOT


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def test_the_monitor_does_not_import_the_gate() -> None:
    for path in sorted((ROOT / "src" / "gitops_ml" / "monitor").glob("*.py")):
        assert "gitops_ml.pr.gate" not in _imported_modules(path), path.name
    assert "gitops_ml.pr" not in str(_imported_modules(ROOT / "src/gitops_ml/thresholds.py"))


def test_the_gate_and_the_drift_check_apply_the_same_rules() -> None:
    assert gate.threshold_rules is thresholds.threshold_rules
    assert gate.RuleResult is thresholds.RuleResult
    metrics = {"roc_auc": 0.87, "log_loss": 0.30, "accuracy": float("nan")}
    limits = {"roc_auc": 0.88, "log_loss": 0.35, "accuracy": 0.8}
    rules = drift.gate_rules(metrics, limits)
    assert [(r["metric"], r["passed"], r["skipped"]) for r in rules] == [
        ("roc_auc", False, False),
        ("log_loss", True, False),
        ("accuracy", True, True),  # undefined on the batch: skipped there, failed by the gate
    ]
    assert (
        [r.message for r in gate.threshold_rules(metrics, limits)][:2]
        == [r["message"] for r in rules[:2]]
        == ["roc_auc 0.8700 < 0.8800 (minimum)", "log_loss 0.3000 <= 0.3500 (maximum)"]
    )
