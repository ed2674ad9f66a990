"""MLflow helpers: where runs go, the lineage tags every run carries, and how to find a run again.

The DVC pipeline is the source of truth; MLflow is the searchable record of it. Every run is tagged
with the md5 of the model file DVC tracks (``gitops_ml.model_md5``), so a stage, a report or the
promotion step can go from ``dvc.lock`` to the run (and its logged model) without guessing.

mlflow is imported inside the functions: importing it costs a second or two, and nothing here
may configure MLflow at import time. The train and evaluate stages write through `runstore`
first, which needs no MLflow import for the default SQLite store and for a tracking server, and
fall back to the MLflow client for any other store.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from gitops_ml.errors import GitopsMLError
from gitops_ml.files import file_md5

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities import Run
    from mlflow.models.signature import ModelSignature

    from gitops_ml import runstore

log = logging.getLogger(__name__)

#: Environment variable MLflow itself reads; unset means the local default below.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
#: A SQLite store in the working directory (the repo root under `dvc repro`), gitignored.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Set by the PR workflow so runs can be traced back to their pull request.
PR_NUMBER_ENV = "GITOPS_ML_PR_NUMBER"

TAG_PREFIX = "gitops_ml."
TAG_GIT_SHA = f"{TAG_PREFIX}git_sha"
TAG_GIT_DIRTY = f"{TAG_PREFIX}git_dirty"
TAG_MODEL_MD5 = f"{TAG_PREFIX}model_md5"
TAG_TRAIN_DATA_MD5 = f"{TAG_PREFIX}train_data_md5"
TAG_TEST_DATA_MD5 = f"{TAG_PREFIX}test_data_md5"
TAG_PR_NUMBER = f"{TAG_PREFIX}pr_number"
TAG_MODEL_URI = f"{TAG_PREFIX}model_uri"
TAG_MODEL_TYPE = f"{TAG_PREFIX}model_type"
TAG_POSITIVE_LABEL = f"{TAG_PREFIX}positive_label"

#: Name of the model logged in each training run (``runs:/<run_id>/model``).
MODEL_NAME_IN_RUN = "model"

#: What a logged model needs to load and predict; pinned to the versions that trained it.
MODEL_REQUIREMENTS = (
    "mlflow",
    "skops",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
)


class TrackingError(GitopsMLError):
    """The MLflow tracking store could not be reached or refused a request."""


def tracking_uri() -> str:
    """The tracking URI in effect: ``MLFLOW_TRACKING_URI`` if set, else the local SQLite file."""
    return os.environ.get(TRACKING_URI_ENV) or DEFAULT_TRACKING_URI


def configure() -> str:
    """Point MLflow at `tracking_uri()` and return it; call at the start of any MLflow work."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def tracking_errors(action: str) -> Iterator[None]:
    """Turn an MLflow failure into a one-line TrackingError that says what was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"mlflow ({tracking_uri()}): {action} failed: {first_line}") from exc


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Log how long a block took; used to keep the MLflow overhead of each stage visible."""
    start = time.perf_counter()
    try:
        yield
    finally:
        log.info("%s took %.2f s", label, time.perf_counter() - start)


def installed_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution in `names` (those not installed left out)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def pip_requirements() -> list[str]:
    """Pinned requirements for a logged model, read from the installed distributions.

    Passing them explicitly stops MLflow from inferring requirements, which loads the model in a
    subprocess and costs seconds per run.
    """
    return [
        f"{name}=={version}" for name, version in installed_versions(MODEL_REQUIREMENTS).items()
    ]


def _git(args: list[str], cwd: str | os.PathLike[str] | None) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(cwd: str | os.PathLike[str] | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out and whether tracked files differ from it; (None, None) without git.

    ``dvc.lock`` is left out of the dirty check: `dvc repro` rewrites it stage by stage, so it
    would mark every reproduction dirty.
    """
    sha = _git(["rev-parse", "--verify", "--quiet", "HEAD"], cwd)
    if not sha:
        return None, None
    status = _git(
        ["status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(exclude,top)dvc.lock"],
        cwd,
    )
    return sha, None if status is None else bool(status)


def lineage_tags(
    *,
    model_path: str | os.PathLike[str] | None = None,
    data_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """The ``gitops_ml.*`` tags that tie a run to code, data and model.

    `data_paths` maps a role (``train``, ``test``) to a file; each becomes
    ``gitops_ml.<role>_data_md5``. Hashes are md5 of the file bytes, as recorded in dvc.lock.
    """
    tags: dict[str, str] = {}
    sha, dirty = git_state(cwd)
    if sha is not None:
        tags[TAG_GIT_SHA] = sha
    if dirty is not None:
        tags[TAG_GIT_DIRTY] = str(dirty).lower()
    if model_path is not None:
        tags[TAG_MODEL_MD5] = file_md5(model_path)
    for role, path in (data_paths or {}).items():
        tags[f"{TAG_PREFIX}{role}_data_md5"] = file_md5(path)
    pr = os.environ.get(PR_NUMBER_ENV, "").strip()
    if pr:
        tags[TAG_PR_NUMBER] = pr
    return tags


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def flatten_params(sections: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested params into ``section.key`` strings as MLflow stores them.

    Non-strings are JSON (``null``, ``true``, ``[\"sex\", \"race\"]``) so they read as in
    params.yaml; an empty mapping stays visible as ``{}``.
    """
    flat: dict[str, str] = {}
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, Mapping):
            flat[name] = "{}"
        else:
            flat[name] = _param_value(value)
    return flat


