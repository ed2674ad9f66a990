"""`gitops-ml changes`: does a pull request touch anything a pipeline stage depends on?

A pull request that edits the README, the tests or a workflow changes no stage's inputs, so
its outputs are the base's outputs: pr.yml then checks them out from the DVC remote or main's
cached DVC objects instead of running `dvc repro`. The answer comes from the commits alone (no
DVC cache needed), read the way DVC reads a pipeline: the base's dvc.lock lists every stage's
dependencies, outputs and the param values it recorded.

A path is a pipeline input when it is dvc.yaml, dvc.lock, a `.dvc` file, a vars file dvc.yaml
reads, the pinned environment (requirements.lock, its runtime part, pyproject.toml), or a
dependency or output of a stage (a directory's files included); a params file counts only when
one of the keys a stage recorded has another value. Outputs count too, so a hand-edited metrics file is never trusted.
After the check-out, pr.yml still asks `dvc status` whether everything is up to date: this
module explains the decision, DVC confirms it.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gitops_ml.cliargs import exit_codes
from gitops_ml.errors import ConfigError
from gitops_ml.files import load_yaml
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.git import git, merge_base, repo_root, resolve, show

log = logging.getLogger(__name__)

#: Files whose change re-runs the pipeline whatever the lock says: its definition, its record,
#: and the pinned environment the stages run in (a new scikit-learn is a new model).
PIPELINE_FILES = {
    "dvc.yaml": "the pipeline's definition",
    "dvc.lock": "the pipeline's record",
    "requirements.lock": "the pinned environment the stages run in",
    "requirements-runtime.lock": "the pinned environment the stages run in",
    "pyproject.toml": "the project's package definition",
}
#: How many unrelated file names the one-line verdict lists before "and N more".
SHOWN = 5


@dataclass(frozen=True)
class Changes:
    """What a branch changed since its merge base with `base`, seen from the pipeline."""

    base: str  # the merge base's SHA
    files: tuple[str, ...]  # every changed path
    inputs: tuple[tuple[str, str], ...]  # (path, why it is a pipeline input)

    @property
    def reproduce(self) -> bool:
        return bool(self.inputs)

    def describe(self) -> str:
        where = f"since {self.base[:12]}"
        if self.inputs:
            lines = [f"Pipeline inputs changed {where}: `dvc repro` runs the affected stages."]
            lines += [f"  {path}: {why}" for path, why in self.inputs]
            return "\n".join(lines)
        if not self.files:
            return f"Nothing changed {where}: no stage needs to run."
        shown = ", ".join(self.files[:SHOWN])
        more = f" and {len(self.files) - SHOWN} more" if len(self.files) > SHOWN else ""
        return (
            f"No DVC dependency changed {where} ({len(self.files)} files: {shown}{more}): "
            "no stage needs to run."
        )


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def _lookup(params: Any, key: str) -> tuple[bool, Any]:
    """The value of dotted `key` in a params mapping, and whether it exists."""
    node = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _yaml(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: not valid YAML ({exc.__class__.__name__})") from None


def _vars_files(pipeline: Any) -> list[str]:
    """Files dvc.yaml's `vars:` reads (inline mappings are part of dvc.yaml itself)."""
    if not isinstance(pipeline, Mapping):
        return []
    return [item.split(":", 1)[0] for item in pipeline.get("vars") or [] if isinstance(item, str)]


