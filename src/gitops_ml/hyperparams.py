"""Check `train.hyperparams` without importing scikit-learn (seconds of start-up).

scikit-learn validates an estimator's constructor parameters against its class's
`_parameter_constraints`. hyperparams.json, written by `scripts/hyperparams_table.py` from the
installed scikit-learn, holds those constraints as data; `check_hyperparams` evaluates them the
way `sklearn.utils._param_validation.validate_parameter_constraints` does and raises the
ConfigError `gitops_ml.models.make_estimator` would, with scikit-learn's own message.

It answers only what it can answer exactly, and returns False ("ask scikit-learn") otherwise: a
value that is not plain YAML (None, bool, int, float, str, lists and mappings of them), a
constraint it cannot evaluate (array-like, callable, ...), a parameter whose `__init__` does
more than store it, an error message that scikit-learn prints in hash order (a set of options),
or a table made for another scikit-learn version. The caller then runs `validate_model`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitops_ml.config import estimator_kind
from gitops_ml.errors import ConfigError

TABLE_PATH = Path(__file__).with_name("hyperparams.json")
_PLAIN_SCALARS = (type(None), bool, int, float, str)
_MAX_DEPTH = 32


@functools.cache
def table() -> dict[str, Any] | None:
    """The shipped constraint table (None if it cannot be read: scikit-learn decides)."""
    try:
        return json.loads(TABLE_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@functools.cache
def _installed_sklearn() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return None


def _plain(value: Any, depth: int = 0) -> bool:
    """A value as YAML's safe loader makes it (exact types, no dates, sets or binary)."""
    if type(value) in _PLAIN_SCALARS:
        return True
    if depth >= _MAX_DEPTH:  # anchors can make a list contain itself
        return False
    if type(value) is list:
        return all(_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _satisfied(constraint: Mapping[str, Any], value: Any) -> bool | None:
    """Whether a plain value meets one constraint; None when only scikit-learn can tell."""
    kind = constraint["kind"]
    type_name = type(value).__name__
    if kind == "none":
        return value is None
    if kind == "nan":
        return type(value) is float and math.isnan(value)
    if kind == "instance":
        return type_name in constraint["accepts"]
    if kind == "interval":
        if type_name not in constraint["accepts"]:
            return False
        if type(value) is float and math.isnan(value):
            return False
        left = -math.inf if constraint["left"] is None else constraint["left"]
        right = math.inf if constraint["right"] is None else constraint["right"]
        closed = constraint["closed"]
        if value < left if closed in ("left", "both") else value <= left:
            return False
        return not (value > right if closed in ("right", "both") else value >= right)
    if kind == "options":
        if type_name not in constraint["accepts"]:
            return False
        if isinstance(value, list | dict):  # unhashable: scikit-learn's `in` on a set raises
            return None
        return value in constraint["options"]
    if kind == "any_of":
        return _any(constraint["of"], value)
    return None  # "undecidable" and any kind this version does not know


def _any(constraints: Sequence[Mapping[str, Any]], value: Any) -> bool | None:
    unknown = False
    for constraint in constraints:
        result = _satisfied(constraint, value)
        if result:
            return True
        unknown = unknown or result is None
    return None if unknown else False


def _message(
    cls: str, name: str, constraints: Sequence[Mapping[str, Any]], value: Any
) -> str | None:
    """InvalidParameterError's text, or None when scikit-learn's wording is not reproducible."""
    texts = [c.get("text") for c in constraints if not c["hidden"]]
    if not texts or any(t is None for t in texts):
        return None
    joined = texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"
    return f"The {name!r} parameter of {cls} must be {joined}. Got {value!r} instead."


def check_hyperparams(model: str, task: str, hyperparams: Mapping[Any, Any]) -> bool:
    """Check `hyperparams` as `gitops_ml.models.validate_model(model, task, hyperparams)` does.

    Returns True when they are valid, raises its ConfigError when they are not, and returns
    False when the table cannot decide (the caller must then ask scikit-learn). `model` must
    already be known to solve `task` (`config.check_model_name`).
    """
    data = table()
    if data is None or _installed_sklearn() != data["scikit-learn"]:
        return False
    entry = data["estimators"].get(model, {}).get(estimator_kind(task))
    if entry is None or "fallback" in entry:
        return False
    if not all(type(k) is str for k in hyperparams) or not all(
        _plain(v) for v in hyperparams.values()
    ):
        return False
    params = entry["params"]
    unknown = sorted(set(hyperparams) - set(params))
    if unknown:
        raise ConfigError(
            f"params: unknown hyperparameter 'train.hyperparams.{unknown[0]}' for {model}"
        )
    # scikit-learn checks every parameter in name order and stops at the first bad one; those
    # not given (defaults, and the seed and job count make_estimator adds) are valid.
    for name in sorted(hyperparams):
        param = params[name]
        if "fallback" in param:
            return False
        constraints = param["constraints"]
        if constraints is None:  # "no_validation", or no constraint declared
            continue
        value = hyperparams[name]
        result = _any(constraints, value)
        if result is None:
            return False
        if not result:
            message = _message(entry["class"], name, constraints, value)
            if message is None:
                return False
            raise ConfigError(f"params: 'train.hyperparams' for {model}: {message}")
    return True
