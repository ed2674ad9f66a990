"""Is a champion-vs-challenger difference real? A paired bootstrap on the shared test rows.

Both models answer the same test rows. A bootstrap replicate draws the rows again with
replacement, the same draw for both models, and measures the difference of a metric on it; the
2.5th and 97.5th percentiles of those differences are the 95% interval of the delta. An interval
that contains zero reads "no real change": the test set cannot tell the two models apart on that
metric, however the point delta looks.

A draw with replacement is a count per row (how often it was drawn), so every metric here is
computed from the original rows with those counts as weights: one sort of the scores serves all
replicates, and the replicates run as matrix operations. `tests/unit/test_significance.py`
checks each weighted metric against the pipeline's own metric functions on the materialised
draw. Metrics that need another draw per class (none of the task's headline metrics) are not
offered; the replicates are seeded, so the same rows and answers give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from gitops_ml.config import INTERVAL_METRICS

#: Replicates; 1,000 puts the 2.5th percentile's own Monte Carlo error well under its width.
REPLICATES = 1000
CONFIDENCE = 0.95
SEED = 0
#: Replicates computed at once: at most 250, and at most this many (replicate, row) weights, so
#: a (chunk x rows) float matrix stays near 32 MB however many test rows there are (NYC flights'
#: 65k test rows: 61 replicates a chunk). The draws do not depend on the chunking.
CHUNK = 250
CHUNK_ELEMENTS = 4_000_000
#: log loss clips probabilities as scikit-learn does (float64 machine epsilon).
EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Interval:
    """The delta (challenger - champion) of one metric and its bootstrap interval."""

    metric: str
    delta: float
    low: float
    high: float

    @property
    def real(self) -> bool:
        """False when the interval contains zero: no real change on this test set."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | bool | str]:
        return {
            "metric": self.metric,
            "delta": self.delta,
            "low": self.low,
            "high": self.high,
            "real": self.real,
        }


@dataclass(frozen=True)
class Answers:
    """One model's answers on the test rows, as `scoring.score` returns them."""

    labels: np.ndarray
    score: np.ndarray | None = None  # binary: P(positive)
    proba: np.ndarray | None = None  # multiclass: one column per class
    classes: np.ndarray | None = None
    correct: np.ndarray | None = None  # binary: label == actual (set by `weighted_metric`)


# -- weighted metrics: w is (replicates x rows), each row of w a draw's counts ------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _auc(w: np.ndarray, is_pos: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC, ties counted half, for every replicate at once.

    Each positive wins against the weighted negatives scored below it and half of those scored
    the same: with the negatives sorted once, both are differences of one cumulative sum."""
    pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
    neg = neg[np.argsort(score[neg], kind="mergesort")]
    neg_scores = score[neg]
    below = np.searchsorted(neg_scores, score[pos], side="left")
    up_to = np.searchsorted(neg_scores, score[pos], side="right")
    cum = np.zeros((w.shape[0], len(neg) + 1))
    np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
    wins = np.einsum("ij,ij->i", w[:, pos], cum[:, below] + cum[:, up_to]) / 2
    return _ratio(wins, w[:, pos].sum(axis=1) * cum[:, -1])


def _prf(w: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, ...]:
    """(precision, recall, f1, support) of boolean `actual` vs `predicted` per replicate."""
    tp = w @ (actual & predicted).astype(float)
    fp = w @ (~actual & predicted).astype(float)
    fn = w @ (actual & ~predicted).astype(float)
    precision = np.nan_to_num(_ratio(tp, tp + fp))
    recall = np.nan_to_num(_ratio(tp, tp + fn))
    f1 = np.nan_to_num(_ratio(2 * tp, 2 * tp + fp + fn))
    return precision, recall, f1, tp + fn


def _binary_metric(name: str, w: np.ndarray, y: np.ndarray, a: Answers) -> np.ndarray:
    """`y` and `a.labels` are booleans here (is the positive class); `correct` compares the
    original labels, as the pipeline's accuracy does."""
    n = w.sum(axis=1)
    score = np.asarray(a.score, dtype=float)
    if name == "roc_auc":
        return _auc(w, y, score)
    if name == "accuracy":
        return (w @ np.asarray(a.correct, dtype=float)) / n
    if name in ("precision", "recall", "f1"):
        return _prf(w, y, a.labels)[("precision", "recall", "f1").index(name)]
    if name == "log_loss":
        p = np.clip(score, EPS, 1 - EPS)
        return (w @ -np.where(y, np.log(p), np.log1p(-p))) / n
    if name == "brier":
        return (w @ (score - y) ** 2) / n
    raise KeyError(name)


