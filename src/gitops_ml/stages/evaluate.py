"""Evaluate stage: score the saved model on the test split.

Writes the headline metrics, per-slice metrics, DVC plot data, PNG figures and the test-set
predictions (kept for drift comparison), then adds the test metrics and figures to the MLflow run
that trained this exact model file. Nothing is written until every number and figure exists.

Given the train split (`--train`) and `--baseline`, it also fits a simple baseline on that
split and scores it on the same test rows with the same metric code, for the gate's
`baseline:<metric>` rule: a linear model on the preprocessing the catalogue gives linear models
(`gitops_ml.models`), logistic regression for classification and ridge for regression.

The model's inputs are its `feature_names_in_`: columns the schema excludes from them (`exclude:
true`) stay in the test data for the slices, and the baseline and the permutation importance use
the model's inputs only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gitops_ml import forked, tracking
from gitops_ml import metrics as m
from gitops_ml.config import Params, estimator_kind, load_params
from gitops_ml.errors import DataError, cli_entry
from gitops_ml.figures import figure_files, write_figures
from gitops_ml.files import atomic_dir, file_md5, read_parquet, write_json, write_parquet
from gitops_ml.scoring import Measured, Scored, check_task, measure

log = logging.getLogger(__name__)

#: At most this many points in the ROC and precision-recall curves.
CURVE_POINTS = 200
#: At most this many points in the regression scatter.
SCATTER_POINTS = 1000
CALIBRATION_BINS = 10
#: The plot data files the top-level `plots:` of dvc.yaml reads, for either task.
PLOT_NAMES = (
    "roc",
    "precision_recall",
    "confusion",
    "calibration",
    "importance",
    "predicted_vs_actual",
)


@dataclass(frozen=True)
class Evaluation:
    """Everything the stage writes, computed before anything is written."""

    metrics: dict[str, Any]
    slices: dict[str, Any]
    plots: dict[str, m.Records]
    predictions: pd.DataFrame
    positive_label: str | None  # the class scored as positive (binary)
    per_class: dict[str, Any]  # classification: precision, recall, f1, support of each class


def _features_target(
    df: pd.DataFrame, target: str, split: str = "test"
) -> tuple[pd.DataFrame, pd.Series]:
    if target not in df.columns:
        raise DataError(
            f"target column '{target}' (data.target) is not in the {split} data "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    y = df[target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"target column '{target}' has {n_missing} missing values in the {split} data"
        )
    return df.drop(columns=[target]), y


#: The simple baseline of each estimator kind: a linear model on one-hot and scaled features.
#: Ridge rather than a constant prediction for regression: a mean predictor scores R² 0, a bar
#: a threshold on r2 already sets; a linear fit is the simple model worth beating.
BASELINE_MODELS = {"classification": "logistic_regression", "regression": "ridge"}


def baseline_results(
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: Params,
    features: list[str] | None = None,
) -> dict[str, Any]:
    """Fit the task's baseline on `train` (default hyperparameters, train.seed) and score it on
    `test` as the model is scored: ``{"model", "n_train", "metrics"}`` (reports/baseline.json).
    `features` (the model's inputs) limits its inputs to the model's; None: every column.

    A larger train split is sampled down to evaluate.baseline_rows rows (seeded, in their
    original order): a linear model's test score has long stopped moving by then, while its
    one-hot encoding of a million rows would cost more time and memory than the model's own fit.
    """
    from gitops_ml.models import build_pipeline, feature_columns

    data = params.data
    name = BASELINE_MODELS[estimator_kind(data.task)]
    if len(train) > params.evaluate.baseline_rows:
        train = train.sample(n=params.evaluate.baseline_rows, random_state=params.train.seed)
        train = train.sort_index()
    X, y = _features_target(train, data.target, "train")
    if features is not None and list(X.columns) != features:
        missing = [c for c in features if c not in X.columns]
        if missing:
            raise DataError(
                f"feature column '{missing[0]}' the model was trained on is not in the train data"
            )
        X = X.loc[:, features]
        train = train.loc[:, [*features, data.target]]
    numeric, categorical = feature_columns(train, data.target)
    pipeline = build_pipeline(name, data.task, {}, params.train.seed, numeric, categorical)
    start = time.perf_counter()
    try:
        pipeline.fit(X, y)
    except (ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"the baseline {name} could not be fitted on the train split: {text}"
        ) from None
    log.info("fitted the baseline %s in %.2f s", name, time.perf_counter() - start)
    X_test, y_test = _features_target(test, data.target)
    measured = measure(
        pipeline,
        X_test,
        y_test,
        data.task,
        positive_label=data.positive_label,
        threshold=params.evaluate.threshold,
    )
    return {"model": name, "n_train": len(X), "metrics": measured.metrics}


def _baseline_of(
    train: Path, test: pd.DataFrame, params: Params, features: list[str] | None
) -> dict[str, Any]:
    """`baseline_results` in the forked child, on one thread: this stage's own process scores
    the model meanwhile, and BLAS or OpenMP threads of both would spin against each other. One
    thread also makes the numbers the same on any machine (a ridge fit on many rows moved in
    the fifth digit with two BLAS threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return baseline_results(read_parquet(train), test, params, features)


def _warn_unseen(y: pd.Series, classes: np.ndarray) -> None:
    unseen = sorted(set(map(str, y.unique())) - set(map(str, classes)))
    if unseen:
        log.warning(
            "test labels the model never saw (always predicted wrong): %s", ", ".join(unseen)
        )


def _plots(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    measured: Measured,
    params: Params,
    before_importance: Callable[[dict[str, m.Records]], None] | None = None,
) -> dict[str, m.Records]:
    """The plot data of the task: curves need a positive class, the scatter a regression.
    `before_importance` is handed the others before the permutation importance is computed."""
    scored, task = measured.scored, params.data.task
    others: dict[str, m.Records] = {}
    if task == "regression":
        others["predicted_vs_actual"] = m.predicted_vs_actual_points(
            y.to_numpy(dtype="float64"), scored.labels, max_points=SCATTER_POINTS,
            seed=params.train.seed,
        )  # fmt: skip
    else:
        actual = y.to_numpy()
        others["confusion"] = m.confusion_rows(actual, scored.labels)
        if task == "binary":
            is_pos = actual == scored.positive
            others["roc"] = m.roc_points(is_pos, scored.score, CURVE_POINTS)
            others["precision_recall"] = m.precision_recall_points(
                is_pos, scored.score, CURVE_POINTS
            )
            others["calibration"] = m.calibration_points(is_pos, scored.score, CALIBRATION_BINS)
    if before_importance is not None:
        before_importance(others)
    return {"importance": _importance(model, X, y, params), **others}


def _predictions(y: pd.Series, scored: Scored, task: str) -> pd.DataFrame:
    if task == "regression":
        return pd.DataFrame({"actual": y.to_numpy(dtype="float64"), "prediction": scored.labels})
    return pd.DataFrame(
        {
            "actual": y.reset_index(drop=True),
            "prediction": pd.Series(scored.labels, dtype=y.dtype),
            "score": pd.Series(scored.score, dtype="float64"),
        }
    )


def model_inputs(model: Any, X: pd.DataFrame) -> list[str]:
    """The columns of `X` the model takes: its `feature_names_in_` (a column the schema
    excludes is in the test data, not in them), or every column of `X` when it names none."""
    names = [str(c) for c in getattr(model, "feature_names_in_", ())]
    return names or [str(c) for c in X.columns]


def _importance(model: Any, X: pd.DataFrame, y: pd.Series, params: Params) -> m.Records:
    """Permutation importance of the model's inputs (an excluded column would score 0)."""
    inputs = model_inputs(model, X)
    return m.permutation_importance_rows(
        model,
        X if list(X.columns) == inputs else X.loc[:, inputs],
        y,
        task=params.data.task,
        max_rows=params.evaluate.importance_rows,
        repeats=params.evaluate.importance_repeats,
        seed=params.train.seed,
    )


def evaluate(
    model: Any,
    test: pd.DataFrame,
    params: Params,
    draw: Callable[[dict[str, m.Records], dict[str, Any]], None] | None = None,
) -> Evaluation:
    """Score `model` on the test split (features + target) as params.yaml says. `draw` is
    handed the plot data but the importance, and the metrics, as soon as they exist."""
    X, y = _features_target(test, params.data.target)
    check_task(model, params.data.task)
    missing = [col for col in getattr(model, "feature_names_in_", []) if col not in X.columns]
    if missing:
        raise DataError(
            f"feature column '{missing[0]}' the model was trained on is not in the test data"
        )
    measured = measure(
        model,
        X,
        y,
        params.data.task,
        slices=params.evaluate.slices,
        positive_label=params.data.positive_label,
        threshold=params.evaluate.threshold,
    )
    scored = measured.scored
    if scored.classes is not None:
        _warn_unseen(y, scored.classes)
    return Evaluation(
        measured.metrics,
        measured.slices,
        _plots(
            model,
            X,
            y,
            measured,
            params,
            None if draw is None else lambda plots: draw(plots, measured.metrics),
        ),
        _predictions(y, scored, params.data.task),
        None if scored.positive is None else str(scored.positive),
        measured.per_class,
    )


def records_json(records: m.Records) -> str:
    """A JSON list with one record per line: small diffs in git, readable by `dvc plots`."""
    if not records:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(r, sort_keys=True) for r in records) + "\n]\n"


def write_plot_data(plots: Mapping[str, m.Records], out_dir: Path) -> None:
    """One ``<name>.json`` per plot in dvc.yaml, in the directory the stage replaces whole.

    Plots that do not apply to the task (or were skipped) are written as ``[]``: `dvc plots`
    leaves an empty file out quietly but reports a missing one as an error.
    """
    for name in PLOT_NAMES:
        path = out_dir / f"{name}.json"
        path.write_text(records_json(plots.get(name, [])), encoding="utf-8")


def load_model(path: str | os.PathLike[str]) -> Any:
    """The fitted Pipeline the train stage saved, once its md5 is the one dvc.lock records for it
    (`dvc repro` records the train stage before this one runs); a file no lock declares is
    loaded as given."""
    from gitops_ml.lineage.artifacts import declared_md5, load_model_file

    model = Path(path)
    if not model.is_file():
        raise DataError(f"{path}: model file not found (run the train stage first)")
    return load_model_file(model, declared_md5(model), str(path), "dvc.lock")


def log_to_run(
    params: Params,
    *,
    model_file: Path,
    test_file: Path,
    artifacts: list[tuple[str, Path]],
    result: Evaluation,
) -> str | None:
    """Add the test metrics and figures to the run that trained this model file, if any."""
    md5 = file_md5(model_file)
    tags = {tracking.TAG_TEST_DATA_MD5: file_md5(test_file)}
    if result.positive_label is not None:
        tags[tracking.TAG_POSITIVE_LABEL] = result.positive_label
    run_id = tracking.log_test_results(
        md5, params.mlflow.experiment, metrics=result.metrics, tags=tags, artifacts=artifacts
    )
    if run_id is None:
        log.warning(
            "no MLflow run in experiment '%s' is tagged %s=%s (model not trained by the train "
            "stage with this tracking store?); test metrics are not logged to MLflow",
            params.mlflow.experiment,
            tracking.TAG_MODEL_MD5,
            md5,
        )
    return run_id


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_ml.stages.evaluate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, type=Path, help="model file (joblib)")
    parser.add_argument("--test", required=True, type=Path, help="test split (parquet)")
    parser.add_argument("--metrics", required=True, type=Path, help="metrics JSON to write")
    parser.add_argument("--slices", required=True, type=Path, help="per-slice metrics JSON")
    parser.add_argument(
        "--classes", required=True, type=Path, help="per-class metrics JSON (classification)"
    )
    parser.add_argument("--plots", required=True, type=Path, help="directory for plot data JSON")
    parser.add_argument("--figures", required=True, type=Path, help="directory for PNG figures")
    parser.add_argument("--predictions", required=True, type=Path, help="predictions parquet")
    parser.add_argument(
        "--train", type=Path, help="train split (parquet) to fit the simple baseline on"
    )
    parser.add_argument(
        "--baseline", type=Path, help="the baseline's test metrics JSON to write (with --train)"
    )
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.train is None) != (args.baseline is None):
        parser.error("--train and --baseline go together: the baseline is fitted on --train")
    params = load_params(args.params)
    model = load_model(args.model)
    test = read_parquet(args.test)
    # The baseline is fitted on the model's inputs, in a forked child while this process
    # scores the model.
    inputs = [str(c) for c in getattr(model, "feature_names_in_", ())] or None
    baseline_job = (
        forked.call(_baseline_of, args.train, test, params, inputs) if args.train else None
    )
    # The figures but the importance's are drawn in a forked child while the permutation
    # importance is computed.
    drawing: list[Callable[[], dict[str, bytes]]] = []
    try:
        result = evaluate(
            model,
            test,
            params,
            lambda data, metrics: drawing.append(forked.call(figure_files, data, metrics)),
        )
    except BaseException:
        for job in drawing:  # the child is done before the stage exits
            with contextlib.suppress(Exception):
                job()
        raise
    baseline = baseline_job() if baseline_job is not None else None
    drawn: dict[str, bytes] = {}
    for job in drawing:
        drawn.update(job())
    drawn.update(figure_files({"importance": result.plots["importance"]}, result.metrics))
    with atomic_dir(args.figures) as figures, atomic_dir(args.plots) as plots:
        write_figures(drawn, figures)
        write_plot_data(result.plots, plots)
    write_json(args.metrics, result.metrics)
    write_json(args.slices, result.slices)
    write_json(args.classes, result.per_class)
    write_parquet(args.predictions, result.predictions)
    reports = [args.metrics, args.slices, args.classes]
    if baseline is not None:
        write_json(args.baseline, baseline)
        reports.append(args.baseline)
    log.info("metrics: %s", json.dumps(result.metrics, sort_keys=True))
    with tracking.timed("mlflow logging (evaluate)"):
        run_id = log_to_run(
            params,
            model_file=args.model,
            test_file=args.test,
            artifacts=[("figures", args.figures), *(("reports", path) for path in reports)],
            result=result,
        )
    if run_id:
        log.info("logged test metrics to mlflow run %s", run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
