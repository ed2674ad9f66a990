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

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

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
#
# Counts are integers, and every count-based quantity below (matches, true positives, the AUC's
# wins) is a sum of integers well under 2**53: exact in float64 however it is summed, so the
# metrics that share them compute them once, in one matrix product. Sums of real values (log
# loss, Brier, errors) are products of `w` with one vector each, as they always were.


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


class _Ranking:
    """The AUC of scores `score` for the rows where `is_pos`, sorted once for every draw."""

    def __init__(self, is_pos: np.ndarray, score: np.ndarray) -> None:
        self.pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
        self.neg = neg[np.argsort(score[neg], kind="mergesort")]
        neg_scores = score[self.neg]
        self.below = np.searchsorted(neg_scores, score[self.pos], side="left")
        up_to = np.searchsorted(neg_scores, score[self.pos], side="right")
        self.up_to = None if np.array_equal(up_to, self.below) else up_to  # None: no ties

    def auc(self, w: np.ndarray) -> np.ndarray:
        """Weighted Mann-Whitney AUC, ties counted half, for every replicate at once.

        Each positive wins against the weighted negatives scored below it and half of those
        scored the same: with the negatives sorted once, both are differences of one cumulative
        sum."""
        w_pos = np.take(w, self.pos, axis=1)
        cum = np.zeros((w.shape[0], len(self.neg) + 1))
        np.cumsum(np.take(w, self.neg, axis=1), axis=1, out=cum[:, 1:])
        below = np.take(cum, self.below, axis=1)
        twice = below + (below if self.up_to is None else np.take(cum, self.up_to, axis=1))
        wins = np.einsum("ij,ij->i", w_pos, twice) / 2
        return _ratio(wins, w_pos.sum(axis=1) * cum[:, -1])


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, ...]:
    """(precision, recall, f1, support) from the weighted true and false positives and misses."""
    precision = np.nan_to_num(_ratio(tp, tp + fp))
    recall = np.nan_to_num(_ratio(tp, tp + fn))
    f1 = np.nan_to_num(_ratio(2 * tp, 2 * tp + fp + fn))
    return precision, recall, f1, tp + fn


#: Metrics that no count of matches or of true and false positives enters.
_NOT_COUNTED = frozenset({"roc_auc", "roc_auc_ovr", "log_loss", "brier"})


