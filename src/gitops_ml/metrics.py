"""Test-set metrics, per-slice metrics and the data behind every plot, as pure functions.

Binary metrics score "the positive class vs the other": `score` is the probability of
`data.positive_label`. Multiclass metrics score the argmax labels and the class probabilities
(macro one-vs-rest AUC). Labels and scores come from `gitops_ml.scoring`.

Every number is rounded to 6 decimals and undefined values are None (JSON null), so the JSON
files diff cleanly in git and never hold NaN.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_backend
from sklearn import metrics as skm
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if
from threadpoolctl import ThreadpoolController, threadpool_limits

from gitops_ml.errors import DataError
from gitops_ml.forked import usable_cores

#: Plot data: a list of flat records, the format `dvc plots` reads.
Records = list[dict[str, Any]]

BINARY_KEYS = (
    "roc_auc",
    "average_precision",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "brier",
    "n_test",
)
MULTICLASS_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_weighted",
    "log_loss",
    "roc_auc_ovr",
    "n_test",
)
REGRESSION_KEYS = ("rmse", "mae", "r2", "n_test")
#: Slice key for rows whose slice column is missing.
MISSING_SLICE = "(missing)"
#: A numeric slice column with more distinct values than this is cut into quantile bins.
SLICE_MAX_VALUES = 10
#: How many quantile bins a numeric slice column gets (fewer when its quantiles coincide).
SLICE_BINS = 4
DIGITS = 6


def _num(value: Any) -> float | None:
    """A finite float rounded for JSON, or None."""
    if value is None:
        return None
    value = float(value)
    return round(value, DIGITS) if math.isfinite(value) else None


def _binary(actual: np.ndarray, positive: Hashable) -> np.ndarray:
    return np.asarray(actual) == positive


def _both_classes(is_pos: np.ndarray) -> bool:
    return bool(is_pos.any() and not is_pos.all())


def binary_metrics(
    actual: Sequence[Hashable] | np.ndarray,
    predicted: Sequence[Hashable] | np.ndarray,
    score: Sequence[float] | np.ndarray,
    positive: Hashable,
) -> dict[str, float | int | None]:
    """Headline classification metrics; AUC and average precision are None without both classes."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    score = np.asarray(score, dtype=float)
    if not len(actual):
        raise DataError("no test rows to evaluate")
    is_pos, pred_pos = _binary(actual, positive), _binary(predicted, positive)
    both = _both_classes(is_pos)
    return {
        "roc_auc": _num(skm.roc_auc_score(is_pos, score)) if both else None,
        "average_precision": _num(skm.average_precision_score(is_pos, score)) if both else None,
        "accuracy": _num(np.mean(actual == predicted)),
        "precision": _num(skm.precision_score(is_pos, pred_pos, zero_division=0)),
        "recall": _num(skm.recall_score(is_pos, pred_pos, zero_division=0)),
        "f1": _num(skm.f1_score(is_pos, pred_pos, zero_division=0)),
        "log_loss": _num(skm.log_loss(is_pos, score, labels=[False, True])),
        "brier": _num(np.mean((score - is_pos) ** 2)),
        "n_test": len(actual),
    }


def multiclass_metrics(
    actual: Sequence[Hashable] | np.ndarray,
    predicted: Sequence[Hashable] | np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Hashable] | np.ndarray,
) -> dict[str, float | int | None]:
    """Headline multiclass metrics on argmax labels and class probabilities.

    ROC AUC is the macro mean of one-vs-rest AUCs over the classes present with both outcomes
    (None when none is); log loss covers the rows whose label the model knows.
    """
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    proba, classes = np.asarray(proba, dtype=float), np.asarray(classes)
    if not len(actual):
        raise DataError("no test rows to evaluate")
    aucs = []
    for i, cls in enumerate(classes):
        is_cls = actual == cls
        if _both_classes(is_cls):
            aucs.append(skm.roc_auc_score(is_cls, proba[:, i]))
    known = np.isin(actual, classes)
    loss = skm.log_loss(actual[known], proba[known], labels=classes) if known.any() else None
    return {
        "accuracy": _num(np.mean(actual == predicted)),
        "balanced_accuracy": _num(_balanced_accuracy(actual, predicted)),
        "f1_macro": _num(skm.f1_score(actual, predicted, average="macro", zero_division=0)),
        "f1_weighted": _num(skm.f1_score(actual, predicted, average="weighted", zero_division=0)),
        "log_loss": _num(loss),
        "roc_auc_ovr": _num(np.mean(aucs)) if aucs else None,
        "n_test": len(actual),
    }


