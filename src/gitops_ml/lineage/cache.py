"""`gitops-ml check-cache`: trust a restored DVC cache only as far as its hashes go.

DVC names every object of its cache by the md5 of its content (`files/md5/ab/cdef...`, a
directory listing with a `.dir` suffix) and does not re-hash objects it finds there. pr.yml
restores main's cached objects from GitHub's cache service; before `dvc checkout` or `dvc repro`
uses any of them (a model is a pickle: loading it runs code), each object is hashed again and
removed unless its content matches its name. Anything else in the object tree (a symlink, a
stray file, a half-written temporary) is removed too. A removed object is simply missing: DVC
pulls it from the remote or the stage that makes it runs again.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from gitops_ml.cliargs import exit_codes
from gitops_ml.errors import ConfigError
from gitops_ml.files import file_md5

log = logging.getLogger(__name__)

_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class CacheCheck:
    checked: int
    removed: tuple[str, ...]  # object paths relative to the cache directory

    def describe(self, cache_dir: Path) -> str:
        line = f"{cache_dir}: {self.checked} objects checked, {len(self.removed)} removed"
        if self.removed:
            shown = ", ".join(self.removed[:5])
            more = f" and {len(self.removed) - 5} more" if len(self.removed) > 5 else ""
            line += f" (content does not match the name: {shown}{more})"
        return line


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _expected(prefix: Path, obj: Path) -> str | None:
    """The md5 an object's name declares, or None for a name DVC never writes."""
    name = obj.name.removesuffix(".dir")
    if len(prefix.name) != 2 or len(name) != 30:
        return None
    full = prefix.name + name
    return full if _HEX.fullmatch(full) else None


def check_cache(cache_dir: Path) -> CacheCheck:
    """Re-hash every object under `cache_dir`/files/md5 and remove those that do not match."""
    objects = cache_dir / "files" / "md5"
    if not objects.is_dir() or objects.is_symlink():
        if objects.is_symlink():
            objects.unlink()
        return CacheCheck(0, ())
    checked = 0
    removed: list[str] = []
    for prefix in sorted(objects.iterdir()):
        if prefix.is_symlink() or not prefix.is_dir():
            removed.append(str(prefix.relative_to(cache_dir)))
            _remove(prefix)
            continue
        for obj in sorted(prefix.iterdir()):
            checked += 1
            expected = _expected(prefix, obj)
            regular = obj.is_file() and not obj.is_symlink()
            if expected is None or not regular or file_md5(obj) != expected:
                removed.append(str(obj.relative_to(cache_dir)))
                _remove(obj)
    for path in removed:
        log.warning("removed %s: its content does not match its name", path)
    return CacheCheck(checked, tuple(removed))


def _check_cache_cmd(args: argparse.Namespace) -> int:
    cache_dir = Path(args.cache_dir)
    if cache_dir.exists() and not cache_dir.is_dir():
        raise ConfigError(f"{cache_dir}: not a directory")
    print(check_cache(cache_dir).describe(cache_dir))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `check-cache` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "check-cache",
        help="re-hash a DVC cache, remove objects that don't match",
        description="Hash every object of a DVC cache again (md5, as DVC names them) and remove "
        "each one whose content does not match its name, and anything else in the object tree. "
        "pr.yml runs it on main's cache restored from GitHub's cache before DVC uses it.",
        epilog=exit_codes("the cache was checked (removed objects are listed)"),
    )
    p.add_argument(
        "--cache-dir", default=".dvc/cache", help="the DVC cache directory (default: %(default)s)"
    )
    p.set_defaults(func=_check_cache_cmd)
