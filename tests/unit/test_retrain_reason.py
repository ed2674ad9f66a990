"""Why `gitops-ml retrain` retrains: data drift, or a quality alert on the batch's labels without
data drift; and what the pull request then says (the whole flow runs under act in
tests/integration/test_act_monitor.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops_ml.monitor import retrain

RULES = [
    {"metric": "roc_auc", "observed": 0.12, "limit": 0.88, "passed": False, "skipped": False},
    {"metric": "log_loss", "observed": 2.9, "limit": 0.35, "passed": False, "skipped": False},
    {"metric": "accuracy", "observed": None, "limit": 0.8, "passed": True, "skipped": True},
]
REASONS = [
    "roc_auc 0.1200 < 0.8800 (minimum) (gate.thresholds)",
    "log_loss 2.9000 > 0.3500 (maximum) (gate.thresholds)",
]


def quality(alert: bool, rules=RULES, reasons=REASONS, unseen=None) -> dict:
    return {
        "measured": True, "alert": alert, "reasons": reasons if alert else [],
        "labelled_rows": 500, "unlabelled_rows": 0, "unseen_labels": unseen or {},
        "rules": rules,
    }  # fmt: skip


def read(tmp_path: Path, report: dict, markdown: str = "## Data drift: no drift\n"):
    (tmp_path / "drift.json").write_text(json.dumps(report))
    (tmp_path / "drift.md").write_text(markdown)
    return retrain.read_drift(tmp_path / "drift.json", tmp_path / "drift.md")


def test_a_quality_alert_without_drift_is_a_reason_to_retrain(tmp_path: Path) -> None:
    drift = read(tmp_path, {"drift": False, "alert": True, "quality": quality(True)})
    assert drift.reason == "quality" and drift.markdown.startswith("## Data drift: no drift")
    assert drift.failed_metrics == ("roc_auc", "log_loss")  # the skipped one is not failed
    assert retrain.pr_title(drift) == "Retrain: roc_auc, log_loss break gate.thresholds on a " \
        "labelled batch"  # fmt: skip
    body = retrain.pr_body(drift, "data/source/batches/x.parquet", pushed=True)
    first = body.split("\n\n", 1)[0]
    assert first.startswith("**Why: a quality alert, without data drift.**")
    assert "500 labelled rows: " + "; ".join(REASONS) in first
    assert "check a sample of the batch's labels" in first
    assert "\n\n## Data drift: no drift" in body and body.rstrip().endswith("retrained model.")


def test_one_failed_metric_and_no_rule_read_as_such(tmp_path: Path) -> None:
    one = quality(True, rules=RULES[:1], reasons=REASONS[:1])
    drift = read(tmp_path, {"drift": False, "quality": one})
    assert retrain.pr_title(drift) == "Retrain: roc_auc breaks gate.thresholds on a labelled batch"
    drift = read(tmp_path, {"drift": False, "quality": quality(True, rules=[])})
    assert retrain.pr_title(drift) == "Retrain: quality alert on a labelled batch"


def test_drift_stays_the_reason_when_both_and_the_body_says_so(tmp_path: Path) -> None:
    report = {"drift": True, "drifted_features": ["age"], "quality": quality(True)}
    drift = read(tmp_path, report, "## Data drift: **drift detected**\n")
    assert drift.reason == "drift"
    assert retrain.pr_title(drift) == "Retrain: drift detected in age"
    body = retrain.pr_body(drift, "x.parquet", pushed=True)
    assert body.startswith("**Why: data drift.**") and REASONS[0] in body.split("\n\n")[0]
    drift = read(tmp_path, {"drift": True, "drifted_features": ["age"]}, "## Data drift\n")
    assert retrain.pr_body(drift, "x.parquet", True).split("\n\n")[0] == (
        "**Why: data drift.** The batch no longer looks like the data the model was trained on "
        "(the report below)."
    )


@pytest.mark.parametrize(
    ("report", "words"),
    [
        ({"drift": False, "quality": quality(False)}, "no drift and no quality alert"),
        ({"drift": False}, "no drift and no quality alert"),  # a report from before quality
        (
            {"drift": False, "quality": quality(True, unseen={">50K.": 240})},
            "240 labelled row(s) with labels the model has no class for; not retraining",
        ),
    ],
)
def test_nothing_to_retrain_needs_no_markdown(tmp_path: Path, report: dict, words: str) -> None:
    (tmp_path / "drift.json").write_text(json.dumps(report))
    drift = retrain.read_drift(tmp_path / "drift.json", tmp_path / "missing.md")
    assert drift.reason is None
    assert words in drift.no_retrain_message(tmp_path / "drift.json")


def test_a_quality_alert_needs_its_markdown_and_a_boolean(tmp_path: Path) -> None:
    (tmp_path / "drift.json").write_text(json.dumps({"drift": False, "quality": quality(True)}))
    with pytest.raises(retrain.RetrainError, match=r"missing\.md: file not found"):
        retrain.read_drift(tmp_path / "drift.json", tmp_path / "missing.md")
    bad = {"drift": False, "quality": {"alert": "yes"}}
    (tmp_path / "drift.json").write_text(json.dumps(bad))
    with pytest.raises(retrain.RetrainError, match=r"'quality\.alert' is not a boolean"):
        retrain.read_drift(tmp_path / "drift.json", tmp_path / "drift.md")
