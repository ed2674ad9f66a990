"""`gitops-ml init`: detection (delimiter, header), task inference, drop and slice proposals, the
gate per task, comment-keeping params/dvc.yaml edits, and the command end to end on small inline
files in a directory with the template's params.yaml and dvc.yaml (the pipeline itself runs in
tests/integration/test_init.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from gitops_ml import cli
from gitops_ml import init as gi
from gitops_ml.config import TASK_METRICS, load_params, parse_params
from gitops_ml.errors import DataError
from gitops_ml.schema import load_schema, validate
from gitops_ml.sources import read_csv
from gitops_ml.stages.ingest import select_columns
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]


# --- helpers --------------------------------------------------------------------------------------


def customers(n: int = 1000, seed: int = 3) -> pd.DataFrame:
    """A small churn-like frame with one column of each kind init decides about."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{k:05d}" for k in rng.permutation(n)],
            "country": ["US"] * n,
            "notes": [None] * n,
            "plan": rng.choice(["basic", "pro", "team"], size=n, p=[0.5, 0.3, 0.2]),
            "is_premium": rng.choice(["true", "false"], size=n),
            "age": rng.integers(18, 80, n),
            "spend": np.round(rng.gamma(3.0, 20.0, n), 2),
            "churned": np.where(rng.random(n) < 0.25, "yes", "no"),
        }
    )


