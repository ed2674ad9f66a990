"""Bad data stops the pipeline with one clear line and leaves the last good outputs untouched.

Each case starts from a workspace where ingest -> validate -> split ran on a good CSV, breaks the
CSV one way, re-runs the stages in-process as DVC would, and checks the exit code, the single
`error:` line (naming the file or column and rule), and that the good outputs are byte-identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.files import write_parquet
from gitops_ml.lineage.dvclock import TEST_PATH, TRAIN_PATH
from gitops_ml.sources import make_synthetic
from gitops_ml.stages import ingest, split, train, validate
from tests.conftest import template_settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "data" / "schema" / "adult.yaml"
CSV = Path("data/source/data.csv")
RAW = Path("data/raw/dataset.parquet")
REPORT = Path("reports/validation.json")
TRAIN = Path(TRAIN_PATH)
TEST = Path(TEST_PATH)

STAGES: dict[str, tuple[Callable[[list[str] | None], int], list[str]]] = {
    "ingest": (ingest.main, ["--source-dir", "data/source", "--output", str(RAW)]),
    "validate": (
        validate.main,
        ["--input", str(RAW), "--schema", str(SCHEMA), "--report", str(REPORT)],
    ),
    "split": (
        split.main,
        [
            "--input",
            str(RAW),
            "--validation",
            str(REPORT),
            "--train",
            str(TRAIN),
            "--test",
            str(TEST),
        ],
    ),
}


@dataclass
class Workspace:
    root: Path
    good: pd.DataFrame
    capsys: pytest.CaptureFixture[str]

    def run(self, stage: str) -> tuple[int, str]:
        func, argv = STAGES[stage]
        self.capsys.readouterr()
        code = func([*argv, "--params", "params.yaml"])
        return code, self.capsys.readouterr().err

    def snapshot(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in (RAW, TRAIN, TEST)}


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> Workspace:
    monkeypatch.chdir(tmp_path)
    params = template_settings()
    params["data"].update(source="csv", path=str(CSV))
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    CSV.parent.mkdir(parents=True)
    good = make_synthetic(1_500)
    good.to_csv(CSV, index=False)
    w = Workspace(tmp_path, good, capsys)
    for stage in STAGES:
        code, err = w.run(stage)
        assert code == 0, err
    return w


def _one_error_line(err: str, *needles: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ")
    for needle in needles:
        assert needle in line, line
    return line


def _write_frame(df: pd.DataFrame) -> None:
    df.to_csv(CSV, index=False)


def _truncate(ws: Workspace) -> None:
    text = CSV.read_bytes()
    CSV.write_bytes(text[: len(text) - 40])


def _parquet(ws: Workspace) -> None:
    CSV.unlink()
    write_parquet(CSV, ws.good)


def _gzip(ws: Workspace) -> None:
    import gzip

    CSV.write_bytes(gzip.compress(CSV.read_bytes()))


def _empty(ws: Workspace) -> None:
    CSV.write_bytes(b"")


def _header_only(ws: Workspace) -> None:
    CSV.write_text(",".join(ws.good.columns) + "\n", encoding="utf-8")


def _no_target(ws: Workspace) -> None:
    _write_frame(ws.good.drop(columns="income"))


@pytest.mark.parametrize(
    ("breaker", "needles"),
    [
        (_truncate, [str(CSV), "malformed CSV", "fields, expected 15"]),
        (_parquet, [str(CSV), "not a CSV text file", "parquet"]),
        (_gzip, [str(CSV), "not a CSV text file", "gzip"]),
        (_empty, [str(CSV), "file is empty"]),
        (_header_only, [str(CSV), "no data rows"]),
        (_no_target, [str(CSV), "no target column 'income'", "data.target"]),
    ],
    ids=["truncated", "parquet-as-csv", "gzip-as-csv", "empty", "header-only", "no-target"],
)
def test_unreadable_input_stops_ingest(ws: Workspace, breaker, needles: list[str]) -> None:
    before = ws.snapshot()
    breaker(ws)
    code, err = ws.run("ingest")
    assert code != 0
    _one_error_line(err, *needles)
    assert ws.snapshot() == before


def _text_in_age(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({"age": "object"}).assign(age=["abc", *df["age"].iloc[1:]])


def _one_class(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(income="<=50K")


def _missing_labels(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[::100, "income"] = None
    return out


def _unknown_categories(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.loc[::20, "race"] = "Martian"  # 5% of rows; the schema allows 1%
    return out


def _missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="education")


@pytest.mark.parametrize(
    ("breaker", "needles"),
    [
        (_text_in_age, ["column 'age', rule dtype", "expected int", "'abc'"]),
        (_one_class, ["column 'income', rule min_classes", "1 class"]),
        (_missing_labels, ["column 'income', rule no_missing", "15 rows have no label"]),
        (_unknown_categories, ["column 'race', rule max_unknown_rate", "'Martian'"]),
        (_missing_column, ["column 'education', rule present", "missing"]),
    ],
    ids=["text-in-age", "one-class", "missing-labels", "unknown-categories", "missing-column"],
)
def test_schema_violations_stop_validate_and_split(ws: Workspace, breaker, needles) -> None:
    before = ws.snapshot()
    _write_frame(breaker(ws.good))
    code, err = ws.run("ingest")
    assert code == 0, err  # readable data: judging it is the schema's job

    code, err = ws.run("validate")
    assert code != 0
    line = _one_error_line(err, "validation failed", *needles)
    assert "checks failed" in line and str(REPORT) in line
    report = yaml.safe_load(REPORT.read_text(encoding="utf-8"))
    assert report["passed"] is False and report["failures"]

    code, err = ws.run("split")
    assert code != 0
    _one_error_line(err, str(REPORT), "did not pass validation")
    for path in (TRAIN, TEST):
        assert path.read_bytes() == before[path]


def test_target_in_schema_must_match_params(ws: Workspace) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    params["data"]["target"] = "sex"
    params["evaluate"]["slices"] = ["race"]
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    code, err = ws.run("validate")
    assert code != 0
    _one_error_line(err, "column 'income', rule name", "data.target 'sex'")


def test_malformed_schema_writes_a_failing_report(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: {min_rows: many}\n", encoding="utf-8")
    func, _ = STAGES["validate"]
    code = func(
        [
            "--input",
            str(RAW),
            "--schema",
            str(bad),
            "--report",
            str(REPORT),
            "--params",
            "params.yaml",
        ]
    )
    err = ws.capsys.readouterr().err
    assert code != 0
    _one_error_line(err, str(bad), "'dataset.min_rows'")
    report = yaml.safe_load(REPORT.read_text(encoding="utf-8"))
    assert report["passed"] is False and "dataset.min_rows" in report["error"]
    code, err = ws.run("split")
    assert code != 0


@pytest.mark.slow
def test_real_process_prints_one_line_without_traceback(ws: Workspace) -> None:
    CSV.write_bytes(b"")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    func_argv = STAGES["ingest"][1]
    proc = subprocess.run(
        [sys.executable, "-m", "gitops_ml.stages.ingest", *func_argv, "--params", "params.yaml"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2
    _one_error_line(proc.stderr, str(CSV), "file is empty")


@pytest.mark.parametrize(
    ("section", "values", "needle"),
    [
        ("data", {"colour": "red"}, "data.colour"),
        ("train", {"model": "xgboost"}, "train.model"),
        ("split", {"test_size": 1.2}, "split.test_size"),
        ("split", {"test_size": 0}, "split.test_size"),
    ],
)
@pytest.mark.parametrize("stage", ["ingest", "split"])
def test_bad_params_stop_every_stage_and_keep_outputs(
    ws: Workspace, stage: str, section: str, values: dict, needle: str
) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    params[section].update(values)
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    before = ws.snapshot()
    code, err = ws.run(stage)
    assert code != 0
    _one_error_line(err, needle)
    assert ws.snapshot() == before


def test_a_bad_hyperparameter_stops_the_train_stage_before_it_reads_anything(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hyperparameters are checked where the estimator is built (reading params elsewhere does
    not import scikit-learn): the train stage refuses them with one line, the model untouched."""
    params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    params["train"].update(model="random_forest", hyperparams={"n_estimators": -1})
    Path("params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    model = Path("models/model.joblib")
    code = train.main(["--train", str(TRAIN), "--model", str(model)])
    assert code == 2
    _one_error_line(capsys.readouterr().err, "n_estimators")
    assert not model.exists()
