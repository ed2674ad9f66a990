"""Write src/gitops_ml/hyperparams.json: scikit-learn's hyperparameter constraints as data.

`gitops-ml check-params` (and every `load_params(check_estimator=True)`) checks
`train.hyperparams` against this table instead of importing scikit-learn (seconds of start-up);
see src/gitops_ml/hyperparams.py. For each estimator of `gitops_ml.models.MODELS` the table holds
its class name and, per constructor parameter, the constraints of `cls._parameter_constraints` in
a form that needs no scikit-learn to evaluate on plain YAML values (None, bool, int, float, str,
lists and mappings of them), with the text scikit-learn's `InvalidParameterError` uses for each.
A constraint that cannot be decided that way (array-like, callable, sparse matrix, objects with
given methods, missing-value markers, anything unknown) is kept as "undecidable": a value that
needs it sends the check back to scikit-learn.

Run after upgrading scikit-learn (tests/unit/test_hyperparams.py fails until you do):

    python scripts/hyperparams_table.py          # rewrite the table
    python scripts/hyperparams_table.py --check  # exit 1 if the shipped table is stale
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import inspect
import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLE_PATH = ROOT / "src" / "gitops_ml" / "hyperparams.json"
COMMAND = "python scripts/hyperparams_table.py"

#: One value of each type a YAML file gives (safe_load), by the name the checker looks up.
PLAIN_SAMPLES: dict[str, Any] = {
    "NoneType": None,
    "bool": True,
    "int": 1,
    "float": 1.5,
    "str": "s",
    "list": [],
    "dict": {},
}


def _accepts(type_: type) -> list[str]:
    """The plain YAML types whose values are instances of `type_` (isinstance, as scikit-learn)."""
    return sorted(name for name, sample in PLAIN_SAMPLES.items() if isinstance(sample, type_))


def _plain_scalar(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return value is None or type(value) in (bool, int, str)


def _option_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, repr(value))


def convert(constraint: Any) -> dict[str, Any]:
    """One constraint (already through `make_constraint`) as a table entry.

    Only scikit-learn's own classes, matched exactly, are translated; anything else (a subclass
    may behave differently) is undecidable.
    """
    from sklearn.utils import _param_validation as pv

    kind = type(constraint)
    entry: dict[str, Any]
    if kind is pv.Interval:
        bounds = (constraint.left, constraint.right)
        if not all(
            b is None or type(b) is int or (type(b) is float and math.isfinite(b)) for b in bounds
        ):
            entry = {"kind": "undecidable", "what": "Interval with unusual bounds"}
        else:
            entry = {
                "kind": "interval",
                "accepts": _accepts(constraint.type),
                "left": constraint.left,
                "right": constraint.right,
                "closed": constraint.closed,
            }
    elif kind in (pv.Options, pv.StrOptions):
        options = constraint.options
        if not all(_plain_scalar(o) for o in options):
            entry = {"kind": "undecidable", "what": "Options of unusual values"}
        else:
            entry = {
                "kind": "options",
                "accepts": _accepts(constraint.type),
                "options": sorted(options, key=_option_key),
            }
    elif kind is pv._NoneConstraint:
        entry = {"kind": "none"}
    elif kind is pv._NanConstraint:
        entry = {"kind": "nan"}
    elif kind is pv._InstancesOf:
        entry = {"kind": "instance", "accepts": _accepts(constraint.type)}
    elif kind in (pv._RandomStates, pv._Booleans, pv._VerboseHelper):
        entry = {"kind": "any_of", "of": [convert(c) for c in constraint._constraints]}
    else:
        # array-like, sparse matrix, callable, HasMethods, MissingValues, cv_object, ...
        entry = {"kind": "undecidable", "what": kind.__name__.lstrip("_")}
    return entry


def _text(constraint: Any) -> str | None:
    """scikit-learn's text for the constraint, or None when it is not the same in every process:
    Options print their set, whose order follows string hashing (PYTHONHASHSEED)."""
    from sklearn.utils import _param_validation as pv

    parts = [constraint, *getattr(constraint, "_constraints", ())]
    if any(isinstance(p, pv.Options) and len(p.options) > 1 for p in parts):
        return None
    return str(constraint)


def constraints_entry(raw: list[Any]) -> list[dict[str, Any]]:
    """A parameter's constraint list, in scikit-learn's order, each with `hidden` and `text`."""
    from sklearn.utils._param_validation import make_constraint

    out = []
    for item in raw:
        try:
            constraint = make_constraint(item)
        except ValueError:
            out.append({"kind": "undecidable", "what": repr(item), "hidden": False, "text": None})
            continue
        entry = convert(constraint)
        entry["hidden"] = bool(constraint.hidden)
        entry["text"] = None if constraint.hidden else _text(constraint)
        out.append(entry)
    return out


def _names(node: ast.AST, among: set[str]) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in among}


def _is_super_init(stmt: ast.stmt) -> ast.Call | None:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
        and not func.value.args
    ):
        return call
    return None


def plain_init_params(mro: tuple[type, ...]) -> set[str]:
    """The constructor parameters that `__init__` (and the `super().__init__` it calls) only
    stores, unchanged, under their own name: for the others, __init__ may rewrite, refuse or warn
    about a value (RandomForestRegressor maps criterion="friedman_mse"), so only scikit-learn
    can say what it accepts."""
    owner = next((k for k in mro if "__init__" in vars(k)), None)
    if owner is None or owner is object:
        return set()
    try:
        source = textwrap.dedent(inspect.getsource(vars(owner)["__init__"]))
    except (OSError, TypeError):
        return set()
    func = ast.parse(source).body[0]
    if not isinstance(func, ast.FunctionDef) or func.args.vararg or func.args.kwarg:
        return set()
    args = {a.arg for a in func.args.args + func.args.kwonlyargs} - {"self"}
    stored: set[str] = set()
    forwarded: dict[str, str] = {}
    tainted: set[str] = set()
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    for stmt in body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(target := stmt.targets[0], ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and isinstance(stmt.value, ast.Name)
            and stmt.value.id == target.attr
            and target.attr in args
        ):
            stored.add(target.attr)
            continue
        call = _is_super_init(stmt)
        if call is not None:
            tainted |= set().union(*(_names(a, args) for a in call.args))
            for kw in call.keywords:
                if kw.arg is not None and isinstance(kw.value, ast.Name) and kw.value.id in args:
                    forwarded[kw.value.id] = kw.arg
                else:
                    tainted |= _names(kw.value, args)
            continue
        tainted |= _names(stmt, args)
    parent = mro[mro.index(owner) + 1 :]
    parent_plain = plain_init_params(parent) if forwarded else set()
    plain = set()
    for name in args - tainted:
        if name in forwarded and (forwarded[name] != name or name not in parent_plain):
            continue
        if name in stored or name in forwarded:
            plain.add(name)
    return plain


def estimator_entry(cls: type) -> dict[str, Any]:
    """The table entry of one estimator class."""
    from sklearn.base import BaseEstimator

    entry: dict[str, Any] = {"class": cls.__name__}
    overridden = [
        name
        for name in ("get_params", "_validate_params", "_get_param_names")
        if getattr(inspect.getattr_static(cls, name), "__func__", inspect.getattr_static(cls, name))
        is not getattr(
            inspect.getattr_static(BaseEstimator, name),
            "__func__",
            inspect.getattr_static(BaseEstimator, name),
        )
    ]
    names = sorted(cls().get_params(deep=False))
    if overridden or sorted(cls().get_params(deep=True)) != names:
        entry["fallback"] = f"{cls.__name__} overrides {', '.join(overridden) or 'get_params'}"
        return entry
    plain = plain_init_params(cls.__mro__)
    constraints = cls._parameter_constraints
    params: dict[str, Any] = {}
    for name in names:
        sentinel = object()
        try:
            kept = cls(**{name: sentinel}).get_params(deep=False)[name] is sentinel
        except Exception:
            kept = False
        raw = constraints.get(name, "no_validation")
        param: dict[str, Any] = {
            "constraints": None if raw == "no_validation" else constraints_entry(list(raw))
        }
        if name not in plain or not kept:
            param["fallback"] = f"{cls.__name__}.__init__ does more than store {name}"
        params[name] = param
    entry["params"] = params
    return entry


def build_table() -> dict[str, Any]:
    """The whole table, from the installed scikit-learn."""
    from gitops_ml.models import MODELS

    return {
        "about": f"scikit-learn's hyperparameter constraints for gitops_ml.hyperparams; "
        f"generated by `{COMMAND}`, do not edit",
        "scikit-learn": importlib.metadata.version("scikit-learn"),
        "estimators": {
            model: {kind: estimator_entry(cls) for kind, cls in sorted(kinds.items())}
            for model, kinds in sorted(MODELS.items())
        },
    }


def render(table: dict[str, Any]) -> str:
    """Stable JSON text: sorted keys, one indentation, a final newline."""
    return json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    parser.add_argument("--output", type=Path, default=TABLE_PATH)
    args = parser.parse_args(argv)
    text = render(build_table())
    current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale; run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    if current != text:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
