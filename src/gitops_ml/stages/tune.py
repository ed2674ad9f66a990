"""Tune stage: choose train's hyperparameters by a cross-validated search, or pass them through.

With `tune.enabled: false` (the default) the stage writes `train.hyperparams` through unchanged,
without importing scikit-learn: the default pipeline pays milliseconds for it, and train fits
exactly the model it fitted before the stage existed. With it on, a grid or random search over
`tune.space.<train.model>` scores every candidate by k-fold cross-validation on the train split
(stratified for classifiers, folds shuffled with `tune.seed`); the best candidate's values, laid
over `train.hyperparams`, are what train fits.

The search runs through joblib: on this machine, or on a Dask distributed cluster
(`tune.backend: dask`, the scheduler's address in Dask's own DASK_SCHEDULER_ADDRESS). The folds,
the candidates and every fit are seeded and nothing about the backend is written, so both choose
the same hyperparameters and write the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from gitops_ml.config import (
    MODEL_KINDS,
    TASK_METRICS,
    Params,
    is_classification,
    load_params,
)
from gitops_ml.errors import ConfigError, DataError, GitopsMLError, cli_entry
from gitops_ml.files import read_parquet, write_json

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

BACKENDS = ("local", "dask")
SEARCHES = ("grid", "random")
#: Dask's own variable for the scheduler's address (`dask.config` reads it too).
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: `tune.metric: null` scores candidates by the task's headline metric (what `gitops-ml init`
#: makes gate.primary).
TASK_DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
#: The metrics a search may optimise (the project's names) and scikit-learn's scorer for each;
#: a `neg_` scorer is reported with its sign flipped, in the metric's own units. Binary metrics
#: that need the positive label (precision, recall, f1, ...) are left out: scikit-learn's scorers
#: assume the label 1.
SCORERS = {
    "binary": {"roc_auc": "roc_auc", "accuracy": "accuracy", "log_loss": "neg_log_loss"},
    "multiclass": {
        "accuracy": "accuracy",
        "balanced_accuracy": "balanced_accuracy",
        "f1_macro": "f1_macro",
        "f1_weighted": "f1_weighted",
        "log_loss": "neg_log_loss",
        "roc_auc_ovr": "roc_auc_ovr",
    },
    "regression": {
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "r2": "r2",
    },
}
#: Digits kept of the cross-validated scores in the output (a small, readable git diff).
SCORE_DIGITS = 6


class SchedulerError(GitopsMLError):
    """The Dask scheduler is not named, not reachable, or has no workers."""


@dataclass(frozen=True)
class TuneConfig:
    """The `tune` section of params.yaml."""

    enabled: bool
    backend: str
    search: str
    n_iter: int
    folds: int
    metric: str | None
    n_jobs: int
    seed: int
    connect_timeout: float
    space: Mapping[str, Mapping[str, tuple[Any, ...]]]


def _key(name: str) -> str:
    return f"tune.{name}"


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"params: '{key}' must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"params: '{key}' must be >= {minimum}, got {value}")
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"params: '{key}' must be one of {', '.join(choices)}; got {value!r}")
    return value


def _space(value: Any) -> dict[str, dict[str, tuple[Any, ...]]]:
    """model -> hyperparameter -> candidate values; each list non-empty and without repeats."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"params: 'tune.space' must be a mapping of model names, got {value!r}")
    space: dict[str, dict[str, tuple[Any, ...]]] = {}
    for model, grid in value.items():
        key = f"tune.space.{model}"
        if model not in MODEL_KINDS:
            raise ConfigError(
                f"params: '{key}' is not a model; use one of {', '.join(MODEL_KINDS)}"
            )
        if grid is None:
            grid = {}
        if not isinstance(grid, Mapping):
            raise ConfigError(
                f"params: '{key}' must map hyperparameters to lists of values, got {grid!r}"
            )
        space[model] = {}
        for name, values in grid.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"params: '{key}' has a hyperparameter name {name!r}")
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"params: '{key}.{name}' must be a non-empty list of values, got {values!r}"
                )
            seen: list[Any] = []
            for v in values:
                if any(type(v) is type(s) and v == s for s in seen):
                    raise ConfigError(f"params: '{key}.{name}' lists {v!r} twice")
                seen.append(v)
            space[model][name] = tuple(values)
    return space