class _Model:
    """One model's answers on the test rows, prepared once for all the draws: `metrics` then
    measures a chunk of draws with a few matrix products."""

    def __init__(
        self, task: str, actual: np.ndarray, answers: Answers, positive: Hashable | None
    ) -> None:
        self.task = task
        y = np.asarray(actual)
        self._rankings: dict[int, _Ranking] = {}
        self.answers = answers
        if task == "binary":
            labels = np.asarray(answers.labels)
            # `correct` compares the original labels, as the pipeline's accuracy does.
            correct, y, labels = y == labels, y == positive, labels == positive
            self.score = score = np.asarray(answers.score, dtype=float)
            p = np.clip(score, EPS, 1 - EPS)
            self.losses = -np.where(y, np.log(p), np.log1p(-p))
            self.squared = (score - y) ** 2
            # accuracy, true positives, false positives, misses: one product for all four
            self.indicators = np.column_stack(
                [correct, y & labels, ~y & labels, y & ~labels]
            ).astype(float)
        elif task == "multiclass":
            labels = np.asarray(answers.labels)
            self.classes = np.asarray(answers.classes)
            self.present = np.unique(np.concatenate([y, labels]))
            # per present class: true positives, false positives, misses, actual, answered
            columns = [y == labels]
            for c in self.present:
                is_y, is_label = y == c, labels == c
                columns += [is_y & is_label, ~is_y & is_label, is_y & ~is_label, is_y, is_label]
            self.indicators = np.column_stack(columns).astype(float)
            known = np.isin(y, self.classes)
            index = np.searchsorted(self.classes, y[known]) if known.any() else np.array([], int)
            p = np.asarray(answers.proba, dtype=float)[np.flatnonzero(known), index]
            self.known, self.losses = known, -np.log(np.clip(p, EPS, 1 - EPS))
        else:
            y = y.astype(float)
            labels = np.asarray(answers.labels, dtype=float)
            self.err = labels - y
        self.y, self.labels = y, labels

    def _ranking(self, column: int, is_pos: np.ndarray, score: np.ndarray) -> _Ranking:
        if column not in self._rankings:
            self._rankings[column] = _Ranking(is_pos, score)
        return self._rankings[column]

    def metrics(self, names: Sequence[str], w: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric of `names` on every row of `w`."""
        n = w.sum(axis=1)
        counts = None
        if self.task != "regression" and set(names) - _NOT_COUNTED:
            counts = w @ self.indicators  # exact: sums of integers
        measure = {"binary": self._binary, "multiclass": self._multiclass}.get(
            self.task, self._regression
        )
        memo: dict[str, np.ndarray] = {}
        return {name: measure(name, w, n, counts, memo) for name in names}

    def _binary(self, name: str, w: np.ndarray, n: np.ndarray, counts: Any,
                memo: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
        y, score = self.y, self.score
        if name == "roc_auc":
            return self._ranking(0, y, score).auc(w)
        if name == "accuracy":
            return counts[:, 0] / n
        if name in ("precision", "recall", "f1"):
            prf = _prf(counts[:, 1], counts[:, 2], counts[:, 3])
            return prf[("precision", "recall", "f1").index(name)]
        if name == "log_loss":
            return (w @ self.losses) / n
        if name == "brier":
            return (w @ self.squared) / n
        raise KeyError(name)

    def _multiclass(self, name: str, w: np.ndarray, n: np.ndarray, counts: Any,
                    memo: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
        y, a, classes = self.y, self.answers, self.classes
        if name == "accuracy":
            return counts[:, 0] / n
        if name == "log_loss":
            w_known = w[:, self.known]
            return (w_known @ self.losses) / w_known.sum(axis=1)
        if name == "roc_auc_ovr":
            proba = np.asarray(a.proba, dtype=float)
            aucs = [self._ranking(i, y == cls, proba[:, i]).auc(w) for i, cls in enumerate(classes)]
            return np.nanmean(np.vstack(aucs), axis=0)
        # (classes x replicates), laid out as one row per class as the sums over classes expect
        per_class = counts[:, 1:].reshape(len(w), len(self.present), 5).transpose(2, 1, 0)
        tp, fp, fn, actual, answered = (np.ascontiguousarray(c) for c in per_class)
        _, recall, f1, support = _prf(tp, fp, fn)
        if name == "balanced_accuracy":  # the mean recall over the classes present in the draw
            present = support > 0
            return np.sum(np.where(present, recall, 0), axis=0) / present.sum(axis=0)
        if name == "f1_macro":  # over the classes drawn as labels or as answers, as scikit-learn
            drawn = (actual + answered) > 0
            return np.sum(np.where(drawn, f1, 0), axis=0) / drawn.sum(axis=0)
        if name == "f1_weighted":
            return _ratio(np.sum(f1 * support, axis=0), support.sum(axis=0))
        raise KeyError(name)

    def _regression(self, name: str, w: np.ndarray, n: np.ndarray, counts: Any,
                    memo: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
        y, err = self.y, self.err
        if name in ("rmse", "r2") and "squared" not in memo:
            memo["squared"] = w @ err**2
        if name == "rmse":
            return np.sqrt(memo["squared"] / n)
        if name == "mae":
            return (w @ np.abs(err)) / n
        if name == "r2":
            mean = (w @ y) / n
            total = w @ y**2 - n * mean**2
            return 1 - _ratio(memo["squared"], total)
        raise KeyError(name)


#: The metrics each task can have an interval for.
SUPPORTED = INTERVAL_METRICS


def weighted_metric(
    task: str, name: str, weights: np.ndarray, actual: np.ndarray, answers: Answers,
    positive: Hashable | None = None,
) -> np.ndarray:  # fmt: skip
    """`name` on each row of `weights` (a draw's counts per test row)."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    return _Model(task, actual, answers, positive).metrics([name], w)[name]


@dataclass(frozen=True)
class Draws:
    """One model's metrics on the test rows (`point`) and on each bootstrap replicate, the
    replicates drawn from `seed`: two models' draws with the same seed pair row for row."""

    point: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    positive: Hashable | None
    seed: int


def draws(
    task: str,
    actual: np.ndarray,
    answers: Answers,
    metrics: Sequence[str],
    *,
    positive: Hashable | None = None,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> Draws:
    """`answers`' metrics on the test rows and on `replicates` seeded draws of them (a model's
    half of `paired_intervals`, which a process can compute on its own)."""
    names = [m for m in metrics if m in SUPPORTED[task]]
    point, drawn = _draw_all(names, actual, [_Model(task, actual, answers, positive)],
                             replicates, seed)[0]  # fmt: skip
    return Draws(point, drawn, positive, seed)


def _draw_all(
    names: list[str], actual: np.ndarray, models: list[_Model], replicates: int, seed: int
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Each model's (point, replicates) metrics, the draws made once for all of them."""
    n = len(actual)
    if not names or n < 2:
        return [({}, {}) for _ in models]
    rng = np.random.default_rng(seed)
    ones = np.ones((1, n))
    points = [model.metrics(names, ones) for model in models]
    chunks: list[list[dict[str, np.ndarray]]] = [[] for _ in models]
    chunk = max(1, min(CHUNK, CHUNK_ELEMENTS // n))
    done = 0
    while done < replicates:
        size = min(chunk, replicates - done)
        rows = rng.integers(0, n, size=(size, n))
        rows += n * np.arange(size)[:, None]
        w = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(float)
        for model, out in zip(models, chunks, strict=True):
            out.append(model.metrics(names, w))
        done += size
    return [
        (point, {m: np.concatenate([c[m] for c in out]) for m in names})
        for point, out in zip(points, chunks, strict=True)
    ]


def intervals(
    champion: Draws, challenger: Draws, confidence: float = CONFIDENCE
) -> dict[str, Interval]:
    """The challenger-minus-champion delta of each metric both drew, with its interval."""
    if champion.seed != challenger.seed or champion.positive != challenger.positive:
        raise ValueError("the two models' draws are not paired (another seed or positive class)")
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in challenger.replicates:
        if m not in champion.replicates:
            continue
        point = float(challenger.point[m][0] - champion.point[m][0])
        values = challenger.replicates[m] - champion.replicates[m]
        values = values[np.isfinite(values)]
        if not len(values) or not np.isfinite(point):
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        out[m] = Interval(m, round(point, 6), round(float(low), 6), round(float(high), 6))
    return out


def paired_intervals(
    task: str,
    actual: np.ndarray,
    champion: Answers,
    challenger: Answers,
    metrics: Sequence[str],
    *,
    positive: Hashable | None = None,
    replicates: int = REPLICATES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> dict[str, Interval]:
    """The challenger-minus-champion delta of each metric with its paired bootstrap interval."""
    names = [m for m in metrics if m in SUPPORTED[task]]
    models = [_Model(task, actual, a, positive) for a in (champion, challenger)]
    old, new = (
        Draws(point, drawn, positive, seed)
        for point, drawn in _draw_all(names, actual, models, replicates, seed)
    )
    return intervals(old, new, confidence)
