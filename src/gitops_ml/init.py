"""`gitops-ml init`: make the template yours in one command.

    gitops-ml init --data churn.csv --target churned

reads the file (CSV with a detected delimiter and header, or parquet), puts it under
`data/source/` (in git, or `dvc add`ed when it is over `--max-git-mb`), infers the task from the
target, proposes `data.drop_columns` (ID-like, constant and empty columns), chooses
`evaluate.slices` and a gate for the task, drafts `data/schema/<name>.yaml` from the data exactly
as the ingest stage will produce it, and points params.yaml and dvc.yaml at all of it. Afterwards
`make repro` runs the pipeline on the new data with no further edits.

Every check runs before anything is written: bad input is one line naming the file, column or key
(exit 2) and leaves the repository as it was. Files are replaced atomically, comments and layout of
params.yaml and dvc.yaml are kept, and re-running on the same file gives the same result.

Everything above `plan` is a pure function of a frame or a text, unit-tested with small inline data.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import filecmp
import gzip
import io
import lzma
import math
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gitops_ml import lazy
from gitops_ml.cliargs import exit_codes
from gitops_ml.config import (
    GITOPS_FILE,
    TASKS,
    is_classification,
    merge_settings,
    parse_params,
    read_settings,
)
from gitops_ml.errors import ConfigError, DataError, GitopsMLError
from gitops_ml.files import atomic_path, load_yaml, write_parquet
from gitops_ml.sources import (
    BATCHES_DIR,
    MISSING_MARKERS,
    append_batches,
    batch_files,
    read_batch,
    read_csv,
    read_parquet_source,
)

pd = lazy.module("pandas")

SOURCE_DIR = Path("data/source")
SCHEMA_DIR = Path("data/schema")
PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")

#: Field separators `init` recognises in a CSV file, in order of preference on a tie.
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSED = (".gz", ".bz2", ".xz")
#: How much of a CSV file is looked at to detect its delimiter and header.
SNIFF_BYTES = 1 << 16
SNIFF_ROWS = 200

MB = 1_000_000
#: Files larger than this (in MB) are `dvc add`ed instead of going into git.
DEFAULT_MAX_GIT_MB = 50.0
#: How the README sets up a DVC remote for such data: DVC re-hashes every object it downloads.
REMOTE_SETUP = (
    "dvc remote add -d storage s3://bucket/path",
    "dvc remote modify storage verify true",
)

#: Fewer rows than this cannot be split, trained and evaluated meaningfully.
MIN_ROWS = 20
#: Each class needs this many rows to have some in both the train and the test split.
MIN_CLASS_ROWS = 2
#: A whole-number target with at most this many distinct values is inferred as multiclass.
MULTICLASS_MAX_INT_VALUES = 10
#: A text target with more distinct values than this is refused unless --task says multiclass.
MAX_INFERRED_CLASSES = 50

#: evaluate.slices: up to MAX_SLICES text columns with 2-10 levels, each level expected to put
#: at least SLICE_MIN_TEST_ROWS rows into the test split.
MAX_SLICES = 3
SLICE_LEVELS = (2, 10)
SLICE_MIN_TEST_ROWS = 30
#: gate.worst_slice.min_rows when params.yaml has none.
WORST_SLICE_MIN_ROWS = 50
#: Text columns with more distinct values than this get a note (kept as a category).
MANY_LEVELS = 100

#: The gate's headline metric and allowed worsening against the champion, per task. Regression
#: limits are in the target's units: see `gate_rules`.
PRIMARY = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
MAX_REGRESSION = {
    "binary": {"roc_auc": 0.005, "accuracy": 0.01, "log_loss": 0.01},
    "multiclass": {"f1_macro": 0.01, "accuracy": 0.01, "log_loss": 0.01},
}
#: Regression: rmse and mae may worsen by this share of the target's standard deviation.
REGRESSION_TOLERANCE = 0.02

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Column names of identifiers: `id`, `key`, `uuid`, `customer_id`, `order-id`, `customerId`, `ID`.
_ID_NAME = re.compile(
    r"(?i:^(id|ids|key|uuid|guid|index|idx|row|rownum|row_?number)$)|(?i:[_\s.-]id$)|[a-z]I[dD]$"
)
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?)$"
)


# --------------------------------------------------------------------------------------------
# reading the file


@dataclass(frozen=True)
class TableFormat:
    """How a data file was read: what `data.source`, `data.delimiter`, ... must say."""

    kind: str  # csv | parquet
    delimiter: str = ","
    header: bool = True
    columns: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "parquet":
            return "parquet"
        head = "header row" if self.header else "no header (--columns)"
        return f"CSV, {DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated, {head}"


def detect_kind(path: Path) -> str:
    """parquet (by suffix or by its magic bytes) or csv."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return "csv"
    return "parquet" if magic == b"PAR1" else "csv"


def _head_text(path: Path) -> str:
    """The first complete lines of a (possibly compressed) text file; "" when unreadable."""
    opener: Any = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(
        path.suffix.lower(), open
    )
    try:
        with opener(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES + 1)
    except (OSError, EOFError, lzma.LZMAError):
        return ""
    text = head[:SNIFF_BYTES].decode("utf-8-sig", errors="replace")
    if len(head) > SNIFF_BYTES and "\n" in text:
        text = text[: text.rfind("\n") + 1]  # drop the cut-off last line
    return text


def sniff_rows(text: str, delimiter: str) -> list[list[str]]:
    """The first non-blank records of `text` split on `delimiter` (fields stripped)."""
    rows = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            if row and any(cell.strip() for cell in row):
                rows.append([cell.strip() for cell in row])
            if len(rows) >= SNIFF_ROWS:
                break
    except csv.Error:
        pass
    return rows