def _balanced_accuracy(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in `actual` (sklearn's, without its warning)."""
    return float(np.mean([np.mean(predicted[actual == c] == c) for c in np.unique(actual)]))


def per_class_metrics(
    actual: Sequence[Hashable] | np.ndarray,
    predicted: Sequence[Hashable] | np.ndarray,
    classes: Sequence[Hashable] | np.ndarray,
) -> dict[str, dict[str, float | int | None]]:
    """Precision, recall, F1 and support of each class: ``{class: {...}}``."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    labels = list(classes) + sorted(set(actual.tolist()) - set(np.asarray(classes).tolist()))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        actual, predicted, labels=labels, zero_division=0
    )
    return {
        str(label): {
            "precision": _num(precision[i]),
            "recall": _num(recall[i]),
            "f1": _num(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def regression_metrics(
    actual: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray
) -> dict[str, float | int | None]:
    """Headline regression metrics; R² is None for fewer than two rows."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if not len(actual):
        raise DataError("no test rows to evaluate")
    return {
        "rmse": _num(np.sqrt(np.mean((actual - predicted) ** 2))),
        "mae": _num(np.mean(np.abs(actual - predicted))),
        "r2": _num(skm.r2_score(actual, predicted)) if len(actual) > 1 else None,
        "n_test": len(actual),
    }


def _slice_binary(
    actual: np.ndarray, predicted: np.ndarray, score: np.ndarray, positive: Hashable
) -> dict[str, float | int | None]:
    is_pos, pred_pos = _binary(actual, positive), _binary(predicted, positive)
    return {
        "n": len(actual),
        "roc_auc": _num(skm.roc_auc_score(is_pos, score)) if _both_classes(is_pos) else None,
        "accuracy": _num(np.mean(actual == predicted)),
        "precision": _num(skm.precision_score(is_pos, pred_pos, zero_division=0)),
        "recall": _num(skm.recall_score(is_pos, pred_pos, zero_division=0)),
        "f1": _num(skm.f1_score(is_pos, pred_pos, zero_division=0)),
        "positive_rate": _num(is_pos.mean()),
        "predicted_positive_rate": _num(pred_pos.mean()),
    }


def _slice_multiclass(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    return {
        "n": len(actual),
        "accuracy": _num(np.mean(actual == predicted)),
        "balanced_accuracy": _num(_balanced_accuracy(actual, predicted)),
        "f1_macro": _num(skm.f1_score(actual, predicted, average="macro", zero_division=0)),
        "f1_weighted": _num(skm.f1_score(actual, predicted, average="weighted", zero_division=0)),
    }


def _slice_regression(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    m = regression_metrics(actual, predicted)
    return {"n": m["n_test"], "rmse": m["rmse"], "mae": m["mae"], "r2": m["r2"]}


def _edge(value: float) -> str:
    return f"{value:.4g}"


def slice_keys(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's slice name, and the names in display order.

    Text and low-cardinality columns slice by value (numbers in numeric order); a numeric
    column with more than `SLICE_MAX_VALUES` distinct values is cut at its quantiles into at
    most `SLICE_BINS` bins named by their edges, ``[17, 28)`` ... ``[48, 90]``. Missing values
    form the slice ``(missing)``, listed last.
    """
    missing = values.isna().to_numpy()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    present = values[~missing]
    if numeric and present.nunique() > SLICE_MAX_VALUES:
        edges = np.unique(
            np.quantile(present.to_numpy(dtype=float), np.linspace(0, 1, SLICE_BINS + 1))
        )
        inner = edges[1:-1]
        ids = np.searchsorted(inner, values.to_numpy(dtype=float), side="right")
        names = [
            f"[{_edge(edges[i])}, {_edge(edges[i + 1])}{']' if i == len(edges) - 2 else ')'}"
            for i in range(len(edges) - 1)
        ]
        keys = np.asarray(names, dtype=object)[np.minimum(ids, len(names) - 1)]
        order = [name for i, name in enumerate(names) if (ids[~missing] == i).any()]
    else:
        text = values.astype(str).to_numpy(dtype=object)
        keys = text
        distinct = pd.unique(present)
        if numeric:
            distinct = np.sort(distinct)
            order = list(dict.fromkeys(str(v) for v in pd.Series(distinct, dtype=values.dtype)))
        else:
            order = sorted({str(v) for v in distinct})
    keys = np.where(missing, MISSING_SLICE, keys)
    if missing.any():
        order.append(MISSING_SLICE)
    return keys, order


def slice_metrics(
    frame: pd.DataFrame,
    slices: Sequence[str],
    *,
    task: str,
    actual: Sequence[Any] | np.ndarray,
    predicted: Sequence[Any] | np.ndarray,
    score: Sequence[float] | np.ndarray | None = None,
    positive: Hashable | None = None,
) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Metrics per value (or bin, see `slice_keys`) of each slice column:
    ``{column: {slice: {"n": ..., metric: ...}}}``. A slice with one class gets a null AUC.
    """
    missing = [col for col in slices if col not in frame.columns]
    if missing:
        raise DataError(
            f"slice column '{missing[0]}' (evaluate.slices) is not in the test data "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    if len(actual) != len(frame) or len(predicted) != len(frame):
        raise ValueError("actual and predicted must have one entry per row of frame")
    if task == "binary":
        if score is None or positive is None:
            raise ValueError("binary slices need score and positive")
        score = np.asarray(score, dtype=float)
    result: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for col in slices:
        keys, order = slice_keys(frame[col])
        per_value = {}
        for key in order:
            mask = keys == key
            if task == "binary":
                per_value[key] = _slice_binary(actual[mask], predicted[mask], score[mask], positive)
            elif task == "multiclass":
                per_value[key] = _slice_multiclass(actual[mask], predicted[mask])
            else:
                per_value[key] = _slice_regression(actual[mask], predicted[mask])
        result[col] = per_value
    return result


def _thin(n: int, max_points: int) -> np.ndarray:
    """At most `max_points` evenly spread indices of 0..n-1, always keeping the first and last."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


def roc_points(is_pos: np.ndarray, score: np.ndarray, max_points: int = 200) -> Records:
    """ROC curve as ``{fpr, tpr}`` records, thinned; empty when only one class is present."""
    is_pos = np.asarray(is_pos, dtype=bool)
    if not _both_classes(is_pos):
        return []
    fpr, tpr, _ = skm.roc_curve(is_pos, np.asarray(score, dtype=float))
    idx = _thin(len(fpr), max_points)
    return [{"fpr": _num(fpr[i]), "tpr": _num(tpr[i])} for i in idx]


def precision_recall_points(
    is_pos: np.ndarray, score: np.ndarray, max_points: int = 200
) -> Records:
    """Precision-recall curve as ``{recall, precision}`` records, thinned; empty without positives."""
    is_pos = np.asarray(is_pos, dtype=bool)
    if not _both_classes(is_pos):
        return []
    precision, recall, _ = skm.precision_recall_curve(is_pos, np.asarray(score, dtype=float))
    idx = _thin(len(precision), max_points)
    return [{"recall": _num(recall[i]), "precision": _num(precision[i])} for i in idx]


def confusion_rows(
    actual: Sequence[Hashable] | np.ndarray, predicted: Sequence[Hashable] | np.ndarray
) -> Records:
    """One ``{actual, predicted}`` record per test row: DVC's confusion template counts them."""
    return [
        {"actual": a, "predicted": p}
        for a, p in zip(np.asarray(actual).tolist(), np.asarray(predicted).tolist(), strict=True)
    ]


def calibration_points(is_pos: np.ndarray, score: np.ndarray, n_bins: int = 10) -> Records:
    """Reliability curve over `n_bins` equal-width bins of the score; empty bins are left out."""
    is_pos = np.asarray(is_pos, dtype=float)
    score = np.asarray(score, dtype=float)
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(bins[1:-1], score)  # the same binning as sklearn's calibration_curve
    records = []
    for b in range(n_bins):
        mask = ids == b
        if mask.any():
            records.append(
                {
                    "mean_predicted": _num(score[mask].mean()),
                    "fraction_positive": _num(is_pos[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return records


class PreTransformed(BaseEstimator):
    """A fitted Pipeline seen through its preprocessed features, for permutation importance.

    Permuting a raw column and preprocessing again gives, row by row, the same numbers as
    permuting that column's preprocessed output, when each raw column becomes its own output
    column row by row (encoders, scalers, imputers, passthrough). So the features are
    preprocessed once, and scikit-learn's `permutation_importance` is handed a matrix of row
    numbers instead (each column 0..n-1): it shuffles those exactly as it would shuffle the raw
    columns (same seed, same order), and this object gathers the preprocessed rows they name
    before calling the final estimator. The importances are bit for bit those of the raw
    route (tests compare both on every model of the catalogue), at a fraction of the cost.

    For tree models (`ROW_BY_ROW`), whose output for a row does not depend on the other rows
    of the batch, only the rows a permutation changes are predicted again: the others keep the
    output of the unpermuted features, computed once. A shuffled column often gives a row its
    own value back (a category most rows share, a capital gain of 0): on Adult 41% of the
    predictions are skipped, with outputs identical to predicting every row.
    """

    def __init__(
        self,
        final: Any,
        transformed: np.ndarray,
        columns: list[list[int]],
        row_by_row: bool = False,
    ) -> None:
        self.final = final
        self.transformed = transformed
        self.columns = columns  # raw column j -> its preprocessed columns
        self.row_by_row = row_by_row

    @classmethod
    def of(cls, model: Any, features: pd.DataFrame) -> PreTransformed | None:
        """The view of `model` on `features`, or None where the shortcut does not hold."""
        if not isinstance(model, Pipeline) or len(model.steps) != 2:
            return None
        pre, final = model.steps[0][1], model.steps[1][1]
        if not isinstance(pre, ColumnTransformer):
            return None
        columns = _raw_to_output_columns(pre, list(features.columns))
        if columns is None:
            return None
        transformed = pre.transform(features)
        if not isinstance(transformed, np.ndarray):  # sparse output: take the raw route
            return None
        row_by_row = type(final).__module__.startswith(ROW_BY_ROW)
        if is_classifier(final):
            view: PreTransformed = _ClassifierView(final, transformed, columns, row_by_row)
            view.classes_ = final.classes_
            return view
        if is_regressor(final):
            return _RegressorView(final, transformed, columns, row_by_row)
        return None

    def row_indices(self) -> np.ndarray:
        """What permutation importance shuffles: every column holds the row numbers 0..n-1."""
        rows = np.arange(self.transformed.shape[0])
        return np.repeat(rows[:, None], len(self.columns), axis=1)

    def gathered(self, rows: np.ndarray) -> np.ndarray:
        """The preprocessed matrix with each raw column's values taken from the rows `rows`
        names for it (a column still 0..n-1 is left as it is)."""
        return self._gathered(rows)[0]

    def _gathered(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`gathered`, and which of its rows differ from the unpermuted features."""
        identity = np.arange(self.transformed.shape[0])
        out = self.transformed
        changed = np.zeros(self.transformed.shape[0], dtype=bool)
        for j, cols in enumerate(self.columns):
            if not np.array_equal(rows[:, j], identity):
                if out is self.transformed:
                    out = out.copy()
                new = self.transformed[np.ix_(rows[:, j], cols)]
                changed |= ~_same(new, self.transformed[:, cols]).all(axis=1)
                out[:, cols] = new
        return out, changed

    def _output(self, method: str, rows: np.ndarray) -> Any:
        """The final estimator's `method` on the gathered rows; for a row-by-row model, called
        on the changed rows only, the others taken from its output on the unpermuted rows."""
        call = getattr(self.final, method)
        with _one_openmp_thread():
            if not self.row_by_row:
                return call(self.gathered(rows))
            out, changed = self._gathered(rows)
            base = self._unpermuted(method)
            if not changed.any():
                return base.copy()
            if changed.all():
                return call(out)
            result = base.copy()
            result[changed] = call(out[changed])
            return result

    def _unpermuted(self, method: str) -> np.ndarray:
        """The final estimator's `method` on the unpermuted features, computed once (the
        scoring threads share it)."""
        cache = self.__dict__.setdefault("_outputs", {})
        with self.__dict__.setdefault("_lock", threading.Lock()):
            if method not in cache:
                cache[method] = np.asarray(getattr(self.final, method)(self.transformed))
            return cache[method]

    def fit(self, *_: Any) -> PreTransformed:  # scikit-learn's scorers check for an estimator
        raise NotImplementedError("a view of a fitted model; it is never fitted")

    @available_if(lambda self: hasattr(self.final, "predict"))
    def predict(self, rows: np.ndarray) -> Any:
        return self._output("predict", rows)

    @available_if(lambda self: hasattr(self.final, "predict_proba"))
    def predict_proba(self, rows: np.ndarray) -> Any:
        return self._output("predict_proba", rows)

    @available_if(lambda self: hasattr(self.final, "decision_function"))
    def decision_function(self, rows: np.ndarray) -> Any:
        return self._output("decision_function", rows)


#: Modules of the estimators whose output for a row depends on that row alone, computed the
#: same way in any batch (trees walked row by row, their outputs summed in tree order): a
#: linear model's matrix product may sum in another order for another number of rows.
ROW_BY_ROW = (
    "sklearn.ensemble._hist_gradient_boosting.",
    "sklearn.ensemble._forest",
    "sklearn.tree.",
)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: equal values, two NaNs counting as equal."""
    same = a == b
    if np.issubdtype(a.dtype, np.floating):
        same |= np.isnan(a) & np.isnan(b)
    return same


_CONTROLLER: list[ThreadpoolController] = []


def _one_openmp_thread() -> Any:
    """One OpenMP thread for the calling thread. OpenMP keeps its thread count per thread, so
    the workers of `permutation_importance_rows` each set their own; BLAS's is process-wide
    and already one there. The controller (a scan of the loaded libraries) is made once."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="openmp")


def importance_workers() -> int:
    """Threads for permutation importance: the cores this process may use (predictions release
    the GIL; each thread's columns are scored exactly as they would be alone)."""
    return usable_cores()


class _ClassifierView(ClassifierMixin, PreTransformed):
    pass


class _RegressorView(RegressorMixin, PreTransformed):
    pass


def _raw_to_output_columns(pre: Any, names: list[str]) -> list[list[int]] | None:
    """For each raw column, the ColumnTransformer's output columns made from it alone, or None
    unless every fitted part maps its inputs one to one, in order (all the catalogue's do
    except one-hot encoding)."""
    where = {name: i for i, name in enumerate(names)}
    columns: list[list[int]] = [[] for _ in names]
    for name, _transformer, cols in pre.transformers_:
        if name == "remainder" and _transformer == "drop":
            continue
        out = pre.output_indices_.get(name)
        if out is None:
            return None
        selected = list(cols) if not isinstance(cols, str) else [cols]
        if out.stop - out.start == 0 and not selected:
            continue
        if out.stop - out.start != len(selected) or any(
            isinstance(c, bool) or c not in where for c in selected
        ):
            return None
        for offset, col in enumerate(selected):
            columns[where[col]].append(out.start + offset)
    return columns


def permutation_importance_rows(
    model: Any,
    features: pd.DataFrame,
    target: pd.Series,
    *,
    task: str,
    max_rows: int,
    repeats: int,
    seed: int,
) -> Records:
    """Permutation importance of each raw input column, most important first.

    Computed on at most `max_rows` test rows sampled with `seed` (0 rows: skipped, empty), scored
    with ROC AUC (classification) or R² (regression). Permuting raw columns measures what the
    whole Pipeline, preprocessing included, takes from each feature.
    """
    from sklearn.inspection import permutation_importance

    if max_rows == 0 or features.empty:
        return []
    if len(features) > max_rows:
        features = features.sample(n=max_rows, random_state=seed)
        target = target.loc[features.index]
    if task != "regression":
        n_classes = target.nunique()
        if n_classes < 2:
            return []
        if n_classes == 2:
            scoring = "roc_auc"
        else:  # one-vs-rest AUC needs every class of the model in the sample
            known = set(getattr(model, "classes_", ())) == set(target.unique())
            scoring = "roc_auc_ovr" if known else "accuracy"
    else:
        scoring = "r2"
    if scoring in ("roc_auc", "roc_auc_ovr"):
        target = _class_codes(model, target)
    # Many small predictions: one OpenMP thread each avoids OpenMP's hand-off cost, which
    # dominates on a busy runner, and the preprocessed view scores columns in parallel threads
    # instead. scikit-learn draws one seed for every column and copies the data per column, so
    # the importances are the same with any thread count, and with any split of the columns.
    with threadpool_limits(limits=1):
        fast = PreTransformed.of(model, features)
        jobs = 1 if fast is None else min(importance_workers(), len(features.columns))
        with parallel_backend("threading", n_jobs=jobs):
            result = permutation_importance(
                model if fast is None else fast,
                features if fast is None else fast.row_indices(),
                target,
                scoring=scoring,
                n_repeats=repeats,
                random_state=seed,
                n_jobs=jobs,
            )
    rows = [
        {"feature": str(col), "importance": _num(mean), "std": _num(std)}
        for col, mean, std in zip(
            features.columns, result.importances_mean, result.importances_std, strict=True
        )
    ]
    return sorted(rows, key=lambda r: (-(r["importance"] or 0.0), r["feature"]))


def _class_codes(model: Any, target: pd.Series) -> pd.Series:
    """`target` as each label's position in the model's sorted ``classes_``, for AUC scoring:
    the same 0/1 (or 0..k-1) encoding scikit-learn derives from the labels themselves, so the
    same AUC, without sorting thousands of strings again in each of the many scorings of
    permutation importance (24 -> 7 ms a scoring of 5,000 Adult rows). Labels the model does
    not know, or unsorted classes, keep `target` as it is."""
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) < 2:
        return target
    try:
        if list(np.unique(classes)) != list(classes):
            return target
    except TypeError:  # labels of mixed types do not sort
        return target
    codes = target.map({label: i for i, label in enumerate(classes)})
    if codes.isna().any():
        return target
    return codes.astype("int64")


def predicted_vs_actual_points(
    actual: Sequence[float] | np.ndarray,
    predicted: Sequence[float] | np.ndarray,
    *,
    max_points: int = 1000,
    seed: int = 0,
) -> Records:
    """``{actual, predicted}`` records for a scatter plot, at most `max_points` sampled with `seed`."""
    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    idx = np.arange(len(actual))
    if len(idx) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_points, replace=False))
    return [{"actual": _num(actual[i]), "predicted": _num(predicted[i])} for i in idx]
