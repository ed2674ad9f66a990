"""Metrics, slices and plot data: pure functions on tiny inline data, error paths included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from gitops_ml import metrics as m
from gitops_ml import scoring
from gitops_ml.errors import ConfigError, DataError

ACTUAL = np.array(["no", "no", "yes", "yes", "no", "yes", "no", "no"], dtype=object)
SCORE = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.05])
PREDICTED = np.where(SCORE >= 0.5, "yes", "no")


def test_classification_metrics_keys_and_values_match_sklearn() -> None:
    got = m.binary_metrics(ACTUAL, PREDICTED, SCORE, "yes")
    assert tuple(got) == m.BINARY_KEYS
    is_pos = ACTUAL == "yes"
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(is_pos, SCORE), abs=1e-6)
    assert got["average_precision"] == pytest.approx(
        skm.average_precision_score(is_pos, SCORE), abs=1e-6
    )
    assert got["accuracy"] == pytest.approx(6 / 8)
    assert got["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["log_loss"] == pytest.approx(skm.log_loss(is_pos, SCORE), abs=1e-6)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(is_pos, SCORE), abs=1e-6)
    assert got["n_test"] == 8
    assert isinstance(got["n_test"], int)


def test_classification_metrics_with_one_class_give_null_auc_not_a_crash() -> None:
    actual = np.array(["no", "no", "no"])
    got = m.binary_metrics(actual, actual, np.array([0.1, 0.2, 0.7]), "yes")
    assert got["roc_auc"] is None
    assert got["average_precision"] is None
    assert got["accuracy"] == 1.0
    assert got["precision"] == 0.0
    assert math.isfinite(got["log_loss"])


def test_classification_metrics_with_no_rows_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no test rows"):
        m.binary_metrics(np.array([]), np.array([]), np.array([]), "yes")


def test_positive_class_is_configured_label_or_last_in_sorted_order() -> None:
    assert scoring.positive_class(["<=50K", ">50K"], ">50K") == ">50K"
    assert scoring.positive_class(["<=50K", ">50K"], "<=50K") == "<=50K"
    assert scoring.positive_class([">50K", "<=50K"], None) == ">50K"
    assert scoring.positive_class([0, 1], "1") == 1  # numeric labels match by their text


def test_unknown_positive_label_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.positive_label.*'maybe'"):
        scoring.positive_class(["no", "yes"], "maybe")


def test_predict_labels_applies_the_threshold_to_the_positive_class() -> None:
    classes = np.array(["a", "b", "c"], dtype=object)
    proba = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    assert scoring.threshold_labels(proba, classes, "c", 0.5).tolist() == ["a", "c", "b"]
    assert scoring.threshold_labels(proba, classes, "c", 0.2).tolist() == ["c", "c", "c"]
    binary = np.array([[0.7, 0.3], [0.4, 0.6]])
    assert scoring.threshold_labels(binary, np.array(["n", "y"]), "y", 0.3).tolist() == ["y", "y"]


def test_regression_metrics() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.5, 2.0, 2.5, 5.0])
    got = m.regression_metrics(actual, predicted)
    assert tuple(got) == m.REGRESSION_KEYS
    assert got["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 0.25 + 1) / 4), abs=1e-6)
    assert got["mae"] == pytest.approx(0.5)
    assert got["r2"] == pytest.approx(skm.r2_score(actual, predicted), abs=1e-6)
    assert got["n_test"] == 4
    assert m.regression_metrics([1.0], [2.0])["r2"] is None


def _slice_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sex": pd.Series(["F", "F", "M", "M", "M", "F", None, "M"], dtype="str"),
            "age": [20, 30, 40, 50, 60, 70, 80, 90],
        }
    )


def test_slice_metrics_per_value_with_n_and_missing_values_as_their_own_slice() -> None:
    got = m.slice_metrics(
        _slice_frame(),
        ["sex"],
        task="binary",
        actual=ACTUAL,
        predicted=PREDICTED,
        score=SCORE,
        positive="yes",
    )
    assert set(got) == {"sex"}
    assert set(got["sex"]) == {"F", "M", m.MISSING_SLICE}
    assert sum(s["n"] for s in got["sex"].values()) == len(ACTUAL)
    female = got["sex"]["F"]  # rows 0, 1, 5: no, no, yes
    assert female["n"] == 3
    assert female["roc_auc"] == 1.0
    assert female["positive_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert set(female) == {
        "n",
        "roc_auc",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "positive_rate",
        "predicted_positive_rate",
    }


def test_slice_with_a_single_class_gets_null_auc() -> None:
    got = m.slice_metrics(
        _slice_frame(),
        ["sex"],
        task="binary",
        actual=ACTUAL,
        predicted=PREDICTED,
        score=SCORE,
        positive="yes",
    )
    missing = got["sex"][m.MISSING_SLICE]  # one row: actual "no", score 0.6 -> "yes"
    assert missing["n"] == 1
    assert missing["roc_auc"] is None
    assert missing["accuracy"] == 0.0
    assert missing["predicted_positive_rate"] == 1.0


def test_missing_slice_column_is_a_data_error_naming_it() -> None:
    with pytest.raises(DataError, match=r"slice column 'race'.*evaluate\.slices"):
        m.slice_metrics(
            _slice_frame(),
            ["sex", "race"],
            task="binary",
            actual=ACTUAL,
            predicted=PREDICTED,
            score=SCORE,
            positive="yes",
        )


def test_regression_slices() -> None:
    actual = np.arange(8, dtype=float)
    got = m.slice_metrics(
        _slice_frame(), ["sex"], task="regression", actual=actual, predicted=actual + 1
    )
    # rows 2, 3, 4, 7: actual mean 4, total sum of squares 14, residual sum of squares 4
    assert got["sex"]["M"] == {"n": 4, "rmse": 1.0, "mae": 1.0, "r2": pytest.approx(1 - 4 / 14)}
    assert got["sex"][m.MISSING_SLICE]["r2"] is None


def test_roc_points_are_thinned_and_keep_both_ends() -> None:
    rng = np.random.default_rng(0)
    is_pos = rng.random(5000) < 0.3
    score = np.clip(is_pos * 0.3 + rng.random(5000) * 0.7, 0, 1)
    points = m.roc_points(is_pos, score, max_points=200)
    assert 2 <= len(points) <= 200
    assert points[0] == {"fpr": 0.0, "tpr": 0.0}
    assert points[-1] == {"fpr": 1.0, "tpr": 1.0}
    fpr = [p["fpr"] for p in points]
    assert fpr == sorted(fpr)


def test_curves_are_empty_without_both_classes() -> None:
    is_pos = np.zeros(4, dtype=bool)
    score = np.array([0.1, 0.2, 0.3, 0.4])
    assert m.roc_points(is_pos, score) == []
    assert m.precision_recall_points(is_pos, score) == []


def test_precision_recall_points() -> None:
    points = m.precision_recall_points(ACTUAL == "yes", SCORE)
    assert set(points[0]) == {"recall", "precision"}
    assert points[-1] == {"recall": 0.0, "precision": 1.0}
    assert all(0 <= p["precision"] <= 1 and 0 <= p["recall"] <= 1 for p in points)


def test_confusion_rows_one_record_per_row() -> None:
    rows = m.confusion_rows(ACTUAL, PREDICTED)
    assert len(rows) == len(ACTUAL)
    assert rows[3] == {"actual": "yes", "predicted": "yes"}
    assert rows[2] == {"actual": "yes", "predicted": "no"}


def test_calibration_points_bin_like_sklearn_and_count_every_row() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(1)
    score = rng.random(1000)
    is_pos = rng.random(1000) < score
    points = m.calibration_points(is_pos, score, n_bins=10)
    frac, mean = calibration_curve(is_pos, score, n_bins=10)
    assert [p["fraction_positive"] for p in points] == pytest.approx(frac, abs=1e-6)
    assert [p["mean_predicted"] for p in points] == pytest.approx(mean, abs=1e-6)
    assert sum(p["count"] for p in points) == 1000


def _signal_frame(n: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = pd.Series(np.where(X["signal"] + 0.3 * rng.normal(size=n) > 0, "yes", "no"))
    return X, y


def test_permutation_importance_ranks_the_signal_first_and_is_seeded() -> None:
    X, y = _signal_frame()
    model = LogisticRegression().fit(X, y)
    kwargs = {"task": "binary", "max_rows": 300, "repeats": 3, "seed": 7}
    rows = m.permutation_importance_rows(model, X, y, **kwargs)
    assert [r["feature"] for r in rows] == ["signal", "noise"]
    assert rows[0]["importance"] > 0.2
    assert abs(rows[1]["importance"]) < 0.05
    assert set(rows[0]) == {"feature", "importance", "std"}
    assert m.permutation_importance_rows(model, X, y, **kwargs) == rows


def test_permutation_importance_with_zero_rows_is_skipped() -> None:
    X, y = _signal_frame(50)
    model = LogisticRegression().fit(X, y)
    assert (
        m.permutation_importance_rows(model, X, y, task="binary", max_rows=0, repeats=2, seed=0)
        == []
    )


def test_permutation_importance_regression_uses_r2() -> None:
    X, _ = _signal_frame()
    y = pd.Series(3 * X["signal"].to_numpy())
    model = LinearRegression().fit(X, y)
    rows = m.permutation_importance_rows(
        model, X, y, task="regression", max_rows=100, repeats=2, seed=0
    )
    assert rows[0]["feature"] == "signal"
    assert rows[0]["importance"] > 1.0  # shuffling the only signal costs more than all of R²


def test_predicted_vs_actual_is_sampled_deterministically() -> None:
    actual = np.arange(5000, dtype=float)
    points = m.predicted_vs_actual_points(actual, actual * 2, max_points=1000, seed=3)
    assert len(points) == 1000
    assert all(p["predicted"] == 2 * p["actual"] for p in points)
    assert points == m.predicted_vs_actual_points(actual, actual * 2, max_points=1000, seed=3)
    assert len(m.predicted_vs_actual_points(actual[:10], actual[:10])) == 10


def test_values_are_json_safe() -> None:
    got = m.binary_metrics(ACTUAL, PREDICTED, np.array([0.0, 0, 1, 1, 0, 1, 1, 0]), "yes")
    assert all(v is None or math.isfinite(v) for v in got.values())


# --------------------------------------------------------------------------------------------
# multiclass


MC_ACTUAL = np.array(["a", "b", "c", "a", "b", "c", "a", "c"])
MC_PRED = np.array(["a", "b", "b", "a", "c", "c", "a", "a"])
MC_CLASSES = np.array(["a", "b", "c"])
MC_PROBA = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.5, 0.4],
        [0.6, 0.3, 0.1],
        [0.1, 0.3, 0.6],
        [0.1, 0.2, 0.7],
        [0.9, 0.05, 0.05],
        [0.5, 0.1, 0.4],
    ]
)


def test_multiclass_metrics_match_sklearn() -> None:
    got = m.multiclass_metrics(MC_ACTUAL, MC_PRED, MC_PROBA, MC_CLASSES)
    assert tuple(got) == m.MULTICLASS_KEYS
    assert got["accuracy"] == round(skm.accuracy_score(MC_ACTUAL, MC_PRED), 6)
    assert got["balanced_accuracy"] == round(skm.balanced_accuracy_score(MC_ACTUAL, MC_PRED), 6)
    assert got["f1_macro"] == round(skm.f1_score(MC_ACTUAL, MC_PRED, average="macro"), 6)
    assert got["f1_weighted"] == round(skm.f1_score(MC_ACTUAL, MC_PRED, average="weighted"), 6)
    assert got["log_loss"] == round(skm.log_loss(MC_ACTUAL, MC_PROBA, labels=MC_CLASSES), 6)
    ovr = skm.roc_auc_score(MC_ACTUAL, MC_PROBA, multi_class="ovr", average="macro")
    assert got["roc_auc_ovr"] == round(ovr, 6)
    assert got["n_test"] == len(MC_ACTUAL)


def test_multiclass_metrics_survive_a_class_absent_from_the_test_rows() -> None:
    actual = np.array(["a", "a", "b", "b"])
    got = m.multiclass_metrics(actual, actual, MC_PROBA[:4], MC_CLASSES)
    assert got["accuracy"] == 1.0 and got["roc_auc_ovr"] is not None
    unseen = np.array(["a", "z", "b", "b"])  # "z": a label the model never learned
    got = m.multiclass_metrics(unseen, MC_PRED[:4], MC_PROBA[:4], MC_CLASSES)
    assert got["log_loss"] is not None and got["accuracy"] == 0.5


def test_per_class_metrics_give_precision_recall_and_support_per_class() -> None:
    got = m.per_class_metrics(MC_ACTUAL, MC_PRED, MC_CLASSES)
    precision, recall, _, support = skm.precision_recall_fscore_support(
        MC_ACTUAL, MC_PRED, labels=MC_CLASSES
    )
    assert list(got) == ["a", "b", "c"]
    assert [got[c]["precision"] for c in "abc"] == [round(v, 6) for v in precision]
    assert [got[c]["recall"] for c in "abc"] == [round(v, 6) for v in recall]
    assert [got[c]["support"] for c in "abc"] == support.tolist()


def test_multiclass_slices_carry_the_multiclass_metrics() -> None:
    frame = pd.DataFrame({"group": ["x", "x", "y", "y", "x", "y", "x", "y"]})
    got = m.slice_metrics(frame, ["group"], task="multiclass", actual=MC_ACTUAL, predicted=MC_PRED)
    assert set(got["group"]["x"]) == {
        "n",
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "f1_weighted",
    }
    assert got["group"]["x"]["n"] + got["group"]["y"]["n"] == len(MC_ACTUAL)


# --------------------------------------------------------------------------------------------
# slice keys: numeric columns are binned at quantiles, values sorted numerically


def test_a_numeric_slice_column_is_cut_into_quantile_bins_named_by_their_edges() -> None:
    values = pd.Series([*range(101), np.nan], dtype=float)
    keys, order = m.slice_keys(values)
    assert order == ["[0, 25)", "[25, 50)", "[50, 75)", "[75, 100]", "(missing)"]
    assert keys[0] == "[0, 25)" and keys[25] == "[25, 50)" and keys[100] == "[75, 100]"
    assert keys[101] == "(missing)"
    counts = [int((keys == name).sum()) for name in order]
    assert counts == [25, 25, 25, 26, 1]


def test_a_skewed_numeric_column_gets_fewer_bins_not_empty_ones() -> None:
    values = pd.Series([0] * 90 + list(range(1, 31)))  # 75% zeros: quantiles coincide
    keys, order = m.slice_keys(values)
    assert all((keys == name).any() for name in order)
    assert order[0].startswith("[0, ") and len(order) < m.SLICE_BINS + 1


def test_low_cardinality_numbers_slice_by_value_in_numeric_order() -> None:
    keys, order = m.slice_keys(pd.Series([10, 2, 1, 2, 10, 1]))
    assert order == ["1", "2", "10"]
    assert keys.tolist() == ["10", "2", "1", "2", "10", "1"]


def test_text_slices_are_sorted_with_missing_last() -> None:
    _, order = m.slice_keys(pd.Series(["b", None, "a", "b"], dtype="str"))
    assert order == ["a", "b", "(missing)"]


def test_numeric_slice_metrics_keep_the_bin_order() -> None:
    frame = pd.DataFrame({"age": np.arange(40, dtype=float)})
    actual = np.tile([1.0, 2.0], 20)
    got = m.slice_metrics(frame, ["age"], task="regression", actual=actual, predicted=actual)
    assert list(got["age"]) == ["[0, 9.75)", "[9.75, 19.5)", "[19.5, 29.25)", "[29.25, 39]"]


# --- permutation importance: the preprocessed shortcut equals the raw route --------------------


def _catalogue_cases() -> list[tuple[str, str, str]]:
    from gitops_ml.models import MODELS

    data = {"classification": ("penguins", "breast_cancer"), "regression": ("cars",)}
    return [
        (model, kind, name)
        for model, kinds in MODELS.items()
        for kind in kinds
        for name in data[kind]
    ]


@pytest.mark.parametrize(("model", "kind", "dataset"), _catalogue_cases())
def test_permutation_importance_shortcut_is_bit_for_bit_the_raw_route(
    model: str, kind: str, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real data with missing values and text columns (penguins, Auto MPG) and numeric-only
    (breast cancer), every model of the catalogue: where the shortcut applies, its importances
    equal scikit-learn's on the raw columns exactly; one-hot encoding takes the raw route."""
    from gitops_ml.models import build_pipeline, feature_columns
    from tests import datasets

    data = getattr(datasets, dataset)()
    df = data.frame.dropna(subset=[data.target]).reset_index(drop=True)
    if data.task == "binary":
        df[data.target] = df[data.target].map({0: "benign", 1: "malignant"})
    numeric, categorical = feature_columns(df, data.target)
    levels = max((df[c].nunique() for c in categorical), default=0)
    pipe = build_pipeline(model, data.task, {}, 0, numeric, categorical, cardinality=levels)
    train, test = df.iloc[::2], df.iloc[1::2]  # importance on rows the model did not see
    pipe.fit(train.drop(columns=data.target), train[data.target])
    X, y = test.drop(columns=data.target), test[data.target]
    kwargs = {"task": data.task, "max_rows": 200, "repeats": 3, "seed": 7}
    view = m.PreTransformed.of(pipe, X)
    one_hot = model in ("logistic_regression", "ridge") and bool(categorical)
    assert (view is None) == one_hot
    if view is not None:
        assert view.row_by_row == (model in ("hist_gradient_boosting", "random_forest"))
    fast = m.permutation_importance_rows(pipe, X, y, **kwargs)
    monkeypatch.setattr(m.PreTransformed, "of", classmethod(lambda cls, *_: None))
    raw = m.permutation_importance_rows(pipe, X, y, **kwargs)
    assert fast == raw
    assert len(raw) == X.shape[1] and any(r["importance"] for r in raw)


