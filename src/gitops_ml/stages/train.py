"""Train stage: fit the Pipeline on the train split, save it, and record the run in MLflow.

The model's inputs are every column of the split but the target and those the schema marks
`exclude: true` (`--schema`): those stay in the data for slices and the model card, and the
fitted Pipeline ignores them in anything it scores.

The saved file is the DVC artifact; it is byte-identical for the same data, params and library
versions, whatever the machine's core count. The MLflow run records params, training metrics and
the md5 of that file, so evaluate and promote find it again; the MLflow model itself is made at
promotion, from the checked file.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from gitops_ml import tracking
from gitops_ml.config import Params, is_classification, load_params
from gitops_ml.errors import DataError, cli_entry
from gitops_ml.files import atomic_path, file_md5, read_parquet
from gitops_ml.models import build_pipeline, check_excluded, feature_columns, normalize_fitted
from gitops_ml.scoring import check_classes
from gitops_ml.stages.tune import read_tuned

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """A fitted, machine-independent Pipeline and what was measured while fitting it."""

    pipeline: Pipeline
    metrics: dict[str, float]


def split_features(
    df: pd.DataFrame, target: str, task: str, exclude: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.Series]:
    """Features (all columns but the target and `exclude`) and target; a DataError names a
    missing, incomplete or unusable target, a ConfigError a bad exclusion."""
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' (data.target) is not in the training data "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    y = df[target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(f"target column '{target}' has {n_missing} missing values")
    if is_classification(task):
        classes = sorted(map(str, y.unique()))
        if len(classes) < 2:
            label = classes[0] if classes else "(no rows)"
            raise DataError(
                f"target column '{target}' has a single class '{label}': "
                "a classifier needs at least two"
            )
        check_classes(classes, task, target)
    elif not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        raise DataError(
            f"target column '{target}' is {y.dtype}, but data.task regression needs numbers"
        )
    if exclude:
        check_excluded(df.columns, target, exclude)
    X = df.drop(columns=[target, *exclude])
    if X.shape[1] == 0:
        raise DataError(f"the training data has no feature columns besides '{target}'")
    return X, y


#: Training-split scores are a sanity check: a sample this size moves them by < 0.005.
TRAIN_METRIC_ROWS = 50_000


def _train_metrics(
    pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, task: str, seed: int
) -> dict[str, float]:
    """Scores on (a sample of) the training split: a check for under- or over-fitting."""
    if len(X) > TRAIN_METRIC_ROWS:
        X = X.sample(n=TRAIN_METRIC_ROWS, random_state=seed)
        y = y.loc[X.index]
    if is_classification(task):
        proba = pipeline.predict_proba(X)
        classes = pipeline.classes_
        predicted = classes[np.argmax(proba, axis=1)]
        metrics = {
            "train_accuracy": float(np.mean(predicted == y.to_numpy())),
            "train_log_loss": float(skm.log_loss(y, proba, labels=classes)),
        }
        if len(classes) == 2:  # binary AUC is the same whichever class is positive
            metrics["train_roc_auc"] = float(skm.roc_auc_score(y == classes[1], proba[:, 1]))
        return metrics
    predicted = pipeline.predict(X)
    return {
        "train_rmse": float(np.sqrt(np.mean((y.to_numpy(dtype=float) - predicted) ** 2))),
        "train_r2": float(skm.r2_score(y, predicted)),
    }


def configured_pipeline(
    df: pd.DataFrame,
    params: Params,
    hyperparams: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> Pipeline:
    """The unfitted Pipeline params.yaml describes, with column roles read from `df`.

    `hyperparams` (the tune stage's choice) replace `train.hyperparams` when given; the columns
    in `exclude` are no input of it.
    """
    numeric, categorical = feature_columns(df, params.data.target, exclude)
    cardinality = max((df[col].nunique() for col in categorical), default=0)
    return build_pipeline(
        params.train.model,
        params.data.task,
        dict(params.train.hyperparams if hyperparams is None else hyperparams),
        params.train.seed,
        numeric,
        categorical,
        cardinality=int(cardinality),
    )


def _fit(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series) -> None:
    """Fit; an estimator's error about "feature at index i" is reported with the column's name."""
    try:
        pipeline.fit(X, y)
    except (ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        columns = list(pipeline.named_steps["preprocess"].transformers[0][2]) + list(
            pipeline.named_steps["preprocess"].transformers[1][2]
        )
        found = re.search(r"(?:feature|column) at index (\d+)", text)
        if found and int(found.group(1)) < len(columns):
            raise DataError(
                f"training failed on column '{columns[int(found.group(1))]}': {text}"
            ) from None
        named = [col for col in X.columns if re.search(rf"\b{re.escape(str(col))}\b", text)]
        where = f" (column '{named[0]}')" if named else ""
        raise DataError(f"training failed{where}: {text}") from None


def train(
    df: pd.DataFrame,
    params: Params,
    hyperparams: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> TrainResult:
    """Fit the configured Pipeline on `df` (features + target, less `exclude`) and measure it."""
    X, y = split_features(df, params.data.target, params.data.task, exclude)
    pipeline = configured_pipeline(df, params, hyperparams, exclude)
    start = time.perf_counter()
    _fit(pipeline, X, y)
    fit_seconds = time.perf_counter() - start
    normalize_fitted(pipeline)
    log.info(
        "fitted %s on %d rows x %d features in %.2f s",
        params.train.model,
        len(X),
        X.shape[1],
        fit_seconds,
    )
    metrics = {
        **_train_metrics(pipeline, X, y, params.data.task, params.train.seed),
        "fit_seconds": round(fit_seconds, 3),
        "n_train": float(len(X)),
        "n_features": float(X.shape[1]),
    }
    return TrainResult(pipeline=pipeline, metrics=metrics)


def save_model(pipeline: Pipeline, path: str | os.PathLike[str]) -> None:
    """Pickle the Pipeline with joblib (uncompressed: the bytes are what DVC hashes)."""
    joblib.dump(pipeline, path)


def run_params(params: Params) -> dict[str, str]:
    """The params logged with a training run: the data, split and train sections, flattened.

    ``data.positive_label`` is left out: evaluate reads it, train does not re-run when it changes,
    so evaluate records it on the run as the ``gitops_ml.positive_label`` tag instead.
    """
    sections = {key: dict(params.raw[key]) for key in ("data", "split", "train")}
    sections["data"].pop("positive_label", None)
    return tracking.flatten_params(sections)


def estimator_params(pipeline: Pipeline) -> dict[str, str]:
    """The fitted estimator's full hyperparameters, defaults included, for comparing runs."""
    est = pipeline.named_steps["model"]
    simple = {
        key: value
        for key, value in est.get_params(deep=False).items()
        if value is None or isinstance(value, str | int | float | bool)
    }
    return tracking.flatten_params({"estimator": simple})


def search_record(search: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, float]]:
    """The tune stage's search as MLflow params (how, and the values chosen) and metrics (the
    best candidate's cross-validated score and its spread over the folds); none untuned."""
    if not search:
        return {}, {}
    best = search["best"]
    params = tracking.flatten_params(
        {
            "tune": {key: search[key] for key in ("method", "metric", "folds", "seed")},
            "tuned": dict(best["params"]),
        }
    )
    params["tune.candidates"] = str(len(search["candidates"]))
    metric = search["metric"]
    return params, {f"cv_{metric}": float(best["mean"]), f"cv_{metric}_std": float(best["std"])}


