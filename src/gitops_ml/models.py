"""The model catalogue: which estimators params.yaml may name, and the Pipeline around them.

Preprocessing lives inside the saved Pipeline, so training, evaluation and serving transform data
identically. Each family gets the encoding that suits it: one-hot and scaling for linear models,
ordinal codes (native categorical splits) for histogram gradient boosting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from gitops_ml.config import check_model_name, estimator_kind
from gitops_ml.errors import ConfigError

#: model name -> {"classification" | "regression": estimator class}; binary and multiclass
#: tasks both use the classifier (scikit-learn classifiers handle any number of classes).
MODELS: dict[str, dict[str, type[BaseEstimator]]] = {
    "logistic_regression": {"classification": LogisticRegression},
    "ridge": {"regression": Ridge},
    "hist_gradient_boosting": {
        "classification": HistGradientBoostingClassifier,
        "regression": HistGradientBoostingRegressor,
    },
    "random_forest": {
        "classification": RandomForestClassifier,
        "regression": RandomForestRegressor,
    },
}

#: Estimators given n_jobs=1 unless the params say otherwise: results must not depend on cores.
_SINGLE_JOB = ("random_forest",)


def estimator_class(model: str, task: str) -> type[BaseEstimator]:
    """Look up the estimator class; a ConfigError names the bad `train.model`."""
    check_model_name(model, task)
    return MODELS[model][estimator_kind(task)]


def make_estimator(model: str, task: str, hyperparams: dict[str, Any], seed: int) -> BaseEstimator:
    """Instantiate the estimator with the params' hyperparameters, seed and pinned job count."""
    cls = estimator_class(model, task)
    kwargs = dict(hyperparams)
    accepted = cls().get_params()
    if "random_state" in accepted:
        kwargs.setdefault("random_state", seed)
    if model in _SINGLE_JOB:
        kwargs.setdefault("n_jobs", 1)
    try:
        est = cls(**kwargs)
    except TypeError:
        unknown = sorted(set(kwargs) - set(accepted))
        raise ConfigError(
            f"params: unknown hyperparameter 'train.hyperparams.{unknown[0]}' for {model}"
        ) from None
    try:
        est._validate_params()
    except InvalidParameterError as exc:
        raise ConfigError(f"params: 'train.hyperparams' for {model}: {exc}") from None
    return est


def validate_model(model: str, task: str, hyperparams: dict[str, Any]) -> None:
    """Fail early (at params load) on an unknown model or a bad hyperparameter."""
    make_estimator(model, task, hyperparams, seed=0)


def check_excluded(
    columns: Sequence[Any], target: str, exclude: Sequence[str], source: str = "the schema"
) -> None:
    """Columns kept out of the model (a schema's `exclude: true`) must be features of the data:
    excluding the target, a column the data does not have, or every feature is a ConfigError."""
    names = [str(c) for c in columns]
    for col in exclude:
        if col == target:
            raise ConfigError(
                f"{source}: column '{col}' is excluded (exclude: true) but it is the target "
                "(data.target)"
            )
        if col not in names:
            raise ConfigError(
                f"{source}: column '{col}' is excluded (exclude: true) but is not in the "
                f"training data (columns: {', '.join(names)})"
            )
    if not [c for c in names if c != target and c not in exclude]:
        raise ConfigError(
            f"{source}: every feature is excluded (exclude: true): the model would have no input"
        )


def model_features(df: pd.DataFrame, target: str, exclude: Sequence[str] = ()) -> list[str]:
    """The columns the model is fitted on, in frame order: all but the target and `exclude`."""
    check_excluded(df.columns, target, exclude)
    dropped = {target, *exclude}
    return [col for col in df.columns if col not in dropped]


def feature_columns(
    df: pd.DataFrame, target: str, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Split the feature columns (all but the target and `exclude`) into numeric and
    categorical, in frame order."""
    numeric, categorical = [], []
    for col in df.columns:
        if col == target or col in exclude:
            continue
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            numeric.append(col)
        else:
            categorical.append(col)
    return numeric, categorical


#: HistGradientBoosting's largest number of categories per feature (its default max_bins).
HGB_MAX_CATEGORIES = 255


def _preprocessor(
    model: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_categories: int | None = None,
) -> ColumnTransformer:
    if model == "hist_gradient_boosting":
        # HGB handles missing numbers itself and splits natively on ordinal category codes. It
        # takes at most max_bins categories per feature: with more levels (IDs, zip codes) the
        # rarest ones share one code, so any column can be fed to it.
        cat = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            **({"max_categories": max_categories} if max_categories else {}),
        )
        num: Any = "passthrough"
    elif model == "random_forest":
        cat = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="__missing__"),
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
        )
        num = SimpleImputer(strategy="median")
    else:
        cat = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="__missing__"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=10),
        )
        num = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    return ColumnTransformer(
        [("num", num, list(numeric)), ("cat", cat, list(categorical))],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def build_pipeline(
    model: str,
    task: str,
    hyperparams: dict[str, Any],
    seed: int,
    numeric: Sequence[str],
    categorical: Sequence[str],
    cardinality: int = 0,
) -> Pipeline:
    """The whole model: preprocessing and estimator in one Pipeline.

    `cardinality` is the largest number of distinct values of a categorical column; above what
    the estimator can take, the rarest levels are grouped (only then, so the saved pipeline of
    data without such columns stays as it was).
    """
    est = make_estimator(model, task, hyperparams, seed)
    limit = None
    if model == "hist_gradient_boosting":
        if "categorical_features" not in hyperparams:
            n_num = len(numeric)
            mask = [False] * n_num + [True] * len(categorical)
            est.set_params(categorical_features=mask if any(mask) else None)
        # One code is kept for missing values, which HGB bins on their own.
        max_bins = int(est.get_params().get("max_bins", HGB_MAX_CATEGORIES))
        if cardinality > max_bins:
            limit = max_bins
    return Pipeline(
        [("preprocess", _preprocessor(model, numeric, categorical, limit)), ("model", est)]
    )


def normalize_fitted(pipeline: Pipeline) -> Pipeline:
    """Drop machine-specific state from a fitted pipeline so its pickle is byte-identical everywhere.

    HistGradientBoosting stores the OpenMP thread count it fitted with in its bin mapper; the
    predictions do not depend on it, but the pickled bytes (and so DVC's hash) would. Resetting it
    to None means "use what this machine has" at predict time.
    """
    est = pipeline.named_steps["model"]
    mapper = getattr(est, "_bin_mapper", None)
    if mapper is not None and hasattr(mapper, "n_threads"):
        mapper.n_threads = None
    return pipeline
