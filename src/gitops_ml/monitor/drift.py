"""Data drift: does a batch of new data still look like the data the model was trained on?

`gitops-ml drift` compares a batch (a CSV or parquet file, or a prediction log directory that
`gitops-ml predict --log-dir` fills) with the reference data (the training split), feature by
feature, and the batch's scores with the scores of the test split. The thresholds are the
``drift:`` section of gitops.yaml.

Per feature, on the non-missing values:

- ``psi``: the population stability index. Numeric features are binned at the reference's
  quantiles (``drift.bins``; tied quantiles merge, so a mostly-zero column gets few bins);
  categorical features use one bin per category, the reference's most frequent
  `MAX_CATEGORIES` and one for the rest. Empty bins and unseen categories count as `EPSILON`.
- ``ks_statistic``, ``pvalue``: numeric features only, scipy's two-sample Kolmogorov-Smirnov test.
- ``missing_rate_ref``, ``missing_rate_cur``: the share of missing values in each.

A feature drifts on ``psi >= drift.psi_threshold``, on a KS test that is both significant
(``pvalue < drift.ks_pvalue``) and large (``ks_statistic >= drift.ks_statistic``), or when its
missing rate grows by more than ``drift.max_missing_rate_increase``. The predictions drift when
the PSI of the scores reaches ``drift.prediction_psi_threshold``; the scores are the batch's
``score`` column if it has one (a prediction log does), else the model's scores of the batch.
The batch drifts when the predictions drift or more than ``drift.max_drifted_features``
features drift. Schema violations (the batch against the data contract's column rules) are
listed beside the verdict but do not decide it. Every score must be a finite number: a
missing, NaN or infinite score (in the batch's score column, the reference predictions, or from
the model) is an error that counts them, never a row left out.

Model quality (`quality_check`): when the batch has the target column (``data.target``), its
labelled rows are scored with ``--model`` (whatever the score column says) and measured as the
evaluate stage measures the test split (`gitops_ml.scoring.measure`); each limit of
``gate.thresholds`` is applied as the gate applies it. A broken limit is a quality alert. Rows
without a label are left out, and fewer than ``drift.min_rows`` labelled rows are not judged.
A classification label the model has no class for is counted by label, left out of the
metrics, and alerts by itself; a metric the batch leaves undefined (an AUC when one class
is present) is skipped. A prediction log has no labels: join the ground truth into a batch
file to judge quality.

Exit codes: 0 no drift and no quality alert, 1 drift or a quality alert (``alert`` in the
report; ``drift`` stays the data-drift verdict that `gitops-ml retrain` reads), 2 the input
cannot be judged (unreadable or empty batch, missing feature columns, text in numeric columns,
fewer than ``drift.min_rows`` rows, scores that are not finite, text in a regression label): a
one-line ``error:`` and no report written.

The JSON report (keys sorted; floats to 6 significant digits)::

    {"alert": bool, "drift": bool, "reasons": [str], "summary": str,
     "reference": path, "current": path, "schema": path,
     "rows": {"reference": int, "current": int},
     "features": {name: {"kind": "numeric" | "categorical", "psi": float | null,
                         "ks_statistic": float | null, "pvalue": float | null,
                         "missing_rate_ref": float, "missing_rate_cur": float,
                         "drifted": bool, "reasons": [str]}},
     "drifted_features": [name, ...],            # largest PSI first
     "prediction": {"source": "score column" | "model", "psi": float | null,
                    "ks_statistic": float | null, "pvalue": float | null,
                    "mean_ref": float | null, "mean_cur": float | null,
                    "rows_ref": int, "rows_cur": int, "drifted": bool, "reasons": [str]},
     "schema_violations": [{"column": str, "rule": str, "message": str}],
     "thresholds": {the drift: section of gitops.yaml},
     "quality": {"measured": bool, "alert": bool, "reasons": [str], "note": str | null,
                 "labelled_rows": int, "unlabelled_rows": int, "unseen_labels": {label: rows},
                 "metrics": {the evaluate stage's metrics of the labelled rows},
                 "rules": [{"metric": str, "observed": float | null, "limit": float,
                            "passed": bool, "skipped": bool, "message": str}]}}
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops_ml import lazy
from gitops_ml.batches import (
    MODEL_COLUMNS,
    PREDICTION_COLUMN,
    SCORE_COLUMN,
    SCORED_AT_COLUMN,
    read_batch,
    read_prediction_log,
    schema_path,
    score_batch,
)
from gitops_ml.cliargs import exit_codes
from gitops_ml.config import DriftConfig, Params, load_params
from gitops_ml.errors import DataError
from gitops_ml.files import atomic_path, write_json
from gitops_ml.lineage.artifacts import load_model
from gitops_ml.lineage.dvclock import MODEL_PATH, PREDICTIONS_PATH, TRAIN_PATH
from gitops_ml.release.serve import add_params_and_schema

np = lazy.module("numpy")
pd = lazy.module("pandas")

#: Share counted for an empty bin or an unseen category, so the PSI stays finite.
EPSILON = 1e-4
#: Categorical features: the reference's most frequent categories that get a bin of their own.
MAX_CATEGORIES = 100
#: Columns a prediction log adds to the features; never compared as features.
LOG_COLUMNS = (PREDICTION_COLUMN, SCORE_COLUMN, SCORED_AT_COLUMN, *MODEL_COLUMNS)
_OTHER = "\x00other"

# --------------------------------------------------------------------------------------------
# the statistics


def psi(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> float:
    """Population stability index of two histograms over the same bins.

    ``sum((cur - ref) * ln(cur / ref))`` over the bins' shares, each share at least `EPSILON`.
    """
    ref = np.asarray(ref_counts, dtype=float)
    cur = np.asarray(cur_counts, dtype=float)
    if ref.shape != cur.shape or ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("psi needs two non-empty histograms over the same bins")
    p = np.maximum(ref / ref.sum(), EPSILON)
    q = np.maximum(cur / cur.sum(), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def quantile_edges(ref: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles; tied quantiles give one edge."""
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def numeric_psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    """PSI over `bins` quantile bins of the reference: ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    edges = quantile_edges(ref, bins)
    k = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=k)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=k)
    return psi(ref_counts, cur_counts)


def categorical_psi(ref: pd.Series, cur: pd.Series) -> float:
    """PSI with one bin per category (compared as text); categories beyond the reference's most
    frequent `MAX_CATEGORIES` share one bin, so do values the reference never had."""
    ref_text = ref.astype(str)
    cur_text = cur.astype(str)
    counts = ref_text.value_counts()
    kept = list(counts.index[:MAX_CATEGORIES])
    ref_binned = ref_text.where(ref_text.isin(kept), _OTHER)
    cur_binned = cur_text.where(cur_text.isin(kept), _OTHER)
    cats = [*kept, _OTHER]
    ref_counts = ref_binned.value_counts().reindex(cats, fill_value=0).to_numpy()
    cur_counts = cur_binned.value_counts().reindex(cats, fill_value=0).to_numpy()
    return psi(ref_counts, cur_counts)


def _sig(value: float | None) -> float | None:
    """A float rounded to 6 significant digits (small, stable diffs of the JSON report)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