def parse_tune(raw: Any, task: str) -> TuneConfig:
    """The `tune` section checked: every problem is a ConfigError naming the key."""
    section = raw.get("tune") if isinstance(raw, Mapping) else None
    if not isinstance(section, Mapping):
        raise ConfigError("params: section 'tune' is missing or not a mapping")
    expected = list(TuneConfig.__dataclass_fields__)
    unknown = sorted(set(section) - set(expected))
    if unknown:
        raise ConfigError(
            f"params: unknown key 'tune.{unknown[0]}' (expected one of: {', '.join(expected)})"
        )
    missing = [key for key in expected if key not in section]
    if missing:
        raise ConfigError(f"params: missing key 'tune.{missing[0]}'")
    s = section
    if not isinstance(s["enabled"], bool):
        raise ConfigError(f"params: 'tune.enabled' must be true or false, got {s['enabled']!r}")
    metric = s["metric"]
    if metric is not None:
        allowed = tuple(SCORERS[task])
        if metric not in allowed:
            other = "" if metric in TASK_METRICS[task] else f" (a {task} metric)"
            raise ConfigError(
                f"params: 'tune.metric' must be null or one of {', '.join(allowed)}{other}; "
                f"got {metric!r}"
            )
    n_jobs = _int(s["n_jobs"], _key("n_jobs"), minimum=-1)
    if n_jobs == 0:
        raise ConfigError("params: 'tune.n_jobs' must be >= 1 or -1 (every core), got 0")
    timeout = s["connect_timeout"]
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(
            f"params: 'tune.connect_timeout' must be a number of seconds > 0, got {timeout!r}"
        )
    return TuneConfig(
        enabled=s["enabled"],
        backend=_choice(s["backend"], _key("backend"), BACKENDS),
        search=_choice(s["search"], _key("search"), SEARCHES),
        n_iter=_int(s["n_iter"], _key("n_iter"), minimum=1),
        folds=_int(s["folds"], _key("folds"), minimum=2),
        metric=metric,
        n_jobs=n_jobs,
        seed=_int(s["seed"], _key("seed"), minimum=0),
        connect_timeout=float(timeout),
        space=MappingProxyType(_space(s["space"])),
    )


def load_tune(path: str | os.PathLike[str]) -> tuple[Params, TuneConfig]:
    """params.yaml read once: the shared sections and the `tune` section."""
    params = load_params(path)
    return params, parse_tune(params.raw, params.data.task)


# --------------------------------------------------------------------------------------------
# The search


def check_space(model: str, task: str, grid: Mapping[str, tuple[Any, ...]], base: Mapping) -> None:
    """Every candidate value must build the estimator; a ConfigError names the key and value.
    scikit-learn's constraints are read from the shipped table first (`check_hyperparams`), so
    `check-params` does not import scikit-learn for them."""
    from gitops_ml.hyperparams import check_hyperparams

    for name, values in grid.items():
        for value in values:
            try:
                if not check_hyperparams(model, task, {**base, name: value}):
                    from gitops_ml.models import make_estimator

                    make_estimator(model, task, {**base, name: value}, seed=0)
            except ConfigError as exc:
                why = str(exc).split(": ", 1)[-1]
                raise ConfigError(
                    f"params: 'tune.space.{model}.{name}' value {value!r} is not valid: {why}"
                ) from None


def _scorer(cfg: TuneConfig, task: str) -> tuple[str, str, int]:
    """(metric name, scikit-learn scorer, sign that turns the scorer's value into the metric)."""
    metric = cfg.metric or TASK_DEFAULT_METRIC[task]
    scorer = SCORERS[task][metric]
    return metric, scorer, -1 if scorer.startswith("neg_") else 1


def _folds(cfg: TuneConfig, task: str, y: pd.Series):
    from sklearn.model_selection import KFold, StratifiedKFold

    if is_classification(task):
        smallest = int(y.value_counts().min())
        if smallest < cfg.folds:
            raise DataError(
                f"tune.folds is {cfg.folds}, but the rarest class of the train split has "
                f"{smallest} rows: each fold needs one of every class"
            )
        return StratifiedKFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)
    if len(y) < cfg.folds:
        raise DataError(f"tune.folds is {cfg.folds}, but the train split has {len(y)} rows")
    return KFold(n_splits=cfg.folds, shuffle=True, random_state=cfg.seed)


