"""One scoring function for every task: binary thresholds, multiclass argmax, regression values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from gitops_ml import scoring
from gitops_ml.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, pd.Series, LogisticRegression]:
    data = load_iris(as_frame=True)
    X = data.data
    y = data.target.map(dict(enumerate(data.target_names))).astype("str")
    return X, y, LogisticRegression(max_iter=500).fit(X, y)


def test_multiclass_labels_are_the_models_own_argmax_predictions(iris) -> None:
    X, _, model = iris
    scored = scoring.score(model, X, "multiclass")
    assert scored.labels.tolist() == model.predict(X).tolist()
    proba = model.predict_proba(X)
    assert np.allclose(scored.score, proba.max(axis=1))
    assert scored.positive is None and list(scored.classes) == ["setosa", "versicolor", "virginica"]


def test_binary_label_cuts_the_positive_class_at_the_threshold() -> None:
    X = pd.DataFrame({"x": np.linspace(-3, 3, 200)})
    y = pd.Series(np.where(X["x"] > 0, "yes", "no"))
    model = LogisticRegression().fit(X, y)
    at_half = scoring.score(model, X, "binary", positive_label="yes", threshold=0.5)
    assert at_half.labels.tolist() == model.predict(X).tolist()
    assert np.allclose(at_half.score, model.predict_proba(X)[:, 1])
    low = scoring.score(model, X, "binary", positive_label="yes", threshold=0.01)
    assert (low.labels == "yes").sum() > (at_half.labels == "yes").sum()
    flipped = scoring.score(model, X, "binary", positive_label="no", threshold=0.5)
    assert np.allclose(flipped.score, 1 - at_half.score)


def test_regression_gives_values_and_no_score() -> None:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LinearRegression().fit(X, 2 * X["x"] + 1)
    scored = scoring.score(model, X, "regression")
    assert np.allclose(scored.labels, [1, 3, 5, 7]) and scored.score is None


def test_positive_class_is_configured_label_or_last_in_sorted_order() -> None:
    assert scoring.positive_class(["<=50K", ">50K"], "<=50K") == "<=50K"
    assert scoring.positive_class([">50K", "<=50K"], None) == ">50K"
    assert scoring.positive_class([0, 1], "1") == 1
    with pytest.raises(ConfigError, match=r"'data\.positive_label' 'maybe' is not a class"):
        scoring.positive_class(["no", "yes"], "maybe")


def test_a_model_of_the_wrong_kind_or_class_count_is_refused(iris) -> None:
    X, _, model = iris
    with pytest.raises(DataError, match=r"the model has 3 classes but data\.task is binary"):
        scoring.score(model, X, "binary")
    with pytest.raises(DataError, match=r"is a classifier but data\.task is regression"):
        scoring.score(model, X, "regression")
    reg = LinearRegression().fit(X, np.arange(len(X)))
    with pytest.raises(DataError, match=r"is a regressor but data\.task is multiclass"):
        scoring.score(reg, X, "multiclass")


def test_class_count_must_fit_the_task() -> None:
    with pytest.raises(DataError, match=r"has 3 classes .* set 'data\.task: multiclass'"):
        scoring.check_classes(["a", "b", "c"], "binary", "y")
    with pytest.raises(DataError, match=r"has 2 classes .* set 'data\.task: binary'"):
        scoring.check_classes(["a", "b"], "multiclass", "y")
    scoring.check_classes(["a", "b"], "binary", "y")
    scoring.check_classes(["a", "b", "c"], "multiclass", "y")


def test_measure_matches_the_metric_functions(iris) -> None:
    X, y, model = iris
    X = X.assign(size=np.where(X["petal length (cm)"] > 4, "big", "small"))
    model = LogisticRegression(max_iter=500).fit(X.drop(columns="size"), y)

    class Dropping:  # the saved Pipeline ignores columns it was not trained on; so does this
        classes_ = model.classes_

        def predict_proba(self, frame):
            return model.predict_proba(frame.drop(columns="size"))

    measured = scoring.measure(Dropping(), X, y, "multiclass", slices=["size"])
    accuracy = float(np.mean(model.predict(X.drop(columns="size")) == y.to_numpy()))
    assert measured.metrics["accuracy"] == round(accuracy, 6)
    assert set(measured.slices["size"]) == {"big", "small"}
    assert sum(s["n"] for s in measured.slices["size"].values()) == len(X)
    assert set(measured.per_class) == {"setosa", "versicolor", "virginica"}
