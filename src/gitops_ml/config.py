"""Typed parameters: params.yaml (and gitops.yaml beside it) read once into frozen dataclasses,
one per section.

Unknown keys, missing keys and bad values are errors that name the key (``train.model``), so a
typo stops the pipeline before any work is done. There is no second set of defaults in code:
every knob lives in params.yaml (the pipeline's) or gitops.yaml (the gate and the drift check,
which no stage reads).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from gitops_ml.errors import ConfigError
from gitops_ml.files import load_yaml

SOURCES = ("adult", "csv", "parquet", "synthetic")
#: binary and multiclass are classification tasks; `classification` was the old name of binary.
TASKS = ("binary", "multiclass", "regression")
CLASSIFICATION_TASKS = ("binary", "multiclass")


def is_classification(task: str) -> bool:
    """True for the tasks a classifier solves (binary, multiclass)."""
    return task in CLASSIFICATION_TASKS


def estimator_kind(task: str) -> str:
    """ "classification" for the binary and multiclass tasks, else the task itself."""
    return "classification" if is_classification(task) else task


#: train.model -> the estimator kinds it has (`gitops_ml.models.MODELS` holds the classes; a test
#: keeps the two equal). Known here so that reading params never imports scikit-learn.
MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "logistic_regression": ("classification",),
    "ridge": ("regression",),
    "hist_gradient_boosting": ("classification", "regression"),
    "random_forest": ("classification", "regression"),
}


def check_model_name(model: str, task: str) -> None:
    """A ConfigError names a `train.model` that does not exist or does not solve `task`."""
    if model not in MODEL_KINDS:
        raise ConfigError(
            f"params: 'train.model' must be one of {', '.join(MODEL_KINDS)}; got '{model}'"
        )
    kind = estimator_kind(task)
    if kind not in MODEL_KINDS[model]:
        other = [name for name, kinds in MODEL_KINDS.items() if kind in kinds]
        raise ConfigError(
            f"params: 'train.model' {model} does not support {task}; use one of {', '.join(other)}"
        )


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and what is predicted."""

    source: str
    path: str | None
    delimiter: str
    header: bool
    columns: tuple[str, ...] | None
    drop_columns: tuple[str, ...]
    target: str
    task: str
    n_rows: int | None
    positive_label: str | None


@dataclass(frozen=True)
class SplitConfig:
    """The held-out test split."""

    test_size: float
    seed: int


@dataclass(frozen=True)
class TrainConfig:
    """The estimator and its hyperparameters."""

    model: str
    hyperparams: Mapping[str, Any]
    seed: int


@dataclass(frozen=True)
class EvaluateConfig:
    """What the evaluate stage measures besides the headline metrics."""

    slices: tuple[str, ...]
    threshold: float
    importance_rows: int
    importance_repeats: int
    baseline_rows: int


@dataclass(frozen=True)
class MlflowConfig:
    """Experiment tracking and registry names (the tracking URI comes from the environment)."""

    experiment: str
    model_name: str


#: Metrics where a smaller value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})
#: Metrics the evaluate stage writes, per task.
TASK_METRICS = {
    "binary": (
        "roc_auc", "average_precision", "accuracy", "precision", "recall", "f1", "log_loss", "brier",
    ),
    "multiclass": (
        "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr",
    ),
    "regression": ("rmse", "mae", "r2"),
}  # fmt: skip
#: Metrics reports/slices.json holds for each slice, per task (`metrics.slice_metrics`; a test
#: keeps the two equal). Binary slices also hold `positive_rate`, a property of the data that no
#: model changes, so no rule gates it.
SLICE_METRICS = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "predicted_positive_rate"),
    "multiclass": ("accuracy", "balanced_accuracy", "f1_macro", "f1_weighted"),
    "regression": ("rmse", "mae", "r2"),
}


@dataclass(frozen=True)
class WorstSliceRule:
    """The weakest slice (of the evaluate.slices columns) must still reach `min`."""

    metric: str
    min: float
    min_rows: int


@dataclass(frozen=True)
class BaselineRule:
    """The model must beat the simple baseline the evaluate stage fits on the same split
    (reports/baseline.json) by at least `margin`, in the metric's units."""

    metric: str
    margin: float


