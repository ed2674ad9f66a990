"""The gate's rules on inline dicts: thresholds, regression, worst slice, stale dvc.lock."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from gitops_ml.cli import main
from gitops_ml.config import GateConfig, WorstSliceRule
from gitops_ml.lineage.dvclock import MODEL_PATH
from gitops_ml.pr import gate as g
from tests.conftest import ROOT

CFG = GateConfig(
    fail_on_violation=True,
    primary="roc_auc",
    thresholds=MappingProxyType({"roc_auc": 0.88, "log_loss": 0.35}),
    max_regression=MappingProxyType({"roc_auc": 0.005, "log_loss": 0.01}),
    worst_slice=WorstSliceRule(metric="roc_auc", min=0.8, min_rows=50),
)
GOOD = {"roc_auc": 0.93, "log_loss": 0.27, "accuracy": 0.87}
SLICES = {
    "sex": {"Female": {"n": 300, "roc_auc": 0.94}, "Male": {"n": 600, "roc_auc": 0.91}},
    "race": {"Other": {"n": 10, "roc_auc": 0.5}, "Tiny": {"n": 60, "roc_auc": None}},
}


def _by_name(result: g.GateResult) -> dict[str, g.RuleResult]:
    return {r.name: r for r in result.rules}


def test_all_rules_pass_on_a_good_model() -> None:
    result = g.evaluate_gate(CFG, GOOD, champion=GOOD, slices=SLICES)
    assert result.passed
    assert list(_by_name(result)) == [
        "threshold:roc_auc", "threshold:log_loss", "max_regression:roc_auc",
        "max_regression:log_loss", "worst_slice:roc_auc",
    ]  # fmt: skip
    assert result.to_dict()["verdict"] == "passed"
    assert result.to_dict()["primary"] == {"metric": "roc_auc", "value": 0.93, "champion": 0.93}


def test_thresholds_use_the_metric_direction() -> None:
    rules = g.threshold_rules({"roc_auc": 0.87, "log_loss": 0.36}, CFG.thresholds)
    assert [r.passed for r in rules] == [False, False]
    assert "< 0.8800 (minimum)" in rules[0].message
    assert "> 0.3500 (maximum)" in rules[1].message
    ok = g.threshold_rules({"roc_auc": 0.88, "log_loss": 0.35}, CFG.thresholds)
    assert all(r.passed for r in ok)


def test_missing_or_null_metric_fails_its_threshold() -> None:
    (rule,) = g.threshold_rules({"roc_auc": None}, {"roc_auc": 0.5})
    assert not rule.passed and "missing or null" in rule.message


def test_regression_against_the_champion() -> None:
    worse = {"roc_auc": 0.92, "log_loss": 0.30}
    rules = {r.name: r for r in g.regression_rules(worse, GOOD, CFG.max_regression)}
    auc, loss = rules["max_regression:roc_auc"], rules["max_regression:log_loss"]
    assert not auc.passed and auc.observed == pytest.approx(0.01)
    assert "worse by 0.0100 (allowed 0.0050)" in auc.message
    assert not loss.passed and loss.observed == pytest.approx(0.03)
    better = g.regression_rules({"roc_auc": 0.95, "log_loss": 0.2}, GOOD, CFG.max_regression)
    assert all(r.passed for r in better) and all(r.observed < 0 for r in better)


def test_regression_is_skipped_without_a_champion() -> None:
    result = g.evaluate_gate(
        CFG, GOOD, champion=None, slices=SLICES, no_champion_reason="main has no metrics"
    )
    skipped = [r for r in result.rules if r.skipped]
    assert [r.name for r in skipped] == ["max_regression:roc_auc", "max_regression:log_loss"]
    assert all("no champion yet (main has no metrics)" in r.message for r in skipped)
    assert result.passed


def test_worst_slice_ignores_small_slices_but_reports_them() -> None:
    rule = g.worst_slice_rule(SLICES, CFG.worst_slice)
    assert rule.passed and rule.observed == 0.91
    assert "sex=Male" in rule.message and "race=Other (n=10" in rule.message
    assert "race=Tiny (n=60, roc_auc n/a)" in rule.message
    weak = {"sex": {"Female": {"n": 300, "roc_auc": 0.7}}}
    assert not g.worst_slice_rule(weak, CFG.worst_slice).passed
    assert g.worst_slice_rule(None, CFG.worst_slice).skipped


LOCK = {
    "stages": {
        "split": {
            "cmd": "python -m split",
            "deps": [{"path": "data/raw.parquet", "md5": "r1"}],
            "params": {"params.yaml": {"split.seed": 42}},
            "outs": [{"path": "data/train.parquet", "md5": "t1"}],
        },
        "train": {
            "cmd": "python -m train",
            "deps": [
                {"path": "data/train.parquet", "md5": "t1"},
                {"path": "src/train.py", "md5": "c1"},
            ],
            "params": {"params.yaml": {"train.hyperparams": {}}},
            "outs": [{"path": MODEL_PATH, "md5": "m1"}],
        },
    }
}


def _lock(**changes: str) -> dict:
    lock = copy.deepcopy(LOCK)
    train = lock["stages"]["train"]
    if "code" in changes:
        train["deps"][1]["md5"] = changes["code"]
    if "hyper" in changes:
        train["params"]["params.yaml"]["train.hyperparams"] = {"max_iter": int(changes["hyper"])}
    if "model" in changes:
        train["outs"][0]["md5"] = changes["model"]
    if "train_data" in changes:
        lock["stages"]["split"]["outs"][0]["md5"] = changes["train_data"]
        train["deps"][0]["md5"] = changes["train_data"]
    return lock


def test_same_lock_passes() -> None:
    rule, warnings = g.stale_lock_rule(LOCK, _lock(), {})
    assert rule.passed and warnings == []


def test_changed_param_or_code_is_stale_and_named() -> None:
    rule, _ = g.stale_lock_rule(LOCK, _lock(hyper="50"), {})
    assert not rule.passed
    assert rule.message.startswith(g.STALE_MESSAGE)
    assert (
        "stage 'train': param train.hyperparams changed ({} -> {\"max_iter\": 50})" in rule.message
    )
    rule, _ = g.stale_lock_rule(LOCK, _lock(code="c2"), None)
    assert "stage 'train': dependency src/train.py changed (c1 -> c2)" in rule.message


def test_output_only_differences_are_warnings() -> None:
    """Another OS or CPU: other bytes of a stage's output, and of its input downstream."""
    rule, warnings = g.stale_lock_rule(LOCK, _lock(train_data="t2"), {})
    assert rule.passed
    text = " ".join(warnings)
    assert "stage 'split': output data/train.parquet has another hash" in text
    assert "input data/train.parquet (another stage's output)" in text


