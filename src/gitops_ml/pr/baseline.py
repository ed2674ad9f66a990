"""Is the base's champion comparable with the pull request's model at all?

A champion trained on another data contract (another target, task, label set or feature
columns) cannot be scored on the PR's test split, and its metrics measure another problem. Such
a pull request (typically the first one of a repository made from the template, which swaps the
demo data for the team's own) starts a new baseline: the gate and the report say so, skip the
champion comparison and the regression rules with that reason, and apply everything else.

The contract is read from what each side declares, without loading any model: params.yaml's
`data` section and the schema file its dvc.yaml names (``vars: - schema: ...``). `model_fit`
is the same question asked of a loaded model, for a base whose declarations say too little.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops_ml.errors import GitopsMLError
from gitops_ml.files import load_yaml
from gitops_ml.lineage import git
from gitops_ml.lineage.dvclock import PARAMS_PATH

DVC_YAML = "dvc.yaml"


class NewBaseline(GitopsMLError):
    """The champion cannot be compared with the PR's model; the message says why."""


@dataclass(frozen=True)
class Contract:
    """What a model is trained to do, as its commit declares it."""

    target: str
    task: str
    features: frozenset[str] | None  # None: the schema is unknown
    labels: frozenset[str] | None  # classification labels from the schema, as text


def _schema_path(dvc_yaml: Any) -> str | None:
    entries = dvc_yaml.get("vars", []) if isinstance(dvc_yaml, Mapping) else []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("schema"), str):
            return entry["schema"]
    return None


def contract_of(params: Any, schema: Any) -> Contract | None:
    """The contract of a params mapping and a schema mapping (either may be None or malformed:
    what cannot be read is left unknown)."""
    data = params.get("data") if isinstance(params, Mapping) else None
    if not isinstance(data, Mapping) or not isinstance(data.get("target"), str):
        return None
    target, task = data["target"], str(data.get("task"))
    features = labels = None
    if isinstance(schema, Mapping) and isinstance(schema.get("columns"), Mapping):
        dropped = data.get("drop_columns") or []
        dropped = set(dropped) if isinstance(dropped, list) else set()
        features = frozenset(str(c) for c in schema["columns"] if c not in dropped)
        spec = schema.get("target")
        if isinstance(spec, Mapping) and isinstance(spec.get("labels"), list):
            labels = frozenset(str(v) for v in spec["labels"])
    if task == "classification":  # the old name, from before binary and multiclass
        task = "multiclass" if labels is not None and len(labels) > 2 else "binary"
    return Contract(target, task, features, labels)


def _names(values: frozenset[str], limit: int = 6) -> str:
    shown = sorted(values)
    return ", ".join(shown[:limit]) + (f", ... ({len(shown)} in all)" if len(shown) > limit else "")


def differences(old: Contract, new: Contract) -> list[str]:
    """What about the PR's contract the champion cannot take, one phrase each (empty: none)."""
    out = []
    if old.target != new.target:
        out.append(f"target '{old.target}' -> '{new.target}'")
    if old.task != new.task:
        out.append(f"task {old.task} -> {new.task}")
    if old.labels is not None and new.labels is not None and old.labels != new.labels:
        out.append(f"labels [{_names(old.labels)}] -> [{_names(new.labels)}]")
    # New columns alone are no break: the champion ignores them, and a PR adding a feature is
    # exactly what the champion comparison is for.
    if old.features is not None and new.features is not None:
        gone = old.features - new.features
        if gone:
            out.append(f"columns the champion needs are gone: {_names(gone)}")
    return out


def _yaml(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return None


def contract_at(root: Path, rev: str) -> Contract | None:
    """The contract a git revision declares."""
    params = _yaml(git.show(rev, PARAMS_PATH, cwd=root))
    schema_file = _schema_path(_yaml(git.show(rev, DVC_YAML, cwd=root)))
    schema = _yaml(git.show(rev, schema_file, cwd=root)) if schema_file else None
    return contract_of(params, schema)


def workspace_contract(root: Path, params_path: Path) -> Contract | None:
    """The contract of the working tree (the pull request after `dvc repro`)."""

    def read(path: Path) -> Any:
        try:
            return _yaml(path.read_text(encoding="utf-8"))
        except OSError:
            return None

    schema_file = _schema_path(read(root / DVC_YAML))
    return contract_of(read(params_path), read(root / schema_file) if schema_file else None)


def new_baseline_reason(root: Path, base_sha: str, base_ref: str, params_path: Path) -> str | None:
    """Why the PR starts a new baseline against `base_sha`, or None when it is comparable."""
    old, new = contract_at(root, base_sha), workspace_contract(root, params_path)
    if old is None or new is None:
        return None
    changes = differences(old, new)
    if not changes:
        return None
    return f"the champion on {base_ref} was trained on another data contract ({'; '.join(changes)})"


def model_fit(model: Any, test: Any, target: str, task: str) -> str | None:
    """Why a loaded champion cannot be scored on `test` (None when it can)."""
    from gitops_ml.config import is_classification

    needed = [str(c) for c in getattr(model, "feature_names_in_", ())]
    missing = [c for c in needed if c not in test.columns or c == target]
    if missing:
        return f"the champion needs columns the PR's data lacks: {_names(frozenset(missing))}"
    classifier = hasattr(model, "classes_")
    if classifier != is_classification(task):
        return f"the champion is a {'classifier' if classifier else 'regressor'}, the PR's task is {task}"
    if classifier:
        classes = {str(c) for c in model.classes_}
        labels = {str(v) for v in test[target].dropna().unique()}
        if not labels <= classes:
            return (
                f"the PR's labels [{_names(frozenset(labels))}] are not the champion's "
                f"[{_names(frozenset(classes))}]"
            )
        if task == "binary" and len(classes) != 2:
            return f"the champion has {len(classes)} classes, the PR's task is binary"
    return None
