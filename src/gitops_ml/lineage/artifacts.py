"""The one way to obtain a model: from the workspace, the DVC cache, the DVC remote, a checked
rebuild or the MLflow registry, with its md5 checked against the dvc.lock that declares it before
anything deserialises it.

A model file is a pickle (joblib), and unpickling runs code. Every model the GitOps commands load
comes from somewhere a pull request or a registry writer may have written: the DVC cache (restored
from GitHub's cache, or pulled from a remote), the remote itself, the workspace, or a registry
artifact. So the bytes are hashed first, and a file whose md5 is not the one its dvc.lock declares
is refused with one line naming both hashes. Only a model rebuilt here from trusted code (the base
branch's, in a worktree) may differ from its lock (another CPU can round a float differently), and
the caller says so explicitly.

- `obtain_artifact`: the file the checked-out dvc.lock declares (promotion).
- `champion_file`: the model a base revision's dvc.lock declares (the gate and the report).
- `registry_model`: a registered version, checked by its bytes, never its tags.
- `load_model`: what `predict`, `serve` and `drift` are given (a registry URI or a file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_ml import tracking
from gitops_ml.errors import DataError, GitopsMLError
from gitops_ml.files import atomic_path, cache_dir, file_md5
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.dvclock import (
    LOCK_PATH,
    MODEL_PATH,
    Declared,
    cache_path,
    out_md5,
    read_lock,
    stage_differences,
    workspace_differences,
)

log = logging.getLogger(__name__)


class ArtifactError(GitopsMLError):
    """The declared model cannot be had: not found anywhere, or a rebuild that does not match."""


class IntegrityError(GitopsMLError):
    """A model file's bytes are not the ones its dvc.lock declares: it is never loaded."""


def check_md5(path: Path, expected: str, what: str, declared_by: str) -> None:
    """Raise IntegrityError unless `path` hashes to `expected` (a missing file is refused too)."""
    if not path.is_file():
        raise IntegrityError(f"{what}: {path} is not a file; {declared_by} declares md5 {expected}")
    actual = file_md5(path)
    if actual != expected:
        raise IntegrityError(
            f"{what}: md5 {actual}, but {declared_by} declares {expected}: refusing to load it"
        )


def load_model_file(path: Path, expected: str | None, what: str, declared_by: str = "") -> Any:
    """The fitted model in joblib file `path`, once its md5 is `expected`.

    `expected=None` is for a model this process rebuilt from trusted code only."""
    import joblib

    if expected is not None:
        check_md5(path, expected, what, declared_by)
    else:
        log.debug("%s: loaded without a declared md5 (rebuilt from trusted code)", what)
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise GitopsMLError(f"{what}: {path} not found") from None


def declared_md5(path: Path, lock_path: Path | None = None) -> str | None:
    """The md5 that dvc.lock (by default the one in the current directory) declares for `path`
    when `path` is one of its outputs; None for any other file."""
    from gitops_ml.lineage.dvclock import LOCK_PATH, out_md5, read_lock

    lock_file = lock_path or Path(LOCK_PATH)
    if not lock_file.is_file():
        return None
    try:
        rel = path.resolve().relative_to(lock_file.resolve().parent).as_posix()
    except ValueError:  # outside the repository: not a pipeline output
        return None
    return out_md5(read_lock(lock_file), rel)


#: The registry alias that names the production model.
CHAMPION_ALIAS = "champion"
#: Where a registered model keeps the exact bytes of the DVC file (``log_model(extra_files=)``).
EXACT_DIR = "extra_files"
#: The archive MLflow loads a registered model from.
SKOPS_FILE = "model.skops"


_URI_SCHEMES = ("models:/", "runs:/")

#: The libraries a model's skops archive depends on: part of every remembered digest's key.
_DIGEST_LIBRARIES = ("skops", "scikit-learn", "numpy")


def _digest_memo() -> Path:
    return cache_dir() / "skops-digests.json"


def _memo_key(md5: str) -> str:
    versions = tracking.installed_versions(_DIGEST_LIBRARIES)
    return " ".join([md5, *(f"{name}=={versions.get(name, 'none')}" for name in _DIGEST_LIBRARIES)])


