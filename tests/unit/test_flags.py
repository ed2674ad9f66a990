"""The report's feature flags (`gitops_ml.pr.flags`): the rules on hand-made rows, then on real
public data where they trigger naturally (Adult, breast cancer, NYC flights), where they do not
(penguins), and on penguins given a genuine copy of a column and a column of noise."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from gitops_ml.config import parse_params
from gitops_ml.pr import flags
from gitops_ml.stages import evaluate, train
from tests import datasets
from tests.conftest import template_settings
from tests.tune_setup import MULTICLASS_GATE


def row(feature: str, importance: float, std: float) -> dict:
    return {"feature": feature, "importance": importance, "std": std}


# -- ~0 importance -----------------------------------------------------------------------------


def test_importance_below_the_floor_or_within_the_noise_is_flagged() -> None:
    rows = [
        row("strong", 0.05, 0.002),
        row("small_but_sure", 0.0015, 0.0002),  # above the floor, 7.5 std from 0
        row("noisy", 0.004, 0.0025),  # above the floor, but within 2 std of 0
        row("tiny", 0.0008, 0.0001),  # below the floor
        row("harmful", -0.002, 0.001),
        row("zero", 0.0, 0.0),
    ]
    found = flags.weak_features(rows)
    assert [f.features[0] for f in found] == ["harmful", "zero", "tiny", "noisy"]
    assert found[3].message == "`noisy`: importance 0.0040 ± 0.0025 (within 2 std of 0)"
    assert found[2].message == "`tiny`: importance 0.0008 ± 0.0001 (below 0.001)"
    assert all(f.kind == "importance" for f in found)


def test_malformed_importance_rows_are_skipped() -> None:
    rows = [None, {"feature": "a"}, {"importance": 0.0}, row("b", float("nan"), 0.0), "x"]
    assert flags.weak_features(rows) == []
    assert flags.weak_features({"not": "a list"}) == []


def test_the_adult_importance_flags_sex_and_race_only() -> None:
    """evaluate's numbers for the shipped model (reports/plots/importance.json of the default
    pipeline, 5 repeats on 5,000 test rows)."""
    adult = [
        row("capital_gain", 0.064352, 0.001031), row("age", 0.046318, 0.003258),
        row("marital_status", 0.037577, 0.002232), row("occupation", 0.017062, 0.000906),
        row("capital_loss", 0.016016, 0.00151), row("education", 0.014369, 0.00072),
        row("hours_per_week", 0.009796, 0.00054), row("relationship", 0.009593, 0.001246),
        row("native_country", 0.001919, 0.000471), row("education_num", 0.001386, 0.000304),
        row("workclass", 0.001176, 0.000256), row("fnlwgt", 0.001139, 0.000436),
        row("race", 0.000775, 0.000356), row("sex", 0.000763, 0.000176),
    ]  # fmt: skip
    assert [f.features[0] for f in flags.weak_features(adult)] == ["sex", "race"]


# -- near duplicates ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return datasets.penguins().frame


def features_of(frame: pd.DataFrame, target: str) -> list[str]:
    return [c for c in frame.columns if c != target]


def test_penguins_have_no_near_duplicates(penguins: pd.DataFrame) -> None:
    assert flags.duplicate_features(penguins, features_of(penguins, "species")) == []


def test_a_rescaled_copy_and_a_relabelled_copy_are_flagged(penguins: pd.DataFrame) -> None:
    frame = penguins.assign(
        flipper_length_cm=penguins["flipper_length_mm"] / 10,  # same numbers, another unit
        island_code=penguins["island"].map({"Biscoe": 1, "Dream": 2, "Torgersen": 3}),
    )
    found = flags.duplicate_features(frame, features_of(frame, "species"))
    pairs = {f.features: f.message for f in found}
    assert pairs == {
        ("flipper_length_mm", "flipper_length_cm"): (
            "`flipper_length_mm` and `flipper_length_cm`: Spearman correlation +1.000"
        ),
        ("island", "island_code"): "`island` and `island_code`: one-to-one (100.0% of rows)",
    }


def test_a_coarser_column_is_determined_not_duplicated(penguins: pd.DataFrame) -> None:
    frame = penguins.assign(
        on_biscoe=np.where(penguins["island"] == "Biscoe", "yes", "no"),
        row_id=np.arange(len(penguins)).astype(str),  # determines everything: too many levels
        nearly_constant=np.where(np.arange(len(penguins)) < 2, "b", "a"),
    )
    found = flags.duplicate_features(frame, features_of(frame, "species"))
    assert [(f.features, f.message) for f in found] == [
        (("island", "on_biscoe"), "`island` determines `on_biscoe` (100.0% of rows)")
    ]


def test_adult_education_and_its_number_are_one_to_one(adult_split) -> None:
    train_split = adult_split[0]
    start = time.perf_counter()
    found = flags.duplicate_features(train_split, features_of(train_split, "income"))
    elapsed = time.perf_counter() - start
    print(f"duplicate check on Adult ({len(train_split)} rows x 14): {elapsed * 1000:.0f} ms")
    assert [f.message for f in found] == [
        "`education` and `education_num`: one-to-one (100.0% of rows)"
    ]


def test_breast_cancer_radius_perimeter_and_area_are_flagged() -> None:
    data = datasets.breast_cancer()
    found = flags.duplicate_features(data.frame, data.features)
    pairs = {frozenset(f.features) for f in found}
    assert frozenset(("mean radius", "mean perimeter")) in pairs
    assert frozenset(("mean radius", "mean area")) in pairs
    assert frozenset(("mean radius", "mean texture")) not in pairs
    assert all(f.kind == "duplicate" and "Spearman" in f.message for f in found)


@pytest.mark.slow
def test_the_check_is_cheap_on_327k_flights() -> None:
    data = datasets.flights()
    start = time.perf_counter()
    found = flags.duplicate_features(data.frame, data.features, seed=42)
    elapsed = time.perf_counter() - start
    print(f"duplicate check on flights ({len(data.frame)} rows x 18): {elapsed * 1000:.0f} ms")
    pairs = {frozenset(f.features) for f in found}
    assert frozenset(("sched_dep_time", "hour")) in pairs
    assert frozenset(("air_time", "distance")) in pairs
    assert elapsed < 5.0


# -- ~0 importance measured by evaluate: a column of noise -------------------------------------


def test_a_noise_column_has_zero_importance_in_evaluate(penguins: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    frame = penguins.assign(noise=rng.normal(size=len(penguins)))
    frame = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    raw = template_settings()
    raw["data"].update(source="csv", path="data/source/p.csv", target="species",
                       task="multiclass", positive_label=None)  # fmt: skip
    raw["evaluate"].update(slices=[], importance_rows=1000, importance_repeats=5)
    raw["gate"].update(MULTICLASS_GATE)
    params = parse_params(raw)
    model = train.train(frame.iloc[:240], params).pipeline
    result = evaluate.evaluate(model, frame.iloc[240:].reset_index(drop=True), params)
    weak = {f.features[0] for f in flags.weak_features(result.plots["importance"])}
    assert "noise" in weak
    assert not weak & {"bill_length_mm", "flipper_length_mm"}


# -- the section -------------------------------------------------------------------------------


def test_the_section_says_what_was_checked() -> None:
    none = flags.render_flags([], importance_known=True, duplicates_known=True)
    assert none[:3] == [
        "### Feature flags",
        "",
        "None: no feature has ~0 permutation importance and no feature nearly duplicates another.",
    ]
    skipped = flags.render_flags([], importance_known=False, duplicates_known=False)
    assert "Not checked" in skipped[2]
    found = [
        flags.Flag("importance", ("a",), "`a`: importance 0.0000 ± 0.0000 (below 0.001)"),
        *(flags.Flag("duplicate", (f"x{i}", f"y{i}"), f"pair {i}") for i in range(12)),
    ]
    text = "\n".join(flags.render_flags(found, importance_known=True, duplicates_known=True))
    assert "the gate does not fail on them" in text
    assert "⚠️ **~0 permutation importance** (1)" in text
    assert "- `a`: importance 0.0000 ± 0.0000 (below 0.001)" in text
    assert "⚠️ **Near duplicates** (12)" in text
    assert "- pair 9" in text and "- pair 10" not in text and "- ... and 2 more" in text
