"""The one way a fitted model and rows become labels and scores, for every task.

evaluate, report, predict, drift (and, through MLflow's sklearn flavour, serve) all score with
`score`, so the test metrics, the PR report, a scored batch and the served answer agree:

- binary: ``score`` is the probability of the positive class (`data.positive_label`, or the last
  class in sorted order), and the label is that class when the score reaches
  `evaluate.threshold`, else the other class (at 0.5 this is the model's own ``predict``);
- multiclass: the label is the most probable class (argmax, the model's own ``predict``), and
  ``score`` is that class's probability (the model's confidence);
- regression: the label is the predicted number; there is no score.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gitops_ml.config import is_classification
from gitops_ml.errors import ConfigError, DataError


@dataclass(frozen=True)
class Scored:
    """A model's answer for each row."""

    labels: np.ndarray
    score: np.ndarray | None  # binary: P(positive); multiclass: P(predicted label); else None
    proba: np.ndarray | None  # classification: one column per class, in `classes` order
    classes: np.ndarray | None
    positive: Hashable | None  # binary: the class `score` is the probability of


def positive_class(classes: Sequence[Hashable], configured: str | None) -> Hashable:
    """The class scored as positive: `data.positive_label`, or the last class in sorted order."""
    if configured is None:
        return sorted(classes)[-1]
    for cls in classes:
        if str(cls) == configured:
            return cls
    raise ConfigError(
        f"params: 'data.positive_label' {configured!r} is not a class of the model "
        f"(classes: {', '.join(map(str, classes))})"
    )


def threshold_labels(
    proba: np.ndarray, classes: np.ndarray, positive: Hashable, threshold: float
) -> np.ndarray:
    """The positive class where its probability reaches `threshold`, else the most probable
    other class."""
    classes = np.asarray(classes)
    pos = int(np.flatnonzero(classes == positive)[0])
    others = np.delete(np.arange(len(classes)), pos)
    best_other = others[np.argmax(proba[:, others], axis=1)]
    return np.where(proba[:, pos] >= threshold, classes[pos], classes[best_other])


def check_classes(classes: Sequence[Any], task: str, target: str) -> None:
    """A binary task needs exactly two classes, a multiclass task three or more."""
    n = len(classes)
    shown = ", ".join(map(str, list(classes)[:10])) + (", ..." if n > 10 else "")
    if task == "binary" and n > 2:
        raise DataError(
            f"target column '{target}' has {n} classes ({shown}) but data.task is binary; "
            "set 'data.task: multiclass'"
        )
    if task == "multiclass" and n == 2:
        raise DataError(
            f"target column '{target}' has 2 classes ({shown}) but data.task is multiclass; "
            "set 'data.task: binary'"
        )


def check_task(model: Any, task: str) -> None:
    """The model must be the kind of estimator the task needs."""
    classifier = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    if is_classification(task) != classifier:
        kind = "a classifier" if classifier else "a regressor"
        raise DataError(f"the model is {kind} but data.task is {task}: re-run the train stage")
    if task == "binary" and len(model.classes_) != 2:
        raise DataError(
            f"the model has {len(model.classes_)} classes but data.task is binary: "
            "re-run the train stage"
        )


def score(
    model: Any,
    X: pd.DataFrame,
    task: str,
    *,
    positive_label: str | None = None,
    threshold: float = 0.5,
) -> Scored:
    """Score `X` with `model` as the task says (see the module docstring)."""
    check_task(model, task)
    if not is_classification(task):
        return Scored(np.asarray(model.predict(X), dtype="float64"), None, None, None, None)
    classes = np.asarray(model.classes_)
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    if task == "binary":
        positive = positive_class(classes.tolist(), positive_label)
        labels = threshold_labels(proba, classes, positive, threshold)
        return Scored(labels, proba[:, int(np.flatnonzero(classes == positive)[0])], proba,
                      classes, positive)  # fmt: skip
    best = np.argmax(proba, axis=1)
    return Scored(classes[best], proba[np.arange(len(best)), best], proba, classes, None)


@dataclass(frozen=True)
class Measured:
    """A model's answers on labelled rows and what they score."""

    scored: Scored
    metrics: dict[str, Any]
    slices: dict[str, Any]
    per_class: dict[str, Any]


def measure(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    task: str,
    *,
    slices: Sequence[str] = (),
    positive_label: str | None = None,
    threshold: float = 0.5,
) -> Measured:
    """Score `X` and compute the task's headline, slice and per-class metrics against `y`:
    the numbers of reports/metrics.json, slices.json and classes.json."""
    from gitops_ml import metrics as m

    scored = score(model, X, task, positive_label=positive_label, threshold=threshold)
    if task == "regression":
        actual = y.to_numpy(dtype="float64")
        return Measured(
            scored,
            m.regression_metrics(actual, scored.labels),
            m.slice_metrics(X, slices, task=task, actual=actual, predicted=scored.labels),
            {},
        )
    actual = y.to_numpy()
    if task == "binary":
        metrics = m.binary_metrics(actual, scored.labels, scored.score, scored.positive)
    else:
        metrics = m.multiclass_metrics(actual, scored.labels, scored.proba, scored.classes)
    return Measured(
        scored,
        metrics,
        m.slice_metrics(
            X,
            slices,
            task=task,
            actual=actual,
            predicted=scored.labels,
            score=scored.score,
            positive=scored.positive,
        ),
        m.per_class_metrics(actual, scored.labels, scored.classes),
    )
