"""DVC as the GitOps commands use it: where the pipeline's artifacts are, what dvc.lock records
(in the workspace or at any git revision), and DVC run as a subprocess with its error line.

The gate (is the committed lock stale?), the report (which model is the champion?), promotion
(which artifact goes to the registry?) and retraining all read the same few facts from a lock
and run DVC the same way. The paths below are outputs of dvc.yaml (a test checks that they are).

DVC keeps the locks of running stages in ``.dvc/tmp/rwlock``, rewritten in place: a DVC command
killed while writing it leaves it empty, and every later `dvc repro` or `dvc status` fails with
"JSON structure is corrupted" and no hint. `check_rwlock` runs before DVC here (and before
`make repro`): an empty one, when no DVC command is running, is removed (it records nothing, and
DVC treats a missing file as no locks); any other unreadable one is a one-line error naming the
command that clears it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops_ml.errors import GitopsMLError, cli_entry
from gitops_ml.files import file_md5, load_yaml

log = logging.getLogger(__name__)

LOCK_PATH = "dvc.lock"
PARAMS_PATH = "params.yaml"
TRAIN_STAGE = "train"
#: Pipeline files the GitOps commands read (paths as dvc.yaml writes them).
MODEL_PATH = "models/model.joblib"
TRAIN_PATH = "data/processed/train.parquet"
TEST_PATH = "data/processed/test.parquet"
METRICS_PATH = "reports/metrics.json"
SLICES_PATH = "reports/slices.json"
VALIDATION_PATH = "reports/validation.json"
FIGURES_DIR = "reports/figures"
PLOTS_DIR = "reports/plots"
PREDICTIONS_PATH = "data/predictions/test.parquet"


class LockError(GitopsMLError):
    """A dvc.lock that is missing, unreadable or not a dvc.lock."""


def read_lock(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """Parse a dvc.lock; a missing or malformed file is a one-line error naming it."""
    from gitops_ml.config import read_yaml

    p = Path(path)
    if not p.exists():
        raise LockError(f"{p}: not found (run `dvc repro` and commit dvc.lock)")
    lock = read_yaml(p, "dvc.lock")
    if not isinstance(lock, Mapping) or not isinstance(lock.get("stages"), Mapping):
        raise LockError(f"{p}: not a dvc.lock (no 'stages' mapping)")
    return lock


def stages(lock: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The lock's stage entries by name (empty for no lock)."""
    return (lock or {}).get("stages") or {}


def _hashes(entries: Any) -> dict[str, str | None]:
    return {
        e["path"]: e.get("md5") or e.get("etag")
        for e in entries or []
        if isinstance(e, Mapping) and e.get("path")
    }


def stage_deps(entry: Mapping[str, Any]) -> dict[str, str | None]:
    """Dependency path -> recorded hash."""
    return _hashes(entry.get("deps"))


def stage_outs(entry: Mapping[str, Any]) -> dict[str, str | None]:
    """Output path -> recorded hash."""
    return _hashes(entry.get("outs"))


