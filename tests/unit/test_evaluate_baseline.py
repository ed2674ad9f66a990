"""The evaluate stage's simple baseline (reports/baseline.json) on data sets it was not built on:
a multiclass, two regression and a numeric-only binary set, and its command-line contract."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from gitops_ml.config import Params, parse_params
from gitops_ml.errors import DataError
from gitops_ml.metrics import BINARY_KEYS, MULTICLASS_KEYS, REGRESSION_KEYS
from gitops_ml.stages import evaluate
from tests.conftest import REGRESSION_GATE, template_settings
from tests.datasets import Dataset, breast_cancer, cars, flights, penguins

MULTICLASS_GATE = {
    "primary": "f1_macro",
    "thresholds": {},
    "max_regression": {"f1_macro": 0.01},
    "worst_slice": None,
}


def params_for(data: Dataset, positive_label: str | None = None) -> Params:
    raw = template_settings()
    raw["data"].update(
        source="csv", path="x.csv", target=data.target, task=data.task,
        positive_label=positive_label,
    )  # fmt: skip
    raw["evaluate"]["slices"] = []
    raw["train"]["model"] = "random_forest"
    if data.task != "binary":
        raw["gate"].update(REGRESSION_GATE if data.task == "regression" else MULTICLASS_GATE)
    return parse_params(raw)


def halves(data: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = data.frame
    stratify = frame[data.target] if data.task != "regression" else None
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def diabetes() -> Dataset:
    """scikit-learn's diabetes progression set: 442 rows x 10 numeric features, regression."""
    from sklearn.datasets import load_diabetes

    return Dataset("diabetes", load_diabetes(as_frame=True).frame, "target", "regression",
                   "scikit-learn load_diabetes", "BSD-3-Clause")  # fmt: skip


def test_multiclass_baseline_on_penguins() -> None:
    """Missing values in text and numbers, three classes: a multinomial logistic regression."""
    data = penguins()
    train, test = halves(data)
    result = evaluate.baseline_results(train, test, params_for(data))
    assert result["model"] == "logistic_regression"
    assert result["n_train"] == len(train)
    assert set(result["metrics"]) == set(MULTICLASS_KEYS)
    assert result["metrics"]["n_test"] == len(test)
    assert result["metrics"]["accuracy"] > 0.9  # bill and flipper sizes separate the species
    assert result["metrics"]["roc_auc_ovr"] > 0.95


@pytest.mark.parametrize("loader", [diabetes, cars], ids=["diabetes", "cars"])
def test_regression_baseline_is_ridge(loader) -> None:
    """Numbers only (diabetes); text, a date and 304 car names (cars)."""
    data = loader()
    train, test = halves(data)
    result = evaluate.baseline_results(train, test, params_for(data))
    assert result["model"] == "ridge"
    assert set(result["metrics"]) == set(REGRESSION_KEYS)
    metrics = result["metrics"]
    assert metrics["r2"] > 0.3  # a linear fit explains a good part of either target
    assert 0 < metrics["mae"] <= metrics["rmse"] < test[data.target].std()


def test_binary_baseline_on_numeric_data_scores_the_configured_class() -> None:
    data = breast_cancer()
    train, test = halves(data)
    result = evaluate.baseline_results(train, test, params_for(data, positive_label="1"))
    assert result["model"] == "logistic_regression"
    assert set(result["metrics"]) == set(BINARY_KEYS)
    assert result["metrics"]["roc_auc"] > 0.97
    # the other class as positive: the same ranking, read the other way round
    flipped = evaluate.baseline_results(train, test, params_for(data, positive_label="0"))
    assert flipped["metrics"]["roc_auc"] == pytest.approx(result["metrics"]["roc_auc"])
    assert flipped["metrics"]["recall"] != result["metrics"]["recall"]


def test_baseline_is_deterministic_and_names_a_bad_split() -> None:
    data = penguins()
    train, test = halves(data)
    params = params_for(data)
    assert evaluate.baseline_results(train, test, params) == evaluate.baseline_results(
        train, test, params
    )
    with pytest.raises(
        DataError, match=r"target column .species. \(data.target\) is not in the train data"
    ):
        evaluate.baseline_results(train.drop(columns=["species"]), test, params)


def test_train_and_baseline_arguments_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model", "m", "--test", "t", "--metrics", "m.json", "--slices", "s.json"]
    args += ["--classes", "c.json", "--plots", "p", "--figures", "f", "--predictions", "x"]
    with pytest.raises(SystemExit) as exc:
        evaluate.main([*args, "--train", "train.parquet"])
    assert exc.value.code == 2
    assert "--train and --baseline go together" in capsys.readouterr().err


def test_a_large_train_split_is_sampled_down_to_baseline_rows() -> None:
    """Above evaluate.baseline_rows the baseline sees a seeded sample of that many train rows,
    the same on every run; at or below it, the whole split (the shipped Adult split is)."""
    data = penguins()
    train, test = halves(data)
    raw = template_settings()
    assert raw["evaluate"]["baseline_rows"] > 40_000  # Adult's train split is used whole
    params = params_for(data)
    small = parse_params(
        {**params.raw, "evaluate": {**params.raw["evaluate"], "baseline_rows": 150}}
    )
    sampled = evaluate.baseline_results(train, test, small)
    assert sampled["n_train"] == 150 < len(train)
    assert sampled == evaluate.baseline_results(train, test, small)
    rows = train.sample(n=150, random_state=small.train.seed).sort_index()
    assert sampled == evaluate.baseline_results(rows, test, params)
    assert sampled["metrics"] != evaluate.baseline_results(train, test, params)["metrics"]


@pytest.mark.slow
def test_the_baseline_is_the_same_whatever_the_cores(tmp_path) -> None:
    """Ridge on 100,000 of the 327k flights: fitted with two BLAS threads, its metrics moved in
    the fifth digit against one thread, so baseline.json depended on the machine's cores. The
    stage's child (`_baseline_of`) fits it on one thread however many the process has."""
    from threadpoolctl import threadpool_limits

    data = flights()
    train, test = halves(data)
    train.to_parquet(tmp_path / "train.parquet")
    params = params_for(data)
    results = []
    for threads in (2, 1):
        with threadpool_limits(limits=threads):
            results.append(evaluate._baseline_of(tmp_path / "train.parquet", test, params, None))
    assert results[0]["n_train"] == params.evaluate.baseline_rows < len(train)
    assert results[0] == results[1]