def detect_delimiter(text: str) -> str | None:
    """The separator that splits the first lines into the same number (2 or more) of fields.

    Candidates are `DELIMITERS`; the one whose rows most often match the first row's field count
    wins, then the one with more fields, then the earlier one. None when no candidate splits the
    first line at all.
    """
    best: tuple[tuple[float, int], str] | None = None
    for delimiter in DELIMITERS:
        rows = sniff_rows(text, delimiter)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        share = sum(len(row) == width for row in rows) / len(rows)
        key = (share, width)
        if best is None or key > best[0]:
            best = (key, delimiter)
    return best[1] if best else None


def _is_number_text(value: str) -> bool:
    if value in MISSING_MARKERS:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def header_evidence(rows: Sequence[Sequence[str]]) -> tuple[bool, list[str]]:
    """Does the first row look like data rather than column names?

    A field counts as data when it is a number or when the same text occurs as a value of its
    column in the rows below. Returns (refuse, evidence): refuse when every named field is a
    number, or when at least two fields and half of them look like data.
    """
    if not rows:
        return False, []
    first, rest = rows[0], rows[1:]
    evidence, numbers, named = [], 0, 0
    for i, value in enumerate(first):
        if not value:
            continue
        named += 1
        below = {row[i] for row in rest if len(row) > i}
        if _is_number_text(value):
            numbers += 1
            evidence.append(f"{value!r} is a number")
        elif value in below:
            evidence.append(f"{value!r} is also a value of column {i + 1}")
    refuse = (named > 0 and numbers == named) or (
        len(evidence) >= 2 and 2 * len(evidence) >= len(first)
    )
    return refuse, evidence


