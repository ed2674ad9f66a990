"""The few git queries the report and the gate need, as one-line errors instead of tracebacks.

A CI checkout with the default `fetch-depth: 1` has no base commit and no merge base: that case
gets an error that says how to fix the checkout, not a bare "unknown revision".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gitops_ml.errors import GitopsMLError

UNSHALLOW_HINT = (
    "this is a shallow clone: run `git fetch --unshallow` (or check out with `fetch-depth: 0` "
    "in actions/checkout) so the base commit and the merge base are available"
)


class GitError(GitopsMLError):
    """A git command failed: not a repository, an unknown revision, a shallow clone."""


def git(*args: str, cwd: str | os.PathLike[str] = ".", check: bool = True) -> str | None:
    """stdout of `git <args>`; None on failure when `check` is false."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if proc.returncode != 0:
        if not check:
            return None
        detail = proc.stderr.strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed: {detail[0] if detail else proc.returncode}")
    return proc.stdout


def is_shallow(cwd: str | os.PathLike[str] = ".") -> bool:
    return (git("rev-parse", "--is-shallow-repository", cwd=cwd, check=False) or "").strip() == (
        "true"
    )


def repo_root(cwd: str | os.PathLike[str] = ".") -> Path:
    out = git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
    if out is None:
        raise GitError(f"{Path(cwd).resolve()} is not inside a git repository")
    return Path(out.strip())


def resolve(ref: str, cwd: str | os.PathLike[str] = ".") -> str:
    """The full commit SHA of `ref`; an unknown ref in a shallow clone says how to fix it."""
    out = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=cwd, check=False)
    if out is None:
        if is_shallow(cwd):
            raise GitError(f"unknown revision '{ref}': {UNSHALLOW_HINT}")
        hint = "fetch it" if "/" in ref else f"fetch it or use origin/{ref}"
        raise GitError(f"unknown revision '{ref}' (for a branch of the remote, {hint})")
    return out.strip()


def merge_base(a: str, b: str, cwd: str | os.PathLike[str] = ".") -> str:
    out = git("merge-base", a, b, cwd=cwd, check=False)
    if out is None:
        if is_shallow(cwd):
            raise GitError(f"no merge base of {a[:12]} and {b[:12]}: {UNSHALLOW_HINT}")
        raise GitError(f"{a[:12]} and {b[:12]} have no common ancestor")
    return out.strip()


def show(rev: str, path: str, cwd: str | os.PathLike[str] = ".") -> str | None:
    """The text of `path` at `rev`, or None when the file does not exist there."""
    return git("show", f"{rev}:{path}", cwd=cwd, check=False)
