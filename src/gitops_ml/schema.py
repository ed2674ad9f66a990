"""The data contract: a reviewed YAML file that says what data is fit to train on.

The schema file (e.g. data/schema/adult.yaml) is edited by people and reviewed in pull requests,
so it is plain YAML with few keys, strict defaults and rates rather than counts (a new data drop
may be bigger or smaller). Element checks (ranges, category sets, missing values) run through
pandera; dataset rules (row count, duplicates, classes) are small pure functions. Every rule
yields one `Check` with its observed value and limit, so the report says exactly what failed.

Schema format (all rates are fractions in [0, 1]):

    dataset:
      min_rows: 1000             # fewer rows than this is a broken extract
      max_duplicate_rate: 0.01   # share of rows that repeat an earlier row
      allow_extra_columns: false # columns not listed below fail (default false)
    target:
      name: income
      labels: ["<=50K", ">50K"]  # classification: the allowed labels
      min_class_rate: 0.05       # optional: each label at least this share of rows
      # regression instead: dtype: float, min: 0, max: 1000000 (range optional)
    columns:
      age: {dtype: int, min: 17, max: 90, max_missing_rate: 0.0}
      workclass:
        dtype: category          # int | float | category | str
        categories: [Private, ...]
        max_missing_rate: 0.1    # default 0.0
        max_unknown_rate: 0.01   # share of non-missing values outside categories (default 0.0)
      sex: {dtype: category, categories: [Female, Male], sensitive: true, exclude: true}

`sensitive: true` marks a protected attribute (listed in the model card). `exclude: true` keeps a
column out of the model's inputs (the train and tune stages drop it) while it stays in the data,
so evaluate.slices, the gate's slice rules and the model card still see it; a request or batch
that carries it is scored as if it did not (the model ignores it).

The target always has two fixed rules: no missing labels, and (classification) at least two
classes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml import lazy
from gitops_ml.config import TASKS, DataConfig, is_classification, read_yaml
from gitops_ml.errors import ConfigError

# Imported on first use: reading a schema and checking params against it (check-params) need
# none of them, and pandas with pandera cost about a second.
np = lazy.module("numpy")
pd = lazy.module("pandas")

if TYPE_CHECKING:
    import pandera.pandas as pa

DTYPES = ("int", "float", "category", "str")
#: Columns with at most this many distinct text values are drafted as categories by infer_schema.
INFER_MAX_CATEGORIES = 100
_EXAMPLES = 5


# --------------------------------------------------------------------------------------------
# the schema


@dataclass(frozen=True)
class ColumnSpec:
    """The rules for one feature column."""

    name: str
    dtype: str
    categories: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    max_missing_rate: float = 0.0
    max_unknown_rate: float = 0.0
    #: a protected attribute (sex, race, age...): listed in the model card, worth a slice
    sensitive: bool = False
    #: not a model input: train and tune drop it; it stays in the data for slices and the card
    exclude: bool = False


@dataclass(frozen=True)
class TargetSpec:
    """The label column: its allowed labels (classification) or numeric range (regression)."""

    name: str
    labels: tuple[Any, ...] | None = None
    min_class_rate: float | None = None
    dtype: str | None = None
    min: float | None = None
    max: float | None = None

    @property
    def task(self) -> str:
        """binary (two labels or fewer), multiclass (more), or regression (no labels)."""
        if self.labels is None:
            return "regression"
        return "binary" if len(self.labels) <= 2 else "multiclass"


@dataclass(frozen=True)
class Schema:
    """A parsed, checked schema file."""

    source: str
    min_rows: int
    max_duplicate_rate: float
    allow_extra_columns: bool
    target: TargetSpec
    columns: tuple[ColumnSpec, ...]

    @property
    def excluded(self) -> tuple[str, ...]:
        """The columns marked `exclude: true`, in the schema's order."""
        return tuple(c.name for c in self.columns if c.exclude)


def load_schema(path: str | os.PathLike[str]) -> Schema:
    """Read a schema file; a malformed one is a ConfigError naming the file and the key."""
    raw = read_yaml(path, "schema")
    return parse_schema(raw, source=str(Path(path)))


