"""Atomic file writes: a failed stage never leaves a half-written or emptied output behind."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml.errors import DataError

if TYPE_CHECKING:  # pandas costs a second to import: only the functions that use it do
    import pandas as pd

#: Where this machine keeps what gitops-ml computed and may reuse (default: the user's cache).
CACHE_ENV = "GITOPS_ML_CACHE_DIR"


def cache_dir() -> Path:
    """The folder of `CACHE_ENV`, else ``gitops-ml`` in the user's cache folder (not created)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gitops-ml"
    )
    return Path(root)


def _default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give: mkstemp and mkdtemp use 0600 and 0700."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def clean_leftovers(target: Path) -> list[Path]:
    """Remove what a killed run left beside `target`: the temporary files and folders named
    ``.<name>.<pid>.*.tmp`` whose process is gone (a live one may still be writing), and, for a
    folder, restore ``.<name>.old`` when a kill fell between the two renames of `atomic_dir`.
    Returns what was removed; the next write of `target` calls it."""
    removed = []
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = leftover.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    old = target.parent / f".{target.name}.old"
    if old.is_dir() and not target.exists():
        os.replace(old, target)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    prefix = f".{target.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `path` whole if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    prefix = f".{target.name}.{os.getpid()}."
    tmp_path = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    old = target.parent / f".{target.name}.old"
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode(directory=True))
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp_path, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` through libyaml when PyYAML has it (8x faster on a dvc.lock), same result."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON with sorted keys and a trailing newline, so diffs in git stay small."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_parquet(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write a frame to parquet deterministically (no index, fixed compression)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")


def file_md5(path: str | os.PathLike[str]) -> str:
    """MD5 of a file's bytes: the same digest DVC records in dvc.lock."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_parquet(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a stage's parquet input; a missing or unreadable file is a DataError naming it."""
    import pandas as pd

    if not Path(path).is_file():
        raise DataError(f"{path}: file not found (run the stage that writes it first)")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read parquet: {str(exc).splitlines()[0][:200]}") from None