# --------------------------------------------------------------------------------------------
# the report


class _Judged:
    """A judged distribution: `reasons` why it drifted (none: it did not), and its JSON form."""

    reasons: tuple[str, ...]

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """Every field but ``name`` (floats to 6 significant digits), and ``drifted``."""
        out: dict[str, Any] = {"drifted": self.drifted}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # subclasses are dataclasses
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if isinstance(value, float):
                value = _sig(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass(frozen=True)
class FeatureDrift(_Judged):
    """One feature: its statistics, and why it drifted (no reasons: it did not)."""

    name: str
    kind: str  # numeric | categorical
    psi: float | None
    ks_statistic: float | None
    pvalue: float | None
    missing_rate_ref: float
    missing_rate_cur: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictionDrift(_Judged):
    """The score distribution of the batch against the test split's."""

    source: str  # "score column" (the batch's own) or "model" (scored here)
    psi: float | None
    ks_statistic: float | None
    pvalue: float | None
    mean_ref: float | None
    mean_cur: float | None
    rows_ref: int
    rows_cur: int
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualityCheck:
    """The model's quality on the batch's labelled rows, against the gate's thresholds.

    `note` says why it was not measured (no label column, too few labels); `reasons` why it
    alerts (a threshold broken, labels the model has no class for)."""

    measured: bool = False
    note: str | None = "not checked"
    labelled_rows: int = 0
    unlabelled_rows: int = 0
    unseen_labels: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    rules: tuple[Mapping[str, Any], ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def alert(self) -> bool:
        return bool(self.reasons)

    def headline(self) -> str:
        if self.alert:
            return f"QUALITY ALERT on {self.labelled_rows} labelled rows"
        if self.measured:
            return f"model quality within gate.thresholds on {self.labelled_rows} labelled rows"
        return f"model quality not measured ({self.note})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "alert": self.alert,
            "reasons": list(self.reasons),
            "note": self.note,
            "labelled_rows": self.labelled_rows,
            "unlabelled_rows": self.unlabelled_rows,
            "unseen_labels": dict(self.unseen_labels),
            "metrics": dict(self.metrics),
            "rules": [dict(r) for r in self.rules],
        }


@dataclass(frozen=True)
class DriftReport:
    """Everything `gitops-ml drift` found about one batch."""

    features: Mapping[str, FeatureDrift]
    prediction: PredictionDrift
    rows_reference: int
    rows_current: int
    thresholds: DriftConfig
    schema_violations: tuple[Mapping[str, Any], ...] = ()
    sources: Mapping[str, str | None] = field(default_factory=dict)
    quality: QualityCheck = field(default_factory=QualityCheck)

    @property
    def drifted_features(self) -> list[str]:
        """Names of the drifted features, largest PSI first."""
        drifted = [f for f in self.features.values() if f.drifted]
        return [f.name for f in sorted(drifted, key=_psi_order)]

    @property
    def reasons(self) -> list[str]:
        """Why the batch drifts (empty: it does not)."""
        out = []
        names = self.drifted_features
        limit = self.thresholds.max_drifted_features
        if len(names) > limit:
            out.append(
                f"{len(names)} of {len(self.features)} features drifted (more than {limit}): "
                + ", ".join(names)
            )
        if self.prediction.drifted:
            out.append("the predictions drifted: " + "; ".join(self.prediction.reasons))
        return out

    @property
    def drift(self) -> bool:
        return bool(self.reasons)

    @property
    def alert(self) -> bool:
        """Drift, or the model breaks the gate on the batch's labels: the exit code 1."""
        return self.drift or self.quality.alert

    def summary(self) -> str:
        names = self.drifted_features
        shown = f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
        p = self.prediction
        score = f"prediction PSI {p.psi:.3f}" if p.psi is not None else "prediction PSI n/a"
        return (
            f"{'DRIFT' if self.drift else 'no drift'}: {len(names)} of {len(self.features)} "
            f"features drifted{shown}; {score} "
            f"(limit {self.thresholds.prediction_psi_threshold}); "
            f"{len(self.schema_violations)} schema violation(s); "
            f"{self.rows_current} rows vs {self.rows_reference} reference rows; "
            f"{self.quality.headline()}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "drift": self.drift,
            "reasons": self.reasons,
            "summary": self.summary(),
            "reference": self.sources.get("reference"),
            "current": self.sources.get("current"),
            "schema": self.sources.get("schema"),
            "rows": {"reference": self.rows_reference, "current": self.rows_current},
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "drifted_features": self.drifted_features,
            "prediction": self.prediction.to_dict(),
            "schema_violations": [dict(v) for v in self.schema_violations],
            "thresholds": dataclasses.asdict(self.thresholds),
            "quality": self.quality.to_dict(),
        }


def _psi_order(f: FeatureDrift) -> tuple[float, str]:
    return (-(f.psi if f.psi is not None else -1.0), f.name)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: DriftReport) -> str:
    """A readable summary: the verdict, then every feature as a table sorted by PSI."""
    t = report.thresholds
    q = report.quality
    lines = [
        f"## Data drift: {'**drift detected**' if report.drift else 'no drift'}"
        + (" · model quality: **below the gate**" if q.alert else ""),
        "",
        f"Batch `{report.sources.get('current')}`: {report.rows_current} rows, against "
        f"`{report.sources.get('reference')}`: {report.rows_reference} rows.",
        "",
    ]
    if report.reasons:
        lines += [f"- {_cell(r)}" for r in report.reasons] + [""]
    p = report.prediction
    lines += [
        "### Predictions",
        "",
        "| scores from | PSI | KS statistic | p-value | mean score (reference → batch) | drifted |",
        "|---|---:|---:|---:|---|---|",
        f"| {p.source} | {_fmt(p.psi)} | {_fmt(p.ks_statistic)} | {_fmt(p.pvalue)} "
        f"| {_fmt(p.mean_ref)} → {_fmt(p.mean_cur)} | {'**yes**' if p.drifted else 'no'} |",
        "",
        *quality_markdown(q),
        "### Features",
        "",
        "| feature | kind | PSI | KS statistic | p-value | missing (reference → batch) | drifted |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for f in sorted(report.features.values(), key=_psi_order):
        mark = f"**yes**: {_cell('; '.join(f.reasons))}" if f.drifted else "no"
        name = f"**{f.name}**" if f.drifted else f.name
        lines.append(
            f"| {name} | {f.kind} | {_fmt(f.psi)} | {_fmt(f.ks_statistic)} | {_fmt(f.pvalue)} "
            f"| {f.missing_rate_ref:.1%} → {f.missing_rate_cur:.1%} | {mark} |"
        )
    lines += ["", "### Data contract", ""]
    if report.sources.get("schema") is None:
        lines.append("Not checked.")
    elif not report.schema_violations:
        lines.append(f"The batch meets the column rules of `{report.sources['schema']}`.")
    else:
        lines += [
            f"- `{v['column']}` {v['rule']}: {_cell(str(v['message']))}"
            for v in report.schema_violations
        ]
    lines += [
        "",
        f"Thresholds (gitops.yaml `drift:`): feature PSI ≥ {t.psi_threshold}; KS p < "
        f"{t.ks_pvalue} and statistic ≥ {t.ks_statistic}; missing rate +"
        f"{t.max_missing_rate_increase:.0%}; prediction PSI ≥ {t.prediction_psi_threshold}; "
        f"the batch drifts when more than {t.max_drifted_features} feature(s) drift or the "
        "predictions do.",
        "",
    ]
    return "\n".join(lines)


def quality_markdown(q: QualityCheck) -> list[str]:
    """The model-quality section: each gate threshold on the labelled rows."""
    lines = ["### Model quality on the batch's labels", ""]
    if not q.measured and not q.alert:
        return [*lines, f"Not measured: {_cell(str(q.note))}.", ""]
    lines += [f"- **{_cell(r)}**" for r in q.reasons]
    lines.append(
        f"{q.labelled_rows} labelled rows ({q.unlabelled_rows} without a label), scored with "
        "the model; limits from gitops.yaml `gate.thresholds`."
    )
    if q.note:
        lines.append(f"{_cell(q.note)}.")
    if q.rules:
        lines += ["", "| metric | batch | limit | result |", "|---|---:|---:|---|"]
        for r in q.rules:
            result = "skipped" if r["skipped"] else ("pass" if r["passed"] else "**fail**")
            lines.append(
                f"| {r['metric']} | {_fmt(r['observed'], 4)} | {_fmt(r['limit'], 4)} | {result} |"
            )
    return [*lines, ""]


# --------------------------------------------------------------------------------------------
# checking and comparing


def feature_columns(reference: pd.DataFrame, target: str | None) -> list[str]:
    """The reference's columns that are features: not the target, not prediction-log columns."""
    return [str(c) for c in reference.columns if c != target and c not in LOG_COLUMNS]


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def check_batch(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    features: Sequence[str],
    cfg: DriftConfig,
    *,
    source: str = "batch",
) -> pd.DataFrame:
    """The batch ready to compare (numeric features as numbers), or a DataError naming the problem.

    Refused: no rows, fewer than ``drift.min_rows``, missing feature columns, text in a
    column that is numeric in the reference, and infinite numbers (the model cannot score them).
    """
    if len(reference) == 0:
        raise DataError("the reference data has no rows")
    if len(current) == 0:
        raise DataError(f"{source}: the batch has no rows")
    missing = [c for c in features if c not in current.columns]
    if missing:
        raise DataError(
            f"{source}: missing feature column(s) {', '.join(missing)} "
            "(the reference data has them)"
        )
    out = current
    bad: list[str] = []
    for col in features:
        if not _is_numeric(reference[col]) or _is_numeric(current[col]):
            continue
        values = current[col]
        numbers = pd.to_numeric(values.astype(object), errors="coerce")
        wrong = values[numbers.isna() & values.notna()]
        if len(wrong):
            bad.append(f"'{col}' (e.g. {wrong.iloc[0]!r})")
            continue
        out = out.copy() if out is current else out
        out[col] = numbers.astype("float64")
    if bad:
        raise DataError(f"{source}: non-numeric values in numeric column(s) {', '.join(bad)}")
    infinite = []
    for col in features:
        if _is_numeric(out[col]):
            count = int(np.isinf(out[col].to_numpy(dtype=float)).sum())
            if count:
                infinite.append(f"'{col}' ({count} rows)")
    if infinite:
        raise DataError(f"{source}: infinite values in numeric column(s) {', '.join(infinite)}")
    if len(current) < cfg.min_rows:
        raise DataError(
            f"{source}: {len(current)} rows, fewer than drift.min_rows ({cfg.min_rows}); "
            "too few to judge drift"
        )
    return out


def feature_drift(name: str, ref: pd.Series, cur: pd.Series, cfg: DriftConfig) -> FeatureDrift:
    """Compare one feature of the reference and the batch (see the module docstring)."""
    from scipy.stats import ks_2samp

    numeric = _is_numeric(ref)
    miss_ref = float(ref.isna().mean())
    miss_cur = float(cur.isna().mean())
    r, c = ref.dropna(), cur.dropna()
    value_psi = ks = pvalue = None
    if len(r) and len(c):
        if numeric:
            r_values = r.to_numpy(dtype=float)
            c_values = c.to_numpy(dtype=float)
            value_psi = numeric_psi(r_values, c_values, cfg.bins)
            test = ks_2samp(r_values, c_values)
            ks, pvalue = float(test.statistic), float(test.pvalue)
        else:
            value_psi = categorical_psi(r, c)
    reasons = []
    if value_psi is not None and value_psi >= cfg.psi_threshold:
        reasons.append(f"PSI {value_psi:.3f} >= {cfg.psi_threshold}")
    if ks is not None and pvalue is not None and pvalue < cfg.ks_pvalue and ks >= cfg.ks_statistic:
        reasons.append(
            f"KS statistic {ks:.3f} >= {cfg.ks_statistic} (p = {pvalue:.2g} < {cfg.ks_pvalue})"
        )
    increase = miss_cur - miss_ref
    if increase > cfg.max_missing_rate_increase:
        reasons.append(
            f"missing rate {miss_ref:.1%} -> {miss_cur:.1%} "
            f"(+{increase:.1%} > {cfg.max_missing_rate_increase:.1%})"
        )
    return FeatureDrift(
        name=name,
        kind="numeric" if numeric else "categorical",
        psi=value_psi,
        ks_statistic=ks,
        pvalue=pvalue,
        missing_rate_ref=miss_ref,
        missing_rate_cur=miss_cur,
        reasons=tuple(reasons),
    )


def prediction_drift(
    ref_scores: np.ndarray, cur_scores: np.ndarray, cfg: DriftConfig, source: str
) -> PredictionDrift:
    """PSI (and, for information, KS) of the batch's scores against the reference scores."""
    from scipy.stats import ks_2samp

    ref = finite_scores(ref_scores, "the reference predictions")
    cur = finite_scores(cur_scores, "the batch")
    value = numeric_psi(ref, cur, cfg.bins)
    test = ks_2samp(ref, cur)
    reasons = []
    if value >= cfg.prediction_psi_threshold:
        reasons.append(f"score PSI {value:.3f} >= {cfg.prediction_psi_threshold}")
    return PredictionDrift(
        source=source,
        psi=value,
        ks_statistic=float(test.statistic),
        pvalue=float(test.pvalue),
        mean_ref=float(ref.mean()),
        mean_cur=float(cur.mean()),
        rows_ref=len(ref),
        rows_cur=len(cur),
        reasons=tuple(reasons),
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    cfg: DriftConfig,
    *,
    ref_scores: np.ndarray,
    cur_scores: np.ndarray,
    target: str | None = None,
    score_source: str = "score column",
    schema_violations: Sequence[Mapping[str, Any]] = (),
    sources: Mapping[str, str | None] | None = None,
    quality: QualityCheck | None = None,
) -> DriftReport:
    """Compare a batch with the reference data, and its scores with the reference scores.

    The batch is checked first (`check_batch`): a DataError means it cannot be judged.
    """
    features = feature_columns(reference, target)
    batch = check_batch(current, reference, features, cfg)
    results = {name: feature_drift(name, reference[name], batch[name], cfg) for name in features}
    return DriftReport(
        features=results,
        prediction=prediction_drift(ref_scores, cur_scores, cfg, score_source),
        rows_reference=len(reference),
        rows_current=len(current),
        thresholds=cfg,
        schema_violations=tuple(schema_violations),
        sources=dict(sources or {}),
        quality=quality or QualityCheck(),
    )


# --------------------------------------------------------------------------------------------
# scores and the data contract


def score_column(df: pd.DataFrame) -> str | None:
    """The column holding scores: ``score`` (classification), else a numeric ``prediction``
    (regression); None when there is neither."""
    if SCORE_COLUMN in df.columns:
        return SCORE_COLUMN
    if PREDICTION_COLUMN in df.columns and _is_numeric(df[PREDICTION_COLUMN]):
        return PREDICTION_COLUMN
    return None


def finite_scores(values: Any, what: str) -> np.ndarray:
    """`values` as floats, or a DataError counting the missing, NaN and infinite ones: a score
    that is not a number is a broken scorer or log, never something to leave out quietly."""
    out = np.asarray(values, dtype=float)
    if not len(out):
        raise DataError(f"{what}: no scores")
    bad = int((~np.isfinite(out)).sum())
    if bad:
        raise DataError(
            f"{what}: {bad} of {len(out)} scores are not finite (missing, NaN or inf); "
            "every row needs a numeric score"
        )
    return out


def column_scores(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """A score column as floats; text in it, or any value that is not a finite number, is a
    DataError."""
    values = df[column]
    numbers = pd.to_numeric(values.astype(object), errors="coerce")
    wrong = values[numbers.isna() & values.notna()]
    if len(wrong):
        raise DataError(
            f"{source}: non-numeric values in the '{column}' column (e.g. {wrong.iloc[0]!r})"
        )
    return finite_scores(numbers.to_numpy(dtype=float), f"{source}: the '{column}' column")


def model_features(model: Any, batch: pd.DataFrame) -> pd.DataFrame:
    """The batch's columns the model was trained on, in its order (all, when it does not say)."""
    names = [str(c) for c in getattr(model, "feature_names_in_", [])]
    missing = [c for c in names if c not in batch.columns]
    if missing:
        raise DataError(f"the batch lacks column(s) the model was trained on: {', '.join(missing)}")
    return batch.loc[:, names] if names else batch


def model_scores(model: Any, batch: pd.DataFrame, params: Params) -> np.ndarray:
    """Score a batch as `gitops-ml predict` does (`score_batch`): the probability of
    ``data.positive_label`` (classification) or the prediction (regression). A score that is
    not finite is a DataError with the count."""
    scored = score_batch(model, model_features(model, batch), params)
    return finite_scores(scored[score_column(scored)], "the model's scores of the batch")


def schema_violations(batch: pd.DataFrame, schema: Any, features: Sequence[str]) -> list[dict]:
    """The data contract's column rules the batch breaks, for its feature columns.

    Dataset rules (row count, duplicates, extra columns) and the target's rules describe a
    training set, not a batch, so they are left out.
    """
    from gitops_ml.schema import validate

    wanted = set(features)
    report = validate(batch.loc[:, [c for c in batch.columns if c in wanted]], schema)
    return [
        {"column": c.column, "rule": c.rule, "message": c.message}
        for c in report.failures
        if c.column in wanted
    ]


# --------------------------------------------------------------------------------------------
# model quality on labelled rows

#: How many unseen labels the report names (with their row counts).
MAX_UNSEEN_SHOWN = 5


def _label_text(value: Any) -> str:
    """A label as text, so a batch's ``1`` (text from a CSV, or 1.0 in a column with gaps)
    meets the model's class 1."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def match_classes(labels: pd.Series, classes: Sequence[Any]) -> tuple[pd.Series, np.ndarray]:
    """(labels as the model's classes, mask of the rows whose label is one), by value or text."""
    classes = np.asarray(classes)
    index = {_label_text(c): i for i, c in enumerate(classes.tolist())}
    codes = np.array([index.get(_label_text(v), -1) for v in labels.tolist()], dtype=int)
    known = codes >= 0
    return pd.Series(classes[codes[known]], index=labels.index[known]), known


def regression_labels(labels: pd.Series, target: str) -> pd.Series:
    """Labels of a regression task as floats; text or infinite values are a DataError."""
    numbers = pd.to_numeric(labels.astype(object), errors="coerce")
    wrong = labels[numbers.isna()]
    if len(wrong):
        raise DataError(
            f"{len(wrong)} label(s) in the '{target}' column are not numbers "
            f"(e.g. {wrong.iloc[0]!r}); data.task is regression"
        )
    infinite = int(np.isinf(numbers.to_numpy(dtype=float)).sum())
    if infinite:
        raise DataError(f"{infinite} label(s) in the '{target}' column are infinite")
    return numbers.astype("float64")


def gate_rules(metrics: Mapping[str, Any], thresholds: Mapping[str, float]) -> list[dict]:
    """The gate's threshold rules (`gitops_ml.thresholds.threshold_rules`) on the batch's
    metrics. A metric the batch leaves undefined (an AUC on one class) is skipped, not failed."""
    from gitops_ml.thresholds import threshold_rules

    out = []
    for rule in threshold_rules(metrics, thresholds):
        metric = rule.name.split(":", 1)[1]
        skipped = rule.observed is None
        out.append(
            {
                "metric": metric,
                "observed": rule.observed,
                "limit": rule.limit,
                "passed": rule.passed or skipped,
                "skipped": skipped,
                "message": f"{metric} is undefined on this batch; not checked"
                if skipped
                else rule.message,
            }
        )
    return out


def quality_check(
    model: Any, batch: pd.DataFrame, params: Params, *, min_rows: int
) -> QualityCheck:
    """Score the batch's labelled rows (``data.target`` present) with `model` and check the
    metrics of the evaluate stage against ``gate.thresholds``.

    Rows without a label are left out; fewer than `min_rows` labelled rows are not judged (a
    note, no alert). A classification label the model has no class for (a new class, or a
    broken label feed such as ``>50K.`` for ``>50K``) cannot be scored: its rows are counted
    by label, left out of the metrics, and alert by themselves. Regression labels must be
    finite numbers (else a DataError)."""
    from gitops_ml.scoring import measure

    target = params.data.target
    if target not in batch.columns:
        return QualityCheck(note=f"the batch has no '{target}' column (data.target)")
    labels = batch[target]
    labelled = labels.notna().to_numpy()
    n = int(labelled.sum())
    rows = {"labelled_rows": n, "unlabelled_rows": len(batch) - n}
    if n < min_rows:
        return QualityCheck(
            note=f"{n} labelled row(s), fewer than drift.min_rows ({min_rows})", **rows
        )
    X = model_features(model, batch.loc[labelled])
    y = labels[labelled]
    task = params.data.task
    unseen: dict[str, int] = {}
    if task == "regression":
        y = regression_labels(y, target)
    else:
        matched, known = match_classes(y, getattr(model, "classes_", ()))
        for label, count in y[~known].map(_label_text).value_counts().items():
            unseen[str(label)] = int(count)
        X, y = X.loc[known], matched
    reasons = []
    if unseen:
        shown = ", ".join(f"{k!r} ({v})" for k, v in list(unseen.items())[:MAX_UNSEEN_SHOWN])
        more = ", ..." if len(unseen) > MAX_UNSEEN_SHOWN else ""
        reasons.append(
            f"{sum(unseen.values())} labelled row(s) carry label(s) the model has no class for: "
            f"{shown}{more} (a new class, or a broken label feed); left out of the metrics"
        )
    if len(y) < min_rows:
        return QualityCheck(
            note=f"{len(y)} row(s) with a known label, fewer than drift.min_rows ({min_rows})",
            unseen_labels=unseen,
            reasons=tuple(reasons),
            **rows,
        )
    result = measure(
        model,
        X,
        y,
        task,
        positive_label=params.data.positive_label,
        threshold=params.evaluate.threshold,
    )
    scores = result.scored.labels if task == "regression" else result.scored.score
    finite_scores(scores, "the model's scores of the labelled rows")
    rules = gate_rules(result.metrics, params.gate.thresholds)
    reasons += [f"{r['message']} (gate.thresholds)" for r in rules if not r["passed"]]
    return QualityCheck(
        measured=True,
        note=None if params.gate.thresholds else "gate.thresholds is empty: nothing to check",
        unseen_labels=unseen,
        metrics=result.metrics,
        rules=tuple(rules),
        reasons=tuple(reasons),
        **rows,
    )


# --------------------------------------------------------------------------------------------
# reading


def read_current(path: str | os.PathLike[str], required: Sequence[str] = ()) -> pd.DataFrame:
    """The batch: one parquet/CSV file, or a prediction log directory (`read_prediction_log`)
    whose every file has the `required` columns."""
    p = Path(path)
    return read_prediction_log(p, required) if p.is_dir() else read_batch(p)


def run_drift(
    *,
    reference: Path,
    current: Path,
    predictions: Path,
    model: Path,
    params_path: Path,
    schema: Path | None,
) -> DriftReport:
    """Read everything, check the batch, compare; nothing is written."""
    from gitops_ml.schema import load_schema

    params = load_params(params_path)
    cfg = params.drift
    schema_file = schema_path(schema, params_path)
    contract = load_schema(schema_file)
    ref = read_batch(reference)
    features = feature_columns(ref, params.data.target)
    batch = read_current(current, required=features)
    batch = check_batch(batch, ref, features, cfg, source=str(current))

    preds = read_batch(predictions)
    ref_column = score_column(preds)
    if ref_column is None:
        raise DataError(f"{predictions}: no 'score' (or numeric 'prediction') column")
    ref_scores = column_scores(preds, ref_column, str(predictions))
    cur_column = score_column(batch)
    labelled = params.data.target in batch.columns
    loaded = load_model(str(model)).model if cur_column is None or labelled else None
    if cur_column is not None:
        cur_scores = column_scores(batch, cur_column, str(current))
        source = "score column"
    else:
        cur_scores = model_scores(loaded, batch, params)
        source = "model"
    quality = quality_check(loaded, batch, params, min_rows=cfg.min_rows) if labelled else None
    return detect_drift(
        ref,
        batch,
        cfg,
        ref_scores=ref_scores,
        cur_scores=cur_scores,
        target=params.data.target,
        score_source=source,
        schema_violations=schema_violations(batch, contract, features),
        sources={"reference": str(reference), "current": str(current), "schema": str(schema_file)},
        quality=quality or QualityCheck(note=f"the batch has no '{params.data.target}' column"),
    )


def _drift(args: argparse.Namespace) -> int:
    report = run_drift(
        reference=Path(args.reference),
        current=Path(args.current),
        predictions=Path(args.predictions),
        model=Path(args.model),
        params_path=Path(args.params),
        schema=Path(args.schema) if args.schema else None,
    )
    write_json(args.json, report.to_dict())
    with atomic_path(args.markdown) as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")
    print(report.summary())
    for reason in report.reasons:
        print(f"  - {reason}")
    for reason in report.quality.reasons:
        print(f"  - quality: {reason}")
    print(f"wrote {args.json} and {args.markdown}")
    return 1 if report.alert else 0


# --------------------------------------------------------------------------------------------
# the demo stream


# --------------------------------------------------------------------------------------------
# the CLI


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `drift` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "drift",
        help="check a batch for drift, and quality on its labels",
        description="Feature drift (PSI, KS test, missing rates), prediction drift (score PSI) "
        "and data-contract violations of a batch against the training data, with the limits of "
        "gitops.yaml's drift: section; when the batch has the target column, the model's "
        "metrics on the labelled rows against gate.thresholds. The verdict goes to --json and "
        "--markdown.",
        epilog=exit_codes(
            "no drift, and the model meets gate.thresholds on the batch's labels (if any)",
            "drift, or the model breaks a gate threshold (or meets labels it has no class for) "
            "on the labelled rows",
            "the batch cannot be judged (too few rows, unreadable, scores that are not finite, "
            "...) or bad usage; nothing is written",
        ),
    )
    p.add_argument(
        "--reference",
        default=TRAIN_PATH,
        help="the data the model learned from, parquet or CSV (default: %(default)s)",
    )
    p.add_argument(
        "--current",
        required=True,
        help="the batch: a parquet or CSV file, or a directory of parquet files (prediction log)",
    )
    p.add_argument(
        "--predictions",
        default=PREDICTIONS_PATH,
        help="reference scores: the evaluate stage's test predictions (default: %(default)s)",
    )
    p.add_argument(
        "--model",
        default=MODEL_PATH,
        help="scores the batch when it has no 'score' column (default: %(default)s)",
    )
    add_params_and_schema(p)
    p.add_argument(
        "--json",
        default="reports/drift.json",
        metavar="PATH",
        help="verdict JSON to write (default: %(default)s)",
    )
    p.add_argument(
        "--markdown",
        default="reports/drift.md",
        help="markdown summary to write (default: %(default)s)",
    )
    p.set_defaults(func=_drift)