@dataclass(frozen=True)
class DisparityRule:
    """The largest gap in `metric` between two groups of one evaluate.slices column (groups of
    at least `min_rows` test rows) must stay within `max_gap`."""

    metric: str
    max_gap: float
    min_rows: int


@dataclass(frozen=True)
class GateConfig:
    """The quality gate a pull request must pass (`gitops-ml gate`)."""

    fail_on_violation: bool
    primary: str
    thresholds: Mapping[str, float]
    max_regression: Mapping[str, float]
    worst_slice: WorstSliceRule | None
    # Optional keys of gitops.yaml's gate section: absent or null means no such rule.
    baseline: BaselineRule | None = None
    disparity: DisparityRule | None = None
    #: metrics whose improvement over the champion must be real: the lower bound of the delta's
    #: paired bootstrap interval (in the better direction) must clear zero
    significant: tuple[str, ...] = ()


#: Keys of the gate section that may be left out (a gitops.yaml from before these rules).
GATE_OPTIONAL = ("baseline", "disparity", "significant")
#: Metrics whose champion-vs-challenger delta gets a paired bootstrap interval, per task
#: (`gitops_ml.pr.significance`); average precision has none.
INTERVAL_METRICS = {
    "binary": ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "multiclass": (
        "accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr",
    ),
    "regression": ("rmse", "mae", "r2"),
}  # fmt: skip


@dataclass(frozen=True)
class DriftConfig:
    """When a batch of production data no longer looks like the training data (`gitops-ml drift`).

    A feature drifts on a large PSI, on a KS test that is both significant and large (with
    thousands of rows a significant p-value alone flags differences too small to matter), or on
    a jump in its missing rate; the batch drifts when the prediction distribution drifts or more
    than `max_drifted_features` features do.
    """

    min_rows: int
    bins: int
    psi_threshold: float
    ks_pvalue: float
    ks_statistic: float
    max_missing_rate_increase: float
    prediction_psi_threshold: float
    max_drifted_features: int


@dataclass(frozen=True)
class CardConfig:
    """The words of the model card that no file of the pipeline knows (`gitops-ml promote`)."""

    intended_use: str
    limitations: str


@dataclass(frozen=True)
class Params:
    """Everything in params.yaml."""

    data: DataConfig
    split: SplitConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    mlflow: MlflowConfig
    gate: GateConfig
    drift: DriftConfig
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    #: gitops.yaml's optional `card` section; None in a repository from before it existed.
    card: CardConfig | None = None


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name)
    if not isinstance(value, Mapping):
        where = (
            " (it lives in gitops.yaml, beside params.yaml)" if name in ("gate", "drift") else ""
        )
        raise ConfigError(f"params: section '{name}' is missing or not a mapping{where}")
    return value


