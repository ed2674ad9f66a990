"""The gate's rules on inline dicts: thresholds, regression, worst slice, baseline, disparity,
stale dvc.lock."""

from __future__ import annotations

import copy
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from gitops_ml.cli import main
from gitops_ml.config import BaselineRule, DisparityRule, GateConfig, WorstSliceRule
from gitops_ml.errors import DataError
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


def test_a_negative_max_regression_is_a_required_improvement() -> None:
    """A retraining pull request: the challenger must beat the champion by 0.01."""
    limits = {"roc_auc": -0.01, "log_loss": -0.01}
    champion = {"roc_auc": 0.90, "log_loss": 0.30}
    slight = {r.name: r for r in g.regression_rules({"roc_auc": 0.905, "log_loss": 0.28},
                                                    champion, limits)}  # fmt: skip
    auc, loss = slight["max_regression:roc_auc"], slight["max_regression:log_loss"]
    assert not auc.passed and auc.observed == pytest.approx(-0.005)
    assert auc.message == (
        "roc_auc 0.9050 vs champion 0.9000: better by 0.0050 (must improve by at least 0.0100)"
    )
    assert loss.passed and "better by 0.0200 (must improve by at least 0.0100)" in loss.message
    (same,) = g.regression_rules({"roc_auc": 0.90}, champion, {"roc_auc": -0.01})
    assert not same.passed and "unchanged (must improve by at least 0.0100)" in same.message
    (worse,) = g.regression_rules({"roc_auc": 0.89}, champion, {"roc_auc": -0.01})
    assert not worse.passed and "worse by 0.0100 (must improve by at least 0.0100)" in (
        worse.message
    )
    (enough,) = g.regression_rules({"roc_auc": 0.91}, champion, {"roc_auc": -0.01})
    assert enough.passed


BASELINE = {"model": "logistic_regression", "metrics": {"roc_auc": 0.90, "log_loss": 0.31}}


def test_baseline_rule_needs_the_margin_over_the_baseline() -> None:
    rule = BaselineRule(metric="roc_auc", margin=0.01)
    ok = g.baseline_rule(GOOD, BASELINE, rule)
    assert ok.passed and ok.observed == pytest.approx(0.03)
    assert ok.message == (
        "roc_auc 0.9300 vs baseline logistic_regression 0.9000: better by 0.0300 "
        "(must be better by at least 0.0100)"
    )
    assert ok.details == {
        "baseline": 0.9,
        "challenger": 0.93,
        "baseline_model": "logistic_regression",
    }
    close = g.baseline_rule({"roc_auc": 0.905}, BASELINE, rule)
    assert not close.passed and "better by 0.0050 (must be better" in close.message
    worse = g.baseline_rule({"roc_auc": 0.85}, BASELINE, rule)
    assert not worse.passed and worse.observed == pytest.approx(-0.05)
    assert "vs baseline logistic_regression 0.9000: worse by 0.0500" in worse.message
    assert g.baseline_rule({"roc_auc": 0.91}, BASELINE, rule).passed  # exactly the margin


def test_baseline_rule_for_lower_is_better_metrics() -> None:
    rule = BaselineRule(metric="log_loss", margin=0.02)
    assert g.baseline_rule({"log_loss": 0.27}, BASELINE, rule).passed
    worse = g.baseline_rule({"log_loss": 0.35}, BASELINE, rule)
    assert not worse.passed and worse.observed == pytest.approx(-0.04)
    assert "log_loss 0.3500 vs baseline logistic_regression 0.3100: worse by 0.0400" in (
        worse.message
    )
    ridge = {"model": "ridge", "metrics": {"rmse": 50.0, "r2": 0.4}}
    rmse = BaselineRule(metric="rmse", margin=0.0)
    assert g.baseline_rule({"rmse": 49.0}, ridge, rmse).passed
    assert not g.baseline_rule({"rmse": 51.0}, ridge, rmse).passed
    assert g.baseline_rule({"rmse": 50.0}, ridge, rmse).passed  # margin 0: at least a tie


def test_baseline_rule_fails_without_numbers_to_compare() -> None:
    rule = BaselineRule(metric="roc_auc", margin=0.0)
    none = g.baseline_rule(GOOD, None, rule, missing_reason="reports/baseline.json not found")
    assert not none.passed
    assert none.message == (
        "reports/baseline.json not found: cannot compare roc_auc with the baseline"
    )
    null = g.baseline_rule(GOOD, {"model": "x", "metrics": {"roc_auc": None}}, rule)
    assert not null.passed and "missing or null in the baseline's (x) metrics" in null.message
    assert not g.baseline_rule({"roc_auc": None}, BASELINE, rule).passed


GROUPS = {
    "sex": {
        "Female": {"n": 300, "roc_auc": 0.95, "rmse": 2.0},
        "Male": {"n": 600, "roc_auc": 0.91, "rmse": 3.0},
    },
    "race": {
        "White": {"n": 700, "roc_auc": 0.92, "rmse": 2.5},
        "Black": {"n": 90, "roc_auc": 0.80, "rmse": 6.0},
        "Other": {"n": 10, "roc_auc": 0.40, "rmse": 9.0},
        "Tiny": {"n": 60, "roc_auc": None},
    },
}