def read_table(
    path: str | Path,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, TableFormat]:
    """Read a CSV or parquet file the way the ingest stage will, detecting what it can.

    `delimiter` None: detected; `header` None: a header row unless `columns` are given, refused
    when the first line looks like data. The frame is what `sources.read_csv` (or
    `read_parquet_source`) returns for the returned format.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a directory; pass the data file itself")
    if detect_kind(p) == "parquet":
        if delimiter is not None or header is not None or columns:
            raise DataError(
                f"{p}: is a parquet file; --delimiter, --header, --no-header and --columns "
                "apply to CSV files only"
            )
        return read_parquet_source(p), TableFormat("parquet")
    notes: list[str] = []
    text = _head_text(p)
    if not text.strip() or "\x00" in text or "\ufffd" in text:
        # Empty, binary or not UTF-8: nothing to detect; read_csv says what the file is.
        text = ""
        read_csv(p, delimiter=delimiter or ",", header=header is not False, columns=columns)
    if delimiter is None:
        found = detect_delimiter(text)
        delimiter = found or ","
        if found is not None:
            notes.append(f"delimiter {DELIMITER_NAMES[found]} (detected; --delimiter overrides)")
    rows = sniff_rows(text, delimiter)
    width = len(rows[0]) if rows else 0
    if columns and header:
        raise DataError(
            f"{p}: --columns names the columns of a file without a header; drop --header"
        )
    if header is None:
        if columns:
            header = False
        else:
            refuse, evidence = header_evidence(rows)
            if refuse:
                raise DataError(
                    f"{p}: the first line looks like data, not a header "
                    f"({'; '.join(evidence[:3])}); for a file without a header pass --no-header "
                    f"--columns with its {width} column names, or --header if it is the header"
                )
            header = True
            if evidence:
                notes.append(
                    f"header: the first line is taken as column names although "
                    f"{'; '.join(evidence[:2])}; if it is data, re-run with --no-header --columns"
                )
    if not header and not columns:
        raise DataError(
            f"{p}: --no-header needs --columns with the names of its {width} columns "
            "(comma-separated, in file order)"
        )
    if columns and rows and [name.strip() for name in columns] == rows[0]:
        raise DataError(
            f"{p}: the first line already names the columns {', '.join(columns)}; "
            "drop --no-header and --columns"
        )
    if columns and rows and len(columns) != width:
        raise DataError(
            f"{p}: --columns names {len(columns)} columns but the first line has {width} "
            f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated fields"
        )
    df = read_csv(p, delimiter=delimiter, header=header, columns=columns)
    if len(df.columns) == 1:
        raise DataError(
            f"{p}: read as a single column {df.columns[0]!r}; if the file uses another "
            "separator, pass --delimiter"
        )
    fmt = TableFormat("csv", delimiter, header, tuple(columns) if columns else None, tuple(notes))
    return df, fmt


def require_column(df: pd.DataFrame, column: str, where: str | Path) -> None:
    """The target must be a column of the file; the error lists the columns there are."""
    if column not in df.columns:
        names = [str(c) for c in df.columns]
        shown = ", ".join(names[:30]) + (f", ... ({len(names)} in all)" if len(names) > 30 else "")
        raise DataError(f"{where}: no column '{column}' (--target); columns are: {shown}")


# --------------------------------------------------------------------------------------------
# the target and the task


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _whole(s: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(s):
        return True
    values = s.dropna().to_numpy(dtype=float)
    return bool(len(values)) and bool(((values % 1) == 0).all())


def _sorted(values: Any) -> list[Any]:
    items = list(values)
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=lambda v: (type(v).__name__, str(v)))


def _scalar(value: Any) -> Any:
    """numpy scalars as Python values, for messages (2013, not np.int64(2013))."""
    return value.item() if hasattr(value, "item") else value


def _show(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(str(v) for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _number_share(s: pd.Series) -> float:
    present = s.dropna()
    if not len(present):
        return 0.0
    return float(pd.to_numeric(present.astype(str), errors="coerce").notna().mean())


def infer_task(
    y: pd.Series, target: str, task: str | None = None, *, where: str | Path | None = None
) -> tuple[str, str]:
    """The task for target column `y` (given, or inferred) and one line saying why.

    Inferred: 2 distinct values is binary; text with more is multiclass; whole numbers with at most
    `MULTICLASS_MAX_INT_VALUES` values are multiclass; other numbers are regression. A target with
    missing values, a single value, or values that do not fit the given task is an error (naming
    the file `where`).
    """
    try:
        return _infer_task(y, target, task)
    except DataError as exc:
        if where is None:
            raise
        raise DataError(f"{where}: {exc}") from None


def _infer_task(y: pd.Series, target: str, task: str | None) -> tuple[str, str]:
    n = len(y)
    missing = y.isna().to_numpy()
    if missing.any():
        first = int(missing.argmax()) + 1
        raise DataError(
            f"target column '{target}' has {int(missing.sum())} missing value(s) (first in data "
            f"row {first}); every row needs a label: fill or drop those rows, or pick another "
            "--target"
        )
    values = _sorted(y.unique())
    k = len(values)
    numeric = _is_number(y)
    if k < 2:
        raise DataError(
            f"target column '{target}' has the single value {_scalar(values[0])!r} in all "
            f"{n} rows; a model needs at least two classes"
        )
    if not numeric and k > 2 and 0.9 <= _number_share(y) < 1:
        words = _sorted({v for v in y if not _is_number_text(str(v))})
        raise DataError(
            f"target column '{target}' holds numbers and some text ({_show(words, 3)}), so it "
            "is read as text; clean those values to use it as a target"
        )
    if task is None:
        if k == 2:
            task, why = "binary", f"'{target}' has 2 values ({_show(values)})"
        elif not numeric:
            if k > MAX_INFERRED_CLASSES:
                raise DataError(
                    f"target column '{target}' is text with {k} distinct values, too many "
                    "classes to infer a task; pick another --target, or pass --task multiclass"
                )
            task, why = "multiclass", f"'{target}' is text with {k} classes ({_show(values)})"
        elif _whole(y) and k <= MULTICLASS_MAX_INT_VALUES:
            task = "multiclass"
            why = (
                f"'{target}' has {k} whole-number values ({_show(values)}); "
                "pass --task regression to predict it as a number"
            )
        else:
            task, why = "regression", f"'{target}' is numeric with {k} distinct values"
        reason = f"{task} (inferred: {why}; --task overrides)"
    else:
        if task not in TASKS:
            raise DataError(f"--task must be one of {', '.join(TASKS)}, got '{task}'")
        if task == "binary" and k != 2:
            raise DataError(
                f"target column '{target}' has {k} classes ({_show(values)}); --task binary "
                "needs exactly 2: use --task multiclass"
            )
        if task == "multiclass" and k < 3:
            raise DataError(
                f"target column '{target}' has 2 classes ({_show(values)}); --task multiclass "
                "needs 3 or more: use --task binary"
            )
        if task == "regression" and not numeric:
            raise DataError(
                f"target column '{target}' is not numeric (e.g. {_scalar(values[0])!r}); --task "
                "regression needs numbers: use --task binary or multiclass"
            )
        reason = f"{task} (--task)"
    if is_classification(task):
        counts = y.value_counts()
        rare = counts[counts < MIN_CLASS_ROWS]
        if len(rare):
            raise DataError(
                f"target column '{target}': class {_scalar(rare.index[0])!r} has only "
                f"{int(rare.iloc[0])} "
                f"row(s); each class needs at least {MIN_CLASS_ROWS} to have rows in both splits "
                "(merge rare classes or drop those rows)"
            )
    return task, reason


def minority_label(y: pd.Series) -> str:
    """The rarest class as a string (on a tie, the last in sorted order): data.positive_label."""
    counts = y.value_counts()
    rarest = counts[counts == counts.min()].index
    return str(_sorted(rarest)[-1])


# --------------------------------------------------------------------------------------------
# columns: what to drop, what to note, what to slice by


def _id_like_integers(s: pd.Series, name: str) -> bool:
    """All-distinct whole numbers that are an identifier: named like one, or a (shuffled) run
    such as 1..n. Other all-distinct numbers (amounts, measurements) are features."""
    if _ID_NAME.search(name):
        return True
    values = s.dropna().to_numpy(dtype=float)
    return bool(len(values)) and float(values.max() - values.min()) < 2 * len(values)


def propose_drops(df: pd.DataFrame, target: str) -> list[tuple[str, str]]:
    """Columns for `data.drop_columns`, each with the reason: empty (no value), constant (one
    value in every row), ID-like (every value distinct: text, or integers that number the rows)."""
    drops = []
    n = len(df)
    for col in df.columns:
        if col == target:
            continue
        s = df[col]
        present = s.dropna()
        if not len(present):
            drops.append((str(col), "empty: no value in any row"))
            continue
        distinct = present.nunique()
        if distinct == 1 and len(present) == n:
            drops.append((str(col), f"constant: {_scalar(present.iloc[0])!r} in every row"))
            continue
        if distinct < len(present) or distinct < 2 or 2 * len(present) < n:
            continue
        if not _is_number(s) and not pd.api.types.is_bool_dtype(s):
            if _number_share(present) >= 0.8:
                continue  # numbers with a few words: a feature that needs cleaning (a note)
            dates = present.astype(str).head(1000).str.match(_DATE).mean() >= 0.9
            kind = "dates" if dates else "text"
            drops.append((str(col), f"ID-like: all {distinct} values are distinct {kind}"))
        elif _is_number(s) and _whole(s) and _id_like_integers(s, str(col)):
            drops.append((str(col), f"ID-like: all {distinct} values are distinct integers"))
    return drops


def column_notes(df: pd.DataFrame, target: str, dropped: Sequence[str]) -> list[tuple[str, str]]:
    """Kept columns worth a look: numbers with a few words, dates, many categories."""
    notes = []
    for col in df.columns:
        if col == target or col in dropped:
            continue
        s = df[col]
        if _is_number(s) or pd.api.types.is_bool_dtype(s):
            continue
        present = s.dropna()
        if not len(present) or pd.api.types.is_datetime64_any_dtype(s):
            continue
        text = present.astype(str)
        share = _number_share(present)
        if 0.8 <= share < 1:
            words = _sorted(set(text[pd.to_numeric(text, errors="coerce").isna()]))
            notes.append(
                (
                    str(col),
                    f"numbers with a few words ({_show(words, 3)}): read as text, so the model "
                    "sees each value as a category; blank or fix those words to use it as a number",
                )
            )
            continue
        sample = text.head(1000)
        if sample.str.match(_DATE).mean() >= 0.9:
            notes.append(
                (
                    str(col),
                    f"looks like dates (e.g. {sample.iloc[0]!r}): read as text, each date a "
                    "category; derive numbers from it (age, month) or drop it",
                )
            )
            continue
        distinct = present.nunique()
        if distinct > MANY_LEVELS:
            notes.append(
                (
                    str(col),
                    f"{distinct} distinct values: kept as a category (the rarest share one code)",
                )
            )
    return notes


def choose_slices(
    df: pd.DataFrame, target: str, dropped: Sequence[str], test_size: float
) -> list[tuple[str, str]]:
    """Up to `MAX_SLICES` text/categorical columns (file order) with 2-10 levels, each level
    expected to put at least `SLICE_MIN_TEST_ROWS` rows into the test split."""
    chosen = []
    for col in df.columns:
        if col == target or col in dropped or _is_number(df[col]):
            continue
        counts = df[col].value_counts(dropna=True)
        if not SLICE_LEVELS[0] <= len(counts) <= SLICE_LEVELS[1]:
            continue
        if counts.min() * test_size < SLICE_MIN_TEST_ROWS:
            continue
        chosen.append((str(col), f"{len(counts)} levels, the smallest {int(counts.min())} rows"))
        if len(chosen) == MAX_SLICES:
            break
    return chosen


# --------------------------------------------------------------------------------------------
# the gate


def _two_digits(value: float) -> float:
    """Round to two significant digits (a limit, not a measurement)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    return float(f"{value:.2g}")


