"""Batches to score: reading and writing them, checking them against the data contract, scoring
them as the evaluate stage does, and the prediction log that the drift check reads back.

A batch is checked against the data contract (the schema YAML the validate stage uses) before it
is scored, so a broken extract is refused with one line instead of being scored into nonsense.
Every scored batch can be appended to a prediction log (one parquet file per batch, never
overwritten). The log holds each batch's raw input features beside its scores, so its retention
is a setting (gitops.yaml ``monitoring:``, `RetentionConfig`): after each append, the log's own
files older than ``retention_days`` or beyond the newest ``retention_rows`` rows are deleted,
raw inputs and all (`prune_prediction_log`). Nothing else in the directory is touched.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml.config import MAX_MODEL_AGE_KEY, Params, read_yaml
from gitops_ml.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from gitops_ml.lineage.artifacts import LoadedModel
    from gitops_ml.schema import Schema


#: Where `--log-dir` given without a value appends the scored batches.
DEFAULT_LOG_DIR = "monitoring/predictions"


PREDICTION_COLUMN = "prediction"


SCORE_COLUMN = "score"


SCORED_AT_COLUMN = "scored_at"


#: Columns of the prediction log that say which model scored the batch (null when unknown).
MODEL_COLUMNS = ("model_uri", "model_version", "model_md5")


#: The name `append_prediction_log` gives a file: the only files retention may delete.
LOG_FILE_NAME = re.compile(r"(\d{8}T\d{6})-[0-9a-f]{8}\.parquet")


#: Schema rules a batch must pass. Dataset rules (row count, duplicates) and the missing-value
#: rates describe training data, not a batch: the Pipeline imputes, and drift checks the rates.
_BATCH_RULES = ("present", "dtype", "min", "max", "max_unknown_rate")


@dataclass(frozen=True)
class BatchCheck:
    """What a batch that passed the contract is scored on, and what was noticed on the way."""

    frame: pd.DataFrame  # the input, with all-missing columns given the schema's kind of dtype
    features: tuple[str, ...]  # the columns the model is given, in schema order
    ignored: tuple[str, ...]  # input columns neither features nor the target
    warnings: tuple[str, ...]  # unknown categories within the schema's max_unknown_rate


def schema_path(schema: str | os.PathLike[str] | None, params: str | os.PathLike[str]) -> Path:
    """`schema` if given, else the schema that the dvc.yaml beside `params` names in its
    ``vars`` (``schema: ...``), relative to that dvc.yaml."""
    if schema:
        return Path(schema)
    path = Path(params).parent / "dvc.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: not found, so the schema is unknown; pass --schema FILE")
    raw = read_yaml(path, "dvc.yaml")
    entries = raw.get("vars", []) if isinstance(raw, Mapping) else []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("schema"), str):
            return path.parent / entry["schema"]
    raise ConfigError(f"{path}: no 'schema' entry under 'vars'; pass --schema FILE")


def _fill_empty_columns(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Give a column with no values at all the dtype its schema kind expects.

    A small batch can miss every value of a column; read from CSV it is text, from parquet
    it may be null-typed, and neither says anything about the data.
    """
    import numpy as np
    import pandas as pd

    out = df
    for spec in schema.columns:
        if spec.name not in df.columns or df[spec.name].notna().any():
            continue
        numeric = spec.dtype in ("int", "float")
        if numeric != pd.api.types.is_numeric_dtype(df[spec.name]):
            out = out.copy() if out is df else out
            out[spec.name] = pd.Series(
                np.nan, index=df.index, dtype="float64" if numeric else "str"
            )
    return out


