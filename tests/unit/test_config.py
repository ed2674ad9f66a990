"""params.yaml is validated once, strictly, with errors that name the key."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from gitops_ml.cli import main as cli_main
from gitops_ml.config import DisparityRule, load_params, parse_params
from gitops_ml.errors import ConfigError
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = template_settings()


def with_changes(**changes: dict) -> dict:
    raw = copy.deepcopy(DEFAULTS)
    for section, values in changes.items():
        raw[section].update(values)
    return raw


def test_shipped_params_load() -> None:
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "adult"
    assert params.train.model == "hist_gradient_boosting"
    assert 0 < params.split.test_size < 1
    with pytest.raises(AttributeError):
        params.train.seed = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"train": {"modle": "x"}}, "train.modle"),
        ({"train": {"model": "xgboost"}}, "train.model"),
        (
            {"train": {"model": "random_forest", "hyperparams": {"n_estimators": -5}}},
            "n_estimators",
        ),
        ({"train": {"hyperparams": {"no_such_knob": 1}}}, "no_such_knob"),
        ({"train": {"hyperparams": [1, 2]}}, "train.hyperparams"),
        ({"train": {"seed": "42"}}, "train.seed"),
        ({"split": {"test_size": 0}}, "split.test_size"),
        ({"split": {"test_size": 1}}, "split.test_size"),
        ({"split": {"test_size": 1.5}}, "split.test_size"),
        ({"split": {"test_size": -0.2}}, "split.test_size"),
        ({"split": {"test_size": "a lot"}}, "split.test_size"),
        ({"data": {"source": "s3"}}, "data.source"),
        ({"data": {"source": "csv", "path": None}}, "data.path"),
        ({"data": {"source": "synthetic", "n_rows": None}}, "data.n_rows"),
        ({"data": {"task": "ranking"}}, "data.task"),
        ({"data": {"task": "classification"}}, "set 'data.task: binary'"),
        ({"data": {"drop_columns": ["income"]}}, "must not contain the target 'income'"),
        ({"data": {"drop_columns": ["a", "a"]}}, "'data.drop_columns' names column 'a' twice"),
        ({"data": {"drop_columns": "id"}}, "data.drop_columns"),
        ({"data": {"delimiter": ",,"}}, "data.delimiter"),
        ({"data": {"header": "no"}}, "data.header"),
        ({"data": {"source": "csv", "path": "x.csv", "header": False}}, "data.columns"),
        ({"data": {"columns": ["a", "b"]}}, "data.columns"),
        ({"evaluate": {"slices": ["income"]}}, "must not contain the target 'income'"),
        (
            {"data": {"drop_columns": ["sex"]}, "evaluate": {"slices": ["sex"]}},
            "'evaluate.slices' column 'sex' is in data.drop_columns",
        ),
        ({"data": {"task": "regression"}}, "data.task"),
        ({"data": {"source": "csv", "path": "x.csv", "task": "regression"}}, "logistic"),
        ({"evaluate": {"slices": "sex"}}, "evaluate.slices"),
        ({"evaluate": {"threshold": 2}}, "evaluate.threshold"),
        ({"gate": {"primary": "rmse"}}, "gate.primary"),
        (
            {"gate": {"worst_slice": {"metric": "log_loss", "min": 0.1, "min_rows": 5}}},
            "must be a higher-is-better metric",
        ),
        ({"gate": {"thresholds": {"auc": 0.9}}}, "gate.thresholds.auc"),
        ({"gate": {"thresholds": {"roc_auc": "high"}}}, "gate.thresholds.roc_auc"),
        ({"gate": {"max_regression": {"roc_auc": float("inf")}}}, "gate.max_regression.roc_auc"),
        ({"gate": {"baseline": 0.01}}, "'gate.baseline' must be a mapping or null"),
        ({"gate": {"baseline": {"metric": "roc_auc"}}}, "missing key 'gate.baseline.margin'"),
        (
            {"gate": {"baseline": {"metric": "roc_auc", "margin": 0.0, "model": "dummy"}}},
            "unknown key 'gate.baseline.model'",
        ),
        ({"gate": {"baseline": {"metric": "rmse", "margin": 0.0}}}, "gate.baseline.metric"),
        ({"gate": {"baseline": {"metric": "roc_auc", "margin": -0.01}}}, "gate.baseline.margin"),
        ({"gate": {"baseline": {"metric": "roc_auc", "margin": "1%"}}}, "gate.baseline.margin"),
        ({"gate": {"disparity": []}}, "'gate.disparity' must be a mapping or null"),
        (
            {"gate": {"disparity": {"metric": "roc_auc", "max_gap": 0.1}}},
            "missing key 'gate.disparity.min_rows'",
        ),
        (
            {"gate": {"disparity": {"metric": "log_loss", "max_gap": 0.1, "min_rows": 50}}},
            "'gate.disparity.metric' must be a metric reports/slices.json holds for binary",
        ),
        (
            {"gate": {"disparity": {"metric": "positive_rate", "max_gap": 0.1, "min_rows": 50}}},
            "gate.disparity.metric",
        ),
        (
            {"gate": {"disparity": {"metric": "roc_auc", "max_gap": -0.1, "min_rows": 50}}},
            "gate.disparity.max_gap",
        ),
        (
            {"gate": {"disparity": {"metric": "roc_auc", "max_gap": 0.1, "min_rows": 0}}},
            "gate.disparity.min_rows",
        ),
        (
            {
                "gate": {"disparity": {"metric": "roc_auc", "max_gap": 0.1, "min_rows": 50}},
                "evaluate": {"slices": []},
            },
            "'gate.disparity' compares the groups of the evaluate.slices columns",
        ),
        ({"gate": {"fail_on_violation": "yes"}}, "gate.fail_on_violation"),
        ({"gate": {"worst_slice": {"metric": "roc_auc", "min": 0.8}}}, "gate.worst_slice.min_rows"),
        ({"drift": {"psi_treshold": 0.2}}, "drift.psi_treshold"),
        ({"drift": {"psi_threshold": 0}}, "drift.psi_threshold"),
        ({"drift": {"psi_threshold": "high"}}, "drift.psi_threshold"),
        ({"drift": {"prediction_psi_threshold": -0.1}}, "drift.prediction_psi_threshold"),
        ({"drift": {"ks_pvalue": 1.5}}, "drift.ks_pvalue"),
        ({"drift": {"ks_pvalue": 0}}, "drift.ks_pvalue"),
        ({"drift": {"ks_statistic": 2}}, "drift.ks_statistic"),
        ({"drift": {"max_missing_rate_increase": -0.05}}, "drift.max_missing_rate_increase"),
        ({"drift": {"bins": 1}}, "drift.bins"),
        ({"drift": {"bins": 10.5}}, "drift.bins"),
        ({"drift": {"min_rows": 1}}, "drift.min_rows"),
        ({"drift": {"max_drifted_features": -1}}, "drift.max_drifted_features"),
        ({"drift": {"max_drifted_features": True}}, "drift.max_drifted_features"),
    ],
)
def test_bad_values_name_the_key(changes: dict, needle: str) -> None:
    raw = with_changes(**changes)
    if needle == "logistic":
        raw["train"]["model"] = "logistic_regression"
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse_params(raw, check_estimator=True)


def test_baseline_and_disparity_rules_are_optional_and_parsed() -> None:
    """Absent (a gitops.yaml from before these rules) or null: no rule."""
    raw = copy.deepcopy(DEFAULTS)
    raw["gate"].pop("baseline", None)
    raw["gate"].pop("disparity", None)
    gate = parse_params(raw).gate
    assert gate.baseline is None and gate.disparity is None
    raw["gate"].update(
        baseline={"metric": "log_loss", "margin": 0.02},
        disparity={"metric": "predicted_positive_rate", "max_gap": 0.2, "min_rows": 30},
        max_regression={"roc_auc": -0.01},  # a required improvement
    )
    gate = parse_params(raw).gate
    assert (gate.baseline.metric, gate.baseline.margin) == ("log_loss", 0.02)
    assert gate.disparity == DisparityRule("predicted_positive_rate", 0.2, 30)
    assert gate.max_regression == {"roc_auc": -0.01}


@pytest.mark.parametrize(
    ("task", "baseline", "disparity", "error"),
    [
        ("regression", "r2", "rmse", None),
        ("multiclass", "f1_macro", "balanced_accuracy", None),
        ("multiclass", "roc_auc", "accuracy", "gate.baseline.metric"),
        ("multiclass", "accuracy", "roc_auc_ovr", "gate.disparity.metric"),
        ("regression", "rmse", "roc_auc", "gate.disparity.metric"),
    ],
)
def test_rule_metrics_depend_on_the_task(
    task: str, baseline: str, disparity: str, error: str | None
) -> None:
    raw = copy.deepcopy(DEFAULTS)
    raw["data"].update(source="csv", path="x.csv", task=task, positive_label=None)
    raw["train"]["model"] = "random_forest"
    raw["gate"] = {
        "fail_on_violation": True,
        "primary": "accuracy" if task == "multiclass" else "rmse",
        "thresholds": {},
        "max_regression": {},
        "worst_slice": None,
        "baseline": {"metric": baseline, "margin": 0.0},
        "disparity": {"metric": disparity, "max_gap": 1.0, "min_rows": 10},
    }
    if error is None:
        assert parse_params(raw).gate.disparity.metric == disparity
    else:
        with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
            parse_params(raw)


def test_slice_metrics_are_the_ones_slices_json_holds() -> None:
    """config.SLICE_METRICS (no scikit-learn import) names what metrics.slice_metrics writes."""
    import pandas as pd

    from gitops_ml.config import SLICE_METRICS
    from gitops_ml.metrics import slice_metrics

    frame = pd.DataFrame({"g": ["a", "a", "b", "b"]})
    labels = {"binary": [0, 1, 0, 1], "multiclass": [0, 1, 2, 1], "regression": [1.0, 2, 3, 4]}
    for task, metrics in SLICE_METRICS.items():
        y = labels[task]
        extra = {"score": [0.2, 0.8, 0.4, 0.6], "positive": 1} if task == "binary" else {}
        out = slice_metrics(frame, ["g"], task=task, actual=y, predicted=y, **extra)
        written = set(out["g"]["a"]) - {"n", "positive_rate"}
        assert written == set(metrics), task


def test_unknown_and_missing_sections() -> None:
    raw = copy.deepcopy(DEFAULTS)
    raw["extra"] = {}
    with pytest.raises(ConfigError, match="unknown section 'extra'"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULTS)
    del raw["split"]["seed"]
    with pytest.raises(ConfigError, match=r"missing key 'split\.seed'"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULTS)
    del raw["mlflow"]
    with pytest.raises(ConfigError, match="section 'mlflow'"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULTS)
    del raw["drift"]
    with pytest.raises(ConfigError, match="section 'drift'"):
        parse_params(raw)
    raw = copy.deepcopy(DEFAULTS)
    del raw["drift"]["ks_statistic"]
    with pytest.raises(ConfigError, match=r"missing key 'drift\.ks_statistic'"):
        parse_params(raw)


def test_shipped_drift_section() -> None:
    drift = load_params(ROOT / "params.yaml").drift
    assert drift.psi_threshold == 0.2
    assert 0 < drift.ks_pvalue < 1
    assert drift.min_rows >= 100
    assert drift.max_drifted_features == 0
    assert set(DEFAULTS["drift"]) == set(drift.__dataclass_fields__)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(bad)


def test_cli_reports_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(with_changes(train={"model": "xgboost"})))
    assert cli_main(["check-params", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: params: 'train.model'")
    path.write_text(yaml.safe_dump(DEFAULTS))
    assert cli_main(["check-params", "--params", str(path)]) == 0


def test_check_params_checks_the_tune_section_as_the_stage_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "gitops.yaml", tmp_path / "gitops.yaml")
    for change, needle in (
        ({"folds": 1}, "error: params: 'tune.folds' must be >= 2, got 1"),
        ({"space": {"hist_gradient_boosting": {"learning_rate": [-1]}}},
         "error: params: 'tune.space.hist_gradient_boosting.learning_rate' value -1"),
    ):  # fmt: skip
        path.write_text(yaml.safe_dump({**raw, "tune": {**raw["tune"], **change}}))
        assert cli_main(["check-params", "--params", str(path)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(needle), line


def test_gate_and_drift_live_in_gitops_yaml_beside_params(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "gate" not in raw and "drift" not in raw  # `dvc exp show` lists pipeline params only
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"section 'gate' is missing.*gitops\.yaml"):
        load_params(params_path)
    (tmp_path / "gitops.yaml").write_text((ROOT / "gitops.yaml").read_text())
    assert load_params(params_path).gate == load_params(ROOT / "params.yaml").gate
    # the older layout, everything in params.yaml, still loads; a section in both files does not
    both = {**raw, **yaml.safe_load((ROOT / "gitops.yaml").read_text())}
    params_path.write_text(yaml.safe_dump(both))
    with pytest.raises(ConfigError, match=r"section 'gate' is in both params\.yaml and"):
        load_params(params_path)
    (tmp_path / "gitops.yaml").unlink()
    assert load_params(params_path).drift == load_params(ROOT / "params.yaml").drift


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"evaluate": {"slices": ["sex", "colour"]}},
            r"'evaluate\.slices' names 'colour'.*valid: age",
        ),
        (
            {"data": {"positive_label": "rich"}},
            r"'data\.positive_label' 'rich' is not a label.*>50K",
        ),
        ({"data": {"target": "sex"}, "evaluate": {"slices": []}}, r"'data\.target' 'sex' is not"),
    ],
)
def test_check_params_finds_slices_and_labels_in_the_schema(
    changes: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("dvc.yaml", "gitops.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    (tmp_path / "data/schema").mkdir(parents=True)
    (tmp_path / "data/schema/adult.yaml").write_text((ROOT / "data/schema/adult.yaml").read_text())
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert cli_main(["check-params", "--params", str(tmp_path / "params.yaml")]) == 0
    assert "columns and labels match" in capsys.readouterr().out
    for section, values in changes.items():
        raw[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert cli_main(["check-params", "--params", str(tmp_path / "params.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err


def test_check_params_checks_the_monitoring_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """gitops.yaml's monitoring section is read by `predict --log-dir` and `model-age` only, so
    check-params is where a bad value shows before either runs."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    gitops = yaml.safe_load((ROOT / "gitops.yaml").read_text())
    for change, needle in (
        ({"retention_rows": 0}, "error: params: 'monitoring.retention_rows' must be a whole"),
        ({"max_model_age_days": "90d"}, "error: params: 'monitoring.max_model_age_days' must be"),
        ({"retention_weeks": 3}, "error: params: unknown key 'monitoring.retention_weeks'"),
    ):
        section = {**gitops["monitoring"], **change}
        (tmp_path / "gitops.yaml").write_text(yaml.safe_dump({**gitops, "monitoring": section}))
        assert cli_main(["check-params", "--params", str(tmp_path / "params.yaml")]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(needle), line
    (tmp_path / "gitops.yaml").write_text(yaml.safe_dump(gitops))
    assert cli_main(["check-params", "--params", str(tmp_path / "params.yaml")]) == 0