def write_csv(df: pd.DataFrame, path: Path, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", **kw)
    return path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The files init edits, as the template ships them, in the working directory."""
    root = tmp_path / "repo"
    (root / "data" / "source").mkdir(parents=True)
    (root / "data" / "schema").mkdir(parents=True)
    for rel in ("params.yaml", "gitops.yaml", "dvc.yaml", "data/schema/adult.yaml"):
        shutil.copy2(ROOT / rel, root / rel)
    monkeypatch.chdir(root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_init(*args: str) -> int:
    return cli.main(["init", *args])


# --- reading: delimiter, header, missing markers --------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_detect_delimiter(delimiter: str) -> None:
    text = "".join(
        delimiter.join(row) + "\n"
        for row in [["a", "b", "c"], ["1", "x y", "2.5"], ["3", "z", "4"]]
    )
    assert gi.detect_delimiter(text) == delimiter


def test_detect_delimiter_semicolon_with_decimal_commas_and_quoted_commas() -> None:
    assert gi.detect_delimiter("price;name;n\n1,5;a;2\n2,25;b;3\n") == ";"
    assert gi.detect_delimiter('name,note\n"Smith; J",x\n"Doe; A",y\n') == ","


def test_detect_delimiter_single_column_is_none() -> None:
    assert gi.detect_delimiter("value\n1\n2\n") is None


def test_header_evidence() -> None:
    assert gi.header_evidence([["age", "plan"], ["39", "basic"], ["40", "pro"]]) == (False, [])
    refuse, evidence = gi.header_evidence([["39", "7.5"], ["40", "1.0"]])
    assert refuse and evidence == ["'39' is a number", "'7.5' is a number"]
    refuse, evidence = gi.header_evidence([["39", "basic", "yes"], ["40", "basic", "no"]])
    assert refuse and "'basic' is also a value of column 2" in evidence
    # One number among names is a hint, not a refusal (--header silences it).
    refuse, evidence = gi.header_evidence([["country", "2019", "gdp"], ["fr", "1", "2.5"]])
    assert not refuse and evidence == ["'2019' is a number"]


def test_read_table_detects_semicolons_and_missing_markers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("x;y;label\n1;NA;a\n2;N/A;b\n?;3;a\n;4;b\n5;nan;a\n", encoding="utf-8")
    df, fmt = gi.read_table(path)
    assert (fmt.kind, fmt.delimiter, fmt.header) == ("csv", ";", True)
    assert fmt.notes == ("delimiter semicolon (detected; --delimiter overrides)",)
    assert df["x"].isna().tolist() == [False, False, True, True, False]
    assert df["y"].isna().tolist() == [True, True, False, False, True]
    assert pd.api.types.is_numeric_dtype(df["x"]) and pd.api.types.is_numeric_dtype(df["y"])


def test_headerless_file_is_refused_unless_named(tmp_path: Path) -> None:
    path = tmp_path / "nohead.tsv"
    path.write_text("39\tState-gov\t<=50K\n50\tPrivate\t>50K\n38\tPrivate\t<=50K\n")
    with pytest.raises(DataError, match=r"first line looks like data.*--no-header --columns"):
        gi.read_table(path)
    with pytest.raises(DataError, match=r"--no-header needs --columns .* 3 columns"):
        gi.read_table(path, header=False)
    with pytest.raises(DataError, match=r"--columns names 2 columns but the first line has 3"):
        gi.read_table(path, header=False, columns=["age", "work"])
    df, fmt = gi.read_table(path, header=False, columns=["age", "work", "income"])
    assert list(df.columns) == ["age", "work", "income"] and len(df) == 3
    assert (fmt.delimiter, fmt.header, fmt.columns) == ("\t", False, ("age", "work", "income"))
    # --columns alone means there is no header; --header forces the first line to be one.
    assert gi.read_table(path, columns=["age", "work", "income"])[1].header is False
    assert list(gi.read_table(path, header=True)[0].columns) == ["39", "State-gov", "<=50K"]


def test_read_table_names_what_a_file_is_before_guessing(tmp_path: Path) -> None:
    """Binary and non-UTF-8 files get the reader's own message, not a header or delimiter guess;
    --columns over a file that has a header is refused."""
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"a,b\n1,caf\xe9\n2,th\xe9\n")
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text"):
        gi.read_table(latin)
    workbook = tmp_path / "book.csv"
    workbook.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"book\.csv: not a CSV text file \(looks like a zip"):
        gi.read_table(workbook)
    named = tmp_path / "named.csv"
    named.write_text("a,b,c\n1,2,x\n3,4,y\n")
    with pytest.raises(DataError, match=r"first line already names the columns a, b, c"):
        gi.read_table(named, header=False, columns=["a", "b", "c"])


def test_parquet_is_read_and_refuses_csv_options(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"x": [1, 2], "y": [" a ", "NA"]}).to_parquet(path)
    df, fmt = gi.read_table(path)
    assert fmt.kind == "parquet" and df["y"].tolist()[0] == "a" and pd.isna(df["y"].iloc[1])
    with pytest.raises(DataError, match="parquet file; --delimiter"):
        gi.read_table(path, delimiter=";")


# --- the target and the task ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no"] * 10, "binary"),
        ([0, 1] * 10, "binary"),
        ([True, False] * 10, "binary"),
        (["a", "b", "c", "d"] * 5, "multiclass"),
        ([1, 2, 3, 4, 5] * 4, "multiclass"),
        ([float(v) for v in range(20)], "regression"),
        ([0.5, 1.25, 3.0, 7.5] * 5, "regression"),
    ],
    ids=["text-2", "int-2", "bool", "text-4", "int-5", "int-20", "float"],
)
def test_infer_task(values: list[Any], task: str) -> None:
    inferred, reason = gi.infer_task(pd.Series(values), "y")
    assert inferred == task
    assert reason.startswith(f"{task} (inferred: ")


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (["a", "b", None, "a"], None, r"'y' has 1 missing value\(s\) \(first in data row 3\)"),
        (["a"] * 5, None, r"'y' has the single value 'a' in all 5 rows"),
        (["a", "b", "c"] * 3, "binary", r"3 classes .* --task binary needs exactly 2"),
        (["a", "b"] * 3, "multiclass", r"2 classes .* use --task binary"),
        (["a", "b", "c"] * 3, "regression", r"not numeric .* --task regression needs numbers"),
        (["a", "a", "b", "b", "c"], None, r"class 'c' has only 1 row"),
        ([f"v{k}" for k in range(60)] * 2, None, r"text with 60 distinct values"),
        ([str(k) for k in range(30)] + ["unknown"], None, r"numbers and some text \(unknown\)"),
    ],
    ids=[
        "missing",
        "single",
        "binary-3",
        "multiclass-2",
        "regression-text",
        "rare",
        "many",
        "words",
    ],
)
def test_infer_task_refuses(values: list[Any], task: str | None, message: str) -> None:
    with pytest.raises(DataError, match=message):
        gi.infer_task(pd.Series(values), "y", task)


def test_infer_task_errors_name_the_file() -> None:
    with pytest.raises(DataError, match=r"^data/x\.csv: target column 'y'"):
        gi.infer_task(pd.Series(["a"] * 3), "y", where="data/x.csv")


def test_minority_label() -> None:
    assert gi.minority_label(pd.Series(["no"] * 5 + ["yes"] * 2)) == "yes"
    assert gi.minority_label(pd.Series([0, 0, 1])) == "1"
    assert gi.minority_label(pd.Series(["b", "a", "a", "b"])) == "b"  # tie: last in sorted order


# --- drops, notes, slices -------------------------------------------------------------------------


def test_propose_drops_gives_each_reason() -> None:
    n = 40
    df = pd.DataFrame(
        {
            "y": ["a", "b"] * (n // 2),
            "empty": [None] * n,
            "const": ["x"] * n,
            "name": [f"person {k}" for k in range(n)],
            "row_id": np.arange(1000, 1000 + n)[::-1],
            "seq": np.random.default_rng(0).permutation(n) + 1,
            "when": [f"2024-01-{k % 28 + 1:02d} 10:{k:02d}" for k in range(n)],
            # kept:
            "amount": np.arange(n) * 37 + 5,  # distinct integers, not an ID range or name
            "ratio": np.linspace(0, 1, n),  # distinct floats
            "mostly_x": ["x"] * (n - 1) + [None],  # one value and missing: informative
            "spend": [str(k) for k in range(n - 1)] + ["unknown"],  # numbers with a word
            "plan": ["p", "q", "r", "s"] * (n // 4),
        }
    )
    drops = dict(gi.propose_drops(df, "y"))
    assert drops == {
        "empty": "empty: no value in any row",
        "const": "constant: 'x' in every row",
        "name": f"ID-like: all {n} values are distinct text",
        "row_id": f"ID-like: all {n} values are distinct integers",
        "seq": f"ID-like: all {n} values are distinct integers",
        "when": f"ID-like: all {n} values are distinct dates",
    }


def test_column_notes() -> None:
    n = 300
    df = pd.DataFrame(
        {
            "y": ["a", "b"] * (n // 2),
            "spend": [str(k % 50) for k in range(n - 3)] + ["unknown", "n.a.", "unknown"],
            "signup": [f"2023-{k % 12 + 1:02d}-{k % 28 + 1:02d}" for k in range(n)],
            "zip": [f"z{k % 150}" for k in range(n)],
            "plan": ["p", "q", "r"] * (n // 3),
        }
    )
    notes = dict(gi.column_notes(df, "y", dropped=[]))
    assert set(notes) == {"spend", "signup", "zip"}
    assert notes["spend"].startswith("numbers with a few words (n.a., unknown)")
    assert notes["signup"].startswith("looks like dates (e.g. '2023-01-01')")
    assert notes["zip"].startswith("150 distinct values")


def test_choose_slices() -> None:
    n = 1000
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "y": rng.choice(["a", "b"], n),
            "num": rng.integers(0, 3, n),  # numeric: not a slice
            "one": ["x"] * n,  # 1 level
            "many": [f"c{k % 11}" for k in range(n)],  # 11 levels
            "thin": ["common"] * (n - 100) + ["rare"] * 100,  # 100 * 0.2 = 20 test rows < 30
            "s1": rng.choice(["a", "b"], n),
            "s2": rng.choice(["a", "b", "c"], n),
            "dropped": rng.choice(["a", "b"], n),
            "s3": [True, False] * (n // 2),  # booleans slice too
            "s4": rng.choice(["a", "b"], n),  # a fourth: over the limit of three
        }
    )
    chosen = gi.choose_slices(df, "y", dropped=["dropped"], test_size=0.2)
    assert [col for col, _ in chosen] == ["s1", "s2", "s3"]
    assert chosen[2][1] == "2 levels, the smallest 500 rows"
    assert gi.choose_slices(df[["y", "num", "many"]], "y", [], 0.2) == []


# --- the gate -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("slices", [[], ["plan"]])
def test_gate_rules_fit_the_task(task: str, slices: list[str]) -> None:
    y = {
        "binary": pd.Series(["a", "b"] * 50),
        "multiclass": pd.Series(["a", "b", "c", "d"] * 25),
        "regression": pd.Series(np.arange(100, dtype=float)),
    }[task]
    rules, why = gi.gate_rules(task, y, slices)
    assert rules["primary"] in TASK_METRICS[task]
    assert set(rules["max_regression"]) <= set(TASK_METRICS[task])
    assert rules["thresholds"] == {}
    assert "no absolute thresholds" in why
    worst = rules["worst_slice"]
    if not slices or task == "regression":
        assert worst is None
    else:
        # The gate takes the minimum over slices: only a higher-is-better metric fits.
        assert worst["metric"] in {"roc_auc", "balanced_accuracy"}
        assert worst["min"] == (0.5 if task == "binary" else 0.25)
    params = template_settings()
    params["data"].update(task=task, source="csv", path="x.csv", positive_label=None)
    params["evaluate"]["slices"] = slices
    params["gate"].update(rules)
    assert parse_params(params).gate.primary == rules["primary"]


def test_regression_limits_scale_with_the_target() -> None:
    rules, _ = gi.gate_rules("regression", pd.Series(np.arange(1000) * 100.0), [])
    assert rules["primary"] == "rmse"
    assert rules["max_regression"] == {"rmse": 580.0, "mae": 580.0, "r2": 0.01}


# --- names ----------------------------------------------------------------------------------------


def test_model_name() -> None:
    assert gi.model_name_from(Path("Telco Customer-Churn.csv.gz")) == "telco-customer-churn"
    assert gi.model_name_from(Path("data/x/sales_2024.parquet")) == "sales-2024"
    assert gi.model_name_from(Path("___.csv")) == "model"
    assert gi.check_name("churn_v2.1") == "churn_v2.1"
    for bad in ("bad/name", "a:b", "-x", "", "x" * 65):
        with pytest.raises(DataError, match="--name"):
            gi.check_name(bad)


# --- params.yaml and dvc.yaml edits ---------------------------------------------------------------


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def test_edit_params_keeps_comments_and_reads_back_yaml11_traps() -> None:
    # both files as one (the older layout): every section is edited the same way
    text = (ROOT / "params.yaml").read_text() + "\n" + (ROOT / "gitops.yaml").read_text()
    updates = {
        "data": {
            "source": "csv",
            "path": "data/source/my file.csv",
            "delimiter": "\t",
            "drop_columns": ["on", "1", "a,b", "id"],
            "target": "yes",
            "positive_label": "no",
        },
        "evaluate": {"slices": ["off", "plan"]},
        "gate": {"thresholds": {}, "worst_slice": None, "max_regression": {"accuracy": 0.02}},
    }
    new = gi.edit_params(text, updates)
    back = yaml.safe_load(new)
    assert back["data"]["drop_columns"] == ["on", "1", "a,b", "id"]
    assert back["data"]["target"] == "yes" and back["data"]["positive_label"] == "no"
    assert back["data"]["delimiter"] == "\t"
    assert back["evaluate"]["slices"] == ["off", "plan"]
    assert back["gate"]["thresholds"] == {} and back["gate"]["worst_slice"] is None
    assert back["gate"]["max_regression"] == {"accuracy": 0.02}
    assert back["drift"] == yaml.safe_load(text)["drift"]
    # Every comment of a key that is still there survives; sections keep their blank lines.
    lost = set(_comments(text)) - set(_comments(new))
    assert lost <= {
        "for lower-is-better metrics (log_loss, brier, rmse, mae)",
        "smaller slices are reported but not gated",
    }
    assert "\n\ndrift:" in new and "\n\ngate:" in new
    assert gi.edit_params(new, updates) == new  # idempotent


def test_edit_params_only_touches_the_updated_lines() -> None:
    text = (ROOT / "params.yaml").read_text()
    new = gi.edit_params(text, {"mlflow": {"model_name": "churn"}})
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("  model_name: churn ")


def test_edit_dvc_yaml_changes_one_line() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    new = gi.edit_dvc_yaml(text, "data/schema/churn.yaml")
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][1].startswith("  - schema: data/schema/churn.yaml   # ")
    assert yaml.safe_load(new)["vars"] == [{"schema": "data/schema/churn.yaml"}]
    with pytest.raises(Exception, match="no `vars:` entry"):
        gi.edit_dvc_yaml("stages: {}\n", "data/schema/churn.yaml")


# --- the command ----------------------------------------------------------------------------------


def test_init_makes_the_template_use_the_file(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(customers(), tmp_path / "in" / "Customers 2024.csv")
    adult = (repo / "data/schema/adult.yaml").read_bytes()
    assert run_init("--data", str(src), "--target", "churned") == 0
    out = capsys.readouterr().out

    params = load_params(repo / "params.yaml")
    d = params.data
    assert (d.source, d.path, d.delimiter, d.header, d.columns) == (
        "csv",
        "data/source/Customers 2024.csv",
        ",",
        True,
        None,
    )
    assert (d.target, d.task, d.positive_label, d.n_rows) == ("churned", "binary", "yes", None)
    assert d.drop_columns == ("customer_id", "country", "notes")
    assert params.evaluate.slices == ("plan", "is_premium")
    assert params.mlflow.model_name == "customers-2024"
    assert params.gate.primary == "roc_auc" and dict(params.gate.thresholds) == {}
    assert params.gate.worst_slice is not None and params.gate.worst_slice.metric == "roc_auc"
    assert (repo / d.path).read_bytes() == src.read_bytes()
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    assert dvc["vars"] == [{"schema": "data/schema/customers-2024.yaml"}]
    assert (repo / "data/schema/adult.yaml").read_bytes() == adult  # another name: left alone

    # The schema passes the data exactly as the ingest stage hands it to validate.
    raw = read_csv(repo / d.path, delimiter=d.delimiter, header=d.header, columns=d.columns)
    ingested = select_columns(raw, d, params.evaluate.slices)
    schema = load_schema(repo / "data/schema/customers-2024.yaml")
    report = validate(ingested, schema, target=d.target, task=d.task)
    assert report.passed, report.summary_line()

    for line in (
        "  drop      customer_id: ID-like: all 1000 values are distinct text",
        "  drop      country: constant: 'US' in every row",
        "  drop      notes: empty: no value in any row",
        "  task      binary (inferred: 'churned' has 2 values (no, yes); --task overrides)",
        "  make repro        # ingest -> validate -> split -> train -> evaluate on it",
    ):
        assert line in out.splitlines()
    assert "data/source/Customers 2024.csv" in out and "goes into git" in out

    # Re-running, on the copy or on the original, changes nothing.
    before = snapshot(repo)
    assert run_init("--data", "data/source/Customers 2024.csv", "--target", "churned") == 0
    assert run_init("--data", str(src), "--target", "churned") == 0
    assert snapshot(repo) == before


def test_init_on_another_file_leaves_the_first_schema(repo: Path, tmp_path: Path) -> None:
    first = write_csv(customers(), tmp_path / "churn.csv")
    assert run_init("--data", str(first), "--target", "churned") == 0
    churn_schema = (repo / "data/schema/churn.yaml").read_bytes()
    rng = np.random.default_rng(5)
    other = pd.DataFrame(
        {
            "size": rng.normal(10, 2, 400).round(3),
            "colour": rng.choice(["red", "blue"], 400),
            "price": rng.gamma(2.0, 50.0, 400).round(2),
        }
    )
    second = write_csv(other, tmp_path / "houses.csv", sep="|")
    assert run_init("--data", str(second), "--target", "price", "--name", "homes") == 0
    params = load_params(repo / "params.yaml")
    assert (params.data.task, params.data.delimiter, params.data.positive_label) == (
        "regression",
        "|",
        None,
    )
    assert params.gate.primary == "rmse" and params.gate.worst_slice is None
    assert params.data.drop_columns == ()
    assert params.evaluate.slices == ("colour",)
    assert (repo / "data/schema/churn.yaml").read_bytes() == churn_schema
    assert (repo / "data/schema/homes.yaml").exists()


def test_init_headerless_and_multiclass(repo: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=400).round(4),
            "b": rng.choice(["x", "y"], 400),
            "grade": rng.integers(1, 4, 400),
        }
    )
    src = write_csv(df, tmp_path / "g.csv", header=False)
    assert run_init("--data", str(src), "--target", "grade") == 2  # the first line is data
    assert (
        run_init("--data", str(src), "--target", "grade", "--no-header", "--columns", "a,b,grade")
        == 0
    )
    params = load_params(repo / "params.yaml")
    assert (params.data.header, params.data.columns, params.data.task) == (
        False,
        ("a", "b", "grade"),
        "multiclass",
    )
    assert params.gate.primary == "f1_macro"
    assert params.gate.worst_slice is not None
    assert params.gate.worst_slice.metric == "balanced_accuracy"


def test_dry_run_writes_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(customers(), tmp_path / "churn.csv")
    before = snapshot(repo)
    assert run_init("--data", str(src), "--target", "churned", "--dry-run") == 0
    assert snapshot(repo) == before
    assert "(dry run: nothing written)" in capsys.readouterr().out


def test_data_for_dvc_comes_with_a_verified_remote(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file over --max-git-mb goes to the DVC remote: init says how to add one, with
    `verify true`, as the README does (tests/unit/test_workflows.py checks the README)."""
    (repo / ".dvc").mkdir()
    src = write_csv(customers(), tmp_path / "churn.csv")
    assert (
        run_init("--data", str(src), "--target", "churned", "--max-git-mb", "0", "--dry-run") == 0
    )
    out = capsys.readouterr().out
    assert "`dvc add`ed" in out
    after_push = out[out.index("\n  dvc push ") :]
    add, verify = gi.REMOTE_SETUP
    assert verify == "dvc remote modify storage verify true"
    assert add.startswith("dvc remote add -d storage ")
    assert add in after_push and verify in after_push
    assert after_push.index(add) < after_push.index(verify)
    assert verify in (ROOT / "README.md").read_text()


def _bad_target_missing(tmp: Path) -> list[str]:
    df = customers()
    df.loc[7, "churned"] = None
    return ["--data", str(write_csv(df, tmp / "c.csv")), "--target", "churned"]


def _exists_and_differs(tmp: Path) -> list[str]:
    write_csv(customers(seed=9), Path("data/source/c.csv"))
    return ["--data", str(write_csv(customers(), tmp / "c.csv")), "--target", "churned"]


def _headerless(tmp: Path) -> list[str]:
    path = write_csv(customers().drop(columns=["notes"]), tmp / "c.csv", header=False)
    return ["--data", str(path), "--target", "churned"]


BAD_INPUT = {
    "missing-file": (
        lambda tmp: ["--data", str(tmp / "nope.csv"), "--target", "churned"],
        r"nope\.csv: file not found",
    ),
    "unknown-target": (
        lambda tmp: ["--data", str(write_csv(customers(), tmp / "c.csv")), "--target", "churn"],
        r"c\.csv: no column 'churn' \(--target\); columns are: customer_id, country, notes",
    ),
    "target-missing": (_bad_target_missing, r"c\.csv: target column 'churned' has 1 missing"),
    "binary-not-2": (
        lambda tmp: [
            "--data",
            str(write_csv(customers(), tmp / "c.csv")),
            "--target",
            "plan",
            "--task",
            "binary",
        ],
        r"c\.csv: target column 'plan' has 3 classes",
    ),
    "regression-text": (
        lambda tmp: [
            "--data",
            str(write_csv(customers(), tmp / "c.csv")),
            "--target",
            "churned",
            "--task",
            "regression",
        ],
        r"c\.csv: target column 'churned' is not numeric",
    ),
    "headerless": (_headerless, r"c\.csv: the first line looks like data"),
    "bad-name": (
        lambda tmp: [
            "--data",
            str(write_csv(customers(), tmp / "c.csv")),
            "--target",
            "churned",
            "--name",
            "a/b",
        ],
        r"--name 'a/b'",
    ),
    "too-few-rows": (
        lambda tmp: [
            "--data",
            str(write_csv(customers(12), tmp / "c.csv")),
            "--target",
            "churned",
        ],
        r"c\.csv: only 12 data rows",
    ),
    "exists-and-differs": (_exists_and_differs, r"data/source/c\.csv exists and differs from"),
    "large-without-dvc": (
        lambda tmp: [
            "--data",
            str(write_csv(customers(), tmp / "c.csv")),
            "--target",
            "churned",
            "--max-git-mb",
            "0",
        ],
        r"over --max-git-mb 0, so it must be DVC-tracked, but .* has no \.dvc directory",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    case: str, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, message = BAD_INPUT[case]
    args = build(tmp_path)
    before = snapshot(repo)
    assert run_init(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(message, err[0]), err[0]
    assert snapshot(repo) == before


def test_schema_infer_command_reads_like_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(customers(), tmp_path / "c.csv", sep=";")
    assert cli.main(["schema", "infer", "--input", str(src), "--target", "plan"]) == 0
    draft = yaml.safe_load(capsys.readouterr().out)
    assert draft["target"]["labels"] == ["basic", "pro", "team"]  # multiclass, inferred
    assert draft["columns"]["notes"] == {"dtype": "str", "max_missing_rate": 1.0}
    assert draft["columns"]["customer_id"]["dtype"] == "str"
    assert cli.main(["schema", "infer", "--input", str(src), "--target", "churned",
                     "--task", "multiclass"]) == 2  # fmt: skip