def remembered_digest(md5: str) -> str | None:
    """The skops content digest this machine computed from the model whose DVC file has `md5`
    (after checking those bytes), with today's library versions; None if it never did."""
    try:
        memo = json.loads(_digest_memo().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = memo.get(_memo_key(md5)) if isinstance(memo, dict) else None
    return value if isinstance(value, str) else None


def remember_digest(md5: str, digest: str) -> None:
    """Note the skops content digest of the checked model with DVC file md5 `md5`, so `verify`
    can compare a registry archive with it without loading the model again. Best effort."""
    path = _digest_memo()
    try:
        try:
            memo = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
        memo = memo if isinstance(memo, dict) else {}
        memo[_memo_key(md5)] = digest
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(memo, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        log.debug("not remembering the digest of %s: %s", md5, exc)


@dataclass(frozen=True)
class LoadedModel:
    """A fitted scikit-learn model and what is known of where it came from."""

    model: Any
    uri: str
    version: str | None = None
    md5: str | None = None


def champion_uri(model_name: str) -> str:
    """``models:/<name>@champion``: the registry URI of the production model."""
    return f"models:/{model_name}@{CHAMPION_ALIAS}"


def is_mlflow_uri(value: str) -> bool:
    """An MLflow model URI (``models:/``, ``runs:/``, ``s3://``...) rather than a local path."""
    return value.startswith(_URI_SCHEMES) or "://" in value


class NotRegisteredError(tracking.TrackingError):
    """A ``models:/<name>@<alias>`` URI that the registry does not know (nothing promoted yet)."""


def not_registered(uri: str, *, store_missing: Path | None = None) -> NotRegisteredError:
    """The one-line error for an alias nobody has set: where it was looked for, what to run."""
    from gitops_ml.tracking import redact

    parsed = _registry_alias(uri)
    where = redact(tracking.tracking_uri())
    if store_missing is not None:
        where += f" ({store_missing} does not exist yet)"
    if parsed is not None and parsed[1] != CHAMPION_ALIAS:
        hint = "check the model name and alias (or pass --model)"
    elif store_missing is not None:
        hint = "run `make repro`, then `gitops-ml promote` (or pass --model)"
    else:
        hint = "run `gitops-ml promote` first (or pass --model)"
    return NotRegisteredError(f"no model is registered as {uri} in {where}: {hint}")


def _require_store(model_uri: str | None = None) -> str:
    """The tracking URI; a local SQLite store must exist (MLflow would create an empty one).

    Without one, a registry alias `model_uri` fails with `not_registered`'s hint."""
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///"):  # checked before configure(), which would create it
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            if model_uri is not None and _registry_alias(model_uri) is not None:
                raise not_registered(model_uri, store_missing=path)
            raise tracking.TrackingError(
                f"no MLflow tracking store at {path} ({tracking.TRACKING_URI_ENV}={uri}): "
                "train and promote a model first, or set the tracking URI"
            )
    return tracking.configure()


def _registry_alias(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a ``models:/<name>@<alias>`` URI, else None."""
    if not uri.startswith("models:/"):
        return None
    name, sep, alias = uri.removeprefix("models:/").partition("@")
    return (name, alias) if sep and name and alias and "/" not in name else None


def _is_not_found(exc: Exception) -> bool:
    """An MLflow error saying the registered model or its alias does not exist (the SQL store
    says INVALID_PARAMETER_VALUE for a missing alias, a server may say RESOURCE_DOES_NOT_EXIST)."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def resolve_alias(uri: str) -> tuple[str | None, str | None]:
    """(version, model md5) behind a ``models:/<name>@<alias>`` URI; a missing alias fails
    with `NotRegisteredError` (what to run), any other registry failure with a TrackingError."""
    parsed = _registry_alias(uri)
    if parsed is None:
        return None, None
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias = parsed
    _require_store(uri)
    with tracking.tracking_errors(f"resolving {uri}"):
        client = mlflow.MlflowClient()
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise not_registered(uri) from None
            raise
        md5 = (version.tags or {}).get(tracking.TAG_MODEL_MD5)
        if md5 is None and version.run_id:
            md5 = client.get_run(version.run_id).data.tags.get(tracking.TAG_MODEL_MD5)
    return str(version.version), md5


def _registry_version(uri: str) -> bool:
    """A ``models:/<name>/<version>`` URI."""
    name, _, version = uri.removeprefix("models:/").rpartition("/")
    return uri.startswith("models:/") and bool(name) and "/" not in name and version.isdigit()


def pinned_uri(uri: str, version: str | None) -> str:
    """``models:/<name>/<version>`` for an alias URI resolved to `version`, else `uri`: what is
    loaded is the version that was reported, even if the alias moves meanwhile."""
    parsed = _registry_alias(uri)
    return f"models:/{parsed[0]}/{version}" if parsed and version else uri


@dataclass(frozen=True)
class RegistryModel:
    """A registry model whose bytes were checked, and the directory it was downloaded to."""

    model: Any
    path: Path


def registry_model(uri: str, expected: str, dest: Path, what: str) -> RegistryModel:
    """The model of MLflow model `uri` (``models:/<name>/<version>`` or ``models:/m-...``),
    downloaded into `dest` and loaded only once its copy of the DVC file hashes to `expected`;
    its skops archive (what MLflow itself loads) must then hold the same model.

    A promotion logs both (`gitops_ml.release.promote`): ``model.skops`` and the exact bytes of
    ``models/model.joblib`` under ``extra_files/``. Tags are never trusted: anyone with write
    access to the registry can set them."""
    import mlflow

    from gitops_ml.lineage import formats

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # errors stay one line
    with tracking.tracking_errors(f"downloading {uri}"):
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))
    exact = local / EXACT_DIR / Path(MODEL_PATH).name
    if not exact.is_file():
        raise IntegrityError(
            f"{what}: holds no {EXACT_DIR}/{exact.name} (the exact bytes of the DVC file), so "
            f"nothing can check it against the md5 {expected} that {LOCK_PATH} declares"
        )
    model = load_model_file(exact, expected, what, LOCK_PATH)
    archive = local / SKOPS_FILE
    if not archive.is_file():
        raise IntegrityError(f"{what}: holds no {SKOPS_FILE}")
    held = formats.content_digest(archive.read_bytes(), f"{what} {SKOPS_FILE}")
    declared = formats.content_digest(formats.dumps(model), what)
    if held != declared:
        raise IntegrityError(
            f"{what}: its {SKOPS_FILE} is not the model whose md5 {LOCK_PATH} declares (content "
            f"digest {held}, the declared model's {declared}): refusing it"
        )
    remember_digest(expected, declared)
    return RegistryModel(model, local)


def lock_model_md5(lock_path: Path) -> str:
    """The md5 `lock_path` declares for the model: what a registry model must hash to."""
    md5 = declared_md5(lock_path.parent / MODEL_PATH, lock_path) if lock_path.is_file() else None
    if md5 is None:
        raise IntegrityError(
            f"{lock_path}: {'declares no ' + MODEL_PATH if lock_path.is_file() else 'not found'}"
            f", so a registry model cannot be verified: run in the repository whose {LOCK_PATH} "
            "names the production model"
        )
    return md5


def load_model(uri: str, lock_path: Path | None = None) -> LoadedModel:
    """Load a model from the registry, a local MLflow model directory or a joblib file.

    - A registry model (``models:/<name>@<alias>`` or ``models:/<name>/<version>``) only if its
      copy of the DVC file hashes to the md5 that `lock_path` (default ``./dvc.lock``)
      declares, and its skops archive holds that same model (`registry_model`).
    - An MLflow model directory only in the skops format, with the trusted types of
      `gitops_ml.lineage.formats`: never a pickle.
    - A joblib file that a dvc.lock declares only with that md5; a file no lock declares is one
      the user named explicitly.
    """
    from gitops_ml.files import file_md5

    if is_mlflow_uri(uri):
        if _registry_alias(uri) is None and not _registry_version(uri):
            raise DataError(
                f"{uri}: gitops-ml loads registry models (models:/<name>@<alias> or "
                "models:/<name>/<version>), whose bytes it can check, or local files"
            )
        expected = lock_model_md5(lock_path or Path(LOCK_PATH))
        _require_store(uri)
        version, _ = resolve_alias(uri)
        pinned = pinned_uri(uri, version)
        with tempfile.TemporaryDirectory(prefix="gitops-ml-model-") as tmp:
            model = registry_model(pinned, expected, Path(tmp), pinned).model
        return LoadedModel(model, uri, version or pinned.rsplit("/", 1)[-1], expected)
    path = Path(uri)
    if path.is_dir():
        return LoadedModel(load_skops_dir(path), uri)
    if not path.is_file():
        raise DataError(f"{path}: model file not found (a joblib file, or a models:/ URI)")
    # A pipeline output (models/model.joblib) is loaded only with the md5 dvc.lock declares; a
    # file no lock declares is one the user named explicitly.
    declared = declared_md5(path)
    try:
        model = load_model_file(path, declared, str(path), LOCK_PATH)
    except IntegrityError:
        raise
    except Exception as exc:  # unpickling raises anything; the user passed a wrong file
        raise DataError(f"{path}: cannot load a model from it: {type(exc).__name__}") from None
    return LoadedModel(model, uri, None, file_md5(path))


def load_skops_dir(path: Path) -> Any:
    """The model of a local MLflow model directory saved in the skops format."""
    import skops.io

    from gitops_ml.lineage import formats

    archive = path / SKOPS_FILE
    if not (path / "MLmodel").is_file():
        raise DataError(f"{path}: a directory without an MLmodel file is not a model")
    if not archive.is_file():
        raise DataError(
            f"{path}: no {SKOPS_FILE}; gitops-ml loads MLflow models saved with skops only, "
            "never a pickle"
        )
    data = archive.read_bytes()
    try:
        return skops.io.loads(data, trusted=formats.trusted_types(data, str(archive)))
    except GitopsMLError:
        raise
    except Exception as exc:
        raise DataError(f"{archive}: cannot load a model from it: {type(exc).__name__}") from None


@dataclass(frozen=True)
class Artifact:
    """A local file with the declared model and where it came from."""

    path: Path
    source: str
    md5: str


def _from_cache(root: Path, md5: str, dest: Path) -> bool:
    cached = dvclock.cache_path(root, md5)
    if not cached.is_file() or file_md5(cached) != md5:
        return False
    shutil.copyfile(cached, dest)
    return True


def _rebuild_workspace(root: Path, declared: Declared) -> Path:
    """`dvc repro <stage>` in the workspace; refuse if the stage's inputs differ from the lock."""
    repo_lock = root / LOCK_PATH
    saved = repo_lock.read_bytes() if repo_lock.exists() else None
    log.info("rebuilding %s with `dvc repro %s`", declared.path, declared.stage)
    try:
        proc = dvclock.run_dvc(root, "repro", declared.stage)
        rebuilt = read_lock(repo_lock)["stages"].get(declared.stage) if repo_lock.exists() else None
    finally:
        if saved is None:
            repo_lock.unlink(missing_ok=True)
        elif not repo_lock.exists() or repo_lock.read_bytes() != saved:
            with atomic_path(repo_lock) as tmp:
                tmp.write_bytes(saved)
    if proc.returncode != 0:
        raise ArtifactError(
            f"rebuilding with `dvc repro {declared.stage}` failed: {dvclock.error_line(proc)}"
        )
    diffs = stage_differences(declared.entry, rebuilt)
    if diffs:
        raise ArtifactError(
            f"refusing to promote a rebuild that does not match dvc.lock: stage "
            f"'{declared.stage}': {'; '.join(diffs)} (dvc.lock left as committed)"
        )
    model = root / declared.path
    if not model.is_file():
        raise ArtifactError(f"`dvc repro {declared.stage}` wrote no {declared.path}")
    return model


def obtain_artifact(root: Path, declared: Declared, tmp: Path, *, rebuild: bool) -> Artifact:
    """The declared model file: workspace, DVC cache, DVC remote, else a checked rebuild."""
    md5 = declared.md5
    workspace = root / declared.path
    if workspace.is_file() and file_md5(workspace) == md5:
        return Artifact(workspace, "workspace", md5)
    dest = tmp / Path(declared.path).name
    if _from_cache(root, md5, dest):
        return Artifact(dest, "cache", md5)
    if dvclock.has_remote(root):
        proc = dvclock.run_dvc(root, "fetch", declared.path)
        if proc.returncode == 0 and _from_cache(root, md5, dest):
            return Artifact(dest, "remote", md5)
        if proc.returncode != 0:
            log.info("dvc fetch %s: %s", declared.path, dvclock.error_line(proc))
    if not rebuild:
        raise ArtifactError(
            f"{declared.path} (md5 {md5}) is not in the workspace, the DVC cache or the DVC "
            "remote, and rebuilding is disabled (--no-rebuild)"
        )
    diffs = workspace_differences(root, declared)
    if diffs:
        raise ArtifactError(
            f"refusing to rebuild: the workspace does not match dvc.lock's stage "
            f"'{declared.stage}': {'; '.join(diffs)}"
        )
    model = _rebuild_workspace(root, declared)
    built = file_md5(model)
    if built != md5:
        raise ArtifactError(
            f"the rebuilt {declared.path} has md5 {built}, but dvc.lock declares {md5} (same "
            "inputs, other bytes: another OS or CPU): production must be exactly what dvc.lock "
            "declares, so push that model to the DVC remote from where dvc.lock was made, or "
            "commit the dvc.lock this machine makes"
        )
    return Artifact(model, "rebuild", built)


def _from_remote(root: Path, rev: str, dest: Path, path: str = MODEL_PATH) -> bool:
    """Fetch `path` of `rev` through DVC (its cache, then its remote); False if unavailable.
    The bytes are unchecked: the caller verifies their md5 before using them."""
    try:
        import dvc.api

        with (
            dvc.api.open(path, repo=str(root), rev=rev, mode="rb") as src,
            open(dest, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        return True
    except Exception as exc:  # DVC raises many types: no remote, missing object, network
        log.info("%s not available from the DVC remote: %s", path, str(exc).splitlines()[0:1])
        return False


def _rebuild_at(root: Path, rev: str, dest: Path) -> tuple[bool, str]:
    """`dvc repro` of the base in a temporary git worktree sharing this repo's DVC cache."""
    from gitops_ml.lineage import git

    tmp = Path(tempfile.mkdtemp(prefix="gitops-ml-base-"))
    tree = tmp / "base"
    try:
        git.git("worktree", "add", "--detach", str(tree), rev, cwd=root)
        (tree / ".dvc").mkdir(exist_ok=True)
        cache = (root / ".dvc" / "cache").resolve()
        with open(tree / ".dvc" / "config.local", "a", encoding="utf-8") as fh:
            fh.write(f"[cache]\n    dir = {cache}\n")
        env = dvclock.dvc_env(
            {
                # The base's own code, not the PR's installed package.
                "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            }
        )
        proc = dvclock.run_dvc(tree, "repro", env=env)
        model = tree / MODEL_PATH
        if proc.returncode != 0 or not model.exists():
            return False, f"rebuilding the base failed: {dvclock.error_line(proc)}"
        shutil.copyfile(model, dest)
        return True, ""
    except GitopsMLError as exc:
        return False, f"rebuilding the base failed: {exc}"
    finally:
        git.git("worktree", "remove", "--force", str(tree), cwd=root, check=False)
        git.git("worktree", "prune", cwd=root, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Champion:
    """The champion model file, where it came from, and the md5 it must have to be loaded
    (None only for a model rebuilt here from the base's own code)."""

    path: Path
    origin: str  # "the DVC cache", "the DVC remote", "a rebuild"
    md5: str | None

    def load(self, base_sha: str) -> Any:
        what = f"the champion {MODEL_PATH} from {self.origin}"
        return load_model_file(self.path, self.md5, what, f"the dvc.lock of {base_sha[:12]}")


def champion_file(
    root: Path, base_sha: str, base_lock: Mapping[str, Any] | None, rebuild: bool, tmp: Path
) -> tuple[Champion | None, str]:
    """The champion model file (not loaded yet) and a sentence saying where it came from."""
    md5 = out_md5(base_lock, MODEL_PATH)
    if base_lock is None or md5 is None:
        return None, f"The base has no `{MODEL_PATH}` in its dvc.lock."
    cached = cache_path(root, md5)
    if cached.exists():
        source = f"Champion `{MODEL_PATH}` (md5 `{md5[:8]}`) loaded from the DVC cache"
        return Champion(cached, "the DVC cache", md5), source
    dest = tmp / "champion.joblib"
    if _from_remote(root, base_sha, dest):
        source = f"Champion `{MODEL_PATH}` (md5 `{md5[:8]}`) fetched from the DVC remote"
        return Champion(dest, "the DVC remote", md5), source
    if not rebuild:
        return None, "The champion model is not in the DVC cache or remote (rebuild disabled)."
    ok, why = _rebuild_at(root, base_sha, dest)
    if not ok:
        return None, why
    from gitops_ml.files import file_md5

    same = file_md5(dest) == md5
    note = "" if same else " (its bytes differ from the base's dvc.lock: another OS or CPU)"
    source = f"Champion rebuilt from the base with `dvc repro` in a git worktree{note}"
    return Champion(dest, "a rebuild", None), source