def _build(
    cls: type, raw: Mapping[str, Any], name: str, optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check that a section has exactly the dataclass's keys (`optional` ones may be left out,
    and read as None); return them as a dict."""
    section = _section(raw, name)
    expected = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(expected))
    if unknown:
        raise ConfigError(
            f"params: unknown key '{name}.{unknown[0]}' (expected one of: {', '.join(expected)})"
        )
    missing = [key for key in expected if key not in section and key not in optional]
    if missing:
        raise ConfigError(f"params: missing key '{name}.{missing[0]}'")
    return {**dict.fromkeys(optional), **section}


def _int(value: Any, key: str, *, minimum: int | None = None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"params: '{key}' must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"params: '{key}' must be >= {minimum}, got {value}")
    return value


def _str(
    value: Any, key: str, *, choices: tuple[str, ...] = (), optional: bool = False
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"params: '{key}' must be a non-empty string, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"params: '{key}' must be one of {', '.join(choices)}; got '{value}'")
    return value


def _fraction(value: Any, key: str, *, inclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"params: '{key}' must be a number, got {value!r}")
    ok = 0 <= value <= 1 if inclusive else 0 < value < 1
    if not ok:
        interval = "[0, 1]" if inclusive else "(0, 1)"
        raise ConfigError(f"params: '{key}' must be in {interval}, got {value}")
    return float(value)


def _names(value: Any, key: str, *, optional: bool = False) -> tuple[str, ...] | None:
    """A list of distinct column names (null: none, or None when `optional`)."""
    if value is None:
        return None if optional else ()
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ConfigError(f"params: '{key}' must be a list of column names, got {value!r}")
    seen: set[str] = set()
    for name in value:
        if name in seen:
            raise ConfigError(f"params: '{key}' names column '{name}' twice")
        seen.add(name)
    return tuple(value)


def _task(value: Any) -> str:
    if value == "classification":
        raise ConfigError(
            "params: 'data.task' classification is now binary (two classes) or multiclass "
            "(three or more); set 'data.task: binary' for a two-class target"
        )
    return _str(value, "data.task", choices=TASKS)


def _data(raw: Mapping[str, Any]) -> DataConfig:
    s = _build(DataConfig, raw, "data")
    delimiter = s["delimiter"]
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise ConfigError(
            f"params: 'data.delimiter' must be one character such as ',' ';' or a tab, "
            f"got {delimiter!r}"
        )
    if not isinstance(s["header"], bool):
        raise ConfigError(f"params: 'data.header' must be true or false, got {s['header']!r}")
    cfg = DataConfig(
        source=_str(s["source"], "data.source", choices=SOURCES),
        path=_str(s["path"], "data.path", optional=True),
        delimiter=delimiter,
        header=s["header"],
        columns=_names(s["columns"], "data.columns", optional=True),
        drop_columns=_names(s["drop_columns"], "data.drop_columns"),
        target=_str(s["target"], "data.target"),
        task=_task(s["task"]),
        n_rows=_int(s["n_rows"], "data.n_rows", minimum=100, optional=True),
        # Read by binary tasks only; the other tasks ignore it.
        positive_label=None if s["positive_label"] is None else str(s["positive_label"]),
    )
    if cfg.source in ("csv", "parquet") and cfg.path is None:
        raise ConfigError(
            f"params: 'data.path' must name the {cfg.source} file when data.source is {cfg.source}"
        )
    if cfg.source == "synthetic" and cfg.n_rows is None:
        raise ConfigError("params: 'data.n_rows' must be set when data.source is synthetic")
    if cfg.source in ("adult", "synthetic") and cfg.task != "binary":
        raise ConfigError(
            f"params: data.source '{cfg.source}' is a binary classification data set; "
            "set 'data.task' to binary"
        )
    if not cfg.header and cfg.source == "csv" and cfg.columns is None:
        raise ConfigError(
            "params: 'data.columns' must list the column names when data.header is false"
        )
    if cfg.columns is not None and cfg.header:
        raise ConfigError(
            "params: 'data.columns' names the columns of a headerless file; "
            "set 'data.header: false' or 'data.columns: null'"
        )
    if cfg.target in cfg.drop_columns:
        raise ConfigError(f"params: 'data.drop_columns' must not contain the target '{cfg.target}'")
    return cfg


def _split(raw: Mapping[str, Any]) -> SplitConfig:
    s = _build(SplitConfig, raw, "split")
    return SplitConfig(
        test_size=_fraction(s["test_size"], "split.test_size"),
        seed=_int(s["seed"], "split.seed", minimum=0),
    )


def _train(raw: Mapping[str, Any], task: str, check_estimator: bool) -> TrainConfig:
    s = _build(TrainConfig, raw, "train")
    hyper = s["hyperparams"]
    if hyper is None:
        hyper = {}
    if not isinstance(hyper, Mapping):
        raise ConfigError(f"params: 'train.hyperparams' must be a mapping, got {hyper!r}")
    cfg = TrainConfig(
        model=_str(s["model"], "train.model"),
        hyperparams=MappingProxyType(dict(hyper)),
        seed=_int(s["seed"], "train.seed", minimum=0),
    )
    check_model_name(cfg.model, task)
    if check_estimator:
        # scikit-learn's own constraints, read from a table shipped with the package; only what
        # the table cannot decide goes to scikit-learn (seconds to import).
        from gitops_ml.hyperparams import check_hyperparams

        if not check_hyperparams(cfg.model, task, cfg.hyperparams):
            from gitops_ml.models import validate_model

            validate_model(cfg.model, task, dict(cfg.hyperparams))
    return cfg


def _evaluate(raw: Mapping[str, Any], data: DataConfig) -> EvaluateConfig:
    s = _build(EvaluateConfig, raw, "evaluate")
    slices = _names(s["slices"], "evaluate.slices")
    for col in slices:
        if col == data.target:
            raise ConfigError(f"params: 'evaluate.slices' must not contain the target '{col}'")
        if col in data.drop_columns:
            raise ConfigError(
                f"params: 'evaluate.slices' column '{col}' is in data.drop_columns: "
                "the test data will not have it"
            )
    return EvaluateConfig(
        slices=slices,
        threshold=_fraction(s["threshold"], "evaluate.threshold"),
        importance_rows=_int(s["importance_rows"], "evaluate.importance_rows", minimum=0),
        importance_repeats=_int(s["importance_repeats"], "evaluate.importance_repeats", minimum=1),
        baseline_rows=_int(s["baseline_rows"], "evaluate.baseline_rows", minimum=100),
    )


def _mlflow(raw: Mapping[str, Any]) -> MlflowConfig:
    s = _build(MlflowConfig, raw, "mlflow")
    return MlflowConfig(
        experiment=_str(s["experiment"], "mlflow.experiment"),
        model_name=_str(s["model_name"], "mlflow.model_name"),
    )


def _metric(value: Any, key: str, task: str) -> str:
    name = _str(value, key)
    if name not in TASK_METRICS[task]:
        raise ConfigError(
            f"params: '{key}' must be a {task} metric ({', '.join(TASK_METRICS[task])}); "
            f"got '{name}'"
        )
    return name


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"params: '{key}' must be a number, got {value!r}")
    return float(value)


def _metric_map(value: Any, key: str, task: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"params: '{key}' must be a mapping of metric: number, got {value!r}")
    out = {}
    for name, limit in value.items():
        _metric(name, f"{key}.{name}", task)
        out[name] = _number(limit, f"{key}.{name}")
        if math.isinf(out[name]):
            raise ConfigError(f"params: '{key}.{name}' must be a finite number, got {limit}")
    return out


def _rule_section(value: Any, key: str) -> Mapping[str, Any] | None:
    """An optional rule's mapping, or None when the rule is off (null)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"params: '{key}' must be a mapping or null, got {value!r}")
    return value


