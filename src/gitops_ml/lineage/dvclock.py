"""dvc.lock as the GitOps commands read it: where things are, what a stage recorded.

The gate (is the committed lock stale?), the report (which model is the champion?) and
promotion (which artifact goes to the registry?) all read the same few facts from a lock.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gitops_ml.errors import GitopsMLError

log = logging.getLogger(__name__)

LOCK_PATH = "dvc.lock"
PARAMS_PATH = "params.yaml"
TRAIN_STAGE = "train"
#: Pipeline files the GitOps commands read (paths as dvc.yaml writes them).
MODEL_PATH = "models/model.joblib"
TRAIN_PATH = "data/processed/train.parquet"
TEST_PATH = "data/processed/test.parquet"
METRICS_PATH = "reports/metrics.json"


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


def cache_path(root: Path, md5: str) -> Path:
    """Where the repository's DVC cache keeps a file with this md5 (its `cache.dir` honoured)."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            return Path(repo.cache.local.oid_to_path(md5))
    except Exception as exc:  # DVC raises many types; the default layout is the fallback
        log.debug("dvc cache lookup failed (%s); using the default cache path", exc)
        return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def short(value: Any) -> str:
    """A recorded value for a one-line message: JSON for non-strings, at most 40 characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."