def gate_rules(
    task: str, y: pd.Series, slices: Sequence[str], min_rows: int = WORST_SLICE_MIN_ROWS
) -> tuple[dict[str, Any], str]:
    """`gate.primary`, `thresholds`, `max_regression`, `worst_slice` for the task, and why.

    Absolute thresholds need a first run on this data to know what is good, so there are none.
    The worst slice may not fall below chance (AUC 0.5; balanced accuracy 1/classes); the gate
    takes the minimum over slices, so only higher-is-better metrics fit it, and a regression
    gets none.
    """
    if task == "regression":
        spread = float(pd.to_numeric(y, errors="coerce").std(ddof=0))
        limit = _two_digits(REGRESSION_TOLERANCE * spread)
        regression = {"rmse": limit, "mae": limit, "r2": 0.01}
        why_regression = (
            f"rmse/mae {limit:g} ({REGRESSION_TOLERANCE:.0%} of the target's spread), r2 0.01"
        )
        worst = None
    else:
        regression = dict(MAX_REGRESSION[task])
        why_regression = ", ".join(f"{k} {v:g}" for k, v in regression.items())
        if not slices:
            worst = None
        elif task == "binary":
            worst = {"metric": "roc_auc", "min": 0.5, "min_rows": min_rows}
        else:
            chance = math.floor(100 / y.nunique()) / 100
            worst = {"metric": "balanced_accuracy", "min": chance, "min_rows": min_rows}
    rules = {
        "primary": PRIMARY[task],
        "thresholds": {},
        "max_regression": regression,
        "worst_slice": worst,
    }
    if worst is None:
        why_worst = (
            "worst_slice off (" + ("regression" if task == "regression" else "no slices") + ")"
        )
    else:
        why_worst = f"worst_slice {worst['metric']} >= {worst['min']:g} (chance level)"
    why = (
        f"primary {rules['primary']}; max_regression {why_regression}; {why_worst}; no absolute "
        "thresholds: set gate.thresholds after the first run, from reports/metrics.json"
    )
    return rules, why


# --------------------------------------------------------------------------------------------
# names


def model_name_from(path: Path) -> str:
    """A registry name from a file name: `Telco Churn.csv.gz` -> `telco-churn`."""
    name = path.name
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    stem = Path(name).stem if "." in name else name
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:64].strip("-")
    return slug or "model"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise DataError(
            f"--name {name!r}: use letters, digits, '.', '_' or '-', starting with a letter or "
            "digit, at most 64 characters (it names the MLflow model and data/schema/<name>.yaml)"
        )
    return name


# --------------------------------------------------------------------------------------------
# editing params.yaml and dvc.yaml (comments and layout kept)

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _yaml_str(value: str) -> Any:
    """A string ruamel writes so that PyYAML (YAML 1.1, which reads `yes` as true) reads it back
    as the same string: plain when safe, else double-quoted."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    try:
        same = load_yaml(value) == value
    except yaml.YAMLError:
        same = False
    return value if same and _PLAIN.match(value) else DoubleQuotedScalarString(value)


def _rt_node(value: Any) -> Any:
    """`value` as ruamel nodes: lists in flow style (`[a, b]`), as params.yaml writes them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, str):
        return _yaml_str(value)
    if isinstance(value, list | tuple):
        seq = CommentedSeq([_rt_node(v) for v in value])
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, Mapping):
        node = CommentedMap((k, _rt_node(v)) for k, v in value.items())
        if not value:
            node.fa.set_flow_style()
        return node
    return value


def _set(node: Any, key: str, value: Any) -> None:
    """Set `node[key]`, updating a mapping in place so comments on kept keys survive."""
    from ruamel.yaml.comments import CommentedMap

    old = node.get(key)
    if isinstance(value, Mapping) and value and isinstance(old, CommentedMap):
        for stale in [k for k in old if k not in value]:
            del old[stale]
        for k, v in value.items():
            _set(old, k, v)
            old.move_to_end(k)  # the order of `value`, whatever the file had
        old.fa.set_block_style()
        return
    node[key] = _rt_node(value)


