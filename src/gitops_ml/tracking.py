"""MLflow helpers: where runs go, the lineage tags every run carries, and how to find a run again.

The DVC pipeline is the source of truth; MLflow is the searchable record of it. Every run is tagged
with the md5 of the model file DVC tracks (``gitops_ml.model_md5``), so a stage, a report or the
promotion step can go from ``dvc.lock`` to the run (and its logged model) without guessing.

The local SQLite store is created whole or not at all (`ensure_store`): MLflow builds its tables
in a temporary file that is renamed into place, one process at a time, so a kill during the
creation leaves no half-built ``mlflow.db``; one left by an older version or by MLflow itself is
rebuilt when it holds nothing, and refused in one line when it does. Runs the MLflow client
starts carry the host and pid of their process, and the next command that logs runs marks those
a killed process left RUNNING as FAILED (`close_runs_of_gone_processes`).

mlflow is imported inside the functions: importing it costs a second or two, and nothing here
may configure MLflow at import time. The train and evaluate stages write through `runstore`
first, which needs no MLflow import for the default SQLite store and for a tracking server, and
fall back to the MLflow client for any other store.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from gitops_ml.errors import GitopsMLError, store_error_line
from gitops_ml.files import atomic_path, cache_dir, clean_leftovers, file_md5

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
    """Point MLflow at `tracking_uri()` and return it; call at the start of any MLflow work.
    A local SQLite store is made whole first (`ensure_store`); a tracking server must answer
    (`require_answer`, before MLflow's import: a silent server costs one timeout, not more)."""
    uri = tracking_uri()
    if urlsplit(uri).scheme in ("http", "https"):
        require_answer(uri)
    ensure_store(uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    return uri


@contextmanager
def tracking_errors(action: str) -> Iterator[None]:
    """Turn an MLflow failure (or a database error under it) into a one-line TrackingError that
    says what was being done."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"mlflow ({tracking_uri()}): {action} failed: {first_line}") from exc
    except Exception as exc:
        line = store_error_line(exc)
        if line is None:
            raise
        raise TrackingError(f"mlflow ({tracking_uri()}): {action} failed: {line}") from exc


# -- the local SQLite store: created whole, or rebuilt when a kill left it half-made -------------

#: Seconds a process waits while another one creates the local store.
STORE_LOCK_SECONDS = 300.0


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder` (flock on the directory itself: no lock file is left
    behind), so that one process at a time creates a store in it; the others wait."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + STORE_LOCK_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(
                        f"another process has been creating the MLflow store in {folder} for "
                        f"{STORE_LOCK_SECONDS:.0f} s; stop it, then run the command again"
                    ) from None
                time.sleep(0.1)
            except OSError as exc:  # a file system without flock: create unlocked
                log.debug("no lock on %s (%s)", folder, exc)
                break
        yield
    finally:
        os.close(fd)  # releases the lock


def _clean_store_leftovers(path: Path) -> None:
    """Remove the temporary stores of creators that were killed, and the SQLite journals they
    left (a journal whose database is gone is of no use)."""
    clean_leftovers(path)
    for journal in path.parent.glob(f"{glob.escape(f'.{path.name}.')}*.tmp-journal"):
        if not Path(str(journal).removesuffix("-journal")).exists():
            journal.unlink(missing_ok=True)


def _health(path: Path, uri: str) -> runstore.StoreHealth:
    from gitops_ml import runstore

    try:
        return runstore.store_health(path)
    except runstore.StoreError as exc:
        raise TrackingError(
            f"mlflow ({redact(uri)}): {exc}; move {path} away and run the command again"
        ) from None


def _create_tables(tmp: Path) -> None:
    """MLflow's own creation of its tables and default experiment, in the file `tmp`."""
    uri = f"sqlite:///{tmp.resolve()}"
    try:  # what MLflow's client uses for a sqlite URI (artifact root and workspaces honoured)
        from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store as make
    except ImportError:
        from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        def make(db_uri: str, artifact_uri: str | None) -> Any:
            return SqlAlchemyStore(db_uri, artifact_uri or DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    store = make(uri, None)
    store.engine.dispose()
    getattr(type(store), "_engine_map", {}).pop(uri, None)  # MLflow's per-URI engine cache


def _template(head: str) -> Path:
    """Where this machine keeps an empty store of the installed MLflow (schema `head`)."""
    version = installed_versions(["mlflow"]).get("mlflow", "unknown")
    return cache_dir() / f"mlflow-store-{version}-{head}.db"


def _from_template(tmp: Path, head: str) -> bool:
    """Fill `tmp` from the kept empty store, then let MLflow open it (it adds its default
    experiment, whose artifact location depends on where the store is): a fraction of a second
    against the 3-10 s of MLflow's migrations. False, `tmp` left empty, when there is no usable
    template; one that holds anything (`runstore.holds_nothing`) is not used."""
    from gitops_ml import runstore

    template = _template(head)
    try:
        shutil.copyfile(template, tmp)
    except OSError:
        return False
    if not runstore.holds_nothing(tmp, head):
        log.warning("%s is not an empty MLflow store of schema %s: not used", template, head)
        tmp.write_bytes(b"")
        return False
    _create_tables(tmp)
    return True


def _keep_template(store: Path, head: str) -> None:
    """Keep a copy of the new `store` less its default experiment as the template of the next
    new stores (`_from_template`); the cache folder is only a speed-up: failing to write it is
    no error."""
    import sqlite3

    from gitops_ml import runstore

    template = _template(head)
    try:
        with atomic_path(template) as tmp:
            shutil.copyfile(store, tmp)
            # No journal: a kill leaves only the temporary file, which is never renamed.
            with contextlib.closing(sqlite3.connect(tmp, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode = OFF")
                db.execute("DELETE FROM experiments")
            if not runstore.holds_nothing(tmp, head):
                raise OSError(f"{store} holds more than MLflow's bookkeeping")
    except (OSError, sqlite3.Error) as exc:
        log.debug("not keeping %s as the template of new stores: %s", store, exc)


def _build_store(path: Path) -> None:
    """Create the store in ``.<name>.<pid>.*.tmp`` beside `path`, then rename it into place:
    from the template when this machine keeps one, else by MLflow's migrations (the result is
    then kept as the template)."""
    from gitops_ml import runstore

    umask = os.umask(0)
    os.umask(umask)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                dir=path.parent)  # fmt: skip
    os.close(fd)
    tmp = Path(name)
    try:
        head = runstore.schema_head()
        if head is None or not _from_template(tmp, head):
            _create_tables(tmp)
            if head is not None:
                _keep_template(tmp, head)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~umask)
        for suffix in ("-journal", "-wal", "-shm"):  # the replaced file's, never the new one's
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}-journal").unlink(missing_ok=True)


#: The tracking servers this process has seen answer.
_ANSWERED: set[str] = set()


def require_answer(uri: str) -> None:
    """A one-line TrackingError when the tracking server at `uri` takes the connection but
    sends nothing back within ``MLFLOW_HTTP_REQUEST_TIMEOUT`` seconds: MLflow's client would
    wait that long again on each of its retries, about a minute in all (the MLflow-free writes
    of `runstore` make one attempt of their own).

    One GET of ``/health`` without credentials, once per process. Any HTTP answer counts, an
    error status included; a refused or failed connection is left to MLflow's client (its
    retries cover a server that is restarting, and its error names the cause)."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    if uri in _ANSWERED:
        return
    try:
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or "15")
    except ValueError:
        timeout = 15.0
    # Only whether it answers is read: no certificate decides that, none is sent.
    context = ssl._create_unverified_context() if uri.startswith("https:") else None
    parts = urlsplit(uri)
    health = urlunsplit(
        (parts.scheme, parts.netloc.rsplit("@", 1)[-1], f"{parts.path.rstrip('/')}/health", "", "")
    )
    try:
        with urllib.request.urlopen(health, timeout=timeout, context=context):
            pass
    except (urllib.error.HTTPError, ValueError):  # it answers; an odd URI is MLflow's to refuse
        pass
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, socket.timeout | TimeoutError):
            raise TrackingError(
                f"mlflow ({redact(uri)}): the tracking server took the connection but did not "
                f"answer within {timeout:g} s (MLFLOW_HTTP_REQUEST_TIMEOUT)"
            ) from None
        return
    _ANSWERED.add(uri)


def ensure_store(uri: str | None = None) -> None:
    """For a local SQLite tracking URI, make sure the file is a complete MLflow store before
    MLflow opens it (MLflow's own creation, killed midway, leaves a file it cannot open again).

    A complete store (its schema at the revision the installed MLflow expects) costs one read.
    A missing one is built in a temporary file and renamed into place, under a lock on its
    folder: a kill leaves no store, or a whole one, and processes that create it at the same
    time wait for the first. A half-built or outdated one is rebuilt the same way when it holds
    no runs, models or traces; otherwise a one-line TrackingError says what to do."""
    from gitops_ml import runstore

    uri = uri or tracking_uri()
    if urlsplit(uri).scheme != "sqlite":
        return
    try:
        path = runstore.sqlite_path(uri)
    except runstore.Unsupported:
        return
    if path.is_file() and _health(path, uri).complete:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        _clean_store_leftovers(path)
        if path.exists():
            health = _health(path, uri)
            if health.complete:
                return  # another process made it while this one waited
            if health.head is None:
                return  # the installed MLflow's schema is unknown here: MLflow decides
            if health.valuable:
                raise TrackingError(
                    f"mlflow ({redact(uri)}): {path} is at schema revision "
                    f"{health.revision or '(none)'}, not {health.head} which this MLflow expects, "
                    "and holds runs or models: back it up, then run "
                    f"`mlflow db upgrade {redact(uri)}`"
                )
            log.warning("%s was left half-created (schema revision %s) and holds nothing: "
                        "creating it again", path, health.revision or "none")  # fmt: skip
        with timed(f"creating the MLflow store {path}"):
            _build_store(path)


# -- runs a killed process left RUNNING ----------------------------------------------------------


def close_runs_of_gone_processes(experiment: str) -> list[str]:
    """Mark FAILED the RUNNING runs of `experiment` that a process of this host left when it was
    killed (`runstore.process_gone`: never a live process's run, never another host's); their
    ids. Call before logging runs."""
    from gitops_ml import runstore

    gone: list[str] | None = None
    store = _fast_store("closing runs of processes that are gone")
    if store is not None:
        try:
            with _store_errors("closing runs of processes that are gone"):
                gone = store.fail_runs_of_gone_processes(experiment)
        except runstore.Unsupported as why:
            log.debug("closing runs through the MLflow client: %s", why)
    if gone is None:
        gone = _fail_runs_with_client(experiment)
    for run_id in gone:
        log.warning("run %s was left RUNNING by a process that is gone: marked FAILED", run_id)
    return gone


def _fail_runs_with_client(experiment: str) -> list[str]:
    import mlflow
    from mlflow.entities import ViewType

    from gitops_ml import runstore

    configure()
    host = runstore.process_tags()[runstore.TAG_HOST]
    if "'" in host:
        return []
    gone = []
    with tracking_errors("closing runs of processes that are gone"):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        runs = client.search_runs(
            experiment_ids=[exp.experiment_id],
            filter_string=(
                f"attributes.status = 'RUNNING' and tags.`{runstore.TAG_HOST}` = '{host}'"
            ),
            run_view_type=ViewType.ALL,
            max_results=1000,
        )
        for run in runs:
            if runstore.process_gone(run.data.tags):
                client.set_terminated(run.info.run_id, "FAILED")
                gone.append(run.info.run_id)
    return sorted(gone)


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
    names = set(getattr(model, "feature_names_in_", ()))
    if names:  # a column the schema excludes (`exclude: true`) is no input of the model
        sample = sample.loc[:, [c for c in sample.columns if c in names]]
    return signature_of(sample, model.predict(sample))


def signature_of(sample: pd.DataFrame, predictions: Any) -> ModelSignature:
    """`model_signature` from the model's inputs `sample` and its `predictions` on them."""
    from mlflow.models import infer_signature
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    with warnings.catch_warnings():
        # MLflow's hint that integer columns cannot hold missing values: true, and by design here.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        inferred = infer_signature(sample, predictions)
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
    ensure_store(uri)  # a local store is whole before anything reads or writes it
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
    nothing loads. The run carries its process (`runstore.process_tags`); runs that killed
    processes left RUNNING are then closed as FAILED (`close_runs_of_gone_processes`).
    """
    run_id = _log_training_run(experiment, run_name, params, metrics, tags)
    try:
        close_runs_of_gone_processes(experiment)
    except TrackingError as exc:  # the run is logged; the next command tries again
        log.warning("%s", exc)
    return run_id


def _log_training_run(
    experiment: str,
    run_name: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
) -> str:
    from gitops_ml import runstore

    store = _fast_store("the training run")
    if store is not None:
        context = run_context_tags(tags.get(TAG_GIT_SHA))
        run_tags = {**context, **tags, **runstore.process_tags()}
        for attempt in (1, 2):
            try:
                with _store_errors("logging the training run"):
                    return store.log_run(experiment, run_name, params, metrics, run_tags)
            except runstore.MissingExperiment as why:
                if attempt == 2:
                    log.debug("the training run through the MLflow client: %s", why)
                    break
                _create_experiment(experiment)  # then the run is written whole, never RUNNING
            except runstore.Unsupported as why:
                log.debug("the training run through the MLflow client: %s", why)
                break
    import mlflow

    configure()
    with tracking_errors("logging the training run"):
        mlflow.set_experiment(experiment)
        run_tags = {**tags, **runstore.process_tags()}
        with mlflow.start_run(run_name=run_name, tags=run_tags) as run:
            mlflow.log_params(dict(params))
            mlflow.log_metrics(dict(metrics))
    return run.info.run_id


def _create_experiment(name: str) -> None:
    """Create experiment `name` with the MLflow client (one made meanwhile by another process
    is fine)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure()
    with tracking_errors(f"creating the experiment '{name}'"):
        client = mlflow.MlflowClient()
        try:
            client.create_experiment(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise


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