def log_run(
    result: TrainResult,
    params: Params,
    *,
    model_file: Path,
    train_file: Path,
    search: Mapping[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> str:
    """Record the training run in MLflow; return its id. Excluded columns are the param
    ``schema.exclude`` (comma-separated; absent when none is)."""
    tags = tracking.lineage_tags(model_path=model_file, data_paths={"train": train_file})
    md5 = tags[tracking.TAG_MODEL_MD5]
    cv_params, cv_metrics = search_record(search)
    excluded = {"schema.exclude": ",".join(exclude)} if exclude else {}
    return tracking.log_training_run(
        experiment=params.mlflow.experiment,
        run_name=f"{params.train.model}-{md5[:8]}",
        params={
            **run_params(params),
            **estimator_params(result.pipeline),
            **cv_params,
            **excluded,
        },
        metrics={**result.metrics, **cv_metrics},
        tags={**tags, tracking.TAG_MODEL_TYPE: params.train.model},
    )


def excluded_columns(schema: Path | None) -> tuple[str, ...]:
    """The columns the schema file marks `exclude: true` (none without a schema)."""
    if schema is None:
        return ()
    from gitops_ml.schema import load_schema

    excluded = load_schema(schema).excluded
    if excluded:
        log.info("left out of the features (exclude: true in %s): %s", schema, ", ".join(excluded))
    return excluded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_ml.stages.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--train", required=True, type=Path, help="train split (parquet)")
    parser.add_argument("--model", required=True, type=Path, help="model file to write (joblib)")
    parser.add_argument(
        "--tuned",
        type=Path,
        help="the tune stage's output (json): its hyperparameters replace train.hyperparams",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        help="the data contract (YAML): its `exclude: true` columns are left out of the features",
    )
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params = load_params(args.params, check_estimator=True)
    tuned = (
        read_tuned(args.tuned, params.train.model, params.data.task)
        if args.tuned is not None
        else None
    )
    exclude = excluded_columns(args.schema)
    df = read_parquet(args.train)
    if exclude:
        check_excluded(df.columns, params.data.target, exclude, source=str(args.schema))
    result = train(df, params, None if tuned is None else tuned["hyperparams"], exclude)
    # The model moves into place only after MLflow has the run: a failure keeps the last good one.
    with atomic_path(args.model) as tmp:
        save_model(result.pipeline, tmp)
        md5 = file_md5(tmp)
        with tracking.timed("mlflow logging (train)"):
            run_id = log_run(
                result,
                params,
                model_file=tmp,
                train_file=args.train,
                search=None if tuned is None else tuned["search"],
                exclude=exclude,
            )
    log.info("wrote %s (md5 %s); mlflow run %s", args.model, md5, run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