def stage_params(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``key`` -> value for params.yaml keys, ``file:key`` for other params files."""
    out: dict[str, Any] = {}
    for file, values in (entry.get("params") or {}).items():
        for key, value in (values or {}).items():
            out[key if file == PARAMS_PATH else f"{file}:{key}"] = value
    return out


def out_md5(lock: Mapping[str, Any] | None, path: str) -> str | None:
    """The md5 the lock records for output `path` of any stage, or None."""
    for entry in stages(lock).values():
        if isinstance(entry, Mapping) and (md5 := stage_outs(entry).get(path)):
            return md5
    return None


#: A ``[cache]`` section in a DVC config file (``dvc config cache.dir ...`` writes one).
_CACHE_SECTION = re.compile(r"""^\s*\[\s*['"]?cache['"]?\s*\]""", re.MULTILINE)


def dvc_config_files(root: Path) -> list[Path]:
    """The config files DVC reads for the repository at `root`, lowest precedence first."""
    import platformdirs

    system = os.environ.get("DVC_SYSTEM_CONFIG_DIR") or platformdirs.site_config_dir(
        "dvc", "iterative"
    )
    user = os.environ.get("DVC_GLOBAL_CONFIG_DIR") or platformdirs.user_config_dir(
        "dvc", "iterative"
    )
    return [
        Path(system) / "config",
        Path(user) / "config",
        root / ".dvc" / "config",
        root / ".dvc" / "config.local",
    ]


def _configures_the_cache(files: list[Path]) -> bool:
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        except OSError:  # unreadable: let DVC decide
            return True
        if _CACHE_SECTION.search(text):
            return True
    return False


def cache_path(root: Path, md5: str) -> Path:
    """Where the repository's DVC cache keeps a file with this md5 (its `cache.dir` honoured).

    With no ``[cache]`` section in any of DVC's config files, that is the default layout, found
    without importing DVC (0.6 s); otherwise DVC is asked."""
    default = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not _configures_the_cache(dvc_config_files(root)):
        return default
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            return Path(repo.cache.local.oid_to_path(md5))
    except Exception as exc:  # DVC raises many types; the default layout is the fallback
        log.debug("dvc cache lookup failed (%s); using the default cache path", exc)
        return default


def short(value: Any) -> str:
    """A recorded value for a one-line message: JSON for non-strings, at most 40 characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_lock_text(text: str | None, what: str) -> Mapping[str, Any] | None:
    """A dvc.lock read from git (`git.show`): None when there is none; invalid YAML or not a
    mapping is a one-line DataError naming `what`."""
    from gitops_ml.errors import DataError

    if text is None:
        return None
    try:
        lock = load_yaml(text)
    except yaml.YAMLError:
        raise DataError(f"{what} is not valid YAML") from None
    if not isinstance(lock, Mapping):
        raise DataError(f"{what} is not a dvc.lock mapping")
    return lock


def lock_at(rev: str, root: Path) -> Mapping[str, Any] | None:
    """dvc.lock as committed at `rev`, or None when `rev` has none."""
    from gitops_ml.lineage import git

    return parse_lock_text(git.show(rev, LOCK_PATH, cwd=root), f"{rev[:12]}:{LOCK_PATH}")


# -- DVC as a subprocess (its in-process API logs noisily and holds locks) -----------------------


def dvc_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with the venv's bin first on PATH and DVC's analytics off."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }
    env.update(extra or {})
    return env


#: DVC's record of the locks its running stages hold, and the lock a running DVC command holds.
RWLOCK_PATH = ".dvc/tmp/rwlock"
REPO_LOCK_PATH = ".dvc/tmp/lock"
#: What DVC prints for an unreadable rwlock ("Unable to read RWLock-file ...", "RWLock-file ...
#: format error").
_RWLOCK_ERROR = re.compile(r"RWLock-file")


class RwlockError(GitopsMLError):
    """DVC's ``.dvc/tmp/rwlock`` cannot be read: DVC refuses to run until it is removed."""


def rwlock_hint(what: str = "is corrupted") -> str:
    return (
        f"{RWLOCK_PATH} {what} (a DVC command killed while writing it?): remove it with "
        f"`rm {RWLOCK_PATH}` (safe when no dvc command is running), then run the command again"
    )


def _rwlock_readable(raw: bytes) -> bool:
    """Whether DVC can read this rwlock: a JSON object with only `read` and `write` entries."""
    try:
        lock = json.loads(raw)
    except ValueError:
        return False
    return isinstance(lock, dict) and all(
        key in ("read", "write") and isinstance(value, dict) for key, value in lock.items()
    )


def _hardlink_lock(root: Path) -> bool:
    """Whether DVC is configured to lock with hard links (then its lock is not an flock)."""
    for name in ("config", "config.local"):
        try:
            text = (root / ".dvc" / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if re.search(r"^\s*hardlink_lock\s*=\s*(true|1|yes)\s*$", text, re.M | re.I):
            return True
    return False


def check_rwlock(root: Path) -> None:
    """Make sure DVC can read ``.dvc/tmp/rwlock`` before running it in `root`.

    A readable one, or none, is left alone. An empty one is what a DVC command killed while
    rewriting it leaves: it records no lock, so it is removed, under DVC's own repository lock
    so that no DVC command starts meanwhile; when a DVC command holds that lock, nothing is
    done (DVC itself then says the repository is busy). Anything else (text that is not DVC's
    JSON, or an empty file with a hard-link lock configured) is an RwlockError naming the one
    command that clears it."""
    import fcntl

    path = root / RWLOCK_PATH
    try:
        raw = path.read_bytes()
    except OSError:  # none, the usual case (or unreadable: DVC says so itself)
        return
    if _rwlock_readable(raw):
        return
    if raw.strip() or _hardlink_lock(root):
        raise RwlockError(rwlock_hint("is empty" if not raw.strip() else "is corrupted"))
    try:
        fd = os.open(root / REPO_LOCK_PATH, os.O_RDWR)
    except FileNotFoundError:
        fd = None
    except OSError:
        raise RwlockError(rwlock_hint("is empty")) from None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a DVC command is running: it may be rewriting the file right now
            except OSError:
                raise RwlockError(rwlock_hint("is empty")) from None
        try:
            if path.read_bytes().strip():
                return  # rewritten meanwhile: DVC reads it
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RwlockError(rwlock_hint(f"is empty and cannot be removed ({exc})")) from None
        log.warning("removed the empty %s a killed DVC command left (no DVC command is running)",
                    RWLOCK_PATH)  # fmt: skip
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


@cli_entry
def check_rwlock_main() -> int:
    """`make repro`'s pre-check: `check_rwlock` in the current directory; exit 2 with one line
    when DVC could not run."""
    check_rwlock(Path.cwd())
    return 0


def run_dvc(
    root: Path, *args: str, env: Mapping[str, str] | None = None, timeout: int = 3600
) -> subprocess.CompletedProcess[str]:
    """`dvc <args>` in `root` with this interpreter's DVC, once DVC's rwlock is readable
    (`check_rwlock`); the caller checks the return code."""
    check_rwlock(root)
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=dict(env) if env is not None else dvc_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The first ``ERROR``/``fatal`` line of a failed command's output, else its last line; for
    DVC's unreadable rwlock, the command that clears it."""
    if _RWLOCK_ERROR.search(proc.stderr or "") or _RWLOCK_ERROR.search(proc.stdout or ""):
        return rwlock_hint()
    lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if line.lower().startswith(("error", "fatal"))]
    if errors:
        return errors[0][:300]
    return lines[-1][:300] if lines else f"exit code {proc.returncode}"


def dvc_status(root: Path) -> Mapping[str, Any]:
    """`dvc status --json` of the workspace."""
    proc = run_dvc(root, "status", "--json", timeout=600)
    if proc.returncode != 0:
        raise GitopsMLError(f"dvc status failed: {error_line(proc)}")
    try:
        return json.loads(proc.stdout or "{}")
    except ValueError:
        raise GitopsMLError(f"dvc status printed no JSON: {proc.stdout[:200]!r}") from None


def has_remote(root: Path) -> bool:
    """Whether the repository configures a DVC remote (`dvc fetch` fails at once without)."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            return bool(repo.config["remote"])
    except Exception as exc:  # an unreadable config: let `dvc fetch` say what is wrong
        log.debug("reading the DVC config failed (%s)", exc)
        return True


@dataclass(frozen=True)
class Declared:
    """The model dvc.lock declares, and the stage entry that produced it."""

    stage: str
    path: str
    md5: str
    lock_md5: str
    entry: Mapping[str, Any] = field(repr=False)
    lock: Mapping[str, Any] = field(repr=False)

    @property
    def deps(self) -> dict[str, str | None]:
        return stage_deps(self.entry)

    @property
    def params(self) -> dict[str, Any]:
        return stage_params(self.entry)

    @property
    def train_data_md5(self) -> str | None:
        """The md5 of the stage's data input: a dependency under ``data/`` (else not code)."""
        deps = self.deps
        data = [p for p in deps if p.startswith("data/")]
        data = data or [p for p in deps if not p.endswith(".py") and not p.startswith("src/")]
        return deps[sorted(data)[0]] if data else None


def declared_model(
    lock: Mapping[str, Any],
    lock_md5: str,
    *,
    stage: str = TRAIN_STAGE,
    path: str = MODEL_PATH,
    where: str = LOCK_PATH,
) -> Declared:
    """The md5 the lock records for `path` as an output of `stage`."""
    entry = lock["stages"].get(stage)
    if not isinstance(entry, Mapping):
        raise LockError(f"{where}: no '{stage}' stage (run `dvc repro` and commit dvc.lock)")
    for out in entry.get("outs") or []:
        if isinstance(out, Mapping) and out.get("path") == path:
            md5 = out.get("md5")
            if not isinstance(md5, str) or not re.fullmatch(r"[0-9a-f]{32}", md5):
                raise LockError(f"{where}: stage '{stage}' output {path} has no md5")
            return Declared(stage, path, md5, lock_md5, entry, lock)
    raise LockError(f"{where}: stage '{stage}' has no output {path}")


def read_declared(lock_path: str | os.PathLike[str]) -> Declared:
    lock = read_lock(lock_path)
    return declared_model(lock, file_md5(lock_path), where=str(lock_path))


def stage_differences(declared: Mapping[str, Any], rebuilt: Mapping[str, Any] | None) -> list[str]:
    """What the rebuilt stage recorded differently from the declared one (outputs excepted)."""
    if rebuilt is None:
        return ["the rebuild recorded no entry for the stage"]
    diffs = []
    if declared.get("cmd") != rebuilt.get("cmd"):
        diffs.append("the command differs")
    old, new = stage_deps(declared), stage_deps(rebuilt)
    for path in sorted(set(old) | set(new)):
        if path not in old:
            diffs.append(f"dependency {path} is not in dvc.lock")
        elif path not in new:
            diffs.append(f"dependency {path} is in dvc.lock but not in dvc.yaml")
        elif old[path] != new[path]:
            diffs.append(
                f"dependency {path} differs (md5 {new[path]} in the workspace, "
                f"{old[path]} in dvc.lock)"
            )
    old_p, new_p = stage_params(declared), stage_params(rebuilt)
    for key in sorted(set(old_p) | set(new_p)):
        if key not in old_p or key not in new_p:
            where = "not in dvc.lock" if key not in old_p else "in dvc.lock but not in dvc.yaml"
            diffs.append(f"param {key} is {where}")
        elif old_p[key] != new_p[key]:
            diffs.append(
                f"param {key} differs ({short(new_p[key])} in the workspace, "
                f"{short(old_p[key])} in dvc.lock)"
            )
    return diffs


_MISSING = object()


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


def workspace_differences(root: Path, declared: Declared) -> list[str]:
    """What the workspace already shows differs from the stage's entry: params, source files.

    A cheap check before a rebuild that could only be refused. Dependencies another stage
    writes (data splits) are left to the rebuild, which regenerates and then compares them.
    """
    produced = {
        out.get("path")
        for entry in (declared.lock.get("stages") or {}).values()
        for out in (entry or {}).get("outs") or []
        if isinstance(out, Mapping)
    }
    diffs = []
    for dep in declared.entry.get("deps") or []:
        if not isinstance(dep, Mapping):
            continue
        path, md5 = dep.get("path"), dep.get("md5")
        if path in produced or dep.get("hash") != "md5" or not md5 or md5.endswith(".dir"):
            continue
        file = root / path
        if not file.is_file():
            diffs.append(f"dependency {path} is missing from the workspace")
        elif (actual := file_md5(file)) != md5:
            diffs.append(
                f"dependency {path} differs (md5 {actual} in the workspace, {md5} in dvc.lock)"
            )
    for name, values in (declared.entry.get("params") or {}).items():
        try:
            current = load_yaml((root / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            diffs.append(f"params file {name} cannot be read")
            continue
        for key, value in (values or {}).items():
            label = key if name == "params.yaml" else f"{name}:{key}"
            now = _lookup(current, key)
            if now is _MISSING:
                diffs.append(f"param {label} is gone")
            elif now != value:
                diffs.append(
                    f"param {label} differs ({short(now)} in the workspace, "
                    f"{short(value)} in dvc.lock)"
                )
    return diffs
