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