def _layout(text: str) -> str:
    """params.yaml's layout after ruamel: a blank line before each top-level key and none inside
    a section (ruamel moves the blank line that hung off a replaced value)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
            if following[:1].isspace():
                continue
        top = re.match(r"^[A-Za-z_][\w.-]*:", line)
        if top and out and out[-1].strip() and not out[-1].lstrip().startswith("#"):
            out.append("\n")
        out.append(line)
    return "".join(out)


_COMMENTED = re.compile(r"^(?P<code>( {2})?[A-Za-z_][\w.-]*:.*?)(?P<gap>\s+)(?P<comment>#.*)$")


def _comment_columns(text: str) -> dict[str, int]:
    """The column most of each section's comments start in (the smallest on a tie)."""
    seen: dict[str, list[int]] = {}
    section = ""
    for line in text.splitlines():
        if re.match(r"^[A-Za-z_]", line):
            section = line.split(":", 1)[0]
        match = _COMMENTED.match(line)
        if match and line.startswith("  "):
            seen.setdefault(section, []).append(match.start("comment"))
    return {
        section: min(set(cols), key=lambda c: (-cols.count(c), c)) for section, cols in seen.items()
    }


def _align_comments(
    text: str, columns: Mapping[str, int], keys: Mapping[str, Sequence[str]]
) -> str:
    """Put the comments of the updated `keys` ({section: [key]}) back in their section's column
    (ruamel keeps the column a longer value once pushed a comment to), or one space after a
    value too long for it. Other lines stay as they are."""
    out = []
    section = ""
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if re.match(r"^[A-Za-z_]", body):
            section = body.split(":", 1)[0]
        match = _COMMENTED.match(body) if body.startswith("  ") else None
        if match and section in columns:
            key = match["code"].strip().split(":", 1)[0]
            if key in keys.get(section, ()):
                code = match["code"]
                body = code + " " * max(1, columns[section] - len(code)) + match["comment"]
                line = body + line[len(line.rstrip("\n")) :]
        out.append(line)
    new = "".join(out)
    return new if load_yaml(new) == load_yaml(text) else text


def edit_params(text: str, updates: Mapping[str, Mapping[str, Any]]) -> str:
    """params.yaml with `updates` ({section: {key: value}}) applied, comments and layout kept.

    The result is read back with the pipeline's own YAML reader: every updated key must come
    back equal, or this is an error rather than a silently different params file.
    """
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 4096
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    try:
        doc = rt.load(text)
    except Exception as exc:  # ruamel's errors share no useful base class
        raise ConfigError(f"{PARAMS}: not valid YAML: {str(exc).splitlines()[0]}") from None
    for section, values in updates.items():
        node = doc.get(section) if hasattr(doc, "get") else None
        if not hasattr(node, "get"):
            raise ConfigError(f"params: section '{section}' is missing or not a mapping")
        for key, value in values.items():
            _set(node, key, value)
    out = io.StringIO()
    rt.dump(doc, out)
    new = _align_comments(_layout(out.getvalue()), _comment_columns(text), updates)
    check = load_yaml(new)
    for section, values in updates.items():
        for key, value in values.items():
            if _plain_data(check[section][key]) != _plain_data(value):
                raise GitopsMLError(
                    f"{PARAMS}: '{section}.{key}' would not read back as written "
                    f"({value!r}); set it by hand"
                )
    return new


def _plain_data(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_data(v) for v in value]
    return value


_VARS_SCHEMA = re.compile(r"^(\s*-\s*schema:\s*)(\"[^\"]*\"|'[^']*'|[^\s#]+)(.*)$")


def edit_dvc_yaml(text: str, schema_path: str) -> str:
    """dvc.yaml with its `vars:` entry `- schema: ...` pointing at `schema_path` (a line edit:
    everything else, comments included, stays byte for byte)."""
    lines = text.splitlines(keepends=True)
    in_vars = False
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if re.match(r"^vars:\s*(#.*)?$", body):
            in_vars = True
            continue
        if in_vars and re.match(r"^[^\s#]", body):
            break
        match = _VARS_SCHEMA.match(body) if in_vars else None
        if match:
            value = schema_path if _PLAIN.match(schema_path) else f'"{schema_path}"'
            lines[i] = match.group(1) + value + match.group(3) + line[len(body) :]
            new = "".join(lines)
            entries = (load_yaml(new) or {}).get("vars") or []
            if {"schema": schema_path} not in [e for e in entries if isinstance(e, dict)]:
                break
            return new
    raise ConfigError(
        f"{DVC_YAML}: no `vars:` entry `- schema: <file>` to point at {schema_path}; "
        "the validate stage reads its schema from it"
    )


# --------------------------------------------------------------------------------------------
# the plan: every decision, checked, before anything is written


@dataclass
class Plan:
    """What `init` will write, and the one-line reasons printed for it."""

    root: Path
    source: Path
    dest: Path  # relative to root
    copy: bool
    dvc_add: bool
    schema_path: Path  # relative to root
    schema_text: str
    params_text: str
    gitops_text: str | None  # gitops.yaml (the gate), or None where the gate is in params.yaml
    dvc_text: str
    decisions: list[tuple[str, str]] = field(default_factory=list)
    commit: list[str] = field(default_factory=list)