def _baseline_rule(value: Any, task: str) -> BaselineRule | None:
    section = _rule_section(value, "gate.baseline")
    if section is None:
        return None
    b = _build(BaselineRule, {"gate.baseline": section}, "gate.baseline")
    margin = _number(b["margin"], "gate.baseline.margin")
    if not 0 <= margin < math.inf:
        raise ConfigError(
            f"params: 'gate.baseline.margin' must be a finite number >= 0 (how much better than "
            f"the baseline the model must be), got {b['margin']}"
        )
    return BaselineRule(metric=_metric(b["metric"], "gate.baseline.metric", task), margin=margin)


def _disparity_rule(value: Any, task: str, slices: tuple[str, ...]) -> DisparityRule | None:
    section = _rule_section(value, "gate.disparity")
    if section is None:
        return None
    d = _build(DisparityRule, {"gate.disparity": section}, "gate.disparity")
    metric = _str(d["metric"], "gate.disparity.metric")
    if metric not in SLICE_METRICS[task]:
        raise ConfigError(
            f"params: 'gate.disparity.metric' must be a metric reports/slices.json holds for "
            f"{task} ({', '.join(SLICE_METRICS[task])}); got '{metric}'"
        )
    max_gap = _number(d["max_gap"], "gate.disparity.max_gap")
    if not 0 <= max_gap < math.inf:
        raise ConfigError(
            f"params: 'gate.disparity.max_gap' must be a finite number >= 0, got {d['max_gap']}"
        )
    if not slices:
        raise ConfigError(
            "params: 'gate.disparity' compares the groups of the evaluate.slices columns, and "
            "evaluate.slices is empty; list a column there or set 'gate.disparity: null'"
        )
    return DisparityRule(
        metric=metric,
        max_gap=max_gap,
        min_rows=_int(d["min_rows"], "gate.disparity.min_rows", minimum=1),
    )


