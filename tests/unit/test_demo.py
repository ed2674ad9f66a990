"""`gitops-ml demo-batch`: new rows, never copies of a train or test row, with the shift applied;
what happens when a batch is appended and split again; the CLI and its one-line errors.

The source is the training part of the `adult_split` fixture and the excluded rows its held-out
part, as the CLI's defaults are the pipeline's train and test splits. Rows are compared by
content with the split's own row hash, on the features without fnlwgt (the census weight) and
without the label: the strictest sense of "the same person".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gitops_ml import batches
from gitops_ml.cli import main as cli_main
from gitops_ml.config import load_params
from gitops_ml.errors import DataError
from gitops_ml.monitor import demo, drift
from gitops_ml.stages.split import is_test_row, row_hashes, split
from tests import datasets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train(adult_split) -> pd.DataFrame:
    return adult_split[0]


@pytest.fixture(scope="module")
def held_out(adult_split) -> pd.DataFrame:
    """The test split: no batch row may be a copy of one of its rows."""
    return adult_split[1]


def person(df: pd.DataFrame) -> np.ndarray:
    """A content hash of each row's features but fnlwgt: equal hashes, the same person."""
    return row_hashes(df.drop(columns=["income", "fnlwgt"]))


def copies_of(batch: pd.DataFrame, known: pd.DataFrame) -> int:
    """How many rows of `batch` are, fnlwgt and label aside, a row of `known`."""
    return int(np.isin(person(batch), person(known)).sum())


def nearest(rows: pd.DataFrame, others: pd.DataFrame) -> np.ndarray:
    """For each of `rows`, in how many features but fnlwgt it differs from the nearest of `others`."""
    columns = [c for c in rows.columns if c not in ("income", "fnlwgt")]
    both = pd.concat([rows[columns], others[columns]], ignore_index=True).astype(str)
    codes = np.stack([pd.factorize(both[c])[0] for c in columns], axis=1).astype(np.int16)
    mine, theirs = codes[: len(rows)], codes[len(rows) :]
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), 250):
        chunk = mine[start : start + 250, None, :]
        out[start : start + 250] = (chunk != theirs[None, :, :]).sum(axis=2).min(axis=1)
    return out


# --------------------------------------------------------------------------------------------
# new rows


@pytest.mark.parametrize("shift", demo.SHIFTS)
def test_no_batch_row_is_a_train_or_test_row_even_without_fnlwgt(shift, train, held_out) -> None:
    batch = demo.make_batch(train, 3000, 1, shift, {"test": held_out})
    assert len(batch) == 3000
    assert copies_of(batch, train) == 0
    assert copies_of(batch, held_out) == 0
    assert not pd.Series(person(batch)).duplicated().any()
    # Nor, a fortiori, equal with fnlwgt and the label.
    assert not np.isin(row_hashes(batch), row_hashes(pd.concat([train, held_out]))).any()


def test_the_excluded_rows_are_what_keeps_test_twins_out(train, held_out) -> None:
    """Common people are common: a new row often equals a known one. Only the rows the batch is
    told about are kept out, so the CLI excludes the test split by default."""
    free = demo.make_batch(train, 3000, 1, "none")
    assert copies_of(free, train) == 0
    assert copies_of(free, held_out) > 30
    real = train.sample(3000, random_state=1)  # real people: about as many twins
    assert copies_of(real, held_out) > 30


def test_each_block_of_a_row_is_a_real_rows_with_the_same_label_and_sex(train, held_out) -> None:
    """A row is an anchor's person and label, with the other blocks from donors of the same
    label and sex: each block, with label and sex, is one a training row has."""
    batch = demo.make_batch(train, 2000, 2, "none", {"test": held_out})
    for block in (demo.PERSON, *demo.DONOR_BLOCKS):
        columns = list(dict.fromkeys([*block, "income", "sex"]))
        seen = batch[columns].merge(train[columns].drop_duplicates(), how="left", indicator=True)
        assert len(seen) == len(batch) and (seen["_merge"] == "both").all(), block


