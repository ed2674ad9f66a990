"""The shipped UCI Adult data: ingests to all 48,842 rows, passes its reviewed schema, and
ingests to byte-identical parquet every time (so DVC sees no change when nothing changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.stages import ingest, validate
from tests.conftest import template_settings

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, **data) -> Path:
    params = template_settings()
    params["data"].update(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _ingest(params: Path, output: Path) -> bytes:
    argv = [
        "--source-dir",
        str(REPO / "data/source"),
        "--output",
        str(output),
        "--params",
        str(params),
    ]
    assert ingest.main(argv) == 0
    return output.read_bytes()


def test_adult_ingests_fully_and_passes_its_schema(tmp_path: Path) -> None:
    params = _params(tmp_path, source="adult", path=None, target="income", task="binary")
    raw = tmp_path / "raw.parquet"
    first = _ingest(params, raw)
    df = pd.read_parquet(raw)
    assert len(df) == 48_842
    assert set(df["income"]) == {"<=50K", ">50K"}

    report = tmp_path / "validation.json"
    argv = [
        "--input",
        str(raw),
        "--schema",
        str(REPO / "data/schema/adult.yaml"),
        "--report",
        str(report),
        "--params",
        str(params),
    ]
    assert validate.main(argv) == 0
    result = json.loads(report.read_text(encoding="utf-8"))
    assert result["passed"] is True
    assert result["n_rows"] == 48_842
    assert result["summary"]["failed"] == 0

    assert _ingest(params, tmp_path / "again.parquet") == first


@pytest.mark.parametrize("n_rows", [1_000, 5_000])
def test_synthetic_ingest_is_byte_identical(tmp_path: Path, n_rows: int) -> None:
    params = _params(tmp_path, source="synthetic", path=None, n_rows=n_rows)
    assert _ingest(params, tmp_path / "a.parquet") == _ingest(params, tmp_path / "b.parquet")
