"""The scoring server that `gitops-ml serve` runs: MLflow's scoring protocol, without MLflow.

Clients see what ``mlflow models serve`` answers for the template's models:

- ``GET /ping`` and ``GET /health``: 200 once the model is loaded; ``GET /version``: the
  installed MLflow version.
- ``POST /invocations`` with ``Content-Type: application/json`` and one of
  ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (``params`` and other
  keys are ignored), or a ``text/csv`` or ``application/vnd.apache.parquet`` body. The answer is
  ``{"predictions": [...]}``: the model's ``predict``, so class labels for a classifier and
  numbers for a regressor, in the bytes MLflow writes.
- A malformed request is answered 400 with MLflow's error body (``{"error_code":
  "BAD_REQUEST", "message": ...}``; ``INVALID_PARAMETER_VALUE`` for a missing column); an
  unknown content type or charset 415 (text, as MLflow answers).

The model directory holds ``model.skops`` and an ``MLmodel`` file of which only the signature's
input columns are read: the skops archive is loaded with the trusted types of
`gitops_ml.lineage.formats` (`load_skops_dir`), never a pickle, and nothing named in ``MLmodel``
is imported. The signature gives the column order and types, so a request's rows become one
DataFrame directly (a column of the wrong type, or a missing one, is a 400), with values cast
as MLflow's server casts them; columns not in the signature are ignored. A model without a
signature gets the frame pandas builds from the request.

`serve` loads the model once and, on Linux, forks the ``--workers`` uvicorn processes from that
process (nothing is imported or loaded twice; elsewhere uvicorn spawns them and each loads the
directory). Each worker predicts one made-up row before it listens, so the first request does
not pay one-off costs. Requests are parsed on the event loop and scored on a thread of the
worker's own: requests that arrive while the model predicts are scored together in the next
``predict`` call, each answered with its own rows' predictions. A scikit-learn pipeline spends
most of a one-row call on fixed overhead, so under concurrent load a worker answers several
requests for little more than the price of one; a lone request is scored alone. OpenMP and BLAS
get the worker's share of the cores unless the environment sets them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import socket
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gitops_ml.forked import usable_cores as _cpus

if TYPE_CHECKING:  # asyncio and threads are imported where a server runs, not by the CLI
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd
    import uvicorn

log = logging.getLogger(__name__)

#: Where `serve` tells spawned worker processes which model directory to load.
MODEL_DIR_ENV = "GITOPS_ML_SERVE_MODEL_DIR"
#: The exit code of a server whose workers could not start (uvicorn's: its supervisor stops
#: rather than restart a worker that exits with it, which would fail the same way every time).
STARTUP_FAILURE = 3
MAX_DEFAULT_WORKERS = 4

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
#: MLflow's wording, so clients that match on it keep working.
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
EVALUATION_ERROR = (
    "Encountered an unexpected error while evaluating the model. Verify that the serialized "
    "input Dataframe is compatible with the model for inference."
)

#: MLflow column types and the numpy dtype MLflow's server casts each to.
DTYPES = {
    "long": "int64",
    "integer": "int32",
    "double": "float64",
    "float": "float32",
    "boolean": "bool",
    "string": "object",
}


class RequestError(Exception):
    """A request the model cannot score: answered 400 with an MLflow error body."""

    def __init__(self, message: str, error_code: str = "BAD_REQUEST", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status


@dataclass(frozen=True)
class Column:
    """One input column of a model signature."""

    name: str
    type: str  # a key of DTYPES
    required: bool = True


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type and body."""

    status: int
    content_type: str
    body: bytes


#: Request limits of `gitops-ml serve` unless --max-rows / --max-bytes say otherwise: a larger
#: batch belongs in `gitops-ml predict`, which reads files and has no request to time out.
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ColumnRule:
    """One feature's rules of the data contract, as `gitops-ml predict` applies them to a batch:
    a numeric range, or known categories with the share of unknown values allowed."""

    name: str
    low: float | None = None
    high: float | None = None
    categories: frozenset[str] | None = None
    max_unknown_rate: float = 0.0
    #: an ``int`` column of the schema: a number with a fraction breaks it, as in `predict`
    integer: bool = False


