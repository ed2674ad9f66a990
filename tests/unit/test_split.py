"""The split: deterministic, stratified for classification, never mutating its input, and only
on data the validate stage passed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitops_ml.config import SplitConfig
from gitops_ml.errors import DataError
from gitops_ml.files import file_md5, write_parquet
from gitops_ml.stages.split import check_validation, split

CFG = SplitConfig(test_size=0.25, seed=7)


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "row": np.arange(n),
            "y": np.where(np.arange(n) % 5 == 0, "pos", "neg"),  # 20% positive
        }
    )


def test_sizes_and_partition() -> None:
    df = _frame()
    train, test = split(df, CFG, "y", "binary")
    assert (len(train), len(test)) == (150, 50)
    assert sorted([*train["row"], *test["row"]]) == list(range(200))
    assert list(train.index) == list(range(150))


def test_stratified_for_classification() -> None:
    train, test = split(_frame(), CFG, "y", "binary")
    assert (test["y"] == "pos").mean() == pytest.approx(0.2)
    assert (train["y"] == "pos").mean() == pytest.approx(0.2)


def test_deterministic_and_seeded() -> None:
    a, _ = split(_frame(), CFG, "y", "binary")
    b, _ = split(_frame(), CFG, "y", "binary")
    c, _ = split(_frame(), SplitConfig(test_size=0.25, seed=8), "y", "binary")
    pd.testing.assert_frame_equal(a, b)
    assert a["row"].tolist() != c["row"].tolist()


def test_does_not_mutate_input() -> None:
    df = _frame()
    before = df.copy()
    train, _ = split(df, CFG, "y", "binary")
    train.loc[0, "x"] = 1e9
    pd.testing.assert_frame_equal(df, before)


def test_regression_is_not_stratified() -> None:
    df = _frame().assign(y=np.linspace(0, 1, 200))
    train, test = split(df, CFG, "y", "regression")
    assert (len(train), len(test)) == (150, 50)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_frame().assign(y=["a"] * 199 + ["b"]), r"label 'b' has 1 row"),
        (_frame().assign(y=[None] + ["a", "b"] * 99 + ["a"]), r"missing labels"),
        (_frame().drop(columns="y"), r"no target column 'y'"),
        (_frame().iloc[:6].assign(y=list("aabbcc")), r"cannot split 6 rows"),
    ],
    ids=["singleton-class", "missing-label", "no-target", "too-small"],
)
def test_unsplittable_data_is_a_data_error(frame: pd.DataFrame, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        split(frame, CFG, "y", "binary")


def _report(tmp_path: Path, data: Path, **fields) -> Path:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"passed": True, "data_md5": file_md5(data), **fields}))
    return path


def test_check_validation(tmp_path: Path) -> None:
    data = tmp_path / "data.parquet"
    write_parquet(data, _frame())
    check_validation(_report(tmp_path, data), data)
    with pytest.raises(DataError, match=r"did not pass validation"):
        check_validation(_report(tmp_path, data, passed=False), data)
    with pytest.raises(DataError, match=r"describes other data"):
        check_validation(_report(tmp_path, data, data_md5="0" * 32), data)
    with pytest.raises(DataError, match=r"validation report not found"):
        check_validation(tmp_path / "none.json", data)
