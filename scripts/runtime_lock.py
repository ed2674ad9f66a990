"""Write requirements-runtime.lock: the pins of requirements.lock the pipeline and the commands need.

`make install` installs requirements.lock whole: the runtime dependencies of pyproject.toml and the
test and workflow tools of its `dev` extra (pytest, act, moto, zizmor, the data-set packages,
Dask). The workflows only run the pipeline and `gitops-ml`, so they install
requirements-runtime.lock (`make install-runtime`): the same pins, limited to what
pyproject.toml's `dependencies` need, followed through every package's own requirements (extras
and environment markers included) as the packages installed from requirements.lock declare them,
plus setuptools (the editable install of the project builds with it).

Run by `make lock` after it pins requirements.lock; `--check` exits 1, naming the difference,
when the file is not what this script would write (a test runs it).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# The runtime part of requirements.lock (scripts/runtime_lock.py, run by 'make lock'):\n"
    "# the pipeline and the gitops-ml commands, without the test tools; 'make install-runtime'.\n"
)
#: Needed to install the project itself (editable, without build isolation).
BUILD = ("setuptools",)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


class LockError(Exception):
    """The runtime lock cannot be derived."""


def pins(lock_text: str) -> dict[str, tuple[str, str]]:
    """canonical name -> (the lock's line, its version) for every ``name==version`` line."""
    found = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            found[canonicalize_name(match.group(1))] = (line.strip(), match.group(2))
    return found


def runtime_requirements(pyproject: Path) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project.get("dependencies", [])]


def needed(roots: list[Requirement], installed_version: dict[str, str]) -> set[str]:
    """The canonical names `roots` need, through the installed packages' requirements: each
    requirement's markers evaluated for this interpreter, `extra` markers for the extras asked."""
    extras_of: dict[str, set[str]] = {}
    todo = [
        (canonicalize_name(req.name), set(req.extras))
        for req in roots
        if req.marker is None or req.marker.evaluate({"extra": ""})
    ]
    while todo:
        name, extras = todo.pop()
        first = name not in extras_of
        have = extras_of.setdefault(name, set())
        new = extras - have
        if not first and not new:
            continue
        have |= new
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LockError(f"{name} is needed but not installed: run 'make install'") from None
        if name in installed_version and dist.version != installed_version[name]:
            raise LockError(
                f"{name} {dist.version} is installed but requirements.lock pins "
                f"{installed_version[name]}: run 'make install'"
            )
        for text in dist.requires or []:
            req = Requirement(text)
            wanted = [""] if first else []
            wanted += sorted(new)
            if req.marker is None:
                applies = first
            else:
                applies = any(req.marker.evaluate({"extra": extra}) for extra in wanted)
            if applies:
                todo.append((canonicalize_name(req.name), set(req.extras)))
    return set(extras_of)


def render(lock: Path, pyproject: Path) -> str:
    """The runtime lock's text for `lock` and `pyproject`."""
    pinned = pins(lock.read_text(encoding="utf-8"))
    versions = {name: version for name, (_, version) in pinned.items()}
    roots = runtime_requirements(pyproject) + [Requirement(name) for name in BUILD]
    names = needed(roots, versions)
    missing = sorted(names - set(pinned))
    if missing:
        raise LockError(f"{lock.name} does not pin {', '.join(missing)}: run 'make lock'")
    lines = sorted((pinned[name][0] for name in names), key=str.lower)
    return HEADER + "".join(f"{line}\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    parser.add_argument("--output", type=Path, default=ROOT / "requirements-runtime.lock")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if --output is not what would be written"
    )
    args = parser.parse_args(argv)
    try:
        text = render(args.lock, args.pyproject)
    except (LockError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(args.output), "expected", lineterm=""
            )
            print(f"error: {args.output.name} is out of date: run 'make lock'", file=sys.stderr)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            return 1
        return 0
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.output)
    print(f"wrote {args.output.name}: {len(text.splitlines()) - 2} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