def test_disparity_names_the_column_and_the_two_groups() -> None:
    rule = DisparityRule(metric="roc_auc", max_gap=0.10, min_rows=50)
    result = g.disparity_rule(GROUPS, rule)
    assert not result.passed and result.observed == pytest.approx(0.12)
    assert result.message.startswith(
        "largest gap in race: race=White (n=700) roc_auc 0.9200 vs race=Black (n=90) 0.8000: "
        "gap 0.1200 > 0.1000; not compared (under 50 rows or no roc_auc): "
        "race=Other (n=10, roc_auc 0.4000), race=Tiny (n=60, roc_auc n/a)"
    )
    assert result.details["column"] == "race"
    assert result.details["groups"] == ["White", "Black"]
    assert result.details["gaps"] == {"sex": pytest.approx(0.04), "race": pytest.approx(0.12)}
    # with at least 100 rows a group, race has one group left: sex decides, and passes
    wide = g.disparity_rule(GROUPS, DisparityRule(metric="roc_auc", max_gap=0.10, min_rows=100))
    assert wide.passed and wide.details["column"] == "sex"
    assert "sex=Female (n=300) roc_auc 0.9500 vs sex=Male (n=600) 0.9100: gap 0.0400 <=" in (
        wide.message
    )


def test_disparity_for_lower_is_better_metrics_puts_the_best_group_first() -> None:
    rule = DisparityRule(metric="rmse", max_gap=1.5, min_rows=50)
    result = g.disparity_rule(GROUPS, rule)
    assert not result.passed and result.observed == pytest.approx(3.5)
    assert "race=White (n=700) rmse 2.5000 vs race=Black (n=90) 6.0000" in result.message


def test_disparity_is_skipped_without_two_groups_to_compare() -> None:
    rule = DisparityRule(metric="roc_auc", max_gap=0.1, min_rows=1000)
    result = g.disparity_rule(GROUPS, rule)
    assert result.passed and result.skipped and result.observed is None
    assert result.message.startswith("no slice column has two groups of at least 1000 rows")
    assert g.disparity_rule(None, rule).skipped


def test_new_rules_run_after_the_slice_rule_and_can_fail_the_gate() -> None:
    cfg = replace(
        CFG,
        baseline=BaselineRule(metric="roc_auc", margin=0.01),
        disparity=DisparityRule(metric="roc_auc", max_gap=0.1, min_rows=50),
    )
    result = g.evaluate_gate(cfg, GOOD, champion=GOOD, slices=SLICES, baseline=BASELINE)
    assert result.passed
    assert list(_by_name(result))[-2:] == ["baseline:roc_auc", "disparity:roc_auc"]
    beaten = {**BASELINE, "metrics": {"roc_auc": 0.95}}
    result = g.evaluate_gate(cfg, GOOD, champion=GOOD, slices=GROUPS, baseline=beaten)
    failed = [r.name for r in result.rules if not r.passed]
    assert failed == ["baseline:roc_auc", "disparity:roc_auc"] and not result.passed
    lines = g.summary_lines(result)
    assert "FAIL baseline:roc_auc: roc_auc 0.9300 vs baseline logistic_regression 0.9500" in (
        "\n".join(lines)
    )
    missing = g.evaluate_gate(cfg, GOOD, champion=GOOD, slices=SLICES, no_baseline_reason="no file")
    assert _by_name(missing)["baseline:roc_auc"].message.startswith("no file: cannot compare")


def test_report_shows_the_new_rules_with_their_reasons() -> None:
    from gitops_ml.pr.report import render_gate

    cfg = replace(
        CFG,
        baseline=BaselineRule(metric="roc_auc", margin=0.01),
        disparity=DisparityRule(metric="roc_auc", max_gap=0.1, min_rows=50),
    )
    beaten = {**BASELINE, "metrics": {"roc_auc": 0.95}}
    result = g.evaluate_gate(cfg, GOOD, champion=GOOD, slices=GROUPS, baseline=beaten)
    text = "\n".join(render_gate(result.to_dict()))
    assert "### Quality gate: ❌ failed" in text
    assert (
        "| `baseline:roc_auc` | ❌ | -0.0200 | 0.0100 | roc_auc 0.9300 vs baseline "
        "logistic_regression 0.9500: worse by 0.0200 (must be better by at least 0.0100) |"
    ) in text
    assert "| `disparity:roc_auc` | ❌ | 0.1200 | 0.1000 | largest gap in race: race=White" in text


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


def test_the_baseline_file_is_the_evaluate_output_beside_the_metrics() -> None:
    """run_gate (and the report) find reports/baseline.json beside the metrics, where dvc.yaml
    has the evaluate stage write it, as a git-tracked output."""
    import yaml

    from gitops_ml.lineage.dvclock import METRICS_PATH

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["evaluate"]
    words = stage["cmd"].split()
    path = words[words.index("--baseline") + 1]
    assert path == str(Path(METRICS_PATH).with_name(g.BASELINE_FILE))
    assert {path: {"cache": False, "persist": True}} in stage["outs"]
    train = words[words.index("--train") + 1]
    assert train in stage["deps"]


def test_read_baseline(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    assert g.read_baseline(path, wanted=False) == (None, "")
    baseline, why = g.read_baseline(path)
    assert baseline is None and why.startswith(f"{path} not found (the evaluate stage writes it")
    path.write_text('{"model": "ridge", "metrics": {"rmse": 1.5}}')
    assert g.read_baseline(path) == ({"model": "ridge", "metrics": {"rmse": 1.5}}, "")
    path.write_text('{"rmse": 1.5}')
    with pytest.raises(DataError, match="must be a JSON object with a 'metrics' object"):
        g.read_baseline(path)


def test_report_slice_table_shows_the_disparity_metric_without_a_worst_slice_rule() -> None:
    from gitops_ml.config import parse_params
    from gitops_ml.pr.report import _slice_metric
    from tests.conftest import template_settings

    raw = template_settings()
    raw["gate"]["worst_slice"] = None
    assert _slice_metric(parse_params(raw)) == "roc_auc"  # the task's default
    raw["gate"]["disparity"] = {"metric": "recall", "max_gap": 0.1, "min_rows": 50}
    assert _slice_metric(parse_params(raw)) == "recall"
