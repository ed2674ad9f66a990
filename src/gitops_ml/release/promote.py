"""Promotion: the model `main`'s dvc.lock declares becomes ``@champion`` in the MLflow registry.

Git is the source of truth. The train stage's output ``models/model.joblib`` and its md5 in
dvc.lock name the production model; `promote` makes the registry follow, and `verify` checks
that it does. Rollback is `git revert`: the reverted dvc.lock names an older md5, whose version
already exists, so `promote` moves ``@champion`` back to it without registering anything.

`promote`, step by step:

1. Read the declared model (path, md5), the train stage's dependencies and params, and the md5
   of the dvc.lock file itself. If ``@champion`` of a local SQLite registry already holds that
   model, shown by its bytes as `verify` shows it, stop there: nothing to do, no MLflow import.
2. If a registered version already carries that md5 (tag ``gitops_ml.model_md5``), reuse it,
   but only once its bytes are checked (`gitops_ml.lineage.artifacts.registry_model`): a
   version whose file does not hash to the declared md5 refuses the promotion. Otherwise obtain exactly that artifact, cheapest first: the workspace file if its md5
   matches; the DVC cache; `dvc fetch` from the DVC remote; else (unless ``--no-rebuild``)
   `dvc repro train`, which also runs what the stage needs. The rebuild writes the workspace
   outputs and logs a training run like any `dvc repro`; dvc.lock is restored byte for byte
   afterwards. If the rebuilt stage records other dependencies, params or command than the
   committed lock, promotion is refused, naming what differs (params and source files that
   already differ in the workspace are refused before training). A rebuild whose bytes differ
   from the declared md5 (a lock made on another OS or CPU) is refused too: production is
   exactly what dvc.lock declares.
3. Log the artifact in a promotion run (experiment ``mlflow.experiment``): the model as
   `mlflow.sklearn.log_model` logs it in the skops format (trusted types from
   `gitops_ml.lineage.formats`; signature and input example from ``data/processed/test.parquet``
   when it is there), with the DVC file's exact bytes as ``extra_files/model.joblib`` and the
   dvc.lock under ``dvc/``. A finished promotion run of the same md5 is reused once checked.
   The scikit-learn half of that model (`gitops_ml.release.skops_model`) starts in a forked
   child as soon as step 1 finds work to do and the declared model is in the workspace, so its
   imports run beside MLflow's; it is used only when a new run is logged.
4. Create the version with its lineage tags in the same call (git SHA, dvc.lock md5, model
   md5s, train data md5, PR number, params and the metrics of ``reports/metrics.json``).
5. Write the model card (`gitops_ml.release.card`, ``reports/model-card.md`` by default) and,
   when the version has none yet, log it as an artifact of the version's run (``card/``) and
   tag the version with its location (``gitops_ml.model_card``). A version's logged card is
   never replaced; a no-op promotion (step 1) only writes the local file.
6. Move aliases: ``previous`` to the version ``champion`` leaves, then ``champion``. Versions
   are never deleted, with one exception: two promotions running at once (two people, or CI and
   a person) can both find no version and both register one. After registering, the versions of
   the md5 are listed again and the oldest is the one kept: a newer one, just made by this run
   and named by no alias, is deleted, and this run goes on with the oldest. Every run converges
   on the same version, so one version per model md5 remains and ``previous`` never lands on a
   copy of ``champion``.

Every step is idempotent, so a rerun after a crash at any point converges to the same state:
the version is found by its tag, the run by its tags, and the aliases are moved in an order a
rerun completes. To test that, the environment variable ``GITOPS_ML_PROMOTE_CRASH_AFTER`` makes
`promote` raise `InjectedCrash` right after one step: ``run`` (promotion run finished),
``register`` (version created, no alias moved) or ``previous`` (``previous`` moved, ``champion``
not yet). It is read only by `promote` and has no other effect.

`verify` exits 0 when ``@champion`` holds the declared model (its file hashed, its skops
archive compared), 1 when it does not (or there is no champion), 2 on errors (no dvc.lock,
registry unreachable), and, with ``--max-age-days N``, 3 when it holds the declared model but
its version was registered more than N days ago (a model nobody retrained).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from gitops_ml import forked, runstore, tracking
from gitops_ml.cliargs import exit_codes, whole_number
from gitops_ml.errors import GitopsMLError, store_error_line
from gitops_ml.files import atomic_path, file_md5, write_json
from gitops_ml.lineage import dvclock, formats
from gitops_ml.lineage.artifacts import (
    EXACT_DIR,
    SKOPS_FILE,
    Artifact,
    IntegrityError,
    load_model_file,
    obtain_artifact,
    registry_model,
    remember_digest,
    remembered_digest,
)
from gitops_ml.lineage.dvclock import (
    LOCK_PATH,
    METRICS_PATH,
    MODEL_PATH,
    TEST_PATH,
    Declared,
    read_declared,
)
from gitops_ml.release import card as model_card
from gitops_ml.release import skops_model
from gitops_ml.tracking import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from gitops_ml.config import Params

log = logging.getLogger(__name__)


CHAMPION = "champion"
PREVIOUS = "previous"

#: Test hook: crash right after this step (see the module docstring).
CRASH_ENV = "GITOPS_ML_PROMOTE_CRASH_AFTER"
CRASH_POINTS = ("run", "register", "previous")

TAG_LOCK_MD5 = f"{tracking.TAG_PREFIX}dvc_lock_md5"
TAG_MODEL_PATH = f"{tracking.TAG_PREFIX}model_path"
TAG_ARTIFACT_SOURCE = f"{tracking.TAG_PREFIX}artifact_source"
TAG_TRAIN_RUN_ID = f"{tracking.TAG_PREFIX}train_run_id"
#: Marks promotion runs, so they are not confused with the training run of the same md5.
TAG_PROMOTION = f"{tracking.TAG_PREFIX}promotion"
METRIC_TAG_PREFIX = "metric."
PARAM_TAG_PREFIX = "param."

#: Feature rows of the test split used for the signature (the first five: the input example).
SIGNATURE_ROWS = 100
#: Folder of the promotion run that keeps the DVC artifact's exact bytes.
DVC_ARTIFACT_DIR = "dvc"

SOURCES = {
    "registry": "the registry (already registered)",
    "workspace": "the workspace file",
    "cache": "the DVC cache",
    "remote": "the DVC remote",
    "rebuild": "rebuilt with `dvc repro`",
}


class PromoteError(GitopsMLError):
    """The declared model cannot be promoted: not found, not reproducible, or refused."""


class InjectedCrash(RuntimeError):
    """Raised at the step named by ``GITOPS_ML_PROMOTE_CRASH_AFTER``; never in normal use."""


# -- what dvc.lock declares ----------------------------------------------------------------------


# -- lineage -------------------------------------------------------------------------------------

_MERGE_RE = re.compile(r"^Merge pull request #(\d+)\b")
_SQUASH_RE = re.compile(r"\(#(\d+)\)\s*$")


def parse_pr_number(message: str) -> str | None:
    """The PR number of a merge ("Merge pull request #N ...") or squash ("title (#N)") commit."""
    subject = message.strip().splitlines()[0] if message.strip() else ""
    match = _MERGE_RE.match(subject) or _SQUASH_RE.search(subject)
    return match.group(1) if match else None


def pr_number(root: Path) -> str | None:
    """``GITOPS_ML_PR_NUMBER`` if set, else parsed from the HEAD commit message."""
    from gitops_ml.lineage import git

    env = os.environ.get(tracking.PR_NUMBER_ENV, "").strip()
    if env:
        return env
    message = git.git("log", "-1", "--format=%B", cwd=root, check=False)
    return parse_pr_number(message) if message else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def committed_metrics(root: Path, declared: Declared) -> tuple[dict[str, float], str | None]:
    """(metrics, note): ``reports/metrics.json`` when it is the one dvc.lock records."""
    path = root / METRICS_PATH
    if not path.is_file():
        return {}, f"{METRICS_PATH} not found: no metrics recorded"
    recorded = dvclock.out_md5(declared.lock, METRICS_PATH)
    if recorded is not None and file_md5(path) != recorded:
        return {}, f"{METRICS_PATH} differs from the one dvc.lock records: no metrics recorded"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}, f"{METRICS_PATH} is not valid JSON: no metrics recorded"
    if not isinstance(raw, Mapping):
        return {}, f"{METRICS_PATH} is not a JSON object: no metrics recorded"
    metrics = {k: v for k, v in ((str(k), _number(v)) for k, v in raw.items()) if v is not None}
    return metrics, None


def _tag_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# -- the artifact --------------------------------------------------------------------------------


# -- the registry --------------------------------------------------------------------------------


def _check_registered(uri: str, md5: str, what: str) -> None:
    """Reuse a registered model only once its bytes are the declared ones (`registry_model`);
    an IntegrityError refuses the promotion."""
    with tempfile.TemporaryDirectory(prefix="gitops-ml-promote-") as tmp:
        registry_model(uri, md5, Path(tmp), what)


@dataclass(frozen=True)
class AliasMove:
    alias: str
    old: str | None
    new: str


def plan_aliases(aliases: Mapping[str, str], target: str) -> list[AliasMove]:
    """The moves that make `target` champion: ``previous`` first, so a rerun can finish them.

    ``previous`` follows only a champion that moves away; a version is never its own previous.
    """
    champion = aliases.get(CHAMPION)
    if champion == target:
        return []
    moves = []
    if champion is not None and aliases.get(PREVIOUS) != champion:
        moves.append(AliasMove(PREVIOUS, aliases.get(PREVIOUS), champion))
    return [*moves, AliasMove(CHAMPION, champion, target)]


def _crash_point() -> str | None:
    value = os.environ.get(CRASH_ENV, "").strip()
    if value and value not in CRASH_POINTS:
        raise PromoteError(f"{CRASH_ENV}={value!r}: expected one of {', '.join(CRASH_POINTS)}")
    return value or None


def _checkpoint(step: str, crash_after: str | None) -> None:
    if crash_after == step:
        raise InjectedCrash(f"{CRASH_ENV}={step}: stopping after '{step}' as asked")


@contextmanager
def registry_errors(action: str) -> Iterator[None]:
    """MLflow failures (a server down, a refused request, a database error under the store) as
    one-line TrackingErrors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise tracking.TrackingError(
            f"mlflow ({redact(tracking.tracking_uri())}): {action} failed: {first[:300]}"
        ) from exc
    except Exception as exc:
        line = store_error_line(exc)
        if line is None:
            raise
        raise tracking.TrackingError(
            f"mlflow ({redact(tracking.tracking_uri())}): {action} failed: {line}"
        ) from exc