def check_batch(
    df: pd.DataFrame,
    schema: Schema,
    *,
    model_features: Sequence[str] = (),
    source: str = "input",
) -> BatchCheck:
    """Apply the schema's column rules to a batch; a DataError names every offending column.

    The rules and limits are the validate stage's: missing columns, values of the wrong kind,
    values out of range, and unknown categories beyond ``max_unknown_rate`` fail. Unknown
    categories within that rate pass with a warning (the Pipeline encodes them as unseen).
    The target column may be absent; if present it is not checked and not used.
    """
    from gitops_ml.schema import validate

    if len(df) == 0:
        raise DataError(f"{source}: no rows to score")
    target = schema.target.name
    for name in (PREDICTION_COLUMN, SCORE_COLUMN):
        if name in df.columns:
            raise DataError(f"{source}: already has a '{name}' column; rename or drop it")
    frame = _fill_empty_columns(df, schema)
    known = [spec.name for spec in schema.columns]
    features = known + [c for c in model_features if c not in known and c != target]
    report = validate(frame, schema)
    feature_set = set(known)
    failures: dict[str, list[str]] = {}
    warnings = []
    for check in report.checks:
        if check.column not in feature_set or check.rule not in _BATCH_RULES:
            continue
        if not check.passed:
            detail = "missing" if check.rule == "present" else check.describe().split(", ", 1)[1]
            failures.setdefault(check.column, []).append(detail)
        elif check.rule == "max_unknown_rate" and check.observed:
            warnings.append(check.describe())
    for col in features[len(known) :]:
        if col not in frame.columns:
            failures.setdefault(col, []).append("missing (the model was trained on it)")
    if failures:
        details = "; ".join(f"'{col}': {', '.join(why)}" for col, why in failures.items())
        raise DataError(
            f"{source}: column(s) {', '.join(failures)} break the data contract "
            f"{schema.source}: {details}"
        )
    ignored = tuple(str(c) for c in frame.columns if c not in set(features) and c != target)
    return BatchCheck(frame, tuple(features), ignored, tuple(warnings))


def score_batch(model: Any, X: pd.DataFrame, params: Params) -> pd.DataFrame:
    """``prediction`` (and ``score`` for classification) for each row of `X`, as evaluate does
    (`gitops_ml.scoring.score`: binary cuts the positive class's probability at
    ``evaluate.threshold``, multiclass takes the most probable class)."""
    import pandas as pd

    from gitops_ml.scoring import score

    scored = score(
        model,
        X,
        params.data.task,
        positive_label=params.data.positive_label,
        threshold=params.evaluate.threshold,
    )
    columns = {PREDICTION_COLUMN: pd.Series(scored.labels, index=X.index)}
    if scored.score is not None:
        columns[SCORE_COLUMN] = pd.Series(scored.score, index=X.index, dtype="float64")
    return pd.DataFrame(columns)


