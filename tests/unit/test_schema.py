"""The data contract: malformed schema files name the key; every rule passes and fails as the
schema says; the report is structured and JSON-ready; inferred drafts validate their source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from gitops_ml.errors import ConfigError
from gitops_ml.schema import infer_schema, load_schema, parse_schema, validate
from gitops_ml.sources import make_synthetic

REPO = Path(__file__).resolve().parents[2]


def _raw() -> dict[str, Any]:
    return {
        "dataset": {"min_rows": 4, "max_duplicate_rate": 0.25},
        "target": {"name": "y", "labels": ["no", "yes"]},
        "columns": {
            "age": {"dtype": "int", "min": 0, "max": 100},
            "score": {"dtype": "float", "max_missing_rate": 0.25},
            "color": {"dtype": "category", "categories": ["red", "blue"], "max_unknown_rate": 0.25},
            "note": {"dtype": "str", "max_missing_rate": 1.0},
        },
    }


def _frame(**changes: list[Any]) -> pd.DataFrame:
    data: dict[str, list[Any]] = {
        "age": [20, 30, 40, 50, 60, 70, 80, 90],
        "score": [0.1, 0.2, None, 0.4, 0.5, 0.6, 0.7, 0.8],
        "color": ["red", "blue", "red", "blue", "red", "blue", "red", "blue"],
        "note": ["a", "b", "c", "d", "e", "f", "g", "h"],
        "y": ["no", "yes", "no", "yes", "no", "yes", "no", "yes"],
    }
    data.update(changes)
    return pd.DataFrame(data)


def _failed(df: pd.DataFrame, raw: dict[str, Any] | None = None, **kw: Any) -> list[tuple]:
    report = validate(df, parse_schema(raw or _raw(), "s.yaml"), **kw)
    return [(c.column, c.rule) for c in report.failures]


# --- parsing ---------------------------------------------------------------------------------


def _mutate(path: str, value: Any) -> dict[str, Any]:
    raw = _raw()
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        ("dataset", KeyError, "schema.dataset"),
        ("dataset.min_rows", -1, "dataset.min_rows"),
        ("dataset.max_duplicate_rate", 2, "dataset.max_duplicate_rate"),
        ("dataset.typo", 1, "dataset.typo"),
        ("target.name", KeyError, "target.name"),
        ("target.labels", [], "target.labels"),
        ("target.min", 0, "target.min"),
        ("columns.age.dtype", "integer", "columns.age.dtype"),
        ("columns.age.min", "zero", "columns.age.min"),
        ("columns.age.min", 200, "columns.age.min"),
        ("columns.age.categories", ["a"], "columns.age.categories"),
        ("columns.color.categories", KeyError, "columns.color.categories"),
        ("columns.color.min", 1, "columns.color.min"),
        ("columns.color.max_unknown_rate", -0.1, "columns.color.max_unknown_rate"),
        ("columns.score.max_missing_rate", "lots", "columns.score.max_missing_rate"),
        ("columns.y", {"dtype": "str"}, "columns.y"),
        ("columns", [], "columns"),
    ],
)
def test_malformed_schema_names_the_key(path: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_schema(_mutate(path, value), "data/schema/mine.yaml")
    assert str(info.value).startswith(f"data/schema/mine.yaml: '{key}'")


def test_load_schema_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: schema file not found"):
        load_schema(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML \(line \d+\)"):
        load_schema(bad)


def test_shipped_adult_schema_parses() -> None:
    schema = load_schema(REPO / "data/schema/adult.yaml")
    assert schema.target.name == "income"
    assert schema.target.labels == ("<=50K", ">50K")
    assert len(schema.columns) == 14


# --- rules -----------------------------------------------------------------------------------


def test_a_good_frame_passes_every_rule() -> None:
    report = validate(_frame(), parse_schema(_raw()), target="y", task="binary")
    assert report.passed, report.summary_line()
    rules = {(c.column, c.rule) for c in report.checks}
    assert {
        (None, "min_rows"),
        ("y", "min_classes"),
        ("age", "max"),
        ("color", "max_unknown_rate"),
        ("score", "max_missing_rate"),
        ("note", "dtype"),
    } <= rules


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"age": [20, 30, 40, 50, 60, 70, 80, 150]}, [("age", "max")]),
        ({"age": [-1, 30, 40, 50, 60, 70, 80, 90]}, [("age", "min")]),
        ({"age": ["20", "30", "abc", "50", "60", "70", "80", "90"]}, [("age", "dtype")]),
        ({"age": [20.5, 30, 40, 50, 60, 70, 80, 90]}, [("age", "dtype")]),
        ({"score": [None, None, None, 0.4, 0.5, 0.6, 0.7, 0.8]}, [("score", "max_missing_rate")]),
        (
            {"color": ["red", "green", "pink", "teal", "red", "blue", "red", "blue"]},
            [("color", "max_unknown_rate")],
        ),
        ({"note": [1, 2, 3, 4, 5, 6, 7, 8]}, [("note", "dtype")]),
        ({"y": ["no"] * 8}, [("y", "min_classes")]),
        ({"y": ["no", "yes", None, "yes", "no", "yes", "no", "yes"]}, [("y", "no_missing")]),
        ({"y": ["no", "yes", "maybe", "yes", "no", "yes", "no", "yes"]}, [("y", "labels")]),
    ],
    ids=[
        "max",
        "min",
        "text-in-int",
        "fraction-in-int",
        "missing-rate",
        "unknown-rate",
        "numbers-in-str",
        "one-class",
        "missing-label",
        "bad-label",
    ],
)
def test_each_rule_fails_alone(changes: dict[str, list[Any]], expected: list[tuple]) -> None:
    assert _failed(_frame(**changes), target="y", task="binary") == expected


def test_whole_floats_pass_as_int_and_few_unknown_categories_pass() -> None:
    df = _frame(
        age=[20.0, None, 40, 50, 60, 70, 80, 90],
        color=["red", "green", "red", "blue", "red", "blue", "red", "blue"],
    )
    raw = _raw()
    raw["columns"]["age"]["max_missing_rate"] = 0.2
    assert _failed(df, raw) == []


def test_dataset_rules() -> None:
    df = _frame().iloc[:2]
    assert _failed(df) == [(None, "min_rows")]
    dup = pd.concat([_frame(), _frame().iloc[:4]], ignore_index=True)
    assert _failed(dup) == [(None, "max_duplicate_rate")]
    assert _failed(_frame().assign(extra=1)) == [(None, "allow_extra_columns")]
    raw = _raw()
    raw["dataset"]["allow_extra_columns"] = True
    assert _failed(_frame().assign(extra=1), raw) == []


def test_missing_column_skips_its_other_rules() -> None:
    report = validate(_frame().drop(columns="age"), parse_schema(_raw()))
    assert [(c.column, c.rule) for c in report.failures] == [("age", "present")]
    assert not [c for c in report.checks if c.column == "age" and c.rule != "present"]


def test_target_must_match_params() -> None:
    assert _failed(_frame(), target="label", task="binary") == [("y", "name")]
    assert _failed(_frame(), target="y", task="regression") == [("y", "task")]


def test_min_class_rate() -> None:
    raw = _raw()
    raw["target"]["min_class_rate"] = 0.2
    df = _frame(y=["no"] * 7 + ["yes"])
    report = validate(df, parse_schema(raw))
    [fail] = report.failures
    assert (fail.column, fail.rule, fail.observed) == (
        "y",
        "min_class_rate",
        {"no": 0.875, "yes": 0.125},
    )


def test_regression_target_range_and_dtype() -> None:
    raw = _raw()
    raw["target"] = {"name": "y", "dtype": "float", "min": 0, "max": 10}
    ok = _frame(y=[0.5, 1, 2, 3, 4, 5, 6, 7])
    assert _failed(ok, raw, target="y", task="regression") == []
    assert _failed(_frame(y=[0.5, 1, 2, 3, 4, 5, 6, 70]), raw) == [("y", "max")]
    assert _failed(_frame(), raw) == [("y", "dtype")]


def test_report_is_structured_and_json_ready() -> None:
    df = _frame(age=[20, 30, 40, 50, 60, 70, 80, 150], y=["no"] * 8)
    report = validate(df, parse_schema(_raw()), target="y", task="binary")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert data["n_rows"] == 8 and data["n_columns"] == 5
    assert data["summary"] == {
        "checks": len(data["checks"]),
        "failed": 2,
        "passed": len(data["checks"]) - 2,
    }
    assert [(f["column"], f["rule"]) for f in data["failures"]] == [
        ("y", "min_classes"),
        ("age", "max"),
    ]
    age_max = data["failures"][1]
    assert age_max == {
        "column": "age",
        "rule": "max",
        "passed": False,
        "observed": 150,
        "limit": 100,
        "message": "1 values above 100",
        "examples": [150],
    }
    assert set(data["checks"][0]) == {
        "column",
        "rule",
        "passed",
        "observed",
        "limit",
        "message",
        "examples",
    }
    line = report.summary_line()
    assert line.startswith("column 'y', rule min_classes:") and "; 2 of " in line
    assert "\n" not in line


def test_validate_does_not_mutate_the_frame() -> None:
    df = _frame(age=[20, 30, 40, 50, 60, 70, 80, 150])
    before = df.copy()
    validate(df, parse_schema(_raw()))
    pd.testing.assert_frame_equal(df, before)


def test_synthetic_data_passes_the_adult_schema() -> None:
    schema = load_schema(REPO / "data/schema/adult.yaml")
    report = validate(make_synthetic(5_000), schema, target="income", task="binary")
    assert report.passed, report.summary_line()


# --- infer -----------------------------------------------------------------------------------


def test_inferred_schema_round_trips_through_yaml_and_passes() -> None:
    df = make_synthetic(3_000).assign(row_id=[f"id-{i}" for i in range(3_000)])
    draft = infer_schema(df, target="income", task="binary")
    text = yaml.safe_dump(draft, sort_keys=False)
    schema = parse_schema(yaml.safe_load(text), "draft.yaml")
    report = validate(df, schema, target="income", task="binary")
    assert report.passed, report.summary_line()
    assert draft["target"]["labels"] == ["<=50K", ">50K"]
    assert draft["columns"]["age"]["dtype"] == "int"
    assert draft["columns"]["sex"] == {
        "dtype": "category",
        "categories": ["Female", "Male"],
        "max_missing_rate": 0.0,
        "max_unknown_rate": 0.01,
    }
    assert draft["columns"]["row_id"]["dtype"] == "str"  # too many values for a category
    assert draft["columns"]["workclass"]["max_missing_rate"] > 0.057


def test_infer_regression_target() -> None:
    df = pd.DataFrame({"x": [1.5, 2.5, None, 4.0], "price": [10.0, 12.5, 9.0, 30.0]})
    draft = infer_schema(df, target="price", task="regression")
    assert draft["target"] == {"name": "price", "dtype": "float", "min": 9.0, "max": 30.0}
    assert draft["columns"]["x"]["dtype"] == "float"
    raw = {**draft, "dataset": {**draft["dataset"], "min_rows": 1}}
    assert validate(df, parse_schema(raw), target="price", task="regression").passed


# --- infer: every kind of column round-trips through YAML and validate ------------------------

N_INFER = 2000


def _kinds() -> dict[str, Any]:
    """One column of each kind a user's file has, N_INFER rows each."""
    import numpy as np

    rng = np.random.default_rng(11)
    n = N_INFER
    levels = [f"{k:05d}-x" for k in range(641)]
    words = rng.choice(n, size=20, replace=False)
    spend = [f"{v:.2f}" for v in rng.gamma(3.0, 20.0, n)]
    for k, row in enumerate(words):
        spend[row] = ["unknown", "n.a."][k % 2]
    dates = pd.Series(pd.date_range("2018-01-01", periods=n).strftime("%Y-%m-%d"))
    return {
        "empty_text": pd.Series([None] * n, dtype="str"),
        "empty_object": pd.Series([None] * n, dtype=object),
        "empty_float": pd.Series([np.nan] * n),
        "empty_boolean": pd.Series([pd.NA] * n, dtype="boolean"),
        "constant_text": pd.Series(["US"] * n, dtype="str"),
        "constant_int": pd.Series([7] * n),
        "id_text": pd.Series([f"CUST-{k:07d}" for k in rng.permutation(n)], dtype="str"),
        "id_int": pd.Series(rng.permutation(n) + 1),
        "high_cardinality": pd.Series(
            [levels[k] for k in np.concatenate([np.arange(641), rng.integers(0, 641, n - 641)])],
            dtype="str",
        ),
        "boolean": pd.Series(rng.random(n) < 0.3),
        "boolean_missing": pd.Series([True, False, None, True] * (n // 4), dtype="boolean"),
        "boolean_object": pd.Series([True, False, None, False] * (n // 4), dtype=object),
        "true_false_text": pd.Series(rng.choice(["true", "false"], n), dtype="str"),
        "yes_no_text": pd.Series(rng.choice(["yes", "no", "on", "off"], n), dtype="str"),
        "numbers_with_words": pd.Series(spend, dtype="str"),
        "few_numbers_with_words": pd.Series(rng.choice(["1", "2", "3", "unknown"], n), dtype="str"),
        "date_text": dates.astype("str"),
        "date_text_missing": dates.mask(dates.index % 10 == 0).astype("str"),
        "datetime": pd.Series(pd.date_range("2020-01-01", periods=n, freq="h")),
        "datetime_missing": pd.Series(pd.date_range("2020-01-01", periods=n)).mask(
            pd.Series(range(n)) % 7 == 0
        ),
        "mixed_object": pd.Series([1, "a", 2.5, "b"] * (n // 4), dtype=object),
        "category_dtype": pd.Series(rng.choice(["lo", "hi"], n)).astype("category"),
        "nullable_int": pd.Series([1, None, 3, 4] * (n // 4), dtype="Int64"),
        "whole_floats_missing": pd.Series([18.0, None, 40.0, 65.0] * (n // 4)),
        "floats_with_inf": pd.Series([0.5, np.inf, -np.inf, 1.5] * (n // 4)),
        "float32": pd.Series(rng.random(n).astype("float32")),
        "mostly_missing_text": pd.Series(["a"] + [None] * (n - 1), dtype="str"),
    }


def _passes(df: pd.DataFrame, target: str, task: str, *, parquet: bool = True) -> dict[str, Any]:
    """The draft of `df`, after checking that `df` passes it as written and re-read, both as it
    is and after the parquet round trip the ingest and validate stages put it through."""
    import io

    draft = infer_schema(df, target=target, task=task)
    text = yaml.safe_dump(draft, sort_keys=False, allow_unicode=True)
    schema = parse_schema(yaml.safe_load(text), "draft.yaml")
    frames = [df]
    if parquet:
        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        frames.append(pd.read_parquet(io.BytesIO(buffer.getvalue())))
    for frame in frames:
        report = validate(frame, schema, target=target, task=task)
        assert report.passed, report.summary_line()
    return draft


@pytest.mark.parametrize("kind", list(_kinds()))
def test_infer_every_kind_of_column_round_trips(kind: str) -> None:
    column = _kinds()[kind]
    df = pd.DataFrame({kind: column, "y": ["a", "b"] * (N_INFER // 2)})
    # A column of numbers and text mixed has no parquet type: the ingest stage never writes one.
    rule = _passes(df, "y", "binary", parquet=kind != "mixed_object")["columns"][kind]
    if kind.startswith("empty_"):
        assert rule["max_missing_rate"] == 1.0
        assert rule.get("categories", [False, True]) in ([False, True],)  # never `[]`
    if kind in ("id_text", "date_text", "date_text_missing", "numbers_with_words", "datetime"):
        assert rule["dtype"] == "str"  # values that mostly occur once are not categories
    if kind in ("boolean", "boolean_missing", "boolean_object", "empty_boolean"):
        assert rule["categories"] == [False, True]
    if kind == "yes_no_text":  # YAML 1.1 would read `yes` and `on` as true
        assert rule["categories"] == ["no", "off", "on", "yes"]
    if kind == "whole_floats_missing":
        assert (rule["dtype"], rule["min"], rule["max"]) == ("int", 18, 65)


def test_infer_all_kinds_together_from_a_messy_csv(tmp_path: Path) -> None:
    """The same kinds as a user's CSV file gives them (text cells, missing markers)."""
    from gitops_ml.sources import read_csv

    frame = pd.DataFrame(_kinds()).drop(columns=["mixed_object", "category_dtype"])
    frame["y"] = ["no", "yes", "no", "no"] * (N_INFER // 4)
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False, na_rep="NA")
    df = read_csv(path)
    assert df["numbers_with_words"].dtype == "str"  # a few words keep a number column text
    _passes(df, "y", "binary")


def test_inferred_dataset_rules_pass_on_the_same_data() -> None:
    import numpy as np

    rng = np.random.default_rng(4)
    n = 1000
    base = pd.DataFrame(
        {"x": rng.integers(0, 3, n), "c": rng.choice(["p", "q"], n), "y": ["a"] * n}
    )
    base.loc[: n * 0.03, "y"] = "rare"  # a 3 % class
    df = pd.concat([base, base.iloc[:300]], ignore_index=True)  # many exact duplicates
    draft = _passes(df, "y", "binary")
    assert draft["dataset"]["min_rows"] == len(df) // 2
    report = validate(df, parse_schema(draft), target="y", task="binary")
    rules = {c.rule: c for c in report.checks if c.rule in ("min_rows", "max_duplicate_rate")}
    rules["min_class_rate"] = next(c for c in report.checks if c.rule == "min_class_rate")
    assert all(c.passed for c in rules.values())
    assert 0 < draft["target"]["min_class_rate"] <= rules["min_class_rate"].observed["rare"]
    assert rules["max_duplicate_rate"].observed <= draft["dataset"]["max_duplicate_rate"] <= 1


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_infer_each_task(task: str) -> None:
    y = {
        "binary": [0, 1] * 50,
        "multiclass": ["a", "b", "c", "d"] * 25,
        "regression": [float(v) / 3 for v in range(100)],
    }[task]
    draft = _passes(pd.DataFrame({"x": range(100), "y": y}), "y", task)
    assert ("labels" in draft["target"]) == (task != "regression")


@pytest.mark.parametrize(
    ("y", "task", "message"),
    [
        (["a", None, "b", "a"], "binary", r"target 'y' has 1 missing value"),
        (["a"] * 4, "binary", r"single class 'a'"),
        (["a", "b", "c", "a"], "binary", r"3 classes; task binary needs exactly 2"),
        (["a", "b", "a", "b"], "multiclass", r"2 classes; task multiclass needs 3 or more"),
        (["a", "b", "c", "a"], "regression", r"must be numeric for task regression"),
    ],
)
def test_infer_refuses_a_target_no_schema_accepts(y: list[Any], task: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        infer_schema(pd.DataFrame({"x": [1, 2, 3, 4], "y": y}), target="y", task=task)


def test_infer_needs_a_feature_column() -> None:
    with pytest.raises(ConfigError, match="no feature columns besides the target 'y'"):
        infer_schema(pd.DataFrame({"y": ["a", "b"]}), target="y", task="binary")


def test_a_column_may_be_marked_sensitive() -> None:
    raw = yaml.safe_load((Path(__file__).parents[2] / "data/schema/adult.yaml").read_text())
    raw["columns"]["age"]["sensitive"] = True
    schema = parse_schema(raw)
    flagged = sorted(c.name for c in schema.columns if c.sensitive)
    assert flagged == ["age", "race", "sex"]
    raw["columns"]["age"]["sensitive"] = "yes"
    with pytest.raises(ConfigError, match="must be true or false"):
        parse_schema(raw)


def test_the_adult_contract_marks_sex_and_race_sensitive() -> None:
    from gitops_ml.schema import load_schema
    from tests.conftest import ROOT

    schema = load_schema(ROOT / "data/schema/adult.yaml")
    assert sorted(c.name for c in schema.columns if c.sensitive) == ["race", "sex"]