def _is_missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def versions_with_md5(client: MlflowClient, name: str, md5: str) -> list[ModelVersion]:
    """Registered versions of `name` tagged with this model md5, oldest first."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{tracking.TAG_MODEL_MD5}` = '{md5}'"
    )
    return sorted(found, key=lambda v: int(v.version))


def _keep_oldest(client: MlflowClient, name: str, md5: str, mine: str) -> ModelVersion | None:
    """After this run registered version `mine`: None when it is the oldest version of `md5`
    (the one every concurrent run keeps); else the oldest, once `mine` (a copy another
    promotion beat, which no alias names yet) is deleted."""
    versions = versions_with_md5(client, name, md5)
    if not versions or str(versions[0].version) == mine:
        return None
    oldest = versions[0]
    if mine not in (aliases_of(client, name) or {}).values():
        client.delete_model_version(name, mine)
    log.info(
        "another promotion registered model md5 %s as version %s first: version %s deleted",
        md5, oldest.version, mine,
    )  # fmt: skip
    return oldest


def aliases_of(client: MlflowClient, name: str) -> dict[str, str] | None:
    """alias -> version of a registered model; None when the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _is_missing(exc):
            return None
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name, description="Follows the model that main's dvc.lock declares (gitops-ml)."
        )
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def _finished_promotion_run(client: MlflowClient, experiment: str, md5: str) -> Any:
    from mlflow.entities import ViewType

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string=(
            f"tags.`{tracking.TAG_MODEL_MD5}` = '{md5}' and tags.`{TAG_PROMOTION}` = 'true' "
            "and attributes.status = 'FINISHED'"
        ),
        run_view_type=ViewType.ACTIVE_ONLY,
        order_by=["attributes.start_time DESC"],
        max_results=10,
    )
    for run in runs:
        if run.data.tags.get(tracking.TAG_MODEL_URI):
            return run
    return None