def read_batch(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A CSV (read as the ingest stage reads one: text unless every value is a number) or
    parquet file."""
    from gitops_ml.files import read_parquet
    from gitops_ml.sources import BATCH_SUFFIXES, read_csv

    p = Path(path)
    name = p.name.lower()
    if name.endswith(".parquet"):
        return read_parquet(p)
    if name.endswith(BATCH_SUFFIXES):
        return read_csv(p)
    raise DataError(f"{p}: unknown input format; use a .csv or .parquet file")


def check_output_path(path: str | os.PathLike[str]) -> None:
    if not Path(path).name.lower().endswith((".csv", ".parquet")):
        raise DataError(f"{path}: unknown output format; use a .csv or .parquet file")


def write_batch(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write the scored batch as CSV or parquet (by suffix), atomically."""
    from gitops_ml.files import atomic_path, write_parquet

    check_output_path(path)
    if Path(path).name.lower().endswith(".parquet"):
        write_parquet(path, df)
        return
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def log_frame(
    check: BatchCheck, scored: pd.DataFrame, model: LoadedModel, scored_at: pd.Timestamp
) -> pd.DataFrame:
    """The rows appended to the prediction log: features, prediction, score, time and model."""
    import pandas as pd

    out = check.frame.loc[:, list(check.features)].reset_index(drop=True)
    for col in scored.columns:
        out[col] = scored[col].to_numpy()
    out[SCORED_AT_COLUMN] = pd.Series([scored_at] * len(out), dtype="datetime64[us, UTC]")
    for col, value in zip(MODEL_COLUMNS, (model.uri, model.version, model.md5), strict=True):
        out[col] = pd.Series([value] * len(out), dtype="str")
    return out


def append_prediction_log(
    directory: str | os.PathLike[str], rows: pd.DataFrame, scored_at: pd.Timestamp
) -> Path:
    """Write `rows` as ``<dir>/<UTC yyyymmddTHHMMSS>-<8 hex>.parquet``; never replaces a file."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = scored_at.strftime("%Y%m%dT%H%M%S")
    fd, tmp = tempfile.mkstemp(prefix=f".{stamp}-", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        rows.to_parquet(tmp_path, index=False, engine="pyarrow", compression="zstd")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        while True:
            target = folder / f"{stamp}-{secrets.token_hex(4)}.parquet"
            try:
                os.link(tmp_path, target)  # fails if the name exists: nothing is overwritten
            except FileExistsError:
                continue
            return target
    finally:
        tmp_path.unlink(missing_ok=True)


def read_prediction_log(
    directory: str | os.PathLike[str], required: Sequence[str] = ()
) -> pd.DataFrame:
    """Every batch logged in `directory` (``*.parquet``) as one frame, oldest batch first;
    each file must have the `required` columns."""
    import pandas as pd

    from gitops_ml.files import read_parquet

    folder = Path(directory)
    if not folder.is_dir():
        raise DataError(f"{folder}: no prediction log directory (score with --log-dir first)")
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no logged predictions (*.parquet) in it")
    frames = []
    for path in files:
        frame = read_parquet(path)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing feature column(s) {', '.join(missing)}")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    if SCORED_AT_COLUMN in frame.columns:  # names order files by the second only
        frame = frame.sort_values(SCORED_AT_COLUMN, kind="stable", ignore_index=True)
    return frame


# --------------------------------------------------------------------------------------------
# retention of the prediction log


@dataclass(frozen=True)
class RetentionConfig:
    """How much of the prediction log to keep (gitops.yaml ``monitoring:``; null: no limit).

    ``retention_days``: batches logged more than this many days ago are deleted.
    ``retention_rows``: only the newest batches holding at most this many rows are kept (whole
    batches: the newest one stays even when it alone is larger).
    """

    retention_days: int | None = None
    retention_rows: int | None = None

    @property
    def limited(self) -> bool:
        return self.retention_days is not None or self.retention_rows is not None


def retention_config(raw: Mapping[str, Any]) -> RetentionConfig:
    """The ``monitoring`` section of the merged settings (`Params.raw`); absent: keep everything
    (a repository from before the section existed). Unknown, missing or bad keys name the key."""
    section = raw.get("monitoring")
    if section is None:
        return RetentionConfig()
    if not isinstance(section, Mapping):
        raise ConfigError(f"params: section 'monitoring' must be a mapping, got {section!r}")
    expected = ("retention_days", "retention_rows")
    known = (*expected, MAX_MODEL_AGE_KEY)  # the model-age check's (`config.max_model_age_days`)
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(
            f"params: unknown key 'monitoring.{unknown[0]}' (expected one of: {', '.join(known)})"
        )
    values = {}
    for key in expected:
        if key not in section:
            raise ConfigError(f"params: missing key 'monitoring.{key}' (null: no limit)")
        value = section[key]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(
                f"params: 'monitoring.{key}' must be a whole number >= 1 or null, got {value!r}"
            )
        values[key] = value
    return RetentionConfig(**values)


@dataclass(frozen=True)
class Pruned:
    """What `prune_prediction_log` deleted."""

    files: tuple[Path, ...] = ()
    rows: int = 0


def _log_rows(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):  # pyarrow.ArrowInvalid is a ValueError: left alone
        return None


def prune_prediction_log(
    directory: str | os.PathLike[str],
    retention: RetentionConfig,
    now: pd.Timestamp,
    *,
    keep: Path | None = None,
) -> Pruned:
    """Delete the log's batches beyond `retention` (see `RetentionConfig`); `keep` (the batch
    just logged) never goes.

    Only regular files directly in `directory` whose names `append_prediction_log` gives
    (``<yyyymmddTHHMMSS>-<8 hex>.parquet``; the time is when the batch was scored) are
    candidates: no symbolic link, subdirectory or other file is deleted, and nothing outside
    the directory. A file whose row count cannot be read is left alone.
    """
    import pandas as pd

    if not retention.limited:
        return Pruned()
    folder = Path(directory)
    logged = []
    for entry in os.scandir(folder):
        match = LOG_FILE_NAME.fullmatch(entry.name)
        info = entry.stat(follow_symlinks=False)
        if match is None or not stat.S_ISREG(info.st_mode):
            continue
        stamp = pd.Timestamp(match.group(1)).tz_localize("UTC")
        path = folder / entry.name
        # Names carry whole seconds: batches of the same second are ordered by when they were
        # written, and the batch just logged counts as the newest.
        just_logged = keep is not None and path == Path(keep)
        logged.append((just_logged, stamp, info.st_mtime_ns, entry.name, path))
    logged.sort(reverse=True)  # newest first
    doomed: dict[Path, int] = {}
    total = 0
    newest = True
    for _, stamp, _, _, path in logged:
        rows = _log_rows(path)
        if rows is None:
            continue
        total += rows
        too_old = retention.retention_days is not None and now - stamp > pd.Timedelta(
            days=retention.retention_days
        )
        too_many = (
            retention.retention_rows is not None and total > retention.retention_rows and not newest
        )
        newest = False
        if (too_old or too_many) and not (keep is not None and path == Path(keep)):
            doomed[path] = rows
    for path in doomed:
        path.unlink(missing_ok=True)
    return Pruned(tuple(doomed), sum(doomed.values()))