def _multiclass_metric(name: str, w: np.ndarray, y: np.ndarray, a: Answers) -> np.ndarray:
    n = w.sum(axis=1)
    classes = np.asarray(a.classes)
    if name == "accuracy":
        return (w @ (y == a.labels).astype(float)) / n
    if name == "log_loss":
        known = np.isin(y, classes)
        index = np.searchsorted(classes, y[known]) if known.any() else np.array([], int)
        p = np.asarray(a.proba, dtype=float)[np.flatnonzero(known), index]
        p = np.clip(p, EPS, 1 - EPS)
        return (w[:, known] @ -np.log(p)) / w[:, known].sum(axis=1)
    if name == "roc_auc_ovr":
        aucs = [
            _auc(w, y == cls, np.asarray(a.proba, dtype=float)[:, i])
            for i, cls in enumerate(classes)
        ]
        return np.nanmean(np.vstack(aucs), axis=0)
    labels = np.unique(np.concatenate([np.asarray(y), np.asarray(a.labels)]))
    per_class = [_prf(w, y == c, a.labels == c) for c in labels]
    recall = np.vstack([r for _, r, _, _ in per_class])
    f1 = np.vstack([f for _, _, f, _ in per_class])
    support = np.vstack([s for _, _, _, s in per_class])
    if name == "balanced_accuracy":  # the mean recall over the classes present in the draw
        present = support > 0
        return np.sum(np.where(present, recall, 0), axis=0) / present.sum(axis=0)
    if name == "f1_macro":  # over the classes drawn as labels or as answers, as scikit-learn
        drawn = np.vstack([w @ (y == c).astype(float) + w @ (a.labels == c) for c in labels]) > 0
        return np.sum(np.where(drawn, f1, 0), axis=0) / drawn.sum(axis=0)
    if name == "f1_weighted":
        return _ratio(np.sum(f1 * support, axis=0), support.sum(axis=0))
    raise KeyError(name)


def _regression_metric(name: str, w: np.ndarray, y: np.ndarray, a: Answers) -> np.ndarray:
    n = w.sum(axis=1)
    err = np.asarray(a.labels, dtype=float) - y
    if name == "rmse":
        return np.sqrt((w @ err**2) / n)
    if name == "mae":
        return (w @ np.abs(err)) / n
    if name == "r2":
        mean = (w @ y) / n
        total = w @ y**2 - n * mean**2
        return 1 - _ratio(w @ err**2, total)
    raise KeyError(name)


METRICS: Mapping[str, Callable[[str, np.ndarray, np.ndarray, Answers], np.ndarray]] = {
    "binary": _binary_metric,
    "multiclass": _multiclass_metric,
    "regression": _regression_metric,
}
#: The metrics each task can have an interval for.
SUPPORTED = INTERVAL_METRICS


def weighted_metric(
    task: str, name: str, weights: np.ndarray, actual: np.ndarray, answers: Answers,
    positive: Hashable | None = None,
) -> np.ndarray:  # fmt: skip
    """`name` on each row of `weights` (a draw's counts per test row)."""
    y = np.asarray(actual)
    if task == "binary":
        labels = np.asarray(answers.labels)
        answers = replace(answers, labels=labels == positive, correct=y == labels)
        y = y == positive
    elif task == "regression":
        y = y.astype(float)
    return METRICS[task](name, np.atleast_2d(np.asarray(weights, dtype=float)), y, answers)


def paired_intervals(
    task: str,
    actual: np.ndarray,
    champion: Answers,
    challenger: Answers,
    metrics: tuple[str, ...] | list[str],
    *,
    positive: Hashable | None = None,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> dict[str, Interval]:
    """The challenger-minus-champion delta of each metric with its paired bootstrap interval."""
    names = [m for m in metrics if m in SUPPORTED[task]]
    n = len(actual)
    if not names or n < 2:
        return {}
    rng = np.random.default_rng(seed)
    ones = np.ones((1, n))
    point = {
        m: float(
            weighted_metric(task, m, ones, actual, challenger, positive)[0]
            - weighted_metric(task, m, ones, actual, champion, positive)[0]
        )
        for m in names
    }
    deltas: dict[str, list[np.ndarray]] = {m: [] for m in names}
    chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // n))
    done = 0
    while done < replicates:
        size = min(chunk, replicates - done)
        rows = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        w = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(float)
        for m in names:
            new = weighted_metric(task, m, w, actual, challenger, positive)
            old = weighted_metric(task, m, w, actual, champion, positive)
            deltas[m].append(new - old)
        done += size
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in names:
        values = np.concatenate(deltas[m])
        values = values[np.isfinite(values)]
        if not len(values) or not np.isfinite(point[m]):
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        out[m] = Interval(m, round(point[m], 6), round(float(low), 6), round(float(high), 6))
    return out
