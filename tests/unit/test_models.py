"""The model catalogue: config errors name the key, every model fits the Pipeline it is given."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from gitops_ml.config import MODEL_KINDS, parse_params
from gitops_ml.errors import ConfigError
from gitops_ml.models import (
    MODELS,
    build_pipeline,
    feature_columns,
    make_estimator,
    normalize_fitted,
    validate_model,
)
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = template_settings()


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Tiny fits run faster on one OpenMP thread and cannot stall on a busy machine."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _params(**train: object) -> dict:
    raw = copy.deepcopy(DEFAULTS)
    raw["train"].update(train)
    return raw


def test_unknown_model_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'train\.model'.*'xgboost'"):
        parse_params(_params(model="xgboost"))


def test_unknown_hyperparameter_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"train\.hyperparams\.n_trees"):
        parse_params(
            _params(model="random_forest", hyperparams={"n_trees": 10}), check_estimator=True
        )


def test_negative_tree_count_is_a_config_error_naming_the_hyperparameter() -> None:
    with pytest.raises(ConfigError, match="n_estimators") as exc:
        parse_params(
            _params(model="random_forest", hyperparams={"n_estimators": -1}), check_estimator=True
        )
    assert "train.hyperparams" in str(exc.value)


@pytest.mark.parametrize(
    ("model", "task"),
    [("ridge", "binary"), ("logistic_regression", "regression")],
)
def test_model_that_does_not_support_the_task_is_a_config_error(model: str, task: str) -> None:
    with pytest.raises(ConfigError, match=rf"{model} does not support {task}"):
        validate_model(model, task, {})


def test_model_task_mismatch_through_params() -> None:
    raw = _params(model="ridge")
    with pytest.raises(ConfigError, match="ridge does not support binary"):
        parse_params(raw)


def test_seed_and_single_job_defaults_and_explicit_hyperparameters_win() -> None:
    est = make_estimator("random_forest", "binary", {"n_estimators": 7}, seed=5)
    assert est.get_params()["random_state"] == 5
    assert est.get_params()["n_jobs"] == 1
    assert est.get_params()["n_estimators"] == 7
    est = make_estimator("random_forest", "binary", {"random_state": 1}, seed=5)
    assert est.get_params()["random_state"] == 1


def _tiny(task: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": x,
            "count": rng.integers(0, 5, size=n),
            "colour": pd.Series(rng.choice(["red", "green", "blue"], size=n), dtype="str"),
        }
    )
    df.loc[::7, "x"] = np.nan
    df.loc[::5, "colour"] = np.nan
    df["y"] = np.where(x > 0, "yes", "no") if task == "binary" else 2 * x
    return df


def test_feature_columns_split_numeric_and_text_in_frame_order() -> None:
    df = _tiny("binary")
    assert feature_columns(df, "y") == (["x", "count"], ["colour"])


@pytest.mark.parametrize(
    ("model", "task"),
    [
        (model, "binary" if kind == "classification" else kind)
        for model, kinds in MODELS.items()
        for kind in kinds
    ],
)
def test_every_model_fits_and_predicts_with_missing_values(model: str, task: str) -> None:
    df = _tiny(task)
    X = df.drop(columns="y")
    numeric, categorical = feature_columns(df, "y")
    pipe = build_pipeline(model, task, {}, 0, numeric, categorical)
    pipe.fit(X, df["y"])
    predicted = pipe.predict(X)
    assert len(predicted) == len(df)
    if task == "binary":
        assert set(pipe.classes_) == {"no", "yes"}
        assert pipe.predict_proba(X).shape == (len(df), 2)
    # unseen category and an all-missing row are handled at predict time
    odd = X.head(2).copy()
    odd.loc[odd.index[0], "colour"] = "purple"
    odd.loc[odd.index[1], ["x", "colour"]] = np.nan
    assert len(pipe.predict(odd)) == 2


def test_hist_gradient_boosting_gets_a_categorical_mask() -> None:
    pipe = build_pipeline("hist_gradient_boosting", "binary", {}, 0, ["a", "b"], ["c"])
    assert pipe.named_steps["model"].categorical_features == [False, False, True]


def test_normalize_fitted_drops_the_thread_count(tmp_path: Path) -> None:
    df = _tiny("binary")
    numeric, categorical = feature_columns(df, "y")
    pipe = build_pipeline("hist_gradient_boosting", "binary", {}, 0, numeric, categorical)
    pipe.fit(df.drop(columns="y"), df["y"])
    assert pipe.named_steps["model"]._bin_mapper.n_threads is not None
    normalize_fitted(pipe)
    assert pipe.named_steps["model"]._bin_mapper.n_threads is None
    path = tmp_path / "m.joblib"
    joblib.dump(pipe, path)
    reloaded = joblib.load(path)
    assert (reloaded.predict(df.drop(columns="y")) == pipe.predict(df.drop(columns="y"))).all()


@pytest.mark.parametrize(
    "model",
    [
        (model, "binary" if kind == "classification" else kind)
        for model, kinds in MODELS.items()
        for kind in kinds
    ],
)
def test_every_model_takes_a_column_with_hundreds_of_levels(model: tuple[str, str]) -> None:
    """641 zip codes (HistGradientBoosting takes at most 255 categories): the rarest share one."""
    name, task = model
    rng = np.random.default_rng(1)
    n = 3000
    zips = pd.Series([f"{z:05d}" for z in rng.integers(0, 641, n)], dtype="str")
    zips[:641] = [f"{z:05d}" for z in range(641)]  # every level present
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "zip": zips})
    df["y"] = np.where(x > 0, "yes", "no") if task == "binary" else 2 * x
    numeric, categorical = feature_columns(df, "y")
    cardinality = df["zip"].nunique()
    assert cardinality == 641
    pipe = build_pipeline(name, task, {}, 0, numeric, categorical, cardinality=cardinality)
    pipe.fit(df.drop(columns="y"), df["y"])
    assert len(pipe.predict(df.drop(columns="y").head(5))) == 5


def test_rare_levels_are_grouped_only_above_the_estimators_limit() -> None:
    small = build_pipeline("hist_gradient_boosting", "binary", {}, 0, ["a"], ["c"], cardinality=41)
    encoder = small.named_steps["preprocess"].transformers[1][1]
    assert encoder.max_categories is None  # unchanged pipeline (and model bytes) for Adult
    big = build_pipeline(
        "hist_gradient_boosting", "binary", {"max_bins": 100}, 0, ["a"], ["c"], cardinality=641
    )
    assert big.named_steps["preprocess"].transformers[1][1].max_categories == 100


def test_a_training_failure_names_the_column_not_its_index() -> None:
    """The estimator says "feature at index 0"; the user reads the column's name."""
    from gitops_ml.errors import DataError
    from gitops_ml.stages import train

    raw = template_settings()
    raw["data"].update(target="y", positive_label=None)
    raw["evaluate"]["slices"] = []
    raw["train"]["hyperparams"] = {"categorical_features": [True, False]}  # numbers as categories
    params = parse_params(raw)
    df = pd.DataFrame(
        {
            "amount": np.arange(1000.0),
            "colour": pd.Series(["x", "y"] * 500, dtype="str"),
            "y": ["p", "q"] * 500,
        }
    )
    with pytest.raises(DataError, match=r"^training failed on column 'amount': Categorical"):
        train.train(df, params)


def test_the_params_model_table_is_the_catalogue() -> None:
    """config.MODEL_KINDS checks train.model without importing scikit-learn: it must list exactly
    the models and kinds that models.MODELS builds."""
    assert {name: tuple(kinds) for name, kinds in MODELS.items()} == MODEL_KINDS


def test_bad_hyperparameters_pass_a_light_read_and_fail_where_the_estimator_is_built() -> None:
    raw = _params(model="random_forest", hyperparams={"n_estimators": -1})
    assert parse_params(raw).train.hyperparams == {"n_estimators": -1}
    with pytest.raises(ConfigError, match="n_estimators"):
        parse_params(raw, check_estimator=True)


def test_reading_params_imports_neither_scikit_learn_nor_pandas() -> None:
    """Every stage and command reads params first: that must not cost seconds of imports."""
    code = (
        "import sys; from gitops_ml.config import load_params; "
        f"load_params({str(ROOT / 'params.yaml')!r}); "
        "print(sorted(m for m in ('sklearn', 'pandas', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
