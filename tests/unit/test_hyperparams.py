"""The scikit-learn-free hyperparameter check (gitops_ml.hyperparams) against scikit-learn's own.

The table it reads must be what scripts/hyperparams_table.py makes from the installed
scikit-learn; on every parameter of every model, good and bad values must get the answer
`gitops_ml.models.validate_model` gives (same ConfigError text), or be handed back to it; and
`gitops-ml check-params` must not import scikit-learn.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from gitops_ml import hyperparams
from gitops_ml.config import MODEL_KINDS, parse_params
from gitops_ml.errors import ConfigError
from gitops_ml.models import MODELS, validate_model
from tests.conftest import ROOT, template_settings

#: A task of each estimator kind.
TASK = {"classification": "binary", "regression": "regression"}
FALLBACK = "fallback"
ESTIMATORS = [(model, kind) for model, kinds in sorted(MODELS.items()) for kind in sorted(kinds)]


def load_generator() -> ModuleType:
    """scripts/hyperparams_table.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "hyperparams_table", ROOT / "scripts" / "hyperparams_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast(model: str, task: str, params: dict[Any, Any]) -> Any:
    """The table's answer: "ok", FALLBACK, or ("error", message)."""
    try:
        return "ok" if hyperparams.check_hyperparams(model, task, params) else FALLBACK
    except ConfigError as exc:
        return ("error", str(exc))