def _git_tracks(root: Path, rel: Path) -> bool:
    try:
        proc = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "--", rel.as_posix()],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _destination(root: Path, source: Path) -> tuple[Path, bool]:
    """Where the file lives under data/source/ (relative to root), and whether to copy it."""
    src = source.resolve()
    source_dir = (root / SOURCE_DIR).resolve()
    if src.is_relative_to(source_dir):
        if src.is_relative_to(source_dir / BATCHES_DIR):
            raise DataError(
                f"{source}: is in {SOURCE_DIR / BATCHES_DIR}, whose files are appended to the "
                "source; pass the main data file"
            )
        return src.relative_to(root.resolve()), False
    dest = SOURCE_DIR / source.name
    target = root / dest
    if target.is_dir():
        raise DataError(f"{dest} is a directory; rename {source} before `gitops-ml init`")
    if target.exists():
        if not filecmp.cmp(src, target, shallow=False):
            raise DataError(
                f"{dest} exists and differs from {source}: rename one of them, or copy your file "
                f"over it and run `gitops-ml init --data {dest}`"
            )
        return dest, False
    return dest, True


def _ingested(df: pd.DataFrame, data: Any, slices: Sequence[str]) -> pd.DataFrame:
    """The frame the ingest stage will write, read back from parquet as validate reads it."""
    from gitops_ml.stages.ingest import select_columns

    out = select_columns(df, data, tuple(slices))
    with tempfile.TemporaryDirectory(prefix="gitops-ml-init-") as tmp:
        path = Path(tmp) / "dataset.parquet"
        write_parquet(path, out)
        return pd.read_parquet(path)


def _with_batches(df: pd.DataFrame, root: Path, source: Path) -> pd.DataFrame:
    files = batch_files(root / SOURCE_DIR / BATCHES_DIR)
    if not files:
        return df
    try:
        return append_batches(df, [read_batch(path, df) for path in files])
    except DataError as exc:
        raise DataError(
            f"{exc} ({SOURCE_DIR / BATCHES_DIR} holds new rows for the current data set, which "
            f"the ingest stage would append to {source}: move them out first)"
        ) from None


def _check_rows(n: int, k: int | None, test_size: float, where: Path, target: str) -> None:
    if n < MIN_ROWS:
        raise DataError(
            f"{where}: only {n} data rows; the pipeline needs at least {MIN_ROWS} to split, "
            "train and evaluate"
        )
    if k is None:
        return
    n_test = math.ceil(test_size * n)
    if n_test < k or n - n_test < k:
        raise DataError(
            f"{where}: {n} rows with split.test_size {test_size} give {n_test} test rows, "
            f"too few for the {k} classes of '{target}'; more rows are needed"
        )


def _size(n_bytes: int) -> str:
    return (
        f"{n_bytes / MB:.1f} MB" if n_bytes >= MB // 10 else f"{max(1, round(n_bytes / 1000))} kB"
    )


@dataclass(frozen=True)
class _Storage:
    dest: Path  # relative to root
    copy: bool
    dvc_add: bool
    large: bool
    size: int

    def describe(self, source: Path, max_git_mb: float) -> str:
        where = (
            f"copied {source} to {self.dest.as_posix()}"
            if self.copy
            else (f"{self.dest.as_posix()} (already there)")
        )
        if self.large:
            how = (
                f"{_size(self.size)}, over --max-git-mb {max_git_mb:g}: `dvc add`ed, so git "
                f"gets {self.dest.name}.dvc and the data goes to the DVC remote (`dvc push`)"
            )
        elif self.dvc_add:
            how = f"{_size(self.size)}, already DVC-tracked ({self.dest.name}.dvc): `dvc add`ed"
        else:
            how = f"{_size(self.size)}: goes into git (over {max_git_mb:g} MB: `dvc add`ed)"
        return f"{where}; {how}"


def _storage(root: Path, source: Path, max_git_mb: float) -> _Storage:
    """Where the file goes under data/source/, and whether git or DVC keeps it."""
    dest, copy = _destination(root, source)
    size = source.stat().st_size
    large = size > max_git_mb * MB
    dvc_add = large or (root / dest.parent / f"{dest.name}.dvc").exists()
    if dvc_add and not (root / ".dvc").is_dir():
        raise DataError(
            f"{source}: {_size(size)} is over --max-git-mb {max_git_mb:g}, so it must be "
            f"DVC-tracked, but {root} has no .dvc directory (run `dvc init`)"
        )
    if dvc_add and not copy and _git_tracks(root, dest):
        raise DataError(
            f"{dest}: {_size(size)} is over --max-git-mb {max_git_mb:g} but git already tracks "
            f"it; `git rm --cached {dest}` first, or raise --max-git-mb"
        )
    return _Storage(dest, copy, dvc_add, large, size)


def _mapping(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, Mapping) else {}


def _draft_schema(
    ingested: pd.DataFrame, target: str, task: str, dest: Path, schema_path: Path
) -> tuple[str, int]:
    """The schema file's text, checked: the ingested data must pass it."""
    from gitops_ml.schema import infer_schema, parse_schema, validate

    draft = infer_schema(ingested, target=target, task=task)
    text = (
        f"# Drafted by `gitops-ml init` from {dest.as_posix()} ({len(ingested)} rows, "
        "data.drop_columns left out).\n"
        "# Review the limits: the validate stage enforces this file on every run.\n"
        + yaml.safe_dump(draft, sort_keys=False, allow_unicode=True, width=4096)
    )
    schema = parse_schema(load_yaml(text), str(schema_path))
    report = validate(ingested, schema, target=target, task=task)
    if not report.passed:  # infer_schema promises a draft that its own data passes
        raise GitopsMLError(f"{schema_path}: the drafted schema fails: {report.summary_line()}")
    return text, len(draft["columns"])