def test_a_model_the_inputs_did_not_build_fails() -> None:
    """Merging promotes the committed lock's model: it must be the one that was evaluated."""
    rule, _ = g.stale_lock_rule(LOCK, _lock(model="m2"), {})
    assert not rule.passed
    assert "stage 'train': the committed dvc.lock names model m1, these inputs built m2" in (
        rule.message
    )
    assert "merging would promote a model nobody evaluated" in rule.message


def test_dvc_status_catches_an_edit_without_repro() -> None:
    status = {
        "train": [{"changed deps": {"params.yaml": {"train.hyperparams": "modified"}}}],
        "split": [{"changed outs": {"data/train.parquet": "deleted"}}],
    }
    rule, warnings = g.stale_lock_rule(LOCK, LOCK, status)
    assert not rule.passed
    assert "stage 'train': param train.hyperparams modified in params.yaml" in rule.message
    assert any("data/train.parquet (deleted)" in w for w in warnings)
    status = {"dvc.yaml:train": [{"changed deps": {"src/train.py": "modified"}}]}
    rule, _ = g.stale_lock_rule(LOCK, LOCK, status)
    assert "stage 'train': dependency src/train.py modified" in rule.message


def test_no_committed_lock_fails() -> None:
    rule, _ = g.stale_lock_rule(None, LOCK, {})
    assert not rule.passed and "not committed" in rule.message


def test_summary_lines_one_per_rule() -> None:
    lock_rule = g.stale_lock_rule(LOCK, _lock(train_data="t2"), {})
    result = g.evaluate_gate(
        CFG, {"roc_auc": 0.5, "log_loss": 0.2}, champion=None, slices=None, lock_rule=lock_rule
    )
    lines = g.summary_lines(result)
    assert lines[0].startswith("FAIL threshold:roc_auc")
    assert sum(line.startswith("SKIP") for line in lines) == 3
    assert any(line.startswith("PASS stale_lock") for line in lines)
    assert any(line.startswith("warning: stage 'split': output") for line in lines)
    assert lines[-1] == "gate failed: 6 rules, 1 failed"
    assert result.to_dict()["verdict"] == "failed"


def test_cli_bad_input_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No metrics file (or no git repository): one line on stderr and exit code 2."""
    for name in ("params.yaml", "gitops.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert main(["gate", "--json", str(tmp_path / "gate.json")]) == 2
    assert "not inside a git repository" in capsys.readouterr().err
    subprocess.run(["git", "init", "-q"], check=True)
    assert main(["gate", "--json", str(tmp_path / "gate.json")]) == 2
    assert "reports/metrics.json: metrics not found" in capsys.readouterr().err
    assert not (tmp_path / "gate.json").exists()