@dataclass(frozen=True)
class Contract:
    """What a request must respect: the schema's column rules and the size limits (413)."""

    source: str = ""
    rules: tuple[ColumnRule, ...] = ()
    max_rows: int = DEFAULT_MAX_ROWS
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_schema(cls, schema: Any, max_rows: int, max_bytes: int) -> Contract:
        """The rules of a `gitops_ml.schema.Schema` that `predict` checks on every batch. A
        column the schema excludes from the model (`exclude: true`) has none: the model ignores
        it, so no value of it can make an answer wrong."""
        rules = []
        for spec in schema.columns:
            if getattr(spec, "exclude", False):
                continue
            if spec.dtype in ("int", "float"):  # numbers, even without a range
                rules.append(ColumnRule(spec.name, low=spec.min, high=spec.max,
                                        integer=spec.dtype == "int"))  # fmt: skip
            elif spec.dtype == "category" and spec.categories is not None:
                known = frozenset(str(c) for c in spec.categories)
                rules.append(ColumnRule(spec.name, categories=known,
                                        max_unknown_rate=spec.max_unknown_rate))  # fmt: skip
        return cls(str(schema.source), tuple(rules), max_rows, max_bytes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "source": self.source,
                "max_rows": self.max_rows,
                "max_bytes": self.max_bytes,
                "rules": [
                    {
                        **r.__dict__,
                        "categories": None if r.categories is None else sorted(r.categories),
                    }
                    for r in self.rules
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Contract:
        raw = json.loads(text)
        rules = tuple(
            ColumnRule(
                **{
                    **r,
                    "categories": None if r["categories"] is None else frozenset(r["categories"]),
                }
            )
            for r in raw["rules"]
        )
        return cls(raw["source"], rules, raw["max_rows"], raw["max_bytes"])

    def too_large(self, n_bytes: int) -> Answer | None:
        if n_bytes > self.max_bytes:
            return error_answer(
                f"The request body has {n_bytes} bytes, above the server's limit of "
                f"{self.max_bytes} (--max-bytes); send smaller batches, or score files with "
                "`gitops-ml predict`",
                "REQUEST_LIMIT_EXCEEDED",
                413,
            )
        return None

    def check(self, names: Sequence[Any], values: Callable[[Any], Any], n_rows: int) -> None:
        """Raise a `RequestError` naming the first column that breaks a rule, and how."""
        import numpy as np

        if n_rows > self.max_rows:
            raise RequestError(
                f"The request has {n_rows} rows, above the server's limit of {self.max_rows} "
                "(--max-rows); send smaller batches, or score files with `gitops-ml predict`",
                "REQUEST_LIMIT_EXCEEDED",
                413,
            )
        present = set(names)
        for rule in self.rules:
            if rule.name not in present:
                continue
            column = values(rule.name)
            if rule.categories is None:
                try:
                    number = np.asarray(column, dtype="float64")
                except (TypeError, ValueError):
                    raise RequestError(
                        f"Invalid input. Column '{rule.name}' must hold numbers (data contract "
                        f"{self.source})"
                    ) from None
                if rule.integer:
                    fraction = np.isfinite(number) & (number != np.floor(number))
                    if fraction.any():
                        raise RequestError(
                            f"Invalid input. Column '{rule.name}' breaks the data contract "
                            f"{self.source}: {int(fraction.sum())} value(s) not whole numbers "
                            f"(e.g. {number[fraction][0]:g})"
                        )
                for limit, side, bad in (
                    (rule.low, "below the minimum", number < (rule.low or 0)),
                    (rule.high, "above the maximum", number > (rule.high or 0)),
                ):
                    if limit is not None and bad.any():
                        raise RequestError(
                            f"Invalid input. Column '{rule.name}' breaks the data contract "
                            f"{self.source}: {int(bad.sum())} value(s) {side} {limit:g} (e.g. "
                            f"{number[bad][0]:g})"
                        )
                continue
            seen = [v for v in column if not _missing(v)]
            unknown = [v for v in seen if str(v) not in rule.categories]
            if unknown and len(unknown) / len(seen) > rule.max_unknown_rate:
                raise RequestError(
                    f"Invalid input. Column '{rule.name}' breaks the data contract "
                    f"{self.source}: {len(unknown)} of {len(seen)} value(s) not among its "
                    f"categories (limit {rule.max_unknown_rate:.2%}; e.g. {str(unknown[0])!r})"
                )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def default_workers() -> int:
    """One worker per CPU core this process may use, at most `MAX_DEFAULT_WORKERS`."""
    return max(1, min(_cpus(), MAX_DEFAULT_WORKERS))


def read_signature(model_dir: Path) -> tuple[Column, ...] | None:
    """The input columns of the signature in `model_dir`/MLmodel; None without a signature or
    with one that is not a list of named columns of the types in `DTYPES` (then the request's
    own frame is scored)."""
    import yaml

    from gitops_ml.files import load_yaml

    try:
        mlmodel = load_yaml((model_dir / "MLmodel").read_text(encoding="utf-8"))
        inputs = ((mlmodel or {}).get("signature") or {}).get("inputs")
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    if not isinstance(specs, list) or not specs:
        return None
    columns = []
    for spec in specs:
        if not isinstance(spec, dict):
            return None
        name, kind = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or kind not in DTYPES:
            return None
        columns.append(Column(name, kind, spec.get("required", True) is not False))
    return tuple(columns)


def signature_inputs(columns: Sequence[Column]) -> str:
    """The signature's ``inputs`` text, as MLflow writes it in an MLmodel file."""
    return json.dumps([{"type": c.type, "name": c.name, "required": c.required} for c in columns])


# --------------------------------------------------------------------------------------------
# a request body -> columns


def _loads(body: bytes) -> Any:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson comes with mlflow
        orjson = None
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # NaN and Infinity, which MLflow's json.loads accepts, or not JSON at all
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(
            f"Invalid input. Ensure that input is a valid JSON formatted string. Error: '{exc!r}'"
        ) from None


def json_columns(payload: Any) -> tuple[dict[Any, Sequence[Any]], int]:
    """The columns (name -> values) and the row count of a JSON scoring request."""
    if not isinstance(payload, dict):
        kind = "a list" if isinstance(payload, list) else f"type '{type(payload).__name__}'"
        raise RequestError(f"Invalid input. {REQUIRED_INPUT_FORMAT}. Received {kind}.")
    found = [key for key in FORMATS if key in payload]
    if len(found) != 1:
        raise RequestError(
            f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(payload)}."
        )
    key = found[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_columns(value)
    if key == "dataframe_records" or isinstance(value, list):
        return _record_columns(value, key)
    if isinstance(value, dict):
        return _dict_columns(value, key)
    raise RequestError(
        f"Invalid input. '{key}' must be an object of columns or a list of records, "
        f"got {type(value).__name__}."
    )


def _split_columns(value: Any) -> tuple[dict[Any, Sequence[Any]], int]:
    if not isinstance(value, dict):
        kind = "list" if isinstance(value, list) else f"type {type(value).__name__}"
        raise RequestError(
            f"Invalid input. Dataframe split format must be a dictionary. Got {kind}."
        )
    if "data" not in value or set(value) - {"columns", "data", "index"}:
        raise RequestError(
            "Invalid input. Dataframe split format must have 'data' field and optionally "
            f"'columns' and 'index' fields. Got {sorted(value)}."
        )
    data, names = value["data"], value.get("columns")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise RequestError("Invalid input. Dataframe split 'data' must be a list of rows (lists).")
    if names is None:
        names = list(range(len(data[0]) if data else 0))
    elif not isinstance(names, list) or not all(isinstance(n, str | int) for n in names):
        raise RequestError("Invalid input. Dataframe split 'columns' must be a list of names.")
    width = len(names)
    for row in data:
        if len(row) != width:
            raise RequestError(
                "Invalid input. Provided dataframe_split field is not a valid dataframe "
                f"representation in 'split' format. Error: '{width} columns passed, passed data "
                f"had {len(row)} columns'"
            )
    values = list(zip(*data, strict=True)) if data else [() for _ in names]
    columns: dict[Any, Sequence[Any]] = {}
    for name, column in zip(names, values, strict=True):
        columns.setdefault(name, column)
    return columns, len(data)


def _record_columns(value: Any, key: str) -> tuple[dict[Any, Sequence[Any]], int]:
    if not isinstance(value, list):
        raise RequestError(
            f"Invalid input. Dataframe records format must be a list of records. Got "
            f"{'dictionary' if isinstance(value, dict) else type(value).__name__}."
        )
    if not all(isinstance(record, dict) for record in value):
        raise RequestError(f"Invalid input. '{key}' must be a list of records (JSON objects).")
    names = dict.fromkeys(name for record in value for name in record)
    return {name: [record.get(name) for record in value] for name in names}, len(value)


def _dict_columns(value: dict[str, Any], key: str) -> tuple[dict[Any, Sequence[Any]], int]:
    lists = [v for v in value.values() if isinstance(v, list)]
    if not lists:  # one row, a scalar per column
        return {name: [v] for name, v in value.items()}, 1
    if len(lists) != len(value) or any(len(v) != len(lists[0]) for v in lists):
        raise RequestError(
            f"Invalid input. The length of values for each input/column name are not the same "
            f"('{key}')."
        )
    return dict(value), len(lists[0])


# --------------------------------------------------------------------------------------------
# columns -> the model's frame -> the answer


@dataclass(frozen=True)
class Rows:
    """A request's rows, ready for the model: the signature's columns cast to its types
    (`arrays`, in the order of `names`), or, for a model without a signature, `frame`."""

    n_rows: int
    names: tuple[Any, ...] = ()
    arrays: tuple[Any, ...] = ()
    frame: Any = None


class Scorer:
    """A fitted model and its signature's columns: `parse` a request body into `Rows` (or an
    error `Answer`), `score` a batch of them."""

    def __init__(
        self, model: Any, columns: Sequence[Column] | None, contract: Contract | None = None
    ) -> None:
        import numpy as np
        import pandas as pd

        self.model = model
        self.columns = tuple(columns) if columns else None
        inputs = {str(c) for c in getattr(model, "feature_names_in_", ())}
        if self.columns and inputs:
            # A signature column the model does not take (one the schema marks `exclude: true`,
            # from a signature made before it was left out) may be sent or not: it is ignored.
            self.columns = tuple(
                c if c.name in inputs else Column(c.name, c.type, required=False)
                for c in self.columns
            )
        self.contract = contract
        self._np = np
        self._pd = pd
        self._from_arrays: Callable[..., pd.DataFrame] | None = getattr(
            pd.DataFrame, "_from_arrays", None
        )

    # -- a request body -> rows ------------------------------------------------------------

    def parse(self, body: bytes, content_type: str | None) -> Rows | Answer:
        """The rows of a ``POST /invocations`` body, or the answer to a request that has none:
        415 for a content type other than JSON, CSV or Parquet (or a charset other than
        UTF-8), 400 for a body that is not a table of the signature's columns."""
        mime, _, rest = (content_type or "").partition(";")
        mime = mime.strip().lower()
        options = {}
        for part in rest.split(";"):
            if part.strip():
                key, _, value = part.partition("=")
                options[key.strip().lower()] = value.strip().strip('"')
        if options.get("charset", "utf-8").lower() != "utf-8":
            return Answer(415, "text/plain", b"The scoring server only supports UTF-8")
        unexpected = sorted(set(options) - {"charset"})
        if unexpected:
            return Answer(
                415,
                "text/plain",
                f"Unrecognized content type parameters: {', '.join(unexpected)}.".encode(),
            )
        if self.contract is not None:
            too_large = self.contract.too_large(len(body))
            if too_large is not None:
                return too_large
        try:
            if mime == CONTENT_TYPE_JSON:
                return self.checked(self.rows(*json_columns(_loads(body))))
            if mime in (CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET):
                return self.checked(self.rows(*self._file_columns(body, mime)))
        except RequestError as exc:
            return error_answer(exc.message, exc.error_code, exc.status)
        return Answer(
            415,
            "text/plain",
            f"This predictor only supports the following content types: Types: {CONTENT_TYPES}. "
            f"Got '{content_type or ''}'.".encode(),
        )

    def checked(self, rows: Rows) -> Rows:
        """`rows`, once they respect the data contract (a `RequestError` if not)."""
        if self.contract is None:
            return rows
        if rows.frame is not None:
            frame = rows.frame
            self.contract.check(list(frame.columns), lambda name: frame[name].tolist(), rows.n_rows)
        else:
            arrays = dict(zip(rows.names, rows.arrays, strict=True))
            self.contract.check(rows.names, arrays.__getitem__, rows.n_rows)
        return rows

    def rows(self, columns: dict[Any, Sequence[Any]], n_rows: int) -> Rows:
        """The signature's columns of `columns`, in its order and cast to its types (columns it
        does not name are dropped); without a signature, what pandas makes of `columns`."""
        if self.columns is None:
            try:
                frame = self._pd.DataFrame(
                    {k: list(v) for k, v in columns.items()}, index=range(n_rows)
                )
            except (TypeError, ValueError) as exc:
                raise RequestError(f"Invalid input. Not a table: {exc}") from None
            return Rows(n_rows, frame=frame)
        missing = [c.name for c in self.columns if c.required and c.name not in columns]
        if missing:
            raise RequestError(
                f"Failed to enforce schema of data with schema {self._schema_text()}. Error: "
                f"Model is missing inputs {missing}.",
                "INVALID_PARAMETER_VALUE",
            )
        present = [c for c in self.columns if c.name in columns]
        return Rows(
            n_rows,
            tuple(c.name for c in present),
            tuple(self._cast(c, columns[c.name]) for c in present),
        )

    def _cast(self, column: Column, values: Sequence[Any]) -> Any:
        """`values` as the numpy array MLflow's server casts them to: numbers as numbers (text
        that parses too; a fraction truncated for integers), missing text as NaN."""
        np = self._np
        if column.type == "string":
            out = np.empty(len(values), dtype=object)
            try:
                out[:] = [math.nan if v is None else v for v in values]
            except ValueError:
                raise RequestError(
                    f"Invalid input. Column {column.name} holds nested values."
                ) from None
            return out
        try:
            out = np.asarray(values, dtype=DTYPES[column.type])
        except (TypeError, ValueError, OverflowError) as exc:
            raise RequestError(
                "Invalid input. Data is not compatible with model signature. Failed to convert "
                f"column {column.name} to type '{DTYPES[column.type]}'. Error: '{exc!r}'"
            ) from None
        if out.ndim != 1:
            raise RequestError(f"Invalid input. Column {column.name} holds nested values.")
        return out

    def _schema_text(self) -> str:
        assert self.columns is not None
        cols = ", ".join(
            f"'{c.name}': {c.type}{' (required)' if c.required else ' (optional)'}"
            for c in self.columns
        )
        return f"'[{cols}]'"

    def _file_columns(self, body: bytes, mime: str) -> tuple[dict[Any, Sequence[Any]], int]:
        pd = self._pd
        try:
            if mime == CONTENT_TYPE_CSV:
                dtypes = {c.name: DTYPES[c.type] for c in self.columns or ()}
                frame = pd.read_csv(io.StringIO(body.decode("utf-8")), dtype=dtypes or None)
            else:
                frame = pd.read_parquet(io.BytesIO(body))
        except Exception as exc:  # pandas raises anything on a broken file
            what = "a CSV" if mime == CONTENT_TYPE_CSV else "a Parquet"
            raise RequestError(
                f"Failed to parse input as a Pandas DataFrame. Ensure that the input is a valid "
                f"{what} Pandas DataFrame. Error: '{exc}'"
            ) from None
        return {name: frame[name].tolist() for name in frame.columns}, len(frame)

    # -- rows -> predictions ---------------------------------------------------------------

    def frame(self, rows: Rows) -> pd.DataFrame:
        """The DataFrame the model scores."""
        if rows.frame is not None:
            return rows.frame
        pd = self._pd
        if self._from_arrays is not None:  # ten times faster than DataFrame(dict) for one row
            try:
                return self._from_arrays(
                    list(rows.arrays),
                    columns=pd.Index(rows.names),
                    index=pd.RangeIndex(rows.n_rows),
                    verify_integrity=False,
                )
            except TypeError:  # pragma: no cover - a pandas without that signature
                self._from_arrays = None
        return pd.DataFrame(dict(zip(rows.names, rows.arrays, strict=True)), copy=False)

    def score(self, batch: Sequence[Rows]) -> list[Answer]:
        """The answers to `batch`, in order. Requests with the same columns are scored in one
        ``predict`` call, each answered with its own rows' predictions (a row's prediction does
        not depend on the rows beside it); if that call fails, each request is scored alone, so
        an error is answered to the request that caused it."""
        answers: list[Answer | None] = [None] * len(batch)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, rows in enumerate(batch):
            if rows.frame is None and rows.n_rows > 0:
                groups.setdefault(rows.names, []).append(i)
            else:
                answers[i] = self._answer(rows)
        for names, members in groups.items():
            if len(members) > 1:
                joined = Rows(
                    sum(batch[i].n_rows for i in members),
                    names,
                    tuple(
                        self._np.concatenate([batch[i].arrays[j] for i in members])
                        for j in range(len(names))
                    ),
                )
                try:
                    raw = self.model.predict(self.frame(joined))
                except Exception:  # scored alone below: the culprit gets the error
                    raw = None
                if isinstance(raw, self._np.ndarray) and len(raw) == joined.n_rows:
                    start = 0
                    for i in members:
                        stop = start + batch[i].n_rows
                        answers[i] = Answer(200, CONTENT_TYPE_JSON, _predictions(raw[start:stop]))
                        start = stop
                    continue
            for i in members:
                answers[i] = self._answer(batch[i])
        return [answer for answer in answers if answer is not None]

    def _answer(self, rows: Rows) -> Answer:
        try:
            raw = self.model.predict(self.frame(rows))
        except Exception as exc:  # whatever the estimator raises is the request's fault
            first = (str(exc).strip().splitlines() or [""])[0]
            return error_answer(f"{EVALUATION_ERROR} {type(exc).__name__}: {first}")
        return Answer(200, CONTENT_TYPE_JSON, _predictions(raw))

    def invocations(self, body: bytes, content_type: str | None) -> Answer:
        """The answer to one ``POST /invocations``, scored alone."""
        parsed = self.parse(body, content_type)
        return parsed if isinstance(parsed, Answer) else self.score([parsed])[0]

    def warm_up(self) -> None:
        """Score one made-up row (zeros, missing text) through the JSON path: the first call's
        one-off costs are paid before the worker answers. A model that refuses it is served
        anyway; requests will say why."""
        if self.columns is None:
            return
        row = [None if c.type == "string" else (False if c.type == "boolean" else 0)
               for c in self.columns]  # fmt: skip
        try:  # made-up values, not a request: the data contract does not apply
            rows = self.rows({c.name: [v] for c, v in zip(self.columns, row, strict=True)}, 1)
        except RequestError as exc:
            log.info("warm-up row refused: %s", exc.message)
            return
        answer = self.score([rows])[0]
        if answer.status != 200:
            log.info("warm-up request answered %d: %s", answer.status, answer.body[:200])


def _predictions(raw: Any) -> bytes:
    """``{"predictions": ...}``, in the bytes MLflow's server writes."""
    if hasattr(raw, "to_dict"):  # a pandas Series or DataFrame: records, as MLflow writes them
        raw = (raw.to_frame() if hasattr(raw, "to_frame") else raw).to_dict(orient="records")
    elif hasattr(raw, "tolist"):  # a numpy array
        raw = raw.tolist()
    return json.dumps({"predictions": raw}, default=_numpy_default).encode()


def _numpy_default(value: Any) -> Any:
    """numpy scalars and arrays inside an object array, as MLflow's NumpyEncoder writes them."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def error_answer(message: str, error_code: str = "BAD_REQUEST", status: int = 400) -> Answer:
    """MLflow's error body: ``{"error_code": ..., "message": ...}``."""
    body = json.dumps({"error_code": error_code, "message": message}).encode()
    return Answer(status, CONTENT_TYPE_JSON, body)


# --------------------------------------------------------------------------------------------
# HTTP


def mlflow_version() -> str:
    """What ``GET /version`` answers: the MLflow version installed here."""
    from importlib.metadata import PackageNotFoundError, version

    for name in ("mlflow", "mlflow-skinny"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"


_NOT_FOUND = Answer(404, CONTENT_TYPE_JSON, b'{"detail":"Not Found"}')
_NOT_ALLOWED = Answer(405, CONTENT_TYPE_JSON, b'{"detail":"Method Not Allowed"}')
_ROUTES = {"/ping": "GET", "/health": "GET", "/version": "GET", "/invocations": "POST"}


#: The most rows one ``predict`` call scores when concurrent requests are batched.
MAX_BATCH_ROWS = 10_000


class App:
    """The ASGI application. Requests are parsed on the event loop; their rows are scored on
    one thread of the worker's own, so that requests keep being read while the model predicts:
    the ones that arrive meanwhile are scored together in the next call (`Scorer.score`), which
    costs little more than one of them alone. One request at a time is scored alone."""

    def __init__(self, scorer: Scorer, threads: dict[str, int] | None = None) -> None:
        self.scorer = scorer
        #: the scoring thread's OpenMP and BLAS threads, by threadpoolctl API ("openmp",
        #: "blas"); an API not named keeps what the environment says
        self.threads = threads or {}
        self._ping = Answer(200, CONTENT_TYPE_JSON, b"\n")
        self._version = Answer(200, CONTENT_TYPE_JSON, mlflow_version().encode())
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Rows, asyncio.Future[Answer]]] = deque()
        self._draining: asyncio.Task[None] | None = None

    def executor(self) -> ThreadPoolExecutor:
        """The scoring thread, started on first use (in the worker, never before a fork)."""
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix="gitops-ml-score", initializer=self._limit_threads
            )
        return self._executor

    def _limit_threads(self) -> None:
        if self.threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.threads)

    def warm_up(self) -> None:
        """`Scorer.warm_up` on the scoring thread."""
        self.executor().submit(self.scorer.warm_up).result()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = _ROUTES.get(path)
        if method is None:
            answer = _NOT_FOUND
        elif scope["method"] != method:
            answer = _NOT_ALLOWED
        elif path == "/invocations":
            content_type, length = None, 0
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
                elif name == b"content-length" and value.isdigit():
                    length = int(value)
            limit = self.scorer.contract.max_bytes if self.scorer.contract else None
            # a body announced too large is drained, not kept: the client gets its 413
            cap = None if limit is None else (limit if length <= limit else 0)
            body, size = await _read_body(receive, cap)
            try:
                contract = self.scorer.contract
                too_large = contract.too_large(max(length, size)) if contract else None
                answer = too_large or await self.invocations(body, content_type)
            except Exception as exc:  # a bug here, not in the request: say so, keep serving
                log.exception("scoring failed")
                answer = error_answer(f"{type(exc).__name__}: {exc}", "INTERNAL_ERROR", 500)
        elif path == "/version":
            answer = self._version
        else:
            answer = self._ping
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode("latin-1")),
                    (b"content-length", str(len(answer.body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    async def invocations(self, body: bytes, content_type: str | None) -> Answer:
        """The answer to ``POST /invocations``: parsed here, scored on the scoring thread."""
        import asyncio

        parsed = self.scorer.parse(body, content_type)
        if isinstance(parsed, Answer):
            return parsed
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Answer] = loop.create_future()
        self._pending.append((parsed, answer))
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        """Score what is pending, a batch at a time, until nothing is."""
        import asyncio

        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = [self._pending.popleft()]
                rows = batch[0][0].n_rows
                while self._pending and rows + self._pending[0][0].n_rows <= MAX_BATCH_ROWS:
                    batch.append(self._pending.popleft())
                    rows += batch[-1][0].n_rows
                try:
                    answers = await loop.run_in_executor(
                        self.executor(), self.scorer.score, [r for r, _ in batch]
                    )
                except Exception as exc:  # a bug, not a request's fault
                    log.exception("scoring failed")
                    failed = error_answer(f"{type(exc).__name__}: {exc}", "INTERNAL_ERROR", 500)
                    answers = [failed] * len(batch)
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._draining = None


async def _read_body(receive: Any, limit: int | None = None) -> tuple[bytes, int]:
    """(the request body, its size). Past `limit` bytes the rest is read and dropped, so the
    client, still sending, gets the answer (413) rather than a broken connection, and the
    worker's memory holds no more than `limit`."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is None or size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
        more = message.get("more_body", False)
    return (b"".join(chunks), size) if limit is None or size <= limit else (b"", size)


#: uvicorn's settings: no access log, no proxy headers, no lifespan, a bounded shutdown.
UVICORN_SETTINGS: dict[str, Any] = {
    "lifespan": "off",
    "access_log": False,
    "proxy_headers": False,
    "server_header": False,
    "log_level": "info",
    "timeout_graceful_shutdown": 10,
    # a worker scoring a large request on its event loop answers uvicorn's supervisor late
    "timeout_worker_healthcheck": 60,
}


#: Where `serve` tells spawned worker processes the data contract (`Contract.to_json`).
CONTRACT_ENV = "GITOPS_ML_SERVE_CONTRACT"


def serve(
    model_dir: Path,
    host: str,
    port: int,
    workers: int,
    *,
    fork: bool | None = None,
    contract: Contract | None = None,
) -> int:
    """Serve the model in `model_dir` with `workers` processes until SIGINT or SIGTERM; the
    exit code (0 once stopped by a signal, `STARTUP_FAILURE` if no worker could start).

    The model is loaded here first, so a model that cannot be loaded is a `GitopsMLError` before
    anything listens. Where processes can fork (Linux), the workers are forked from this
    process with the model loaded (`_prefork`): nothing is imported or loaded twice. Elsewhere
    uvicorn spawns them, and each imports the libraries and loads `model_dir` itself."""
    scorer = Scorer(load_model_dir(model_dir), read_signature(model_dir), contract)
    workers = max(1, workers)
    if fork is None:
        fork = sys.platform == "linux"
    limits = thread_limits(workers)
    if fork:
        import uvicorn

        share = max(1, _cpus() // workers)
        apis = {"openmp": share} if "OMP_NUM_THREADS" in limits else {}
        if "OPENBLAS_NUM_THREADS" in limits and "MKL_NUM_THREADS" in limits:
            apis["blas"] = share
        app = App(scorer, apis)
        config = uvicorn.Config(app, host=host, port=port, workers=workers, **UVICORN_SETTINGS)
        return _prefork(app, config, workers)
    import uvicorn

    os.environ[MODEL_DIR_ENV] = str(model_dir.resolve())
    if contract is not None:
        os.environ[CONTRACT_ENV] = contract.to_json()
    os.environ.update(limits)
    try:
        uvicorn.run(
            f"{__name__}:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **UVICORN_SETTINGS,
        )
    except SystemExit as exc:  # uvicorn's way of saying that the workers could not start
        return exc.code if isinstance(exc.code, int) else STARTUP_FAILURE
    return 0


def check_port_free(host: str, port: int) -> None:
    """A `GitopsMLError` at once when `host`:`port` cannot be bound (another server has it),
    rather than after the model is downloaded and loaded."""
    import errno

    from gitops_ml.errors import GitopsMLError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise GitopsMLError(
                    f"port {port} on {host} is already in use: stop the server there or pass "
                    "another --port"
                ) from None
            raise GitopsMLError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def load_model_dir(model_dir: Path) -> Any:
    """The model of MLflow model directory `model_dir`: its skops archive, trusted types only."""
    from gitops_ml.lineage.artifacts import load_skops_dir

    return load_skops_dir(model_dir)


def thread_limits(workers: int) -> dict[str, str]:
    """Each worker's share of the cores for OpenMP and BLAS, unless the environment sets it."""
    share = str(max(1, _cpus() // max(1, workers)))
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return {name: share for name in names if name not in os.environ}


def tcp_socket(sock: socket.socket) -> socket.socket:
    """`sock` as a socket that says it is TCP. asyncio turns Nagle's algorithm off (TCP_NODELAY)
    only on connections accepted from a socket whose protocol reads IPPROTO_TCP, and uvicorn's
    `bind_socket` leaves it 0: a keep-alive client (a load balancer, `requests.Session`) then
    waits for its own delayed ACK, 40 ms, between an answer's headers and its body. Wrapping
    the descriptor again reads the protocol from the kernel."""
    return socket.socket(fileno=sock.detach())


def _prefork(app: App, config: uvicorn.Config, workers: int) -> int:
    """Bind the socket, fork `workers` processes that serve it, and supervise them: SIGINT
    and SIGTERM are passed on to every worker, a worker that dies is replaced (one that dies
    before it was ready stops the server instead: the next would fail the same way), and the
    exit code is 0 once all stopped after a signal, `STARTUP_FAILURE` otherwise."""
    import gc
    import signal

    config.load()
    sock = tcp_socket(config.bind_socket())
    children: dict[int, int] = {}  # pid -> the read end of the pipe it writes once it is ready
    stopping: list[int] = []  # the signals received

    def start() -> None:
        ready_read, ready_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(ready_read)
            _worker(app, config, sock, ready_write)
        os.close(ready_write)
        children[pid] = ready_read

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    gc.collect()
    gc.freeze()  # the model's objects stay shared with the workers, never copied by the GC
    code = 0
    try:
        for _ in range(workers):
            start()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            ready_read = children.pop(pid, None)
            if ready_read is None:
                continue
            was_ready = os.read(ready_read, 1) == b"1"  # the worker is gone: never blocks
            os.close(ready_read)
            if stopping:
                continue
            exit_code = os.waitstatus_to_exitcode(status)
            if not was_ready:
                log.error(
                    "worker [%d] exited with %d before it was ready: stopping", pid, exit_code
                )
                code = STARTUP_FAILURE
                stop(signal.SIGTERM, None)
                continue
            log.warning("worker [%d] exited with %d: starting another", pid, exit_code)
            start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for ready_read in children.values():
            os.close(ready_read)
        sock.close()
        gc.unfreeze()
    return code


def _worker(app: App, config: uvicorn.Config, sock: Any, ready: int) -> NoReturn:
    """A forked worker: warm the model up, serve until told to stop (saying so on the `ready`
    pipe once it listens), and leave without running the parent's exit handlers (which would
    remove the model directory)."""
    import signal

    import uvicorn

    code = STARTUP_FAILURE
    try:
        stopped: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: stopped.append(signum))
        app.warm_up()

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[Any] | None = None) -> None:
                await super().startup(sockets)
                if self.started:
                    os.write(ready, b"1")

        if stopped:
            code = 0
        else:
            Server(config).run(sockets=[sock])
            code = 0
    except BaseException:
        log.exception("worker [%d] failed", os.getpid())
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def create_app() -> App:
    """uvicorn's app factory where workers are spawned (not Linux): called once in each worker,
    it loads the model of `MODEL_DIR_ENV` and warms it up.

    A model that does not load ends the worker with `STARTUP_FAILURE` after one line on stderr,
    so uvicorn stops rather than restarting it forever."""
    from gitops_ml.errors import GitopsMLError

    directory = os.environ.get(MODEL_DIR_ENV)
    try:
        if not directory:
            raise GitopsMLError(f"{MODEL_DIR_ENV} is not set: which model to serve?")
        path = Path(directory)
        contract = os.environ.get(CONTRACT_ENV)
        app = App(
            Scorer(
                load_model_dir(path),
                read_signature(path),
                Contract.from_json(contract) if contract else None,
            )
        )
        app.warm_up()
        return app
    except (GitopsMLError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # skops and the estimator raise anything on a model they cannot load
        print(f"error: {directory}: cannot load the model: {exc!r}", file=sys.stderr, flush=True)
    sys.exit(STARTUP_FAILURE)