def make_plan(
    root: Path,
    source: Path,
    target: str,
    *,
    task: str | None = None,
    name: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    columns: Sequence[str] | None = None,
    max_git_mb: float = DEFAULT_MAX_GIT_MB,
) -> Plan:
    """Every decision and every file's new content; raises (naming the file, column or key)
    before anything is written."""
    from gitops_ml.models import estimator_class

    for required in (PARAMS, DVC_YAML):
        if not (root / required).is_file():
            raise ConfigError(
                f"{root / required}: not found; run `gitops-ml init` in the repository root"
            )
    current = read_settings(root / PARAMS)
    if not isinstance(current, Mapping):
        raise ConfigError(f"{PARAMS}: the file must contain a mapping of sections")
    test_size = _mapping(current, "split").get("test_size", 0.2)
    if isinstance(test_size, bool) or not isinstance(test_size, int | float):
        raise ConfigError(f"params: 'split.test_size' must be a number, got {test_size!r}")
    name = check_name(name) if name is not None else model_name_from(source)

    # -- the data, as the ingest stage will see it
    df, fmt = read_table(source, delimiter=delimiter, header=header, columns=columns)
    require_column(df, target, source)
    storage = _storage(root, source, max_git_mb)
    data = _with_batches(df, root, source)
    y = data[target]
    task, why_task = infer_task(y, target, task, where=source)
    classes = int(y.nunique()) if is_classification(task) else None
    _check_rows(len(data), classes, float(test_size), source, target)

    # -- the decisions
    drops = propose_drops(data, target)
    dropped = [col for col, _ in drops]
    if len(data.columns) - len(dropped) < 2:
        raise DataError(
            f"{source}: no feature column left besides '{target}' after dropping "
            f"{', '.join(dropped) or 'nothing'}: nothing to learn from"
        )
    slices = choose_slices(data, target, dropped, float(test_size))
    slice_names = [col for col, _ in slices]
    old_worst = _mapping(current, "gate").get("worst_slice")
    min_rows = WORST_SLICE_MIN_ROWS
    if isinstance(old_worst, Mapping) and isinstance(old_worst.get("min_rows"), int):
        min_rows = old_worst["min_rows"]
    gate, why_gate = gate_rules(task, y, slice_names, min_rows)
    positive = minority_label(y) if task == "binary" else None
    updates: dict[str, dict[str, Any]] = {
        "data": {
            "source": fmt.kind,
            "path": storage.dest.as_posix(),
            "delimiter": fmt.delimiter,
            "header": fmt.header,
            "columns": list(fmt.columns) if fmt.columns else None,
            "drop_columns": dropped,
            "target": target,
            "task": task,
            "n_rows": None,
            "positive_label": positive,
        },
        "evaluate": {"slices": slice_names},
        "mlflow": {"model_name": name},
    }
    # The gate goes where the repository keeps it: gitops.yaml, or (older layout) params.yaml.
    gitops_file = root / GITOPS_FILE
    gitops_text = None
    if gitops_file.is_file():
        gitops_text = edit_params(gitops_file.read_text(encoding="utf-8"), {"gate": gate})
    else:
        updates["gate"] = gate
    old_model = _mapping(current, "train").get("model")
    try:
        estimator_class(str(old_model), task)
    except ConfigError:
        updates["train"] = {"model": "hist_gradient_boosting", "hyperparams": {}}

    # -- the files, each checked the way the pipeline will read it
    params_text = edit_params((root / PARAMS).read_text(encoding="utf-8"), updates)
    gitops_raw = None if gitops_text is None else load_yaml(gitops_text)
    params = parse_params(merge_settings(load_yaml(params_text), gitops_raw), check_estimator=True)
    schema_path = SCHEMA_DIR / f"{name}.yaml"
    ingested = _ingested(data, params.data, slice_names)
    schema_text, n_schema_columns = _draft_schema(ingested, target, task, storage.dest, schema_path)
    existing = root / schema_path
    replaces = existing.exists() and existing.read_text(encoding="utf-8") != schema_text
    dvc_text = edit_dvc_yaml((root / DVC_YAML).read_text(encoding="utf-8"), schema_path.as_posix())

    # -- one line per decision
    decisions = [("data", storage.describe(source, max_git_mb))]
    decisions.append(("read", f"{len(df)} rows x {len(df.columns)} columns, {fmt.describe()}"))
    decisions += [("read", note) for note in fmt.notes]
    if len(data) != len(df):
        decisions.append(("read", f"+ {len(data) - len(df)} rows from {SOURCE_DIR / BATCHES_DIR}"))
    decisions.append(("task", why_task))
    if positive is not None:
        count = int((y.astype(str) == positive).sum())
        decisions.append(
            ("positive", f"{positive!r}, the minority class ({count} of {len(y)} rows)")
        )
    decisions += [("drop", f"{col}: {why}") for col, why in drops] or [
        ("drop", "none: no ID-like, constant or empty column")
    ]
    decisions += [("note", f"{col}: {why}") for col, why in column_notes(data, target, dropped)]
    decisions += [("slice", f"{col}: {why}") for col, why in slices] or [
        (
            "slice",
            f"none: no text column with {SLICE_LEVELS[0]}-{SLICE_LEVELS[1]} levels of at least "
            f"{math.ceil(SLICE_MIN_TEST_ROWS / test_size)} rows each",
        )
    ]
    decisions.append(("gate", why_gate))
    if "train" in updates:
        decisions.append(
            ("train", f"model hist_gradient_boosting ({old_model} does not fit {task})")
        )
    decisions.append(("model", f"mlflow.model_name {name}"))
    decisions.append(
        (
            "schema",
            f"{schema_path.as_posix()}: {n_schema_columns} columns"
            + (", replacing the existing file" if replaces else "")
            + "; the data passes it, review its limits",
        )
    )
    decisions.append(("dvc.yaml", f"vars schema: {schema_path.as_posix()}"))
    old_path = _mapping(current, "data").get("path")
    moved = isinstance(old_path, str) and old_path != storage.dest.as_posix()
    if moved and (root / old_path).exists():
        decisions.append(
            ("note", f"{old_path} is no longer read (data.path moved); `git rm` it if unused")
        )
    if storage.dvc_add:
        data_files = [
            f"{storage.dest.as_posix()}.dvc",
            (storage.dest.parent / ".gitignore").as_posix(),
        ]
    else:
        data_files = [storage.dest.as_posix()]
    return Plan(
        root=root,
        source=source,
        dest=storage.dest,
        copy=storage.copy,
        dvc_add=storage.dvc_add,
        schema_path=schema_path,
        schema_text=schema_text,
        params_text=params_text,
        gitops_text=gitops_text,
        dvc_text=dvc_text,
        decisions=decisions,
        commit=[
            "params.yaml",
            *([GITOPS_FILE] if gitops_text is not None else []),
            "dvc.yaml",
            "dvc.lock",
            schema_path.as_posix(),
            *data_files,
            "reports",
        ],
    )