def _gate(raw: Mapping[str, Any], task: str, slices: tuple[str, ...]) -> GateConfig:
    s = _build(GateConfig, raw, "gate", optional=GATE_OPTIONAL)
    if not isinstance(s["fail_on_violation"], bool):
        raise ConfigError(
            f"params: 'gate.fail_on_violation' must be true or false, got {s['fail_on_violation']!r}"
        )
    worst = s["worst_slice"]
    rule = None
    if worst is not None:
        if not isinstance(worst, Mapping):
            raise ConfigError(
                f"params: 'gate.worst_slice' must be a mapping or null, got {worst!r}"
            )
        w = _build(WorstSliceRule, {"gate.worst_slice": worst}, "gate.worst_slice")
        if w["metric"] in LOWER_IS_BETTER:
            raise ConfigError(
                f"params: 'gate.worst_slice.metric' must be a higher-is-better metric (the rule "
                f"is a minimum over slices); got '{w['metric']}'"
            )
        rule = WorstSliceRule(
            metric=_metric(w["metric"], "gate.worst_slice.metric", task),
            min=_number(w["min"], "gate.worst_slice.min"),
            min_rows=_int(w["min_rows"], "gate.worst_slice.min_rows", minimum=1),
        )
    return GateConfig(
        fail_on_violation=s["fail_on_violation"],
        primary=_metric(s["primary"], "gate.primary", task),
        # An absolute limit: a minimum for higher-is-better metrics, a maximum for the others.
        thresholds=MappingProxyType(_metric_map(s["thresholds"], "gate.thresholds", task)),
        # The largest allowed worsening against the champion, in the metric's own units; a
        # negative limit is a required improvement (a retraining pull request must do better).
        max_regression=MappingProxyType(
            _metric_map(s["max_regression"], "gate.max_regression", task)
        ),
        worst_slice=rule,
        baseline=_baseline_rule(s["baseline"], task),
        disparity=_disparity_rule(s["disparity"], task, slices),
        significant=_significant(s["significant"], task),
    )


def _significant(value: Any, task: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"params: 'gate.significant' must be a list of metrics, got {value!r}")
    for name in value:
        if name not in INTERVAL_METRICS[task]:
            raise ConfigError(
                f"params: 'gate.significant' metrics must be {task} metrics with an interval "
                f"({', '.join(INTERVAL_METRICS[task])}); got {name!r}"
            )
    return tuple(value)


def _positive(value: Any, key: str) -> float:
    number = _number(value, key)
    if number <= 0:
        raise ConfigError(f"params: '{key}' must be > 0, got {value}")
    return number


def _drift(raw: Mapping[str, Any]) -> DriftConfig:
    s = _build(DriftConfig, raw, "drift")
    return DriftConfig(
        min_rows=_int(s["min_rows"], "drift.min_rows", minimum=2),
        bins=_int(s["bins"], "drift.bins", minimum=2),
        psi_threshold=_positive(s["psi_threshold"], "drift.psi_threshold"),
        ks_pvalue=_fraction(s["ks_pvalue"], "drift.ks_pvalue"),
        ks_statistic=_fraction(s["ks_statistic"], "drift.ks_statistic", inclusive=True),
        max_missing_rate_increase=_fraction(
            s["max_missing_rate_increase"], "drift.max_missing_rate_increase", inclusive=True
        ),
        prediction_psi_threshold=_positive(
            s["prediction_psi_threshold"], "drift.prediction_psi_threshold"
        ),
        max_drifted_features=_int(
            s["max_drifted_features"], "drift.max_drifted_features", minimum=0
        ),
    )


def _card(raw: Mapping[str, Any]) -> CardConfig | None:
    if "card" not in raw:
        return None
    s = _build(CardConfig, raw, "card")
    return CardConfig(
        intended_use=str(_str(s["intended_use"], "card.intended_use")).strip(),
        limitations=str(_str(s["limitations"], "card.limitations")).strip(),
    )


#: Sections one stage reads and checks itself (`tune`: gitops_ml.stages.tune.parse_tune).
STAGE_SECTIONS = ("tune",)


