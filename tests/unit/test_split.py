"""The split: by row content (appending rows never moves one, dtypes do not matter), every label
on both sides, never mutating its input, and only on data the validate stage passed."""

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
    assert len(train) + len(test) == 200 and 30 <= len(test) <= 70  # test_size 0.25, by hash
    assert sorted([*train["row"], *test["row"]]) == list(range(200))
    assert list(train.index) == list(range(len(train)))


def test_labels_keep_their_share_on_large_data() -> None:
    n = 20_000
    df = _frame(n)
    train, test = split(df, CFG, "y", "binary")
    assert len(test) / n == pytest.approx(0.25, abs=0.01)
    assert (test["y"] == "pos").mean() == pytest.approx(0.2, abs=0.01)
    assert (train["y"] == "pos").mean() == pytest.approx(0.2, abs=0.01)


def test_deterministic_and_seeded() -> None:
    a, _ = split(_frame(), CFG, "y", "binary")
    b, _ = split(_frame(), CFG, "y", "binary")
    c, _ = split(_frame(), SplitConfig(test_size=0.25, seed=8), "y", "binary")
    pd.testing.assert_frame_equal(a, b)
    assert a["row"].tolist() != c["row"].tolist()


def test_appending_rows_never_moves_a_row() -> None:
    """A retraining batch: the base's train rows stay train rows, its test rows test rows."""
    base = _frame(500)
    base_train, base_test = split(base, CFG, "y", "binary")
    batch = _frame(300).assign(row=np.arange(500, 800), x=lambda d: d["x"] + 5)
    shuffled = pd.concat([batch, base]).sample(frac=1.0, random_state=3)  # order does not matter
    train, test = split(shuffled, CFG, "y", "binary")
    assert set(base_train["row"]) <= set(train["row"])
    assert set(base_test["row"]) <= set(test["row"])
    assert not set(base_train["row"]) & set(test["row"])


def test_dtypes_and_missing_values_do_not_move_rows() -> None:
    """A batch with a missing age turns the int column into floats: no row moves for that."""
    df = _frame().assign(age=np.arange(200) % 60 + 18, city=["a", "b", None, "c"] * 50)
    _, test = split(df, CFG, "y", "binary")
    widened = df.assign(age=df["age"].astype("float64"), city=df["city"].astype(object))
    _, test2 = split(widened, CFG, "y", "binary")
    assert test["row"].tolist() == test2["row"].tolist()


def test_identical_rows_land_on_the_same_side() -> None:
    df = pd.concat([_frame(100).drop(columns="row")] * 3, ignore_index=True)
    train, test = split(df, CFG, "y", "binary")
    assert not set(map(tuple, train.to_numpy())) & set(map(tuple, test.to_numpy()))


def test_does_not_mutate_input() -> None:
    df = _frame()
    before = df.copy()
    train, _ = split(df, CFG, "y", "binary")
    train.loc[0, "x"] = 1e9
    pd.testing.assert_frame_equal(df, before)


def test_regression_splits_by_content_too() -> None:
    df = _frame().assign(y=np.linspace(0, 1, 200))
    train, test = split(df, CFG, "y", "regression")
    assert len(train) + len(test) == 200 and 30 <= len(test) <= 70
    with pytest.raises(DataError, match=r"cannot split 1 rows with split.test_size=0.25: the "):
        split(df.iloc[:1], CFG, "y", "regression")


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (_frame().assign(y=["a"] * 199 + ["b"]), r"label 'b' has 1 row"),
        (_frame().assign(y=[None] + ["a", "b"] * 99 + ["a"]), r"missing labels"),
        (_frame().drop(columns="y"), r"no target column 'y'"),
        (_frame().iloc[:6].assign(y=list("aabbcc")), r"no row of label 'a' \(2 rows\) fell in"),
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


def test_the_report_counts_test_rows_the_champion_trained_on(tmp_path: Path) -> None:
    """seen_in_training: by row content on the shared columns, from the base's cached split."""
    from gitops_ml.lineage.artifacts import IntegrityError
    from gitops_ml.lineage.dvclock import TRAIN_PATH, cache_path
    from gitops_ml.pr.report import seen_in_training

    base_train = _frame(50)
    staged = tmp_path / "train.parquet"
    write_parquet(staged, base_train)
    md5 = file_md5(staged)
    cached = cache_path(tmp_path, md5)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(staged.read_bytes())
    lock = {"stages": {"split": {"outs": [{"path": TRAIN_PATH, "md5": md5}]}}}
    # Three of the champion's training rows, two new ones, and a column the base did not have.
    test = pd.concat([base_train.iloc[[3, 10, 20]], _frame(60).iloc[55:57]], ignore_index=True)
    seen = seen_in_training(tmp_path, "0" * 40, lock, test.assign(extra=1.0))
    assert seen.tolist() == [True, True, True, False, False]
    no_lock = seen_in_training(tmp_path, "0" * 40, {"stages": {}}, test)
    assert no_lock is None  # the base declares no train split: unknown, not 0
    cached.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=md5):
        seen_in_training(tmp_path, "0" * 40, lock, test)
