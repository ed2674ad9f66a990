"""A new data set is a new baseline: contracts compared from what each commit declares."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression

from gitops_ml.pr import baseline as b
from gitops_ml.pr import gate as g
from gitops_ml.pr import report as r
from tests.unit.test_gate import CFG, GOOD, SLICES
from tests.unit.test_report import _data

ADULT_PARAMS = {"data": {"target": "income", "task": "binary", "drop_columns": []}}
ADULT_SCHEMA = {
    "target": {"name": "income", "labels": ["<=50K", ">50K"]},
    "columns": {"age": {"dtype": "int"}, "sex": {"dtype": "category", "categories": ["F"]}},
}
IRIS_PARAMS = {"data": {"target": "species", "task": "multiclass"}}
IRIS_SCHEMA = {
    "target": {"name": "species", "labels": ["setosa", "versicolor", "virginica"]},
    "columns": {"petal_length": {"dtype": "float"}},
}


def test_the_same_contract_has_no_differences() -> None:
    adult = b.contract_of(ADULT_PARAMS, ADULT_SCHEMA)
    assert b.differences(adult, adult) == []
    # the old task name of a two-label target is the same contract as binary
    old = b.contract_of({"data": {"target": "income", "task": "classification"}}, ADULT_SCHEMA)
    assert b.differences(old, adult) == []


def test_another_data_set_differs_in_target_task_labels_and_columns() -> None:
    changes = b.differences(
        b.contract_of(ADULT_PARAMS, ADULT_SCHEMA), b.contract_of(IRIS_PARAMS, IRIS_SCHEMA)
    )
    assert changes[0] == "target 'income' -> 'species'"
    assert changes[1] == "task binary -> multiclass"
    assert changes[2].startswith("labels [<=50K, >50K] -> [setosa, versicolor, virginica]")
    assert changes[3] == "columns the champion needs are gone: age, sex"
    assert len(changes) == 4  # new columns alone are no break


def test_a_pr_that_adds_a_feature_column_is_compared_with_the_champion() -> None:
    more = {**ADULT_SCHEMA, "columns": {**ADULT_SCHEMA["columns"], "tenure": {"dtype": "int"}}}
    old, new = b.contract_of(ADULT_PARAMS, ADULT_SCHEMA), b.contract_of(ADULT_PARAMS, more)
    assert b.differences(old, new) == []
    assert b.differences(new, old) == ["columns the champion needs are gone: tenure"]


def test_dropped_columns_leave_the_contract_and_unknown_schemas_compare_less() -> None:
    dropped = {"data": {**ADULT_PARAMS["data"], "drop_columns": ["sex"]}}
    changes = b.differences(
        b.contract_of(ADULT_PARAMS, ADULT_SCHEMA), b.contract_of(dropped, ADULT_SCHEMA)
    )
    assert changes == ["columns the champion needs are gone: sex"]
    no_schema = b.contract_of(ADULT_PARAMS, None)
    assert no_schema.features is None
    assert b.differences(no_schema, b.contract_of(ADULT_PARAMS, ADULT_SCHEMA)) == []
    assert b.contract_of({"data": "broken"}, ADULT_SCHEMA) is None


def test_a_loaded_champion_that_cannot_score_the_new_data_says_why() -> None:
    X = pd.DataFrame({"age": np.arange(20.0), "hours": np.arange(20.0) % 7})
    y = pd.Series(np.where(X["age"] > 9, "yes", "no"))
    model = LogisticRegression().fit(X, y)
    ok = X.assign(y=y)
    assert b.model_fit(model, ok, "y", "binary") is None
    assert "lacks: hours" in b.model_fit(model, ok.drop(columns="hours"), "y", "binary")
    three = ok.assign(y=np.resize(["a", "b", "c"], len(ok)))
    assert "labels [a, b, c] are not the champion's [no, yes]" in b.model_fit(
        model, three, "y", "multiclass"
    )
    assert "is a classifier, the PR's task is regression" in b.model_fit(
        model, ok.assign(y=1.0), "y", "regression"
    )
    reg = LinearRegression().fit(X, X["age"])
    assert "is a regressor" in b.model_fit(reg, ok, "y", "binary")


def test_the_gate_skips_regression_rules_of_a_new_baseline_with_the_reason() -> None:
    worse = {**GOOD, "roc_auc": 0.5}
    reason = "new baseline: the champion on main was trained on another data contract (x)"
    result = g.evaluate_gate(CFG, worse, champion=None, slices=SLICES, no_champion_reason=reason)
    skipped = [rule for rule in result.rules if rule.skipped]
    assert [rule.name for rule in skipped] == ["max_regression:roc_auc", "max_regression:log_loss"]
    assert all(rule.message.startswith(reason) for rule in skipped)
    # the absolute thresholds still apply
    assert not result.passed
    assert [rule.name for rule in result.rules if not rule.passed] == ["threshold:roc_auc"]


def test_the_report_of_a_new_baseline_shows_the_prs_metrics_alone() -> None:
    text = r.render_markdown(
        _data(
            new_baseline="the champion on main was trained on another data contract (x)",
            champion=None,
            challenger=None,
            base_slices={"sex": {"F": {"n": 10, "roc_auc": 0.95}}},
        )
    )
    assert "🆕 **New baseline**: the champion on main was trained on another data contract" in text
    section = text.split("### Champion vs challenger")[1].split("###")[0]
    assert "| metric | PR |" in section and "champion" not in section.split("\n", 3)[-1]
    assert "measure another data contract: the PR's metrics" in text
    slices = text.split("### Slices")[1].split("###")[0]
    assert "0.9500" not in slices  # the base's slices are not compared