# --------------------------------------------------------------------------------------------
# writing


def _write_text(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _dvc_add(root: Path, rel: Path) -> None:
    cmd = [sys.executable, "-m", "dvc", "add", "--quiet", rel.as_posix()]
    try:
        proc = subprocess.run(
            cmd, cwd=root, capture_output=True, text=True, check=False, timeout=3600
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitopsMLError(f"dvc add {rel}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith("error")] or lines[-1:]
        raise GitopsMLError(
            f"dvc add {rel} failed: {errors[0] if errors else f'exit {proc.returncode}'}"
        )


def apply(plan: Plan) -> None:
    """Write what `plan` decided: the data file, its DVC tracking, the schema, params, dvc.yaml."""
    root = plan.root
    if plan.copy:
        with atomic_path(root / plan.dest) as tmp:
            shutil.copyfile(plan.source, tmp)
    if plan.dvc_add:
        try:
            _dvc_add(root, plan.dest)
        except GitopsMLError:
            if plan.copy:  # leave the repository as it was
                (root / plan.dest).unlink(missing_ok=True)
            raise
    _write_text(root / plan.schema_path, plan.schema_text)
    _write_text(root / PARAMS, plan.params_text)
    if plan.gitops_text is not None:
        _write_text(root / GITOPS_FILE, plan.gitops_text)
    _write_text(root / DVC_YAML, plan.dvc_text)


def summary(plan: Plan, *, dry_run: bool = False) -> str:
    """What was decided (one line each) and the commands that come next."""
    lines = [f"gitops-ml init: {plan.source}" + (" (dry run: nothing written)" if dry_run else "")]
    lines += [f"  {topic:<9} {text}" for topic, text in plan.decisions]
    lines.append(
        "Change any of these in params.yaml (data.drop_columns, evaluate.slices), "
        f"{GITOPS_FILE if plan.gitops_text is not None else 'params.yaml'} (gate.*) or the "
        "schema file; `make repro` picks it up."
    )
    lines.append("next:")
    lines.append("  make repro        # ingest -> validate -> split -> train -> evaluate on it")
    lines.append("  git switch -c my-data")
    lines.append(f"  git add {shlex.join(plan.commit)}")
    lines.append(f'  git commit -m "Train on {plan.dest.name}"')
    if plan.dvc_add:
        lines += [
            "  dvc push          # CI pulls the data from the DVC remote; without one, first:",
            f"                    #   {REMOTE_SETUP[0]}",
            f"                    #   {REMOTE_SETUP[1]}   # DVC re-hashes what it pulls",
        ]
    lines.append(
        "  git push -u origin HEAD, then open a pull request: CI posts the report and gate"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line


def _delimiter(value: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(value.lower(), value)
    if len(value) != 1 or value in '\r\n"':
        raise argparse.ArgumentTypeError(
            f"must be one character such as ',' ';' '|' or 'tab', got {value!r}"
        )
    return value


def _columns(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"an empty column name in {value!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a column named twice in {value!r}")
    return names


def _megabytes(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return number


def add_reading_options(p: argparse.ArgumentParser) -> None:
    """--delimiter, --header/--no-header and --columns: what cannot be detected in a CSV file."""
    p.add_argument(
        "--delimiter",
        type=_delimiter,
        default=None,
        help="CSV field separator: , ; | or tab (default: detected from the file)",
    )
    head = p.add_mutually_exclusive_group()
    head.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        default=None,
        help="the first line is the header, even if it looks like data",
    )
    head.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        help="the first line is already data (name the columns with --columns)",
    )
    p.add_argument(
        "--columns",
        type=_columns,
        default=None,
        metavar="A,B,C",
        help="column names of a file without a header, in order",
    )


def run(args: argparse.Namespace) -> int:
    plan = make_plan(
        Path.cwd(),
        Path(args.data),
        args.target,
        task=args.task,
        name=args.name,
        delimiter=args.delimiter,
        header=args.header,
        columns=args.columns,
        max_git_mb=args.max_git_mb,
    )
    if not args.dry_run:
        apply(plan)
    print(summary(plan, dry_run=args.dry_run))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `init` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "init",
        help="point the template at your CSV or parquet file",
        description="Put a data file under data/source/, infer the task, drop ID-like, constant "
        "and empty columns, draft data/schema/<name>.yaml and set params.yaml (data, slices, "
        "gate, model name) and dvc.yaml, so that `make repro` runs on it. Checks everything "
        "before writing; bad input exits 2 and changes nothing.",
        epilog=exit_codes(
            "the template points at your data (or --dry-run printed the plan)",
            bad="bad input or usage (one line names the file, column or option); nothing is "
            "changed",
        ),
    )
    p.add_argument("--data", required=True, help="your CSV (.csv, .tsv, .csv.gz) or parquet file")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument(
        "--task", choices=TASKS, default=None, help="default: inferred from the target column"
    )
    p.add_argument(
        "--name",
        default=None,
        help="MLflow model name and schema file name (default: from the file name)",
    )
    add_reading_options(p)
    p.add_argument(
        "--max-git-mb",
        type=_megabytes,
        default=DEFAULT_MAX_GIT_MB,
        help="larger files are `dvc add`ed instead of going into git (default: %(default)s)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the decisions, write nothing")
    p.set_defaults(func=run)