def _signature_sample(root: Path, params: Params) -> Any:
    """A few raw feature rows of the test split, or None when it is not in the workspace."""
    path = root / TEST_PATH
    if not path.is_file():
        return None
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s): no signature", TEST_PATH, str(exc).splitlines()[:1])
        return None
    return df.drop(columns=[params.data.target], errors="ignore").head(SIGNATURE_ROWS)


def _prepare(path: Path, md5: str, root: Path, params: Params) -> skops_model.Prepared:
    """The scikit-learn half of the promotion run's model (`skops_model.prepare`): model file
    `path`, loaded once it hashes to `md5`, and the signature rows of the test split."""
    model = load_model_file(path, md5, str(path), LOCK_PATH)
    return skops_model.prepare(model, str(path), lambda: _signature_sample(root, params))


@contextmanager
def _preparing(
    root: Path, params: Params, declared: Declared
) -> Iterator[Callable[[Artifact], skops_model.Prepared]]:
    """`_prepare` for the artifact a promotion obtains. When the declared model is in the
    workspace, it starts at once in a forked child (`gitops_ml.forked.speculate`), beside this
    process's MLflow import and registry look-ups; its result (or error, log lines and warnings)
    is taken only if a new promotion run needs it, and the child is ended otherwise."""
    workspace = root / declared.path
    job = None
    if workspace.is_file() and file_md5(workspace) == declared.md5:
        job = forked.speculate(_prepare, workspace, declared.md5, root, params)

    def prepared(artifact: Artifact) -> skops_model.Prepared:
        if job is not None and artifact.path == workspace and artifact.md5 == declared.md5:
            return job()
        return _prepare(artifact.path, artifact.md5, root, params)

    try:
        yield prepared
    finally:
        if job is not None:
            job.cancel()