def test_a_tree_model_predicts_again_only_the_rows_a_permutation_changes() -> None:
    """Penguins (missing values, text columns) through HGB: a shuffled `sex` column gives many
    rows their own value back, and those rows are not predicted again; the output equals the
    final estimator's on every gathered row, to the bit. The unpermuted rows are predicted
    once, however many permutations follow."""
    from gitops_ml.models import build_pipeline, feature_columns
    from tests import datasets

    data = datasets.penguins()
    df = data.frame.dropna(subset=[data.target]).reset_index(drop=True)
    numeric, categorical = feature_columns(df, data.target)
    pipe = build_pipeline("hist_gradient_boosting", data.task, {}, 0, numeric, categorical)
    X, y = df.drop(columns=data.target), df[data.target]
    pipe.fit(X, y)
    view = m.PreTransformed.of(pipe, X)
    assert view is not None and view.row_by_row
    final = view.final
    original = final.predict_proba
    predicted: list[int] = []
    final.predict_proba = lambda rows: predicted.append(len(rows)) or original(rows)
    rng = np.random.RandomState(0)
    sex = list(X.columns).index("sex")
    for _ in range(3):
        rows = view.row_indices()
        rows[:, sex] = rng.permutation(len(X))
        got = view.predict_proba(rows)
        np.testing.assert_array_equal(got, original(view.gathered(rows)))
    assert predicted[0] == len(X)  # the unpermuted rows, once
    assert len(predicted) == 4 and all(0 < n < 0.7 * len(X) for n in predicted[1:]), predicted


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "logistic_regression"])
@pytest.mark.parametrize("dataset", ["penguins", "breast_cancer"])
def test_class_codes_and_threads_leave_the_importances_as_scikit_learn_scores_them(
    model: str, dataset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUC is scored on each label's position in ``classes_`` and the columns in parallel
    threads; with the text labels scored one column after another (scikit-learn as it comes),
    the importances are the same, to the last digit: three species (one-vs-rest AUC) and a
    binary target of two words, through the shortcut (HGB) and the raw route (one-hot)."""
    from gitops_ml.models import build_pipeline, feature_columns
    from tests import datasets

    data = getattr(datasets, dataset)()
    df = data.frame.dropna(subset=[data.target]).reset_index(drop=True)
    if data.task == "binary":
        df[data.target] = df[data.target].map({0: "malignant", 1: "benign"})
    numeric, categorical = feature_columns(df, data.target)
    pipe = build_pipeline(model, data.task, {}, 0, numeric, categorical, cardinality=20)
    train, test = df.iloc[::2], df.iloc[1::2]
    pipe.fit(train.drop(columns=data.target), train[data.target])
    X, y = test.drop(columns=data.target), test[data.target]
    kwargs = {"task": data.task, "max_rows": 150, "repeats": 3, "seed": 3}
    assert len(m._class_codes(pipe, y).unique()) == y.nunique()
    coded = m.permutation_importance_rows(pipe, X, y, **kwargs)
    monkeypatch.setattr(m, "_class_codes", lambda _model, target: target)
    monkeypatch.setattr(m, "importance_workers", lambda: 1)
    as_labels = m.permutation_importance_rows(pipe, X, y, **kwargs)
    assert coded == as_labels
    assert any(r["importance"] for r in coded)


def test_class_codes_keep_labels_the_model_does_not_know() -> None:
    class Fitted:
        classes_ = np.array(["a", "b"], dtype=object)

    known = pd.Series(["b", "a", "b"])
    assert m._class_codes(Fitted(), known).tolist() == [1, 0, 1]
    unseen = pd.Series(["b", "c"])
    assert m._class_codes(Fitted(), unseen) is unseen


def test_the_shortcut_refuses_a_column_mapped_to_several_outputs() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame({"a": ["x", "y", "z", "x"], "b": [1.0, 2.0, 3.0, 4.0]})
    pre = ColumnTransformer(
        [("num", "passthrough", ["b"]), ("cat", OneHotEncoder(sparse_output=False), ["a"])]
    ).fit(X)
    assert m._raw_to_output_columns(pre, ["a", "b"]) is None
    one_to_one = ColumnTransformer([("num", "passthrough", ["b", "a"])]).fit(X)
    assert m._raw_to_output_columns(one_to_one, ["a", "b"]) == [[1], [0]]