@contextlib.contextmanager
def dask_backend(timeout: float) -> Iterator[None]:
    """joblib's "dask" backend on the cluster DASK_SCHEDULER_ADDRESS names.

    Connecting and finding a worker each give up after `timeout` seconds with one line.
    """
    address = os.environ.get(SCHEDULER_ENV, "").strip()
    if not address:
        raise SchedulerError(
            f"tune.backend is dask but {SCHEDULER_ENV} is not set: export the scheduler's "
            "address, e.g. tcp://10.0.0.5:8786"
        )
    try:
        import joblib
        from distributed import Client
    except ImportError:
        raise SchedulerError(
            "tune.backend dask needs dask and distributed: pip install 'gitops-ml[dask]'"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchedulerError(
            f"cannot reach the Dask scheduler at {address} ({SCHEDULER_ENV}) within "
            f"{timeout:g} s: {why}"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise SchedulerError(
                f"the Dask scheduler at {address} has no workers after {timeout:g} s"
            ) from None
        n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        log.info("searching on the Dask cluster at %s (%d workers)", address, n_workers)
        with joblib.parallel_backend("dask", client=client, wait_for_workers_timeout=timeout):
            yield
    finally:
        client.close(timeout=timeout)


def _plain(value: Any) -> Any:
    """A numpy scalar from cv_results_ as the plain Python value params.yaml would give."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def search(
    df: pd.DataFrame, params: Params, cfg: TuneConfig, exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """Cross-validate every candidate of the space; return the `search` record of tuned.json.

    The candidates are fitted on the features train fits (`exclude`: the schema's excluded
    columns). The fits go to joblib's current backend: `main` opens the Dask one for
    `tune.backend: dask`.
    """
    from sklearn.model_selection import GridSearchCV, ParameterGrid, RandomizedSearchCV

    from gitops_ml.stages.train import configured_pipeline, split_features

    model, task = params.train.model, params.data.task
    grid = cfg.space.get(model)
    if not grid:
        raise ConfigError(
            f"params: 'tune.space.{model}' must list hyperparameters to search "
            f"(tune.enabled is true and train.model is {model})"
        )
    check_space(model, task, grid, params.train.hyperparams)
    X, y = split_features(df, params.data.target, task, exclude)
    folds = _folds(cfg, task, y)
    metric, scorer, sign = _scorer(cfg, task)
    space = {f"model__{name}": list(values) for name, values in grid.items()}
    pipeline = configured_pipeline(df, params, exclude=exclude)
    n_jobs = -1 if cfg.backend == "dask" else cfg.n_jobs
    common = {"scoring": scorer, "cv": folds, "n_jobs": n_jobs, "refit": False}
    common["error_score"] = "raise"
    size = len(ParameterGrid(space))
    if cfg.search == "random" and cfg.n_iter < size:
        searcher = RandomizedSearchCV(
            pipeline, space, n_iter=cfg.n_iter, random_state=cfg.seed, **common
        )
    else:  # a random search that would draw the whole grid is the grid
        searcher = GridSearchCV(pipeline, space, **common)
    start = time.perf_counter()
    searcher.fit(X, y)
    results = searcher.cv_results_
    candidates = [
        {
            "params": {
                name.removeprefix("model__"): _plain(value)
                for name, value in sorted(candidate.items())
            },
            "mean": round(sign * float(results["mean_test_score"][i]), SCORE_DIGITS),
            "std": round(float(results["std_test_score"][i]), SCORE_DIGITS),
            "rank": int(results["rank_test_score"][i]),
        }
        for i, candidate in enumerate(results["params"])
    ]
    best = int(results["rank_test_score"].argmin())  # the first of the best, as sklearn picks
    log.info(
        "%s search: %d candidates x %d folds on %d rows in %.2f s (%s); best %s %.4f +/- %.4f: %s",
        cfg.search,
        len(candidates),
        cfg.folds,
        len(X),
        time.perf_counter() - start,
        cfg.backend,
        metric,
        candidates[best]["mean"],
        candidates[best]["std"],
        candidates[best]["params"],
    )
    return {
        "method": "grid" if isinstance(searcher, GridSearchCV) else "random",
        "metric": metric,
        "folds": cfg.folds,
        "seed": cfg.seed,
        "best": candidates[best],
        "candidates": candidates,
    }


def tune(
    df: pd.DataFrame | None, params: Params, cfg: TuneConfig, exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """What tuned.json holds: the hyperparameters train fits and, when tuned, the search (on
    the features less `exclude`)."""
    base = dict(params.train.hyperparams)
    record: dict[str, Any] = {"model": params.train.model, "task": params.data.task}
    if not cfg.enabled:
        return {**record, "hyperparams": base, "search": None}
    if df is None:
        raise DataError("the tune stage needs the train split when tune.enabled is true")
    found = search(df, params, cfg, exclude)
    return {**record, "hyperparams": {**base, **found["best"]["params"]}, "search": found}


def read_tuned(path: str | os.PathLike[str], model: str, task: str) -> dict[str, Any]:
    """tuned.json as train reads it; a DataError names a missing, broken or stale file."""
    import json

    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: file not found (run the tune stage first)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: cannot read the tuned hyperparameters: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("hyperparams"), dict):
        raise DataError(f"{p}: not a tune stage output (no 'hyperparams' mapping)")
    if (record.get("model"), record.get("task")) != (model, task):
        raise DataError(
            f"{p} was tuned for {record.get('model')} ({record.get('task')}), but train.model "
            f"is {model} ({task}): run the tune stage again"
        )
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_ml.stages.tune", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--train", required=True, type=Path, help="train split (parquet)")
    parser.add_argument("--output", required=True, type=Path, help="tuned hyperparameters (json)")
    parser.add_argument(
        "--schema",
        type=Path,
        help="the data contract (YAML): its `exclude: true` columns are left out of the search",
    )
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params, cfg = load_tune(args.params)
    # The cluster is reached before the data is read: a wrong address fails in seconds.
    on_dask = cfg.enabled and cfg.backend == "dask"
    with dask_backend(cfg.connect_timeout) if on_dask else contextlib.nullcontext():
        df = read_parquet(args.train) if cfg.enabled else None
        exclude: tuple[str, ...] = ()
        if df is not None and args.schema is not None:  # off, the schema is not even read
            from gitops_ml.models import check_excluded
            from gitops_ml.stages.train import excluded_columns

            exclude = excluded_columns(args.schema)
            if exclude:
                check_excluded(df.columns, params.data.target, exclude, source=str(args.schema))
        record = tune(df, params, cfg, exclude)
    # Written only when the search has finished: a failure keeps the last good file.
    write_json(args.output, record)
    log.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