def _log_promotion_run(
    *,
    params: Params,
    artifact: Artifact,
    prepared: skops_model.Prepared,
    lock_path: Path,
    tags: Mapping[str, str],
    run_params: Mapping[str, str],
    metrics: Mapping[str, float],
) -> tuple[str, str]:
    """(run id, model URI) of a new promotion run holding the artifact: the model in the skops
    format, with the exact bytes of the DVC file beside it (see `registry_model`)."""
    import mlflow

    mlflow.set_experiment(params.mlflow.experiment)
    with (
        tempfile.TemporaryDirectory(prefix="gitops-ml-promote-") as tmp,
        mlflow.start_run(
            run_name=f"promote-{tags[tracking.TAG_MODEL_MD5][:8]}",
            tags={**tags, TAG_PROMOTION: "true", **runstore.process_tags()},
        ) as run,
    ):
        if run_params:
            mlflow.log_params(dict(run_params))
        if metrics:
            mlflow.log_metrics(dict(metrics))
        exact = Path(tmp) / Path(MODEL_PATH).name
        shutil.copyfile(artifact.path, exact)
        info = skops_model.log_model(
            prepared, extra_files=[str(exact)], pip_requirements=tracking.pip_requirements()
        )
        lock_copy = Path(tmp) / LOCK_PATH
        shutil.copyfile(lock_path, lock_copy)
        mlflow.log_artifact(str(lock_copy), DVC_ARTIFACT_DIR)
        mlflow.set_tag(tracking.TAG_MODEL_URI, info.model_uri)
    remember_digest(artifact.md5, prepared.digest)
    return run.info.run_id, info.model_uri


def _lineage(
    declared: Declared, artifact: Artifact, *, sha: str | None, dirty: bool | None, pr: str | None
) -> dict[str, str]:
    """The ``gitops_ml.*`` tags of the promotion run and the version."""
    tags = {
        tracking.TAG_MODEL_MD5: declared.md5,
        TAG_LOCK_MD5: declared.lock_md5,
        TAG_MODEL_PATH: declared.path,
        TAG_ARTIFACT_SOURCE: artifact.source,
    }
    if sha:
        tags[tracking.TAG_GIT_SHA] = sha
    if dirty is not None:
        tags[tracking.TAG_GIT_DIRTY] = str(dirty).lower()
    if declared.train_data_md5:
        tags[tracking.TAG_TRAIN_DATA_MD5] = declared.train_data_md5
    if pr:
        tags[tracking.TAG_PR_NUMBER] = pr
    return tags


# -- promote -------------------------------------------------------------------------------------


@dataclass
class PromoteResult:
    """What `promote` did; `to_dict` is the ``--json`` output."""

    model_name: str
    version: str
    created: bool
    artifact_source: str
    model_md5: str
    dvc_lock_md5: str
    git_sha: str | None
    pr_number: str | None
    run_id: str | None
    run_reused: bool | None
    alias_moves: list[AliasMove]
    tracking_uri: str
    lineage: dict[str, str]
    notes: list[str] = field(default_factory=list)
    #: The model card written for this promotion, and where the version's own card is logged.
    card_path: str | None = None
    card_uri: str | None = None
    #: The registry UI page of that card (an http(s) tracking server only).
    card_url: str | None = None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{CHAMPION}"

    @property
    def version_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"

    @property
    def dry_run(self) -> bool:
        """True when the registry is the local SQLite file, not a shared server."""
        return is_local_registry(self.tracking_uri)

    @property
    def registry_url(self) -> str | None:
        return registry_url(self.tracking_uri, self.model_name, self.version)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["alias_moves"] = [
            {"alias": m.alias, "from": m.old, "to": m.new} for m in self.alias_moves
        ]
        data.update(
            model_uri=self.model_uri,
            version_uri=self.version_uri,
            dry_run=self.dry_run,
            registry_url=self.registry_url,
        )
        return data


