"""The scoring server's data contract (`server.Contract`) and `gitops-ml predict`'s
(`batches.check_batch`, pandera through `gitops_ml.schema`) accept and refuse the same rows, and
name the same column: they are two implementations of one schema, and this keeps them together.

Each case is one batch, fed to both as each receives it: to predict as a CSV file (read as
predict reads it), to the server as a JSON ``dataframe_split`` body (parsed as the server parses
a request to a model without a signature, whose values the contract sees uncast). The schemas
are Adult's reviewed one and drafts `gitops-ml init` infers for public data sets that are not
Adult (penguins, Auto MPG), plus a hand-written column with no range.

Missing values are missing (null in JSON, an empty cell in the CSV). Markers such as Adult's
``?`` are a matter of reading, not of the contract: predict's CSV reader takes them for missing
(as the ingest stage does), while the server, like MLflow's, passes them on as text.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from gitops_ml.batches import check_batch, read_batch
from gitops_ml.errors import DataError
from gitops_ml.release import server
from gitops_ml.schema import Schema, infer_schema, load_schema, parse_schema
from tests import datasets
from tests.conftest import ROOT

ROWS = 200


def _adult(adult_split) -> tuple[Schema, pd.DataFrame]:
    """The reviewed contract, and test rows as the ingest stage reads them."""
    return load_schema(ROOT / "data/schema/adult.yaml"), adult_split[1].head(ROWS)


def _inferred(ds: datasets.Dataset) -> tuple[Schema, pd.DataFrame]:
    schema = parse_schema(infer_schema(ds.frame, ds.target, ds.task), ds.name)
    rows = ds.frame.drop(columns=[ds.target]).dropna().head(ROWS)
    return schema, rows


def _cars_without_a_range() -> tuple[Schema, pd.DataFrame]:
    """A hand-edited draft: the numeric columns' ranges taken out (a float and an int one)."""
    schema, rows = _inferred(datasets.cars())
    columns = tuple(
        replace(c, min=None, max=None) if c.dtype in ("int", "float") else c for c in schema.columns
    )
    return replace(schema, columns=columns), rows


SCHEMAS = {
    "adult": _adult,
    "penguins": lambda _: _inferred(datasets.penguins()),
    "cars": lambda _: _inferred(datasets.cars()),
    "cars-no-range": lambda _: _cars_without_a_range(),
}


def predict_verdict(schema: Schema, rows: pd.DataFrame, tmp: Path) -> str | None:
    """None when `gitops-ml predict` would score the CSV of `rows`, else the failing columns."""
    path = tmp / "batch.csv"
    rows.to_csv(path, index=False)
    try:
        check_batch(read_batch(path), schema, source=str(path))
    except DataError as exc:
        return str(exc).split(" break the data contract", 1)[0].split("column(s) ", 1)[1]
    return None


def server_verdict(schema: Schema, rows: pd.DataFrame) -> str | None:
    """None when the server's contract lets the JSON request of `rows` through, else the
    column its 400 names."""
    contract = server.Contract.from_schema(schema, max_rows=10_000, max_bytes=10**8)
    contract = server.Contract.from_json(contract.to_json())  # as the workers receive it
    body = json.dumps(
        {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    ).encode()
    columns, n_rows = server.json_columns(server._loads(body))
    frame = pd.DataFrame({k: list(v) for k, v in columns.items()}, index=range(n_rows))
    try:
        contract.check(list(frame.columns), lambda name: frame[name].tolist(), n_rows)
    except server.RequestError as exc:
        assert exc.status == 400 and exc.message.startswith("Invalid input. Column '"), exc.message
        return exc.message.split("'", 2)[1]
    return None


def cases(schema: Schema, rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows as they are, then one change at a time, in the first row (or enough rows to
    pass a category's allowed share of unknown values): every range end just inside and just
    outside, text, a fraction in an int column, a missing value, an unknown category."""
    out = [("as they are", rows)]

    def changed(column: str, value, n: int = 1) -> pd.DataFrame:
        frame = rows.copy()
        frame[column] = frame[column].astype(object)
        frame.iloc[:n, frame.columns.get_loc(column)] = value
        return frame

    for spec in schema.columns:
        if spec.name not in rows.columns:
            continue
        name = spec.name
        if spec.dtype in ("int", "float"):
            step = 1 if spec.dtype == "int" else 0.5
            for label, bound, sign in (("min", spec.min, -1), ("max", spec.max, 1)):
                if bound is not None:
                    out.append((f"{name} at its {label}", changed(name, bound)))
                    out.append((f"{name} past its {label}", changed(name, bound + sign * step)))
            out.append((f"{name} as text", changed(name, "unknown")))
            out.append((f"{name} missing", changed(name, None)))
            if spec.dtype == "int":
                inside = spec.min if spec.min is not None else 0
                out.append((f"{name} with a fraction", changed(name, inside + 0.5)))
        elif spec.dtype == "category" and spec.categories is not None:
            allowed = math.floor(spec.max_unknown_rate * len(rows))
            out.append((f"{name} unknown within its rate", changed(name, "Atlantis", allowed)))
            out.append((f"{name} unknown past its rate", changed(name, "Atlantis", allowed + 1)))
            out.append((f"{name} missing", changed(name, None)))
    return out


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_predict_and_the_server_accept_and_refuse_the_same_rows(
    name: str, adult_split, tmp_path: Path
) -> None:
    schema, rows = SCHEMAS[name](adult_split)
    rows = rows.reset_index(drop=True)
    checked = cases(schema, rows)
    refused = []
    for what, frame in checked:
        by_predict = predict_verdict(schema, frame, tmp_path)
        by_server = server_verdict(schema, frame)
        assert by_predict == by_server, f"{name}, {what}: predict {by_predict}, server {by_server}"
        if by_predict:
            refused.append(what)
    assert checked[0][0] == "as they are" and checked[0][0] not in refused
    # Every kind of break was met, by both: the comparison is not empty.
    kinds = {k for k in KINDS if any(k in w for w in refused)}
    assert kinds == (KINDS - {"past its m"} if name == "cars-no-range" else KINDS), refused
    print(f"{name}: {len(checked)} batches, {len(refused)} refused by both")


KINDS = {"past its m", "as text", "with a fraction", "past its rate"}
