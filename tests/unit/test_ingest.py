"""The ingest stage drops `data.drop_columns` and checks every param that names a column or a
label against the data, before anything trains."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from gitops_ml.config import DataConfig
from gitops_ml.errors import ConfigError
from gitops_ml.stages.ingest import select_columns

CFG = DataConfig(
    source="csv", path="x.csv", delimiter=",", header=True, columns=None, drop_columns=(),
    target="y", task="binary", n_rows=None, positive_label=None,
)  # fmt: skip
FRAME = pd.DataFrame({"id": ["a", "b", "c"], "g": ["u", "v", "u"], "y": ["yes", "no", "no"]})


def cfg(**changes) -> DataConfig:
    return dataclasses.replace(CFG, **changes)


def test_dropped_columns_leave_the_data_and_the_input_is_untouched() -> None:
    out = select_columns(FRAME, cfg(drop_columns=("id",)), slices=("g",))
    assert list(out.columns) == ["g", "y"]
    assert list(FRAME.columns) == ["id", "g", "y"]
    assert select_columns(FRAME, CFG, slices=()) is FRAME


@pytest.mark.parametrize(
    ("changes", "slices", "message"),
    [
        ({"drop_columns": ("ID",)}, (), r"'data.drop_columns' names 'ID'.*columns: id, g, y"),
        ({}, ("sex",), r"'evaluate.slices' names 'sex'.*\(valid: id, g\)"),
        ({"drop_columns": ("g",)}, ("g",), r"'evaluate.slices' names 'g'.*\(valid: id\)"),
        ({"positive_label": ">50K"}, (), r"'data.positive_label' '>50K' .*labels: no, yes"),
    ],
)
def test_a_param_naming_what_the_data_lacks_lists_what_it_has(changes, slices, message) -> None:
    with pytest.raises(ConfigError, match=message):
        select_columns(FRAME, cfg(**changes), slices=slices)


def test_the_positive_label_is_checked_for_binary_tasks_only() -> None:
    assert select_columns(FRAME, cfg(task="multiclass", positive_label="x"), ()) is FRAME
    assert select_columns(FRAME, cfg(positive_label="yes"), ()) is FRAME