def is_local_registry(uri: str) -> bool:
    """A registry in a local file (SQLite, or a bare path), not a shared server or database."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    return scheme in ("sqlite", "file", "") and not uri.startswith("databricks")


def registry_url(uri: str, name: str, version: str | None = None) -> str | None:
    """The registry UI page of a model (version) when the tracking URI is an http(s) server."""
    if not uri.startswith(("http://", "https://")):
        return None
    parts = urlsplit(uri)
    uri = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    url = f"{uri.rstrip('/')}/#/models/{quote(name, safe='')}"
    return f"{url}/versions/{version}" if version else url


def promote(
    root: str | os.PathLike[str] = ".",
    *,
    params_path: str | os.PathLike[str] = "params.yaml",
    lock_path: str | os.PathLike[str] = LOCK_PATH,
    rebuild: bool = True,
    card_path: str | os.PathLike[str] | None = model_card.CARD_PATH,
) -> PromoteResult:
    """Make the model dvc.lock declares the registry's ``@champion`` (see the module docstring).

    Relative paths are taken from the current directory; `root` is the repository root. The
    model card goes to `card_path` (None: none is written, none logged).
    """
    from gitops_ml.config import load_params

    root = Path(root)
    crash_after = _crash_point()
    params = load_params(params_path)
    declared = read_declared(lock_path)
    name = params.mlflow.model_name
    quick = champion_from_bytes(tracking.tracking_uri(), name, declared.md5)
    if quick is None:
        with _preparing(root, params, declared) as prepare:
            return _promote_in_registry(
                root,
                params,
                declared,
                lock_path=Path(lock_path),
                rebuild=rebuild,
                card_path=card_path,
                crash_after=crash_after,
                prepare=prepare,
            )
    # already the champion, its bytes checked: nothing to do
    sha, _ = tracking.git_state(root)
    log.info("@%s is version %s, which holds model md5 %s", CHAMPION, quick["version"],
             declared.md5)  # fmt: skip
    result = PromoteResult(
        model_name=name,
        version=quick["version"],
        created=False,
        artifact_source="registry",
        model_md5=declared.md5,
        dvc_lock_md5=declared.lock_md5,
        git_sha=sha,
        pr_number=pr_number(root),
        run_id=quick["run_id"],
        run_reused=None,
        alias_moves=[],
        tracking_uri=redact(tracking.tracking_uri()),
        lineage={k: v for k, v in quick["tags"].items() if k.startswith(tracking.TAG_PREFIX)},
    )
    if card_path is not None:  # the version's card is logged already, or was never made
        _write_card(root, params, declared, result, card_path)
        result.card_uri = quick["tags"].get(model_card.TAG_MODEL_CARD)
    return result


def _promote_in_registry(
    root: Path,
    params: Params,
    declared: Declared,
    *,
    lock_path: Path,
    rebuild: bool,
    card_path: str | os.PathLike[str] | None,
    crash_after: str | None,
    prepare: Callable[[Artifact], skops_model.Prepared],
) -> PromoteResult:
    """Steps 2 to 6 of the module docstring, through the MLflow client."""
    sha, dirty = tracking.git_state(root)
    pr = pr_number(root)
    name = params.mlflow.model_name
    uri = tracking.configure()
    import mlflow

    notes: list[str] = []

    client = mlflow.MlflowClient()
    with registry_errors(f"searching versions of '{name}'"):
        existing = versions_with_md5(client, name, declared.md5)

    if existing:
        found = existing[0]
        version, created, source = str(found.version), False, "registry"
        _check_registered(
            f"models:/{name}/{version}", declared.md5, f"version {version} of '{name}'"
        )
        run_id, run_reused = found.run_id, None
        lineage = {k: v for k, v in found.tags.items() if k.startswith(tracking.TAG_PREFIX)}
        logged_card = found.tags.get(model_card.TAG_MODEL_CARD)
        log.info("version %s of '%s' already carries model md5 %s", version, name, declared.md5)
    else:
        metrics, note = committed_metrics(root, declared)
        if note:
            notes.append(note)
        run_params = {k: _tag_value(v) for k, v in declared.params.items()}
        with registry_errors("looking for a finished promotion run"):
            run = _finished_promotion_run(client, params.mlflow.experiment, declared.md5)
        if run is not None:
            run_id, run_reused = run.info.run_id, True
            model_uri = run.data.tags[tracking.TAG_MODEL_URI]
            _check_registered(model_uri, declared.md5, f"the promotion run {run_id}")
            lineage = {
                k: v
                for k, v in run.data.tags.items()
                if k.startswith(tracking.TAG_PREFIX)
                and k not in (TAG_PROMOTION, tracking.TAG_MODEL_URI, *runstore.PROCESS_TAGS)
            }
            log.info("reusing the finished promotion run %s", run_id)
        else:
            # Promotion runs a killed promote left RUNNING are closed before this one starts.
            tracking.close_runs_of_gone_processes(params.mlflow.experiment)
            with tempfile.TemporaryDirectory(prefix="gitops-ml-promote-") as tmp:
                artifact = obtain_artifact(root, declared, Path(tmp), rebuild=rebuild)
                with registry_errors("finding the training run"):
                    train_run = tracking.find_run_by_model_hash(
                        declared.md5, params.mlflow.experiment
                    )
                lineage = _lineage(declared, artifact, sha=sha, dirty=dirty, pr=pr)
                if train_run is not None and train_run.data.tags.get(TAG_PROMOTION) != "true":
                    lineage[TAG_TRAIN_RUN_ID] = train_run.info.run_id
                with registry_errors("logging the promotion run"):
                    run_id, model_uri = _log_promotion_run(
                        params=params,
                        artifact=artifact,
                        prepared=prepare(artifact),
                        lock_path=lock_path,
                        tags=lineage,
                        run_params=run_params,
                        metrics=metrics,
                    )
            run_reused = False
        source = lineage.get(TAG_ARTIFACT_SOURCE, "registry")
        _checkpoint("run", crash_after)

        version_tags = {
            **lineage,
            **{f"{PARAM_TAG_PREFIX}{k}": v for k, v in run_params.items()},
            **{f"{METRIC_TAG_PREFIX}{k}": repr(v) for k, v in metrics.items()},
        }
        with registry_errors(f"registering a version of '{name}'"):
            _ensure_registered_model(client, name)
            mv = client.create_model_version(
                name,
                source=model_uri,
                run_id=run_id,
                tags=version_tags,
                description=(
                    f"{declared.path} md5 {declared.md5} as declared by dvc.lock"
                    + (f" at {sha[:12]}" if sha else "")
                ),
                model_id=model_uri.removeprefix("models:/")
                if model_uri.startswith("models:/m-")
                else None,
            )
        version, created, logged_card = str(mv.version), True, None
        log.info("registered '%s' version %s (model md5 %s)", name, version, declared.md5)
        with registry_errors(f"checking the versions of '{name}' for a concurrent promotion"):
            oldest = _keep_oldest(client, name, declared.md5, version)
        if oldest is not None:
            version, created = str(oldest.version), False
            run_id, logged_card = oldest.run_id, oldest.tags.get(model_card.TAG_MODEL_CARD)
        _checkpoint("register", crash_after)

    result = PromoteResult(
        model_name=name,
        version=version,
        created=created,
        artifact_source=source,
        model_md5=declared.md5,
        dvc_lock_md5=declared.lock_md5,
        git_sha=sha,
        pr_number=pr,
        run_id=run_id,
        run_reused=run_reused,
        alias_moves=[],
        tracking_uri=redact(uri),
        lineage=lineage,
        notes=notes,
        card_uri=logged_card,
    )
    if card_path is not None:
        written = _write_card(root, params, declared, result, card_path)
        if logged_card is None and run_id:
            with registry_errors(f"logging the model card of version {version}"):
                result.card_uri = model_card.log_card(client, name, version, run_id, written)
        if result.card_uri and registry_url(uri, name):
            with registry_errors("reading the promotion run"):
                experiment_id = client.get_run(run_id).info.experiment_id if run_id else None
            result.card_url = card_page(uri, experiment_id, run_id)

    with registry_errors(f"reading the aliases of '{name}'"):
        aliases = aliases_of(client, name) or {}
    moves = plan_aliases(aliases, version)
    with registry_errors(f"moving the aliases of '{name}'"):
        for move in moves:
            client.set_registered_model_alias(name, move.alias, move.new)
            log.info("alias %s: %s -> %s", move.alias, move.old or "(none)", move.new)
            if move.alias == PREVIOUS:
                _checkpoint("previous", crash_after)
    result.alias_moves = moves
    return result


def _write_card(
    root: Path,
    params: Params,
    declared: Declared,
    result: PromoteResult,
    path: str | os.PathLike[str],
) -> Path:
    """Write the model card of the promoted version, from the values promotion established."""
    lineage = model_card.CardLineage(
        model_name=result.model_name,
        version=result.version,
        model_md5=result.model_md5,
        dvc_lock_md5=result.dvc_lock_md5,
        git_sha=result.git_sha,
        pr_number=result.pr_number,
        run_id=result.run_id,
        train_data_md5=result.lineage.get(tracking.TAG_TRAIN_DATA_MD5),
        version_git_sha=result.lineage.get(tracking.TAG_GIT_SHA),
    )
    _write_text(str(path), model_card.render_card(root, params, declared, lineage))
    result.card_path = str(path)
    return Path(path)


def card_page(uri: str, experiment_id: str | None, run_id: str | None) -> str | None:
    """The tracking server's UI page of a version's card (an artifact of its run)."""
    base = registry_url(uri, "x")
    if base is None or not experiment_id or not run_id:
        return None
    base = base.split("/#/", 1)[0]
    return (
        f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifactPath/"
        f"{model_card.CARD_ARTIFACT_DIR}/{model_card.CARD_FILE}"
    )


def _moves_text(moves: list[AliasMove], version: str) -> str:
    if not moves:
        return f"none (`@{CHAMPION}` already on version {version})"
    return "; ".join(f"`@{m.alias}`: {m.old or '(none)'} → {m.new}" for m in moves)


def summary_lines(result: PromoteResult) -> list[str]:
    """The short CLI summary."""
    source = SOURCES.get(result.artifact_source, result.artifact_source)
    how = f"created; artifact from {source}" if result.created else "already registered"
    lines = [f"{result.model_name} version {result.version} ({how}), model md5 {result.model_md5}"]
    if result.alias_moves:
        lines.append(
            "aliases: "
            + "; ".join(f"{m.alias} {m.old or '(none)'} -> {m.new}" for m in result.alias_moves)
        )
    else:
        lines.append(f"aliases: unchanged ({CHAMPION} is version {result.version})")
    lines.append(f"{result.model_uri} ({result.tracking_uri})")
    if result.card_path:
        logged = f", logged as {result.card_uri}" if result.card_uri else ", not logged"
        lines.append(f"model card: {result.card_path}{logged}")
    lines.extend(f"note: {n}" for n in result.notes)
    return lines


def _card_text(result: PromoteResult) -> str:
    if result.card_url:
        return f"[{model_card.CARD_FILE}]({result.card_url}) (`{result.card_uri}`)"
    if result.card_uri:
        return f"`{result.card_uri}` (tag `{model_card.TAG_MODEL_CARD}` of the version)"
    return "not logged with the version (registered before model cards)"


def summary_markdown(result: PromoteResult, card: str | None = None) -> str:
    """The GitHub job summary of a promotion (also the merged PR's comment); `card` is the model
    card's text, shown folded."""
    how = "created" if result.created else "already registered (no new version)"
    rows = [
        ("model", f"`{result.model_uri}` = version {result.version}, {how}"),
        ("alias moves", _moves_text(result.alias_moves, result.version)),
        ("artifact", SOURCES.get(result.artifact_source, result.artifact_source)),
        ("git commit", f"`{result.git_sha}`" if result.git_sha else "—"),
        ("dvc.lock md5", f"`{result.dvc_lock_md5}`"),
        ("model md5 (dvc.lock)", f"`{result.model_md5}`"),
    ]
    data_md5 = result.lineage.get(tracking.TAG_TRAIN_DATA_MD5)
    rows.append(("train data md5", f"`{data_md5}`" if data_md5 else "—"))
    rows.append(("pull request", f"#{result.pr_number}" if result.pr_number else "—"))
    if result.run_id:
        rows.append(("promotion run", f"`{result.run_id}`"))
    if result.card_path:
        rows.append(("model card", _card_text(result)))
    lines = [
        f"## Promotion: `{result.model_name}` version {result.version} is `@{CHAMPION}`",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    if result.registry_url:
        lines.append(f"Registry: [{result.model_name} v{result.version}]({result.registry_url})")
    elif result.dry_run:
        lines.append(
            f"_dry run: local sqlite registry (`{result.tracking_uri}`); set "
            "`MLFLOW_TRACKING_URI` to promote to a tracking server._"
        )
    else:
        lines.append(f"Registry: `{result.tracking_uri}`")
    lines.extend(f"\n> {n}" for n in result.notes)
    if card:
        lines += ["", "<details><summary>Model card</summary>", "", card.rstrip("\n"), "",
                  "</details>"]  # fmt: skip
    return "\n".join(lines) + "\n"


# -- verify --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    message: str
    declared_md5: str
    champion_version: str | None
    champion_md5: str | None
    #: With ``max_age_days``: the champion holds the declared model but was registered longer ago.
    too_old: bool = False
    registered_at: str | None = None  # the version's creation time (UTC, ISO 8601)
    age_days: float | None = None


#: `verify`'s exit code when @champion is the declared model but older than ``--max-age-days``.
TOO_OLD_EXIT = 3
DAY_MS = 86_400_000


def check_age(
    result: VerifyResult, created_ms: int, max_age_days: int, now_ms: int | None = None
) -> VerifyResult:
    """`result` (a verified champion) marked too old when its version was registered more than
    `max_age_days` days before `now_ms`."""
    import datetime as dt
    import time

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    age = max(0, now_ms - created_ms) / DAY_MS
    when = dt.datetime.fromtimestamp(created_ms / 1000, dt.UTC)
    stamp = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    fields = {"registered_at": stamp, "age_days": round(age, 3)}
    if age <= max_age_days:
        return replace(result, **fields)
    return replace(
        result,
        ok=False,
        too_old=True,
        message=(
            f"too old: {result.message.removeprefix('ok: ').split(' holds ')[0]} was registered "
            f"{age:.1f} days ago ({stamp}), more than --max-age-days {max_age_days}; retrain it "
            "(gitops-ml retrain) and merge the pull request"
        ),
        **fields,
    )


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def verify(
    *,
    params_path: str | os.PathLike[str] = "params.yaml",
    lock_path: str | os.PathLike[str] = LOCK_PATH,
    max_age_days: int | None = None,
) -> VerifyResult:
    """Does ``@champion`` hold the model dvc.lock declares? Its copy of the DVC file is hashed and
    its skops archive compared with that model (`registry_model`); tags are not trusted. With
    `max_age_days`, a champion registered longer ago than that is `too_old` (not `ok`)."""
    from gitops_ml.config import load_params

    params = load_params(params_path)
    declared = read_declared(lock_path)
    name = params.mlflow.model_name
    uri = tracking.tracking_uri()
    db = _sqlite_file(uri)
    if db is not None and not db.exists():
        return VerifyResult(
            False,
            f"no {CHAMPION} alias: the registry {uri} does not exist; dvc.lock declares model "
            f"md5 {declared.md5}",
            declared.md5,
            None,
            None,
        )
    quick = _verified_from_bytes(uri, name, declared.md5)
    if quick is not None and max_age_days is None:
        return quick
    tracking.configure()
    import mlflow

    client = mlflow.MlflowClient()
    with registry_errors(f"reading '{name}'"):
        aliases = aliases_of(client, name)
        version = (aliases or {}).get(CHAMPION)
        champion = client.get_model_version(name, version) if version else None
    if champion is None:
        where = f"no registered model '{name}'" if aliases is None else f"'{name}' has none"
        return VerifyResult(
            False,
            f"no {CHAMPION} alias ({where}); dvc.lock declares model md5 {declared.md5}",
            declared.md5,
            None,
            None,
        )
    what = f"{name}@{CHAMPION} (version {version})"
    if quick is None or quick.champion_version != version:
        try:
            with tempfile.TemporaryDirectory(prefix="gitops-ml-verify-") as tmp:
                registry_model(f"models:/{name}/{version}", declared.md5, Path(tmp), what)
        except IntegrityError as exc:
            return VerifyResult(False, f"mismatch: {exc}", declared.md5, version, None)
    verified = _verified(name, version, declared.md5)
    if max_age_days is None:
        return verified
    return check_age(verified, int(champion.creation_timestamp), max_age_days)


def _verified(name: str, version: str, md5: str) -> VerifyResult:
    return VerifyResult(
        True,
        f"ok: {name}@{CHAMPION} (version {version}) holds model md5 {md5}, as dvc.lock declares "
        "(its file hashed, its skops archive compared)",
        md5,
        version,
        md5,
    )


def _verified_from_bytes(uri: str, name: str, md5: str) -> VerifyResult | None:
    """``ok`` decided from the champion's bytes alone (`champion_from_bytes`), else None."""
    found = champion_from_bytes(uri, name, md5)
    return None if found is None else _verified(name, found["version"], md5)


def champion_from_bytes(uri: str, name: str, md5: str) -> dict[str, Any] | None:
    """The champion version of a local SQLite registry (`runstore.champion_files`) when its bytes
    alone show it holds `md5`: its copy of the DVC file hashes to `md5`, and its skops archive's
    content digest is the one this machine computed from that checked model before
    (`remembered_digest`). That needs neither MLflow nor the model loaded. Anything short of that
    (another store, nothing remembered, a difference) is None: the full check decides, and says
    what is wrong."""
    expected = remembered_digest(md5)
    if expected is None:
        return None

    exact = f"{EXACT_DIR}/{Path(MODEL_PATH).name}"
    try:
        found = runstore.champion_files(uri, name, CHAMPION, [exact, SKOPS_FILE])
    except runstore.Unsupported as why:
        log.debug("verify through MLflow: %s", why)
        return None
    held, archive = found.get(exact), found.get(SKOPS_FILE)
    if found["version"] is None or held is None or archive is None:
        return None
    if hashlib.md5(held).hexdigest() != md5:
        return None
    try:
        if formats.content_digest(archive, SKOPS_FILE) != expected:
            return None
    except GitopsMLError:
        return None
    return found


# -- CLI -----------------------------------------------------------------------------------------


def _write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _promote_cmd(args: argparse.Namespace) -> int:
    from gitops_ml.lineage import git

    root = git.repo_root(Path.cwd())
    result = promote(
        root,
        params_path=args.params,
        lock_path=args.lock,
        rebuild=not args.no_rebuild,
        card_path=args.card or None,
    )
    if args.json:
        write_json(args.json, result.to_dict())
    if args.summary:
        card = Path(result.card_path).read_text(encoding="utf-8") if result.card_path else None
        _write_text(args.summary, summary_markdown(result, card))
    print("\n".join(summary_lines(result)))
    return 0


def _verify_cmd(args: argparse.Namespace) -> int:
    result = verify(params_path=args.params, lock_path=args.lock, max_age_days=args.max_age_days)
    if args.json:
        write_json(args.json, asdict(result))
    print(result.message)
    if result.too_old:
        return TOO_OLD_EXIT
    return 0 if result.ok else 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.add_argument(
        "--lock", default=LOCK_PATH, help="the dvc.lock to follow (default: %(default)s)"
    )


def register(sub: Any) -> None:
    """Add the `promote` and `verify` subcommands to the `gitops-ml` parser."""
    p = sub.add_parser(
        "promote",
        help="make dvc.lock's model @champion in the MLflow registry",
        description="Register the model that dvc.lock's train stage declares (once per model "
        "md5; the file comes from the workspace, the DVC cache, the remote or a rebuild) and "
        "point @champion at it, @previous at the version it replaced. Running it twice changes "
        "nothing.",
        epilog=exit_codes(
            "promoted, or already the champion",
            bad="promotion refused (a rebuild that does not match dvc.lock, --no-rebuild "
            "without the model), the registry failed, or bad usage",
        ),
    )
    _common(p)
    p.add_argument(
        "--no-rebuild",
        action="store_true",
        help="fail instead of rebuilding the model when no cache or remote has it",
    )
    p.add_argument("--summary", default=None, help="markdown summary to write (job summary)")
    p.add_argument(
        "--card",
        default=model_card.CARD_PATH,
        metavar="PATH",
        help="the model card to write, logged with a new version ('': none; default: %(default)s)",
    )
    p.add_argument(
        "--json", default=None, metavar="PATH", help="result JSON to write (default: none)"
    )
    # MLflow's modules take a second to tear down at exit: the process ends without that.
    p.set_defaults(func=_promote_cmd, skip_teardown=True)

    p = sub.add_parser(
        "verify",
        help="check that @champion is the model dvc.lock declares",
        description="Check that @champion in the MLflow registry carries the model md5 that "
        "dvc.lock declares; a mismatch names both.",
        epilog=exit_codes(
            "@champion is the declared model",
            "it is another model, or there is no @champion",
            "no dvc.lock, the registry is unreachable, or bad usage",
        ).removesuffix(".")
        + f"; {TOO_OLD_EXIT} it is the declared model, registered more than --max-age-days ago.",
    )
    _common(p)
    p.add_argument(
        "--max-age-days",
        type=whole_number(0),
        default=None,
        metavar="N",
        help=f"also fail (exit {TOO_OLD_EXIT}) when @champion's version was registered more "
        "than N days ago (default: no age limit)",
    )
    p.add_argument(
        "--json", default=None, metavar="PATH", help="verdict JSON to write (default: none)"
    )
    p.set_defaults(func=_verify_cmd)