class _Reader:
    """Typed access to one mapping of the schema file, with errors naming file and key."""

    def __init__(self, raw: Any, source: str, prefix: str, allowed: Sequence[str]):
        self.source, self.prefix = source, prefix
        if not isinstance(raw, Mapping):
            raise self.error(prefix, f"must be a mapping, got {_short(raw)}")
        unknown = [k for k in raw if k not in allowed]
        if unknown:
            raise self.error(
                f"{prefix}.{unknown[0]}",
                f"is not a known key (expected one of: {', '.join(allowed)})",
            )
        self.raw = raw

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: '{key}' {problem}")

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def required(self, name: str) -> Any:
        if name not in self.raw or self.raw[name] is None:
            raise self.error(self.key(name), "is missing")
        return self.raw[name]

    def number(self, name: str, *, optional: bool = True) -> float | None:
        value = self.raw.get(name) if optional else self.required(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(self.key(name), f"must be a number, got {_short(value)}")
        return value

    def integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.required(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(
                self.key(name), f"must be an integer >= {minimum}, got {_short(value)}"
            )
        return value

    def rate(self, name: str, default: float | None) -> float | None:
        value = self.raw.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.error(self.key(name), f"must be a rate between 0 and 1, got {_short(value)}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise self.error(self.key(name), f"must be true or false, got {_short(value)}")
        return value

    def values(self, name: str) -> tuple[Any, ...]:
        value = self.required(name)
        if not isinstance(value, list) or not value:
            raise self.error(self.key(name), "must be a non-empty list")
        for item in value:
            if item is None or isinstance(item, list | dict):
                raise self.error(self.key(name), f"has an invalid entry {_short(item)}")
        if len({(type(v).__name__, v) for v in value}) != len(value):
            raise self.error(self.key(name), "has duplicate entries")
        return tuple(value)


def parse_schema(raw: Any, source: str = "schema") -> Schema:
    """Check an already-parsed schema mapping (see the module docstring for the format)."""
    top = _Reader(raw, source, "schema", ("dataset", "target", "columns"))

    ds = _Reader(
        top.required("dataset"),
        source,
        "dataset",
        ("min_rows", "max_duplicate_rate", "allow_extra_columns"),
    )
    min_rows = ds.integer("min_rows", minimum=1)
    max_dup = ds.rate("max_duplicate_rate", None)
    if max_dup is None:
        raise ds.error("dataset.max_duplicate_rate", "is missing")

    tg = _Reader(
        top.required("target"),
        source,
        "target",
        ("name", "labels", "min_class_rate", "dtype", "min", "max"),
    )
    name = tg.required("name")
    if not isinstance(name, str) or not name:
        raise tg.error("target.name", f"must be a column name, got {_short(name)}")
    if "labels" in tg.raw:
        for key in ("dtype", "min", "max"):
            if key in tg.raw:
                raise tg.error(f"target.{key}", "is for regression targets; this one has labels")
        target = TargetSpec(
            name=name, labels=tg.values("labels"), min_class_rate=tg.rate("min_class_rate", None)
        )
    else:
        if "min_class_rate" in tg.raw:
            raise tg.error("target.min_class_rate", "needs target.labels (classification)")
        dtype = tg.raw.get("dtype", "float")
        if dtype not in ("int", "float"):
            raise tg.error(
                "target.dtype", f"must be int or float for regression, got {_short(dtype)}"
            )
        target = TargetSpec(name=name, dtype=dtype, min=tg.number("min"), max=tg.number("max"))
        _check_range(tg, target.min, target.max, "target")

    cols_raw = top.required("columns")
    if not isinstance(cols_raw, Mapping) or not cols_raw:
        raise top.error("columns", "must be a mapping of column name to rules")
    columns = []
    for col, rules in cols_raw.items():
        if not isinstance(col, str) or not col:
            raise top.error("columns", f"has an invalid column name {_short(col)}")
        if col == name:
            raise top.error(f"columns.{col}", "is the target; describe it under 'target' only")
        columns.append(_parse_column(col, rules, source))
    return Schema(
        source=source,
        min_rows=min_rows,
        max_duplicate_rate=max_dup,
        allow_extra_columns=ds.boolean("allow_extra_columns", False),
        target=target,
        columns=tuple(columns),
    )


def _parse_column(name: str, rules: Any, source: str) -> ColumnSpec:
    r = _Reader(
        rules,
        source,
        f"columns.{name}",
        (
            "dtype",
            "categories",
            "min",
            "max",
            "max_missing_rate",
            "max_unknown_rate",
            "sensitive",
            "exclude",
        ),
    )
    dtype = r.required("dtype")
    if dtype not in DTYPES:
        raise r.error(r.key("dtype"), f"must be one of {', '.join(DTYPES)}; got {_short(dtype)}")
    numeric = dtype in ("int", "float")
    for key in ("min", "max"):
        if key in r.raw and not numeric:
            raise r.error(r.key(key), f"applies to int and float columns, not {dtype}")
    for key in ("categories", "max_unknown_rate"):
        if key in r.raw and dtype != "category":
            raise r.error(r.key(key), f"applies to category columns, not {dtype}")
    spec = ColumnSpec(
        name=name,
        dtype=dtype,
        categories=r.values("categories") if dtype == "category" else None,
        min=r.number("min"),
        max=r.number("max"),
        max_missing_rate=r.rate("max_missing_rate", 0.0),
        max_unknown_rate=r.rate("max_unknown_rate", 0.0),
        sensitive=r.boolean("sensitive", False),
        exclude=r.boolean("exclude", False),
    )
    _check_range(r, spec.min, spec.max, r.prefix)
    return spec


def _check_range(r: _Reader, low: float | None, high: float | None, prefix: str) -> None:
    if low is not None and high is not None and low > high:
        raise r.error(f"{prefix}.min", f"({low}) is greater than {prefix}.max ({high})")


# --------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Check:
    """One rule applied to one column (column None: a dataset rule)."""

    column: str | None
    rule: str
    passed: bool
    observed: Any
    limit: Any
    message: str
    examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        """`column 'age', rule max: 3 values above 90 (e.g. 150, 200)`: for one-line errors."""
        where = f"column '{self.column}'" if self.column is not None else "dataset"
        shown = ", ".join(repr(v) for v in self.examples)
        hint = f" (e.g. {shown})" if shown and "e.g." not in self.message else ""
        return f"{where}, rule {self.rule}: {self.message}{hint}"


@dataclass(frozen=True)
class ValidationReport:
    """Every check that ran, in order: dataset rules, the target, then columns as listed."""

    n_rows: int
    n_columns: int
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def summary_line(self) -> str:
        """One line for the terminal: the first failure and how many there are."""
        if self.passed:
            return f"all {len(self.checks)} checks passed"
        fails = self.failures
        return f"{fails[0].describe()}; {len(fails)} of {len(self.checks)} checks failed"

    def to_dict(self) -> dict[str, Any]:
        checks = [_jsonable(asdict(c)) for c in self.checks]
        return {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "summary": {
                "checks": len(checks),
                "passed": sum(c["passed"] for c in checks),
                "failed": sum(not c["passed"] for c in checks),
            },
            "failures": [c for c in checks if not c["passed"]],
            "checks": checks,
        }


# --------------------------------------------------------------------------------------------
# validation


def validate(
    df: pd.DataFrame, schema: Schema, target: str | None = None, task: str | None = None
) -> ValidationReport:
    """Apply every rule of `schema` to `df`; `target`/`task` (from params) must match the schema."""
    checks: list[Check] = []
    n = len(df)
    checks += _dataset_checks(df, schema)

    # Which columns can have their values checked: present, with the right kind of dtype.
    value_specs: list[ColumnSpec] = []
    tgt = schema.target
    target_checks = _target_setup_checks(df, tgt, target, task)
    target_ok = all(c.passed or c.rule in ("name", "task") for c in target_checks)
    column_checks: dict[str, list[Check]] = {}
    for spec in schema.columns:
        found = spec.name in df.columns
        column_checks[spec.name] = [_presence(spec.name, found)]
        if not found:
            continue
        dtype_check = _dtype_check(df[spec.name], spec.name, spec.dtype)
        column_checks[spec.name].append(dtype_check)
        if dtype_check.passed:
            value_specs.append(spec)

    failures = _run_pandera(df, value_specs, tgt if target_ok else None)

    checks += target_checks
    if target_ok:
        checks += _target_value_checks(df, tgt, failures)
    for spec in schema.columns:
        checks += column_checks[spec.name]
        if spec in value_specs:
            checks += _column_value_checks(df[spec.name], spec, n, failures)
    return ValidationReport(n_rows=n, n_columns=len(df.columns), checks=tuple(checks))


def duplicate_rate(df: pd.DataFrame) -> float:
    """Share of rows that repeat an earlier row exactly."""
    return float(df.duplicated().mean()) if len(df) else 0.0


def class_counts(labels: pd.Series) -> dict[Any, int]:
    """Rows per label, missing labels left out."""
    return {k: int(v) for k, v in labels.value_counts(dropna=True).sort_index().items()}


def _dataset_checks(df: pd.DataFrame, schema: Schema) -> list[Check]:
    n = len(df)
    dup = duplicate_rate(df)
    known = {c.name for c in schema.columns} | {schema.target.name}
    extra = [str(c) for c in df.columns if c not in known]
    checks = [
        Check(
            None,
            "min_rows",
            n >= schema.min_rows,
            n,
            schema.min_rows,
            f"{n} rows, need at least {schema.min_rows}",
        ),
        Check(
            None,
            "max_duplicate_rate",
            dup <= schema.max_duplicate_rate,
            round(dup, 6),
            schema.max_duplicate_rate,
            f"{dup:.2%} of rows are duplicates (limit {schema.max_duplicate_rate:.2%})",
        ),
    ]
    if extra and not schema.allow_extra_columns:
        checks.append(
            Check(
                None,
                "allow_extra_columns",
                False,
                extra,
                False,
                f"{len(extra)} column(s) not in the schema: {', '.join(extra[:10])}; "
                "add them to the schema or set dataset.allow_extra_columns",
            )
        )
    else:
        checks.append(
            Check(
                None,
                "allow_extra_columns",
                True,
                extra,
                schema.allow_extra_columns,
                f"{len(extra)} column(s) not in the schema",
            )
        )
    return checks


def _target_setup_checks(
    df: pd.DataFrame, tgt: TargetSpec, target: str | None, task: str | None
) -> list[Check]:
    checks = []
    if target is not None:
        checks.append(
            Check(
                tgt.name,
                "name",
                tgt.name == target,
                target,
                tgt.name,
                f"schema target '{tgt.name}' must equal params data.target '{target}'"
                if tgt.name != target
                else f"schema target matches params data.target '{target}'",
            )
        )
    if task is not None:
        ok = tgt.task == task
        checks.append(
            Check(
                tgt.name,
                "task",
                ok,
                task,
                tgt.task,
                f"schema target is for {tgt.task} (labels "
                f"{'given' if tgt.labels is not None else 'absent'}) but params "
                f"data.task is {task}"
                if not ok
                else f"schema target is for {task}",
            )
        )
    found = tgt.name in df.columns
    checks.append(_presence(tgt.name, found, what="target column"))
    if found and tgt.task == "regression":
        checks.append(_dtype_check(df[tgt.name], tgt.name, tgt.dtype or "float"))
    return checks


def _target_value_checks(
    df: pd.DataFrame, tgt: TargetSpec, failures: Mapping[tuple[str, str], _Failures]
) -> list[Check]:
    s = df[tgt.name]
    n = len(s)
    missing = int(s.isna().sum())
    checks = [
        Check(
            tgt.name,
            "no_missing",
            missing == 0,
            missing,
            0,
            f"{missing} rows have no label" if missing else "every row has a label",
        )
    ]
    if tgt.task == "regression":
        checks += _range_checks(s, tgt.name, tgt.min, tgt.max, failures)
        return checks
    bad = failures.get((tgt.name, "labels"))
    unexpected = bad.count if bad else 0
    checks.append(
        Check(
            tgt.name,
            "labels",
            unexpected == 0,
            unexpected,
            list(tgt.labels),
            f"{unexpected} rows have labels outside {_fmt_list(tgt.labels)}"
            if unexpected
            else "all labels are allowed",
            bad.examples if bad else [],
        )
    )
    counts = class_counts(s)
    checks.append(
        Check(
            tgt.name,
            "min_classes",
            len(counts) >= 2,
            len(counts),
            2,
            f"{len(counts)} {'class' if len(counts) == 1 else 'classes'} present "
            f"{_fmt_list(list(counts))}; a classifier needs at least 2",
        )
    )
    if tgt.min_class_rate is not None:
        rates = {k: v / n for k, v in counts.items()} if n else {}
        for label in tgt.labels:
            rates.setdefault(label, 0.0)
        worst = min(rates, key=lambda k: rates[k]) if rates else None
        low = rates[worst] if worst is not None else 0.0
        checks.append(
            Check(
                tgt.name,
                "min_class_rate",
                low >= tgt.min_class_rate,
                {str(k): round(v, 6) for k, v in rates.items()},
                tgt.min_class_rate,
                f"rarest label '{worst}' is {low:.2%} of rows (limit {tgt.min_class_rate:.2%})",
            )
        )
    return checks


def _column_value_checks(
    s: pd.Series, spec: ColumnSpec, n: int, failures: Mapping[tuple[str, str], _Failures]
) -> list[Check]:
    name = spec.name
    missing = int(s.isna().sum())
    rate = missing / n if n else 0.0
    checks = [
        Check(
            name,
            "max_missing_rate",
            rate <= spec.max_missing_rate,
            round(rate, 6),
            spec.max_missing_rate,
            f"{rate:.2%} missing (limit {spec.max_missing_rate:.2%})",
        )
    ]
    if spec.dtype in ("int", "float"):
        checks += _range_checks(s, name, spec.min, spec.max, failures)
    if spec.dtype == "category":
        bad = failures.get((name, "max_unknown_rate"))
        present = n - missing
        unknown = bad.count if bad else 0
        urate = unknown / present if present else 0.0
        checks.append(
            Check(
                name,
                "max_unknown_rate",
                urate <= spec.max_unknown_rate,
                round(urate, 6),
                spec.max_unknown_rate,
                f"{urate:.2%} of values are not in the schema's categories "
                f"(limit {spec.max_unknown_rate:.2%})",
                bad.examples if bad else [],
            )
        )
    return checks


def _range_checks(
    s: pd.Series,
    name: str,
    low: float | None,
    high: float | None,
    failures: Mapping[tuple[str, str], _Failures],
) -> list[Check]:
    checks = []
    for rule, limit, observed in (("min", low, s.min()), ("max", high, s.max())):
        if limit is None:
            continue
        bad = failures.get((name, rule))
        count = bad.count if bad else 0
        side = "below" if rule == "min" else "above"
        checks.append(
            Check(
                name,
                rule,
                count == 0,
                _scalar(observed),
                limit,
                f"{count} values {side} {limit}"
                if count
                else f"{rule} {_scalar(observed)} within limit {limit}",
                bad.examples if bad else [],
            )
        )
    return checks


def _presence(name: str, found: bool, what: str = "column") -> Check:
    return Check(
        name,
        "present",
        found,
        found,
        True,
        f"{what} is present" if found else f"{what} is missing from the data",
    )


def _dtype_check(s: pd.Series, name: str, dtype: str) -> Check:
    """Does the column hold the kind of values the schema says (int, float, category, str)?"""
    observed = str(s.dtype)
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    examples: list[Any] = []
    if dtype == "int":
        ok = pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if not ok and pd.api.types.is_float_dtype(s):
            # pandas stores an integer column with missing values as float: accept whole numbers.
            values = s.dropna()
            fractional = values[values != np.floor(values)]
            ok = fractional.empty
            examples = _top_values(fractional)
        elif not ok:
            examples = _non_numeric(s)
    elif dtype == "float":
        ok = numeric
        if not ok:
            examples = _non_numeric(s)
    elif dtype == "category":
        ok = not pd.api.types.is_float_dtype(s)
    else:  # str
        ok = not numeric and not pd.api.types.is_bool_dtype(s)
    hint = f" (e.g. {', '.join(map(repr, examples))})" if examples and not ok else ""
    message = f"{observed} fits {dtype}" if ok else f"expected {dtype}, got {observed}{hint}"
    return Check(name, "dtype", ok, observed, dtype, message, examples if not ok else [])


@dataclass(frozen=True)
class _Failures:
    count: int
    examples: list[Any]


def _run_pandera(
    df: pd.DataFrame, specs: Sequence[ColumnSpec], target: TargetSpec | None
) -> dict[tuple[str, str], _Failures]:
    """Run the element rules through pandera; return failing-value counts per (column, rule)."""
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    columns: dict[str, pa.Column] = {}
    for spec in specs:
        checks = _range_pandera(spec.min, spec.max)
        if spec.dtype == "category":
            checks.append(_isin(spec.categories or (), "max_unknown_rate"))
        columns[spec.name] = pa.Column(checks=checks, nullable=True, required=False)
    if target is not None:
        if target.labels is not None:
            checks = [_isin(target.labels, "labels")]
        else:
            checks = _range_pandera(target.min, target.max)
        columns[target.name] = pa.Column(checks=checks, nullable=True, required=False)
    if not columns:
        return {}
    try:
        pa.DataFrameSchema(columns, strict=False).validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return {}
    out = {}
    for (column, check), group in cases.groupby(["column", "check"], sort=False):
        values = group["failure_case"]
        out[(str(column), str(check))] = _Failures(len(group), _top_values(values))
    return out


def _range_pandera(low: float | None, high: float | None) -> list[pa.Check]:
    import pandera.pandas as pa

    checks = []
    if low is not None:
        checks.append(pa.Check(lambda s, v=low: s >= v, name="min"))
    if high is not None:
        checks.append(pa.Check(lambda s, v=high: s <= v, name="max"))
    return checks


def _isin(allowed: Sequence[Any], name: str) -> pa.Check:
    import pandera.pandas as pa

    allowed = list(allowed)
    return pa.Check(lambda s: s.isin(allowed), name=name)


# --------------------------------------------------------------------------------------------
# drafting a schema


def infer_schema(df: pd.DataFrame, target: str, task: str) -> dict[str, Any]:
    """Draft a schema (as a plain dict, ready for YAML) that the given frame passes.

    Limits are the observed values with some headroom for rates; they are a starting point for
    review, not a judgement of what the data should be. Every kind of column gets a rule that
    `validate` accepts for the same frame: empty columns (no values to list as categories), text
    whose values mostly do not repeat (IDs, free text, dates: `str`), booleans, datetimes. A
    target that no schema could accept (missing labels, one class, a label count that does not
    fit the task, text for regression) is an error naming the column.
    """
    if target not in df.columns:
        raise ConfigError(f"infer schema: no target column '{target}'")
    if task not in TASKS:
        raise ConfigError(f"infer schema: task must be one of {', '.join(TASKS)}, got '{task}'")
    if len(df.columns) < 2:
        raise ConfigError(f"infer schema: no feature columns besides the target '{target}'")
    n = len(df)
    dup = duplicate_rate(df)
    schema: dict[str, Any] = {
        "dataset": {
            "min_rows": max(1, n // 2),
            "max_duplicate_rate": _headroom(dup, floor=0.01),
            "allow_extra_columns": False,
        }
    }
    schema["target"] = _infer_target(df[target], target, task, n)
    columns: dict[str, Any] = {}
    for col in df.columns:
        if col == target:
            continue
        columns[str(col)] = _infer_column(df[col], n)
    schema["columns"] = columns
    return schema


def _infer_target(y: pd.Series, target: str, task: str, n: int) -> dict[str, Any]:
    missing = int(y.isna().sum())
    if missing:
        raise ConfigError(
            f"infer schema: target '{target}' has {missing} missing value(s); every row needs a "
            "label (drop or fill those rows)"
        )
    if not is_classification(task):
        if not _is_number(y):
            raise ConfigError(
                f"infer schema: target '{target}' must be numeric for task regression "
                f"(it holds {y.dtype} values such as {_short(_plain(y.iloc[0]))})"
            )
        kind = _numeric_kind(y)
        return {
            "name": target,
            "dtype": kind,
            "min": _bound(y.min(), kind),
            "max": _bound(y.max(), kind),
        }
    labels = _sorted_values(y.unique())
    if len(labels) < 2:
        raise ConfigError(
            f"infer schema: target '{target}' has a single class {_short(labels[0])}; "
            "a classifier needs at least 2"
        )
    if task == "binary" and len(labels) != 2:
        raise ConfigError(
            f"infer schema: target '{target}' has {len(labels)} classes; task binary needs "
            "exactly 2 (use multiclass)"
        )
    if task == "multiclass" and len(labels) < 3:
        raise ConfigError(
            f"infer schema: target '{target}' has 2 classes; task multiclass needs 3 or more "
            "(use binary)"
        )
    rarest = float(y.value_counts().min() / n)
    return {
        "name": target,
        "labels": labels,
        "min_class_rate": math.floor(rarest / 2 * 1000) / 1000,
    }


def _infer_column(s: pd.Series, n: int) -> dict[str, Any]:
    missing = float(s.isna().mean()) if n else 0.0
    rule: dict[str, Any]
    present = s.dropna()
    if _is_number(s):
        # An empty numeric column has no range to draft, and no whole numbers to call it int.
        kind = _numeric_kind(s) if len(present) else "float"
        rule = {"dtype": kind}
        if len(present):
            rule.update(min=_bound(present.min(), kind), max=_bound(present.max(), kind))
    elif pd.api.types.is_bool_dtype(s) or (
        s.dtype == object
        and len(present)
        and present.map(lambda v: isinstance(v, bool | np.bool_)).all()
    ):
        # Booleans, even with no value present: the `str` dtype refuses a boolean column.
        rule = {"dtype": "category", "categories": [False, True]}
        rule.update(max_missing_rate=_headroom(missing), max_unknown_rate=0.0)
        return rule
    else:
        values = present.unique()
        if _categorical(present, values, n):
            rule = {"dtype": "category", "categories": _sorted_values(values)}
            rule.update(max_missing_rate=_headroom(missing), max_unknown_rate=0.01)
            return rule
        rule = {"dtype": "str"}
    rule["max_missing_rate"] = _headroom(missing)
    return rule


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _bound(value: Any, kind: str) -> Any:
    """A range limit as plain Python: 18.0 of an int column (stored as float beside missing
    values) is written 18."""
    value = _plain(value)
    if kind == "int" and isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value


def _categorical(present: pd.Series, values: Any, n: int) -> bool:
    """A few plain values (text, numbers) that repeat: a category. Values that mostly occur once
    (IDs, free text, timestamps) or that are not plain scalars (dates) are drafted as `str`."""
    if not len(values) or pd.api.types.is_datetime64_any_dtype(present):
        return False
    few = len(values) <= INFER_MAX_CATEGORIES or len(values) <= 0.05 * max(n, 1)
    repeating = len(values) <= 2 or 2 * len(values) <= len(present)
    return few and repeating and all(isinstance(_plain(v), str | int | float) for v in values)


def _sorted_values(values: Any) -> list[Any]:
    """Plain values in sorted order; mixed kinds (numbers and text) sort by kind first."""
    plain = [_plain(v) for v in values]
    try:
        return sorted(plain)
    except TypeError:
        return sorted(plain, key=lambda v: (type(v).__name__, str(v)))


def _numeric_kind(s: pd.Series) -> str:
    if pd.api.types.is_integer_dtype(s):
        return "int"
    values = s.dropna()
    if pd.api.types.is_float_dtype(s) and len(values) and (values == np.floor(values)).all():
        return "int"
    return "float"


def _headroom(rate: float, floor: float = 0.0) -> float:
    """Twice the observed rate, rounded up to a whole percent; 0 stays 0 unless `floor`."""
    if rate <= 0:
        return floor
    return max(floor, min(1.0, math.ceil(rate * 2 * 100) / 100))


# --------------------------------------------------------------------------------------------
# helpers


def _non_numeric(s: pd.Series) -> list[Any]:
    values = s.dropna()
    if pd.api.types.is_numeric_dtype(values):
        return []
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    return _top_values(bad)


def _top_values(values: pd.Series) -> list[Any]:
    """The most frequent few values (ties in sorted order), as plain Python for the JSON report."""
    if values.empty:
        return []
    counts = values.astype(object).map(_plain).value_counts(dropna=False)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [k for k, _ in ordered[:_EXAMPLES]]


def _plain(value: Any) -> Any:
    """numpy/pandas scalars to Python; NaN to None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _scalar(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    value = _plain(obj)
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    return value


def _fmt_list(values: Sequence[Any]) -> str:
    shown = ", ".join(str(v) for v in list(values)[:10])
    return f"[{shown}{', ...' if len(values) > 10 else ''}]"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------------------------
# params against the data contract


def check_params_against(schema: Schema, data: DataConfig, slices: Sequence[str]) -> None:
    """The params that name columns or labels must find them in the schema: the target, the
    slice columns (and not among data.drop_columns) and a binary positive label (a ConfigError
    lists what is valid). The ingest stage checks the same against the data itself."""
    source = schema.source
    if schema.target.name != data.target:
        raise ConfigError(
            f"params: 'data.target' '{data.target}' is not the target of {source} "
            f"('{schema.target.name}')"
        )
    columns = [spec.name for spec in schema.columns]
    kept = [name for name in columns if name not in data.drop_columns]
    for col in slices:
        if col not in kept:
            shown = ", ".join(kept[:30]) + (", ..." if len(kept) > 30 else "")
            raise ConfigError(
                f"params: 'evaluate.slices' names '{col}', which is not a column of {source} "
                f"(valid: {shown or 'none'})"
            )
    labels = [str(v) for v in schema.target.labels or ()]
    positive = data.positive_label
    if data.task == "binary" and positive is not None and labels and positive not in labels:
        raise ConfigError(
            f"params: 'data.positive_label' {positive!r} is not a label of {source} "
            f"(labels: {', '.join(labels)})"
        )
