"""The one way to load a model file: its md5 is checked against what declares it first.

A model is a pickle (joblib), and unpickling runs code. Every model the GitOps commands load
comes from somewhere a pull request may have written: the DVC cache (restored from GitHub's cache,
or pulled from a remote the PR's job could push to), the remote itself, or the workspace. So the
bytes are hashed before anything deserialises them, and a file whose md5 is not the one its
dvc.lock declares is refused with one line naming both hashes. Only a model rebuilt here from
trusted code (the base branch's, in a worktree) may differ from its lock (another CPU can round a
float differently), and the caller says so explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gitops_ml.errors import GitopsMLError
from gitops_ml.files import file_md5

log = logging.getLogger(__name__)


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
    from gitops_ml.gitops.dvclock import LOCK_PATH, out_md5, read_lock

    lock_file = lock_path or Path(LOCK_PATH)
    if not lock_file.is_file():
        return None
    try:
        rel = path.resolve().relative_to(lock_file.resolve().parent).as_posix()
    except ValueError:  # outside the repository: not a pipeline output
        return None
    return out_md5(read_lock(lock_file), rel)