def slow(model: str, task: str, params: dict[Any, Any]) -> tuple[Any, list[str]]:
    """scikit-learn's answer, and the warnings it gave on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            validate_model(model, task, dict(params))
            outcome: Any = "ok"
        except ConfigError as exc:
            outcome = ("error", str(exc))
        except Exception as exc:  # not a ConfigError: the table must never answer for it
            outcome = ("raised", type(exc).__name__)
    return outcome, [str(w.message) for w in caught]


# --------------------------------------------------------------------------------------------
# the table


def test_shipped_table_is_the_installed_scikit_learn_s() -> None:
    generator = load_generator()
    fresh = generator.render(generator.build_table())
    shipped = hyperparams.TABLE_PATH.read_text(encoding="utf-8")
    assert fresh == shipped, (
        f"{hyperparams.TABLE_PATH.name} is stale for the installed scikit-learn: "
        f"run `{generator.COMMAND}` and commit the result"
    )


def test_table_names_every_model_class_and_parameter() -> None:
    table = hyperparams.table()
    assert {m: sorted(k) for m, k in table["estimators"].items()} == {
        m: sorted(k) for m, k in MODEL_KINDS.items()
    }
    for model, kind in ESTIMATORS:
        cls = MODELS[model][kind]
        entry = table["estimators"][model][kind]
        assert entry["class"] == cls.__name__
        assert sorted(entry["params"]) == sorted(cls().get_params(deep=False))


def test_the_package_ships_the_table() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"hyperparams.json"' in pyproject


# --------------------------------------------------------------------------------------------
# agreement with scikit-learn

GENERIC_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 100, 255, 256, 2**32 - 1, 2**32, 10**30, -(10**30),
    0.0, -0.0, 0.5, 1.0, 1.5, -0.5, 1e-12, 1e300, math.inf, -math.inf, math.nan,
    "", "auto", "none", "None", "true", "1", "0.5", "not-an-option",
    [], [1, 2], [True, False], [[0, 1]], ["a"], {}, {"a": 1}, {0: 1.0, 1: 2.0}, {"x": [1]},
]  # fmt: skip

#: Values YAML's safe loader can make that are not plain: always handed to scikit-learn.
NOT_PLAIN: list[Any] = [dt.date(2024, 1, 1), {1, 2}, b"bytes", (1, 2), [dt.date(2024, 1, 1)]]


def _interval_values(c: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for bound in (c["left"], c["right"]):
        if bound is None:
            continue
        out += [bound, float(bound), -bound]
        out += [math.nextafter(float(bound), -math.inf), math.nextafter(float(bound), math.inf)]
        if float(bound).is_integer():
            out += [int(bound), int(bound) - 1, int(bound) + 1]
    if c["left"] is not None and c["right"] is not None:
        out.append((c["left"] + c["right"]) / 2)
    return out


def _constraint_values(constraints: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for c in constraints:
        if c["kind"] == "interval":
            out += _interval_values(c)
        elif c["kind"] == "options":
            for option in c["options"]:
                out.append(option)
                if isinstance(option, str):
                    out += [option.upper(), option + "x", option[:-1], [option]]
        elif c["kind"] == "any_of":
            out += _constraint_values(c["of"])
    return out


def _kinds_known(constraints: list[dict[str, Any]]) -> bool:
    return all(
        c["kind"] in ("interval", "options", "none", "nan", "instance")
        or (c["kind"] == "any_of" and _kinds_known(c["of"]))
        for c in constraints
    )


def decidable(param: dict[str, Any]) -> bool:
    """Whether the table answers for every plain value of a parameter: scikit-learn's __init__
    only stores it, every constraint can be evaluated, and the message has a fixed text."""
    constraints = param["constraints"]
    if "fallback" in param:
        return False
    if constraints is None:
        return True
    texts = [c["text"] for c in constraints if not c["hidden"]]
    return _kinds_known(constraints) and bool(texts) and None not in texts


def cases(model: str, kind: str) -> list[dict[Any, Any]]:
    """Good and bad hyperparameters for one estimator: each parameter alone with boundary
    values, wrong types, options and near-options, then unknown names and several at once."""
    params = hyperparams.table()["estimators"][model][kind]["params"]
    out: list[dict[Any, Any]] = []
    for name, param in params.items():
        values = GENERIC_VALUES + NOT_PLAIN + _constraint_values(param["constraints"] or [])
        out += [{name: v} for v in values]
    names = sorted(params)
    out += [
        {"no_such_knob": 1},
        {names[0]: 1, "zz_unknown": 1, "aa_unknown": 2},
        {names[0]: "bad", names[-1]: "bad"},  # both bad: scikit-learn names the first in order
        {names[-1]: -1, names[0]: -1},
        {1: 2},
        {names[0]: None, 2: 3},
    ]
    return out


@pytest.mark.parametrize(("model", "kind"), ESTIMATORS)
def test_the_table_agrees_with_scikit_learn(model: str, kind: str) -> None:
    task = TASK[kind]
    params_table = hyperparams.table()["estimators"][model][kind]["params"]
    tally: Counter[str] = Counter()
    for params in cases(model, kind):
        got = fast(model, task, params)
        tally["fallback" if got == FALLBACK else "decided"] += 1
        if got == FALLBACK:
            # Only by design: a name that is not a string, a value that is not plain YAML, or
            # a parameter the table cannot fully decide (see decidable()).
            (name, value), *more = params.items()
            by_design = (
                more
                or name not in params_table
                or not hyperparams._plain(value)
                or not decidable(params_table[name])
            )
            assert by_design, f"{model}/{kind} {params!r} was handed to scikit-learn"
            continue
        want, warned = slow(model, task, params)
        assert (got, warned) == (want, []), f"{model}/{kind} {params!r}"
    assert tally["decided"] > tally["fallback"], tally


def test_values_that_are_not_plain_yaml_go_to_scikit_learn() -> None:
    for value in NOT_PLAIN:
        assert fast("random_forest", "binary", {"n_estimators": value}) == FALLBACK


def test_an_invalid_value_has_scikit_learn_s_message_without_scikit_learn() -> None:
    got = fast("hist_gradient_boosting", "binary", {"max_iter": 0})
    assert got == (
        "error",
        "params: 'train.hyperparams' for hist_gradient_boosting: The 'max_iter' parameter of "
        "HistGradientBoostingClassifier must be an int in the range [1, inf). Got 0 instead.",
    )
    assert fast("random_forest", "regression", {"bootstrap": 1}) == (
        "error",
        "params: 'train.hyperparams' for random_forest: The 'bootstrap' parameter of "
        "RandomForestRegressor must be an instance of 'bool' or an instance of 'numpy.bool'. "
        "Got 1 instead.",
    )
    assert fast("ridge", "regression", {"nope": 1, "alpha": -1}) == (
        "error",
        "params: unknown hyperparameter 'train.hyperparams.nope' for ridge",
    )


def test_what_the_table_cannot_decide_goes_to_scikit_learn() -> None:
    # alpha may also be an array: only scikit-learn can say whether -1 is one.
    assert fast("ridge", "regression", {"alpha": -1}) == FALLBACK
    # scikit-learn prints a set of options in hash order: its message cannot be reproduced.
    assert fast("logistic_regression", "binary", {"solver": "lbgfs"}) == FALLBACK
    assert fast("logistic_regression", "binary", {"solver": "lbfgs"}) == "ok"
    # RandomForestRegressor.__init__ rewrites criterion="friedman_mse" (with a FutureWarning).
    assert fast("random_forest", "regression", {"criterion": "squared_error"}) == FALLBACK
    # A parameter scikit-learn checks first may be undecidable: the later bad one waits.
    assert fast("ridge", "regression", {"alpha": -1, "tol": -1}) == FALLBACK
    assert fast("ridge", "regression", {"alpha": 1.0, "tol": -1})[0] == "error"


def test_a_table_for_another_scikit_learn_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hyperparams, "_installed_sklearn", lambda: "0.1")
    assert fast("hist_gradient_boosting", "binary", {"max_iter": 0}) == FALLBACK


def test_without_its_table_the_check_goes_to_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    hyperparams.table.cache_clear()
    monkeypatch.setattr(hyperparams, "TABLE_PATH", hyperparams.TABLE_PATH.with_name("missing"))
    try:
        assert fast("hist_gradient_boosting", "binary", {"max_iter": 0}) == FALLBACK
    finally:
        hyperparams.table.cache_clear()


def _raw(model: str, hyper: dict[str, Any]) -> dict[str, Any]:
    raw = template_settings()
    raw["train"].update(model=model, hyperparams=hyper)
    return raw


def test_load_params_asks_scikit_learn_only_when_the_table_cannot_tell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gitops_ml.models

    calls = []
    monkeypatch.setattr(gitops_ml.models, "validate_model", lambda *a: calls.append(a))
    parse_params(
        _raw("random_forest", {"n_estimators": 10, "max_depth": None}), check_estimator=True
    )
    with pytest.raises(ConfigError, match=r"'n_estimators' parameter of RandomForestClassifier"):
        parse_params(_raw("random_forest", {"n_estimators": 0}), check_estimator=True)
    assert calls == []
    parse_params(_raw("random_forest", {"monotonic_cst": [1, 0]}), check_estimator=True)
    assert calls == [("random_forest", "binary", {"monotonic_cst": [1, 0]})]


# --------------------------------------------------------------------------------------------
# check-params does not import scikit-learn

_PROBE = """
import sys
from gitops_ml.cli import main
code = main(["check-params", "--params", sys.argv[1]])
heavy = ("sklearn", "pandera", "pandas.core.frame")  # pandas itself may be a lazy stub
print(code, [name for name in heavy if name in sys.modules])
"""


@pytest.mark.parametrize(
    ("hyper", "expected"),
    [
        ({}, "0 []"),
        ({"max_iter": 50, "learning_rate": 0.05, "early_stopping": True}, "0 []"),
        ({"max_iter": 0}, "2 []"),
    ],
)
def test_check_params_does_not_import_scikit_learn(
    tmp_path: Path, hyper: dict[str, Any], expected: str
) -> None:
    for name in ("gitops.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "data" / "schema", tmp_path / "data" / "schema")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["train"]["hyperparams"] = hyper
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "params.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.stdout.splitlines()[-1] == expected, run.stderr
    if expected.startswith("2"):
        assert "The 'max_iter' parameter of HistGradientBoostingClassifier" in run.stderr