def classify(
    files: Sequence[str],
    lock: Mapping[str, Any] | None,
    pipeline: Any,
    params_at: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """The changed `files` that are pipeline inputs, each with the reason.

    `lock` and `pipeline` are the base's dvc.lock and dvc.yaml; `params_at` maps each params
    file a stage recorded to its content at the branch's head (None when deleted).
    """
    watched: list[tuple[str, str]] = [(p, why) for p, why in PIPELINE_FILES.items()]
    watched += [(p, "a file dvc.yaml's vars read") for p in _vars_files(pipeline)]
    params_files: dict[str, list[tuple[str, str, Any]]] = {}
    for name, entry in dvclock.stages(lock).items():
        if not isinstance(entry, Mapping):
            continue
        watched += [(p, f"dependency of {name}") for p in dvclock.stage_deps(entry)]
        watched += [(p, f"output of {name}") for p in dvclock.stage_outs(entry)]
        for file, values in (entry.get("params") or {}).items():
            for key, value in (values or {}).items():
                params_files.setdefault(file, []).append((name, key, value))

    inputs: list[tuple[str, str]] = []
    for path in files:
        if path.endswith(".dvc") and PurePosixPath(path).name != ".dvc":
            inputs.append((path, "a DVC-tracked data file"))
            continue
        if path in params_files:
            changed = [
                f"{key} ({name})"
                for name, key, value in params_files[path]
                if _lookup(params_at.get(path), key) != (True, value)
            ]
            if changed:
                inputs.append((path, "params " + ", ".join(dict.fromkeys(changed))))
            continue
        reasons = [why for root, why in watched if _under(path, root)]
        if reasons:
            inputs.append((path, _join(reasons)))
    return inputs


def _join(reasons: list[str]) -> str:
    """ "dependency of a", "dependency of b", "output of a" -> "dependency of a, b; output of a"."""
    grouped: dict[str, list[str]] = {}
    for why in dict.fromkeys(reasons):
        kind, sep, stage = why.partition(" of ")
        if sep and kind in ("dependency", "output"):
            grouped.setdefault(f"{kind} of", []).append(stage)
        else:
            grouped.setdefault(why, [])
    return "; ".join(f"{k} {', '.join(v)}" if v else k for k, v in grouped.items())


def changed_files(base: str, cwd: Path) -> tuple[str, list[str]]:
    """The merge base of `base` and HEAD, and the paths changed since it (both sides of a
    rename)."""
    head = resolve("HEAD", cwd=cwd)
    fork = merge_base(resolve(base, cwd=cwd), head, cwd=cwd)
    out = git("diff", "--name-only", "--no-renames", "-z", fork, head, cwd=cwd) or ""
    return fork, sorted({p for p in out.split("\0") if p})


def pipeline_changes(base: str, cwd: Path | None = None) -> Changes:
    """What HEAD changed since its merge base with `base`, and which of it the pipeline reads."""
    root = repo_root(cwd or Path.cwd())
    fork, files = changed_files(base, root)
    lock = _yaml(show(fork, dvclock.LOCK_PATH, cwd=root), f"{dvclock.LOCK_PATH} at {fork[:12]}")
    if lock is None:  # the base never ran the pipeline: nothing to reuse
        return Changes(fork, tuple(files), ((dvclock.LOCK_PATH, "the base has no dvc.lock"),))
    pipeline = _yaml(show(fork, "dvc.yaml", cwd=root), f"dvc.yaml at {fork[:12]}")
    params_at = {
        path: _yaml(show("HEAD", path, cwd=root), f"{path} at HEAD")
        for path in _params_files(lock)
        if path in files
    }
    return Changes(fork, tuple(files), tuple(classify(files, lock, pipeline, params_at)))


def _params_files(lock: Mapping[str, Any]) -> Iterable[str]:
    for entry in dvclock.stages(lock).values():
        if isinstance(entry, Mapping):
            yield from entry.get("params") or {}


def _changes_cmd(args: argparse.Namespace) -> int:
    changes = pipeline_changes(args.base)
    print(changes.describe())
    if args.github_output:
        with open(args.github_output, "a", encoding="utf-8") as fh:
            fh.write(f"reproduce={'true' if changes.reproduce else 'false'}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `changes` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "changes",
        help="say whether a branch changed any stage's inputs",
        description="Compare HEAD with its merge base with --base and list the changed files "
        "that are pipeline inputs (dependencies, outputs and recorded params of the base's "
        "dvc.lock, dvc.yaml, .dvc files, the pinned environment). pr.yml runs no stage when "
        "there are none.",
        epilog=exit_codes("the answer was printed (whether or not anything changed)"),
    )
    p.add_argument("--base", required=True, help="the base ref, e.g. origin/main")
    p.add_argument(
        "--github-output",
        metavar="PATH",
        help="also append reproduce=true|false to this file (a step's $GITHUB_OUTPUT)",
    )
    p.set_defaults(func=_changes_cmd)