def test_every_column_keeps_the_distribution_of_the_source(train, held_out) -> None:
    """New rows are made by swapping blocks between rows, not by drawing other values: the
    common values (40 hours a week, no capital gain, the United States) keep their shares."""
    batch = demo.make_batch(train, 5000, 3, "none", {"test": held_out})
    for column in train.columns:
        expected = train[column].value_counts(normalize=True, dropna=False)
        seen = batch[column].value_counts(normalize=True, dropna=False)
        top = expected.index[0]
        assert seen.get(top, 0) == pytest.approx(expected[top], abs=0.02), column
    assert (batch["income"] == ">50K").mean() == pytest.approx(0.24, abs=0.015)


def test_a_batch_appended_and_split_again_puts_no_near_copy_of_a_test_row_in_train(
    adult_frame,
) -> None:
    """As a retraining pull request does: the pipeline's split, the batch appended, split again."""
    cfg = load_params(ROOT / "params.yaml").split
    train0, test0 = split(adult_frame, cfg, "income", "binary")
    batch = demo.make_batch(train0, 3000, 4, "none", {"test": test0})
    grown = pd.concat([adult_frame, batch], ignore_index=True)
    train1, test1 = split(grown, cfg, "income", "binary")
    to_test = is_test_row(batch, cfg)
    assert 300 < to_test.sum() < 900  # dealt like any new rows, about test_size of them
    assert len(test1) == len(test0) + to_test.sum()
    added_train, added_test = batch[~to_test], batch[to_test]

    # No batch row on either side is a copy of a row on the other side.
    assert copies_of(added_train, test1) == 0
    assert copies_of(added_test, train1) == 0
    # And no nearer to the test rows than real people are: the share of rows within one
    # feature of a test row is no larger than for rows of the original train split.
    near_batch = (nearest(added_train, test1) <= 1).mean()
    real = train0.sample(len(added_train), random_state=0)
    near_real = (nearest(real, test1) <= 1).mean()
    assert near_batch <= near_real + 0.02, (near_batch, near_real)
    assert (nearest(added_train, test1) == 0).sum() == 0


# --------------------------------------------------------------------------------------------
# the shifts, determinism, refusals


def test_demo_batches_are_deterministic_with_the_shift_applied(train, held_out) -> None:
    exclude = {"test": held_out}
    a = demo.make_batch(train, 1000, 3, "none", exclude)
    pd.testing.assert_frame_equal(a, demo.make_batch(train, 1000, 3, "none", exclude))
    assert not a.equals(demo.make_batch(train, 1000, 4, "none", exclude))
    assert list(a.columns) == list(train.columns)
    assert (a.dtypes == train.dtypes).all()

    male = (train["sex"] == "Male").mean()
    flipped = demo.make_batch(train, 1000, 3, "sex", exclude)
    assert (flipped["sex"] == "Female").mean() == pytest.approx(male, abs=0.001)
    older = demo.make_batch(train, 1000, 3, "age", exclude)
    assert older["age"].mean() > train["age"].mean() + 5
    rich = demo.make_batch(train, 1000, 3, "income_mix", exclude)
    assert (rich["income"] == ">50K").mean() == pytest.approx(demo.INCOME_MIX_SHARE)
    holes = demo.make_batch(train, 1000, 3, "missing", exclude)
    assert holes["occupation"].isna().mean() > train["occupation"].isna().mean() + 0.15
    assert (holes["workclass"].isna() == holes["occupation"].isna()).mean() > 0.98


def test_demo_batch_refuses_what_it_cannot_make(train, held_out) -> None:
    with pytest.raises(DataError, match="ask for at most"):
        demo.make_batch(held_out, len(held_out) + 1, 0, "none")
    with pytest.raises(DataError, match=r"only \d+ rows with income >50K"):
        demo.make_batch(held_out, 6000, 0, "income_mix")
    with pytest.raises(DataError, match="unknown shift 'weather'"):
        demo.make_batch(held_out, 10, 0, "weather")
    with pytest.raises(
        DataError,
        match=r"^the source lacks the column\(s\) age: demo batches are made of Adult rows",
    ):
        demo.make_batch(held_out.drop(columns=["age"]), 10, 0, "none")
    with pytest.raises(DataError, match=r"^held-out: lacks the column\(s\) race, sex,"):
        demo.make_batch(train, 10, 0, "none", {"held-out": held_out.drop(columns=["sex", "race"])})