def find_run_by_model_hash(model_md5: str, experiment: str | None = None) -> Run | None:
    """The newest finished run tagged with this model md5 (in `experiment`, or in any)."""
    import mlflow
    from mlflow.entities import ViewType

    configure()
    with tracking_errors("searching runs"):
        client = mlflow.MlflowClient()
        if experiment is None:
            ids = [e.experiment_id for e in client.search_experiments()]
        else:
            exp = client.get_experiment_by_name(experiment)
            ids = [] if exp is None else [exp.experiment_id]
        if not ids:
            return None
        runs = client.search_runs(
            experiment_ids=ids,
            filter_string=f"tags.`{TAG_MODEL_MD5}` = '{model_md5}' and attributes.status = 'FINISHED'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    return runs[0] if runs else None


def model_signature(model: Any, sample: pd.DataFrame) -> ModelSignature:
    """Signature from a sample of raw features and the model's predictions on it.

    Every input column is required: the Pipeline's ColumnTransformer needs all of them, though
    their values may be null (the Pipeline imputes). Integer columns stay integers: in the data
    contract a numeric column with gaps is float64, so an int64 column never holds a null, and
    declaring it double would make MLflow refuse the int64 frames the pipeline itself produces.
    """
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    names = set(getattr(model, "feature_names_in_", ()))
    if names:  # a column the schema excludes (`exclude: true`) is no input of the model
        sample = sample.loc[:, [c for c in sample.columns if c in names]]
    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values: true, and by design here.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        inferred = infer_signature(sample, model.predict(sample))
    inputs = Schema([ColSpec(type=c.type, name=c.name) for c in inferred.inputs.inputs])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs)


def run_context_tags(
    git_sha: str | None, cwd: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """The tags MLflow's client gives a run it starts (user, source, git commit and branch), for
    runs `runstore` writes without it."""
    tags = {
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": sys.argv[0] if sys.argv and sys.argv[0] else "<console>",
    }
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (OSError, KeyError, ImportError):
            user = "unknown"
    tags["mlflow.user"] = user
    if git_sha:
        tags["mlflow.source.git.commit"] = git_sha
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
        if branch and branch != "HEAD":
            tags["mlflow.source.git.branch"] = branch
    return tags


def _fast_store(action: str) -> runstore.RunStore | None:
    """The MLflow-free writer for the tracking URI, or None when the MLflow client must write."""
    from gitops_ml import runstore

    uri = tracking_uri()
    try:
        return runstore.open_store(uri)
    except runstore.Unsupported as why:
        log.debug("%s through the MLflow client: %s", action, why)
        return None


@contextmanager
def _store_errors(action: str) -> Iterator[None]:
    from gitops_ml import runstore

    try:
        yield
    except runstore.StoreError as exc:
        raise TrackingError(f"mlflow ({redact(tracking_uri())}): {action} failed: {exc}") from None


def log_training_run(
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> str:
    """Log one training run: its params, training metrics and lineage tags; return its id.

    The run names its model by the md5 tag (the file DVC holds); it logs no MLflow model. The
    MLflow model (skops, signature, input example, pinned requirements) is made once, by
    `gitops-ml promote`, from bytes checked against the reviewed dvc.lock: building it here
    too would cost every `dvc repro` seconds (skops alone takes two to import) for a copy
    nothing loads.
    """
    from gitops_ml import runstore

    store = _fast_store("the training run")
    if store is not None:
        context = run_context_tags(tags.get(TAG_GIT_SHA))
        try:
            with _store_errors("logging the training run"):
                return store.log_run(experiment, run_name, params, metrics, {**context, **tags})
        except runstore.Unsupported as why:
            log.debug("the training run through the MLflow client: %s", why)
    import mlflow

    configure()
    with tracking_errors("logging the training run"):
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=run_name, tags=dict(tags)) as run:
            mlflow.log_params(dict(params))
            mlflow.log_metrics(dict(metrics))
    return run.info.run_id


def log_evaluation(
    run_id: str,
    *,
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifacts: Sequence[tuple[str, str | os.PathLike[str]]] = (),
) -> None:
    """Add test metrics (``test_<key>``; nulls skipped), tags and artifacts to an existing run.

    `artifacts` pairs an artifact folder in the run with a local file or directory.
    """
    import mlflow
    from mlflow.entities import Metric, RunTag

    configure()
    now = int(time.time() * 1000)
    with tracking_errors(f"logging the evaluation to run {run_id}"):
        client = mlflow.MlflowClient()
        client.log_batch(
            run_id,
            metrics=[
                Metric(f"test_{key}", float(value), now, 0)
                for key, value in metrics.items()
                if value is not None
            ],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        for folder, path in artifacts:
            if Path(path).is_dir():
                client.log_artifacts(run_id, str(path), folder)
            else:
                client.log_artifact(run_id, str(path), folder)


def log_test_results(
    model_md5: str,
    experiment: str,
    *,
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifacts: Sequence[tuple[str, str | os.PathLike[str]]] = (),
) -> str | None:
    """Add test metrics (``test_<key>``; nulls skipped), tags and artifacts to the newest
    finished run in `experiment` tagged with this model md5; its id, or None without such a run."""
    from gitops_ml import runstore

    store = _fast_store("the evaluation")
    if store is not None:
        test_metrics = {f"test_{k}": float(v) for k, v in metrics.items() if v is not None}
        try:
            with _store_errors("logging the evaluation"):
                return store.add_to_newest_run(
                    experiment, (TAG_MODEL_MD5, model_md5), test_metrics, tags, artifacts
                )
        except runstore.Unsupported as why:
            log.debug("the evaluation through the MLflow client: %s", why)
    run = find_run_by_model_hash(model_md5, experiment)
    if run is None:
        return None
    log_evaluation(run.info.run_id, metrics=metrics, tags=tags, artifacts=artifacts)
    return run.info.run_id


def redact(uri: str) -> str:
    """The URI without a password or token in it, for logs, summaries and errors."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
