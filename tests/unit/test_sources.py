"""Loaders: normalisation of the shipped Adult format, clear errors for unreadable CSVs, and a
synthetic source whose signal and determinism the benchmark relies on."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitops_ml.config import DataConfig
from gitops_ml.errors import DataError
from gitops_ml.sources import (
    ADULT_COLUMNS,
    ADULT_LABELS,
    ADULT_NUMERIC,
    load_adult,
    load_file,
    load_source,
    make_synthetic,
    read_csv,
    synthetic_logit,
)
from gitops_ml.stages.ingest import untracked_csv

ADULT_TRAIN = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, "
    "Male, 2174, 0, 40, United-States, <=50K\n"
    "54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, "
    "0, 0, 60, South, >50K\n"
)
ADULT_TEST = (
    "|1x3 Cross validator\n"
    "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, "
    "0, 0, 40, ?, <=50K.\n"
    "44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, "
    "Black, Male, 7688, 0, 40, United-States, >50K.\n"
    "\n"
)


def _data_cfg(**overrides) -> DataConfig:
    base = dict(
        source="csv", path=None, delimiter=",", header=True, columns=None, drop_columns=(),
        target="y", task="binary", n_rows=None, positive_label=None,
    )  # fmt: skip
    return DataConfig(**{**base, **overrides})


@pytest.fixture
def adult_dir(tmp_path: Path) -> Path:
    d = tmp_path / "adult"
    d.mkdir()
    (d / "adult.data.gz").write_bytes(gzip.compress(ADULT_TRAIN.encode()))
    (d / "adult.test.gz").write_bytes(gzip.compress(ADULT_TEST.encode()))
    return d


def test_adult_is_concatenated_and_normalised(adult_dir: Path) -> None:
    df = load_adult(adult_dir)
    assert list(df.columns) == list(ADULT_COLUMNS)
    assert len(df) == 4
    assert df["income"].tolist() == ["<=50K", ">50K", "<=50K", ">50K"]
    for col in ADULT_NUMERIC:
        assert df[col].dtype == "int64", col
    assert pd.isna(df.loc[1, "workclass"])
    assert df["occupation"].isna().sum() == 1
    assert df["native_country"].isna().sum() == 1
    assert df.loc[0, "workclass"] == "State-gov"  # no leading space left


def test_adult_missing_file_names_it(adult_dir: Path) -> None:
    (adult_dir / "adult.test.gz").unlink()
    with pytest.raises(DataError, match=r"adult\.test\.gz: file not found"):
        load_adult(adult_dir)


def test_read_csv_strips_whitespace_and_infers_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(" a , b ,c,d\n 1, x ,2.5,?\n2,?, ,7\n3,y,4,8\n", encoding="utf-8")
    df = read_csv(path)
    assert list(df.columns) == ["a", "b", "c", "d"]
    assert df["a"].dtype == "int64"
    assert df["b"].tolist()[0] == "x" and pd.isna(df["b"].iloc[1])
    assert pd.api.types.is_float_dtype(df["c"]) and pd.isna(df["c"].iloc[1])
    assert pd.api.types.is_float_dtype(df["d"]) and df["d"].iloc[2] == 8


def test_read_csv_keeps_a_column_with_text_as_text(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("age,y\n30,a\nabc,b\n", encoding="utf-8")
    df = read_csv(path)
    assert not pd.api.types.is_numeric_dtype(df["age"])
    assert df["age"].tolist() == ["30", "abc"]


def test_read_csv_reads_gzip_by_extension(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(b"a,y\n1,x\n2,z\n"))
    assert read_csv(path)["a"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"file not found"),
        (b"", r"file is empty"),
        (b"a,b,c\n", r"no data rows"),
        (b"\n\n", r"file is empty"),
        (b"a,b,c\n1,2,3\n4,5\n", r"malformed CSV: line 3 has 2 fields, expected 3"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", r"malformed CSV: line 3 has 4 fields, expected 3"),
        (b'a,b,c\n1,"x,3\n4,5,6\n', r"unterminated quote in the record starting at line 2"),
        (b"PAR1\x15\x04\x15\x00binary", r"not a CSV text file \(looks like a parquet file\)"),
        (gzip.compress(b"a,b\n1,2\n"), r"looks like gzip-compressed data"),
        (b"a,b\n1,\x00\x01\x02\n", r"binary content"),
        (b"a,b\n1,caf\xe9\n", r"not UTF-8 text"),
        (b"a,b,a\n1,2,3\n", r"duplicate column 'a'"),
        (b"a;b;c\n1;2;3\n", r"semicolon-separated"),
    ],
    ids=[
        "missing",
        "zero-bytes",
        "header-only",
        "blank-lines",
        "short-row",
        "long-row",
        "open-quote",
        "parquet",
        "gzip",
        "nul-bytes",
        "latin-1",
        "dup-header",
        "semicolon",
    ],
)
def test_read_csv_errors_name_the_file(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        read_csv(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message


def test_load_file_requires_the_target(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv: no target column 'y' \(data\.target\)"):
        load_file(_data_cfg(path=str(path)))


def test_load_file_regression_target_must_be_numeric(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,2.5\n2,lots\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"target column 'y' must be numeric.*'lots'"):
        load_file(_data_cfg(path=str(path), task="regression"))
    path.write_text("a,y\n1,2.5\n2,3\n", encoding="utf-8")
    assert load_file(_data_cfg(path=str(path), task="regression"))["y"].tolist() == [2.5, 3.0]


def test_synthetic_shape_dtypes_and_labels() -> None:
    df = make_synthetic(5_000)
    assert list(df.columns) == list(ADULT_COLUMNS)
    assert len(df) == 5_000
    for col in ADULT_NUMERIC:
        assert df[col].dtype == "int64", col
    assert set(df["income"]) == set(ADULT_LABELS)
    assert df["age"].between(17, 90).all()
    assert df["hours_per_week"].between(1, 99).all()
    assert 0.2 <= (df["income"] == ">50K").mean() <= 0.3


def test_synthetic_is_deterministic() -> None:
    pd.testing.assert_frame_equal(make_synthetic(2_000), make_synthetic(2_000))


def test_synthetic_label_follows_the_known_signal() -> None:
    df = make_synthetic(20_000)
    positive = (df["income"] == ">50K").to_numpy()
    logit = synthetic_logit(df)
    high = logit > np.quantile(logit, 0.8)
    low = logit < np.quantile(logit, 0.2)
    assert positive[high].mean() > 0.5 > 0.05 > positive[low].mean()
    by_edu = df.assign(p=positive).groupby("education_num")["p"].mean()
    assert by_edu.loc[13:].mean() > by_edu.loc[:9].mean()


def test_load_source_dispatches_and_checks_target(adult_dir: Path) -> None:
    df = load_source(_data_cfg(source="adult", target="income"), adult_dir.parent)
    assert len(df) == 4
    df = load_source(_data_cfg(source="synthetic", target="income", n_rows=300), Path("unused"))
    assert len(df) == 300
    with pytest.raises(DataError, match=r"no target column 'label'"):
        load_source(_data_cfg(source="synthetic", target="label", n_rows=300), Path("unused"))


def test_csv_outside_the_source_dir_is_flagged(tmp_path: Path) -> None:
    source = tmp_path / "data" / "source"
    inside = _data_cfg(path=str(source / "mine.csv"))
    outside = _data_cfg(path=str(tmp_path / "elsewhere" / "mine.csv"))
    assert not untracked_csv(inside, source)
    assert untracked_csv(outside, source)
    assert not untracked_csv(_data_cfg(source="adult", path=None), source)