# --------------------------------------------------------------------------------------------
# the CLI


def test_demo_batch_cli_writes_parquet_or_csv(train, held_out, tmp_path, capsys) -> None:
    source, excluded = tmp_path / "train.parquet", tmp_path / "test.parquet"
    train.to_parquet(source, index=False)
    held_out.to_parquet(excluded, index=False)
    args = ["demo-batch", "--source", str(source), "--exclude", str(excluded)]
    args += ["--rows", "700", "--seed", "9", "--shift", "sex"]
    assert cli_main([*args, "--output", str(tmp_path / "a.parquet")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 700 rows (shift sex, seed 9) to ")
    assert f"none a copy of a row of {source} or {excluded}" in out
    written = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(written, demo.make_batch(train, 700, 9, "sex", {"t": held_out}))
    assert cli_main([*args, "--output", str(tmp_path / "a.csv")]) == 0
    as_csv = batches.read_batch(tmp_path / "a.csv")
    assert list(as_csv.columns) == list(train.columns) and len(as_csv) == 700
    assert copies_of(as_csv, held_out) == 0 and copies_of(as_csv, train) == 0
    assert cli_main([*args, "--output", str(tmp_path / "a.xlsx")]) == 2
    assert "unknown output format" in capsys.readouterr().err
    assert not (tmp_path / "a.xlsx").exists()


def test_demo_batch_cli_defaults_to_the_pipelines_train_and_test_splits(
    train, held_out, tmp_path, monkeypatch, capsys
) -> None:
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    train.iloc[:4000].to_parquet(processed / "train.parquet", index=False)
    held_out.iloc[:1000].to_parquet(processed / "test.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["demo-batch", "--output", "batch.parquet", "--rows", "1500"]) == 0
    out = capsys.readouterr().out
    assert "generated from data/processed/train.parquet, none a copy of a row of " in out
    assert out.rstrip().endswith("or data/processed/test.parquet")
    batch = pd.read_parquet("batch.parquet")
    assert copies_of(batch, held_out.iloc[:1000]) == copies_of(batch, train.iloc[:4000]) == 0
    # `--exclude` alone: only the source's own rows are kept out.
    assert cli_main(["demo-batch", "--output", "b.parquet", "--rows", "1500", "--exclude"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("of data/processed/train.parquet")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rows", "5000"], "the source has 4000 rows; ask for at most 4000"),
        (["--exclude", "nope.parquet"], "nope.parquet: file not found"),
        (["--exclude", "no-race.parquet"], "no-race.parquet: lacks the column(s) race"),
        (["--source", "no-age.parquet"], "the source lacks the column(s) age"),
    ],
)
def test_demo_batch_cli_refuses_bad_input_in_one_line(
    args, needle, train, held_out, tmp_path, monkeypatch, capsys
) -> None:
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    train.iloc[:4000].to_parquet(processed / "train.parquet", index=False)
    held_out.iloc[:1000].to_parquet(processed / "test.parquet", index=False)
    held_out.iloc[:1000].drop(columns=["race"]).to_parquet(
        tmp_path / "no-race.parquet", index=False
    )
    train.iloc[:4000].drop(columns=["age"]).to_parquet(tmp_path / "no-age.parquet", index=False)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["demo-batch", "--output", "batch.parquet", *args]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], captured.err
    assert captured.out == ""
    assert not Path("batch.parquet").exists()


# --------------------------------------------------------------------------------------------
# users' own data: the generic layout, on real public data sets (tests/datasets.py)

OWN_ROWS = {"penguins": 200, "cars": 200, "breast_cancer": 300}


@pytest.fixture(scope="module", params=list(OWN_ROWS))
def own(request) -> tuple[datasets.Dataset, pd.DataFrame, pd.DataFrame]:
    """A data set that is not Adult, split 75/25 into train and test as a user's pipeline would."""
    from sklearn.model_selection import train_test_split

    ds = datasets.LOADERS[request.param]()
    tr, te = train_test_split(ds.frame, test_size=0.25, random_state=0)
    return ds, tr.reset_index(drop=True), te.reset_index(drop=True)


def own_batch(own, seed: int, shift: str = "none") -> pd.DataFrame:
    ds, tr, te = own
    return demo.make_batch(tr, OWN_ROWS[ds.name], seed, shift, {"test": te}, ds.target, ds.task)


def test_own_data_none_batch_has_new_rows_with_training_labels(own) -> None:
    ds, tr, te = own
    batch = own_batch(own, 0)
    assert len(batch) == OWN_ROWS[ds.name]
    assert list(batch.columns) == list(tr.columns) and (batch.dtypes == tr.dtypes).all()
    features = row_hashes(batch[ds.features])
    assert not np.isin(features, row_hashes(tr[ds.features])).any()
    assert not np.isin(features, row_hashes(te[ds.features])).any()
    assert not pd.Series(features).duplicated().any()
    assert set(batch[ds.target]) <= set(tr[ds.target])
    for column in ds.features:  # every value is one a training row has in that column
        assert batch[column].dropna().isin(tr[column].dropna()).all(), column


def test_own_data_batches_are_deterministic(own) -> None:
    a = own_batch(own, 3)
    pd.testing.assert_frame_equal(a, own_batch(own, 3))
    assert not a.equals(own_batch(own, 4))


def test_own_data_missing_blanks_the_first_two_features(own) -> None:
    ds, tr, _ = own
    batch = own_batch(own, 1, "missing")
    first, second, third = ds.features[:3]
    for column in (first, second):
        assert batch[column].isna().mean() > tr[column].isna().mean() + 0.15, column
    assert batch[third].isna().mean() < tr[third].isna().mean() + 0.05


def test_own_data_regression_donors_share_the_targets_band() -> None:
    """Auto MPG: a car's features come from cars of its decile of miles per gallon, so a batch
    keeps what ties weight to mileage."""
    ds = datasets.cars()
    batch = demo.make_batch(ds.frame, 300, 0, "none", target=ds.target, task="regression")
    real = ds.frame[["Weight_in_lbs", ds.target]].corr().iloc[0, 1]
    made = batch[["Weight_in_lbs", ds.target]].corr().iloc[0, 1]
    assert made == pytest.approx(real, abs=0.1) and made < -0.7


@pytest.mark.parametrize("shift", ["age", "sex", "income_mix"])
def test_own_data_refuses_the_adult_shifts_in_one_line(shift) -> None:
    ds = datasets.penguins()
    with pytest.raises(
        DataError, match=rf"^shift '{shift}' needs the Adult column\(s\) income, age,"
    ) as e:
        demo.make_batch(ds.frame, 50, 0, shift, target=ds.target, task=ds.task)
    assert "\n" not in str(e.value) and "none or missing" in str(e.value)


def test_own_data_without_its_label_matches_donors_on_nothing() -> None:
    ds = datasets.penguins()
    frame = ds.frame.drop(columns=[ds.target])
    batch = demo.make_batch(frame, 100, 0, "none", target=ds.target, task=ds.task)
    assert list(batch.columns) == list(frame.columns)
    assert not np.isin(row_hashes(batch), row_hashes(frame)).any()


@pytest.mark.parametrize("shift", ["none", "labels"])
def test_own_data_none_batch_does_not_drift(own, shift) -> None:
    """Against the training split at the shipped drift thresholds (min_rows lowered: these sets
    are small). Auto MPG's `Name` (304 car names, nearly one per row) is left out: 200 real
    training rows drift on it too. Changed labels move no feature."""
    import dataclasses

    ds, tr, _ = own
    cfg = dataclasses.replace(load_params(ROOT / "params.yaml").drift, min_rows=50)
    reference = tr.drop(columns=["Name"], errors="ignore")
    batch = own_batch(own, 2, shift)[reference.columns]
    scores = np.zeros(len(batch))
    report = drift.detect_drift(
        reference, batch, cfg, ref_scores=scores, cur_scores=scores, target=ds.target
    )
    assert report.drifted_features == [], report.summary()


def test_demo_batch_cli_on_own_data_reads_the_target_from_params(
    own, tmp_path, monkeypatch, capsys
) -> None:
    ds, tr, te = own
    tr.to_parquet(tmp_path / "train.parquet", index=False)
    te.to_parquet(tmp_path / "test.parquet", index=False)
    seen = []

    def params(path):
        seen.append(str(path))
        return type("P", (), {"data": type("D", (), {"target": ds.target, "task": ds.task})})

    monkeypatch.setattr(demo, "load_params", params)
    args = ["demo-batch", "--source", str(tmp_path / "train.parquet"), "--exclude"]
    args += [str(tmp_path / "test.parquet"), "--rows", "100", "--seed", "5"]
    args += ["--params", "mine.yaml", "--output", str(tmp_path / "b.parquet")]
    assert cli_main(args) == 0, capsys.readouterr().err
    assert seen == ["mine.yaml"]
    written = pd.read_parquet(tmp_path / "b.parquet")
    expected = demo.make_batch(tr, 100, 5, "none", {"t": te}, ds.target, ds.task)
    pd.testing.assert_frame_equal(written, expected)


# --------------------------------------------------------------------------------------------
# the labels shift: the features of `none`, every label changed


def test_the_labels_shift_changes_every_label_and_nothing_else(train, held_out) -> None:
    plain = demo.make_batch(train, 1000, 4, "none", {"test": held_out})
    flipped = demo.make_batch(train, 1000, 4, "labels", {"test": held_out})
    features = [c for c in train.columns if c != "income"]
    pd.testing.assert_frame_equal(plain[features], flipped[features])
    assert (plain["income"] != flipped["income"]).all()
    swapped = {">50K": "<=50K", "<=50K": ">50K"}
    assert (plain["income"].map(swapped) == flipped["income"]).all()
    assert flipped["income"].dtype == train["income"].dtype


def test_own_data_labels_shift_changes_every_label_to_a_known_one(own) -> None:
    ds, tr, _ = own
    plain, flipped = own_batch(own, 5), own_batch(own, 5, "labels")
    pd.testing.assert_frame_equal(plain[ds.features], flipped[ds.features])
    labelled = plain[ds.target].notna()
    assert (plain[ds.target][labelled] != flipped[ds.target][labelled]).all()
    if ds.task == "regression":  # mirrored in the training range
        assert flipped[ds.target].between(tr[ds.target].min(), tr[ds.target].max()).all()
    else:  # another class the training data has
        assert set(flipped[ds.target].dropna()) <= set(tr[ds.target].dropna())


def test_own_data_regression_labels_are_mirrored_in_the_sources_range() -> None:
    ds = datasets.cars()
    target = ds.frame[ds.target]
    plain = demo.make_batch(ds.frame, 200, 0, "none", target=ds.target, task="regression")
    flipped = demo.make_batch(ds.frame, 200, 0, "labels", target=ds.target, task="regression")
    mirrored = target.min() + target.max() - plain[ds.target]
    pd.testing.assert_series_equal(flipped[ds.target], mirrored, check_names=False)
    assert flipped[ds.target].between(target.min(), target.max()).all()
    real = ds.frame[["Weight_in_lbs", ds.target]].corr().iloc[0, 1]
    made = flipped[["Weight_in_lbs", ds.target]].corr().iloc[0, 1]
    assert real < -0.7 and made > 0.7  # heavier cars now go further: the relation turned


def test_the_labels_shift_needs_a_label_column() -> None:
    ds = datasets.penguins()
    frame = ds.frame.drop(columns=[ds.target])
    with pytest.raises(DataError, match=r"^shift 'labels' changes the label, and the source has"):
        demo.make_batch(frame, 50, 0, "labels", target=ds.target, task=ds.task)