def parse_params(raw: Any, *, check_estimator: bool = False) -> Params:
    """Validate an already-parsed params mapping.

    `train.model` is always checked against the task; the hyperparameters are checked by
    building the estimator only with `check_estimator` (it imports scikit-learn, seconds of
    start-up that only `check-params`, `init` and the train stage, which builds it anyway, pay).
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("params: the file must contain a mapping of sections")
    known = {f.name for f in dataclasses.fields(Params)} - {"raw"}
    known |= set(OWN_SECTIONS) | set(STAGE_SECTIONS)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"params: unknown section '{unknown[0]}' (expected: {', '.join(sorted(known))})"
        )
    data = _data(raw)
    evaluate = _evaluate(raw, data)
    return Params(
        data=data,
        split=_split(raw),
        train=_train(raw, data.task, check_estimator),
        evaluate=evaluate,
        mlflow=_mlflow(raw),
        gate=_gate(raw, data.task, evaluate.slices),
        drift=_drift(raw),
        card=_card(raw),
        raw=MappingProxyType(dict(raw)),
    )


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a YAML file the user edits (`what`: "params", "schema"); errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the {what} file: {exc}") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None


#: The GitOps settings' file, beside params.yaml, and the sections it holds.
GITOPS_FILE = "gitops.yaml"
GITOPS_SECTIONS = ("gate", "drift", "monitoring", "card")
#: Optional sections that the module using them parses from `Params.raw`, not `Params`:
#: monitoring (the prediction log's retention) -> `gitops_ml.batches.retention_config`, and its
#: `MAX_MODEL_AGE_KEY` -> `max_model_age_days`.
OWN_SECTIONS = ("monitoring",)
#: gitops.yaml ``monitoring.max_model_age_days``: the scheduled model-age check (monitor.yml,
#: `gitops-ml model-age`) fails when @champion was registered more than this many days ago.
MAX_MODEL_AGE_KEY = "max_model_age_days"


def max_model_age_days(raw: Mapping[str, Any]) -> int | None:
    """``monitoring.max_model_age_days`` of the merged settings (`Params.raw`): a whole number of
    days >= 1, or None (null, or a gitops.yaml from before the key: no age limit)."""
    section = raw.get("monitoring")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise ConfigError(f"params: section 'monitoring' must be a mapping, got {section!r}")
    value = section.get(MAX_MODEL_AGE_KEY)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(
            f"params: 'monitoring.{MAX_MODEL_AGE_KEY}' must be a whole number of days >= 1 or "
            f"null (no age limit), got {value!r}"
        )
    return value


def gitops_path(params_path: str | os.PathLike[str]) -> Path:
    """gitops.yaml beside a params file."""
    return Path(params_path).parent / GITOPS_FILE


def merge_settings(params: Any, gitops: Any, *, source: str = GITOPS_FILE) -> Any:
    """params.yaml's sections plus gitops.yaml's (`gate`, `drift`), as one mapping.

    gitops.yaml may be absent (None), e.g. in a repository from before the split, whose
    params.yaml still holds those sections; a section in both files is an error.
    """
    if gitops is None or not isinstance(params, Mapping):
        return params
    if not isinstance(gitops, Mapping):
        raise ConfigError(f"{source}: the file must contain a mapping of sections")
    unknown = sorted(set(gitops) - set(GITOPS_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section '{unknown[0]}' (expected: {', '.join(GITOPS_SECTIONS)})"
        )
    both = [name for name in gitops if name in params]
    if both:
        raise ConfigError(
            f"params: section '{both[0]}' is in both params.yaml and {source}; keep it in "
            f"{source} only"
        )
    return {**params, **gitops}


def read_settings(path: str | os.PathLike[str] = "params.yaml") -> Any:
    """params.yaml merged with the gitops.yaml beside it (if any), unvalidated."""
    extra = gitops_path(path)
    gitops = read_yaml(extra, "settings") if extra.is_file() else None
    return merge_settings(read_yaml(path, "params"), gitops, source=str(extra))


def load_params(
    path: str | os.PathLike[str] = "params.yaml", *, check_estimator: bool = False
) -> Params:
    """Read and validate params.yaml and the gitops.yaml beside it; every problem is a
    ConfigError naming the key (the hyperparameters too with `check_estimator`)."""
    return parse_params(read_settings(path), check_estimator=check_estimator)
