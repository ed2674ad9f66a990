"""Scoring with the production model: `gitops-ml predict` (batch) and `gitops-ml serve` (online).

The production model is the registry alias ``models:/<mlflow.model_name>@champion``. A batch is
checked against the data contract (the schema YAML the validate stage uses) before it is scored,
so a broken extract is refused with one line instead of being scored into nonsense. Scores follow
the evaluate stage (`gitops_ml.scoring`), so a batch is scored exactly as the test split was:
binary ``score`` is the probability of ``data.positive_label`` and ``prediction`` cuts it at
``evaluate.threshold``; multiclass ``prediction`` is the most probable class and ``score`` its
probability.

With ``--log-dir``, every scored batch is appended to a prediction log (one parquet file per
batch, never overwritten) that the drift check reads back with `read_prediction_log`.

`gitops-ml serve` replaces itself with ``mlflow models serve --env-manager local``: the MLflow
scoring server (``/ping``, ``/invocations``) on loopback unless ``--allow-remote`` is given.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml import tracking
from gitops_ml.cliargs import exit_codes, whole_number
from gitops_ml.cliargs import port as port_number
from gitops_ml.config import Params, load_params, read_yaml
from gitops_ml.errors import ConfigError, DataError, GitopsMLError
from gitops_ml.gitops.dvclock import LOCK_PATH
from gitops_ml.lineage.artifacts import check_md5, declared_md5

if TYPE_CHECKING:
    import pandas as pd

    from gitops_ml.schema import Schema

log = logging.getLogger(__name__)

#: The registry alias that names the production model.
CHAMPION_ALIAS = "champion"
#: Where `--log-dir` given without a value appends the scored batches.
DEFAULT_LOG_DIR = "monitoring/predictions"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001

PREDICTION_COLUMN = "prediction"
SCORE_COLUMN = "score"
SCORED_AT_COLUMN = "scored_at"
#: Columns of the prediction log that say which model scored the batch (null when unknown).
MODEL_COLUMNS = ("model_uri", "model_version", "model_md5")

#: Schema rules a batch must pass. Dataset rules (row count, duplicates) and the missing-value
#: rates describe training data, not a batch: the Pipeline imputes, and drift checks the rates.
_BATCH_RULES = ("present", "dtype", "min", "max", "max_unknown_rate")
_URI_SCHEMES = ("models:/", "runs:/")


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class LoadedModel:
    """A fitted scikit-learn model and what is known of where it came from."""

    model: Any
    uri: str
    version: str | None = None
    md5: str | None = None


def champion_uri(model_name: str) -> str:
    """``models:/<name>@champion``: the registry URI of the production model."""
    return f"models:/{model_name}@{CHAMPION_ALIAS}"


def is_mlflow_uri(value: str) -> bool:
    """An MLflow model URI (``models:/``, ``runs:/``, ``s3://``...) rather than a local path."""
    return value.startswith(_URI_SCHEMES) or "://" in value


class NotRegisteredError(tracking.TrackingError):
    """A ``models:/<name>@<alias>`` URI that the registry does not know (nothing promoted yet)."""


def not_registered(uri: str, *, store_missing: Path | None = None) -> NotRegisteredError:
    """The one-line error for an alias nobody has set: where it was looked for, what to run."""
    from gitops_ml.gitops.promote import redact

    parsed = _registry_alias(uri)
    where = redact(tracking.tracking_uri())
    if store_missing is not None:
        where += f" ({store_missing} does not exist yet)"
    if parsed is not None and parsed[1] != CHAMPION_ALIAS:
        hint = "check the model name and alias (or pass --model)"
    elif store_missing is not None:
        hint = "run `make repro`, then `gitops-ml promote` (or pass --model)"
    else:
        hint = "run `gitops-ml promote` first (or pass --model)"
    return NotRegisteredError(f"no model is registered as {uri} in {where}: {hint}")


def _require_store(model_uri: str | None = None) -> str:
    """The tracking URI; a local SQLite store must exist (MLflow would create an empty one).

    Without one, a registry alias `model_uri` fails with `not_registered`'s hint."""
    uri = tracking.configure()
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            if model_uri is not None and _registry_alias(model_uri) is not None:
                raise not_registered(model_uri, store_missing=path)
            raise tracking.TrackingError(
                f"no MLflow tracking store at {path} ({tracking.TRACKING_URI_ENV}={uri}): "
                "train and promote a model first, or set the tracking URI"
            )
    return uri


def _registry_alias(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a ``models:/<name>@<alias>`` URI, else None."""
    if not uri.startswith("models:/"):
        return None
    name, sep, alias = uri.removeprefix("models:/").partition("@")
    return (name, alias) if sep and name and alias and "/" not in name else None


def _is_not_found(exc: Exception) -> bool:
    """An MLflow error saying the registered model or its alias does not exist (the SQL store
    says INVALID_PARAMETER_VALUE for a missing alias, a server may say RESOURCE_DOES_NOT_EXIST)."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def resolve_alias(uri: str) -> tuple[str | None, str | None]:
    """(version, model md5) behind a ``models:/<name>@<alias>`` URI; a missing alias fails
    with `NotRegisteredError` (what to run), any other registry failure with a TrackingError."""
    parsed = _registry_alias(uri)
    if parsed is None:
        return None, None
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias = parsed
    _require_store(uri)
    with tracking.tracking_errors(f"resolving {uri}"):
        client = mlflow.MlflowClient()
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise not_registered(uri) from None
            raise
        md5 = (version.tags or {}).get(tracking.TAG_MODEL_MD5)
        if md5 is None and version.run_id:
            md5 = client.get_run(version.run_id).data.tags.get(tracking.TAG_MODEL_MD5)
    return str(version.version), md5


def pinned_uri(uri: str, version: str | None) -> str:
    """``models:/<name>/<version>`` for an alias URI resolved to `version`, else `uri`: what is
    loaded is the version that was reported, even if the alias moves meanwhile."""
    parsed = _registry_alias(uri)
    return f"models:/{parsed[0]}/{version}" if parsed and version else uri


def load_model(uri: str) -> LoadedModel:
    """Load a model from an MLflow URI, an MLflow model directory or a joblib file.

    Registry models are loaded with the sklearn flavour, not the pyfunc wrapper: batch scoring
    needs ``predict_proba``, and it is the same fitted object the train stage saved.
    """
    import joblib

    from gitops_ml.files import file_md5

    if is_mlflow_uri(uri):
        import mlflow

        if uri.startswith(_URI_SCHEMES):
            _require_store(uri)
        version, md5 = resolve_alias(uri)
        with tracking.tracking_errors(f"loading the model {uri}"):
            model = mlflow.sklearn.load_model(pinned_uri(uri, version))
        return LoadedModel(model, uri, version, md5)
    path = Path(uri)
    if path.is_dir():
        if not (path / "MLmodel").is_file():
            raise DataError(f"{path}: a directory without an MLmodel file is not a model")
        import mlflow

        with tracking.tracking_errors(f"loading the model {uri}"):
            model = mlflow.sklearn.load_model(str(path))
        return LoadedModel(model, uri)
    if not path.is_file():
        raise DataError(f"{path}: model file not found (a joblib file, or a models:/ URI)")
    # A pipeline output (models/model.joblib) is loaded only with the md5 dvc.lock declares; a
    # file no lock declares is one the user named explicitly.
    if (declared := declared_md5(path)) is not None:
        check_md5(path, declared, str(path), LOCK_PATH)
    try:
        model = joblib.load(path)
    except Exception as exc:  # unpickling raises anything; the user passed a wrong file
        raise DataError(f"{path}: cannot load a model from it: {type(exc).__name__}") from None
    return LoadedModel(model, uri, None, file_md5(path))


# --------------------------------------------------------------------------------------------
# checking a batch against the data contract


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


# --------------------------------------------------------------------------------------------
# scoring


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


# --------------------------------------------------------------------------------------------
# the prediction log


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
# serving


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(model_uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    """The ``mlflow models serve`` command line, run by this environment's interpreter."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def serve_env(tracking_uri: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this venv's bin first on PATH (mlflow runs `uvicorn` from
    PATH), the tracking URI, and MLflow telemetry off."""
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [bin_dir, *[p for p in env.get("PATH", "").split(os.pathsep) if p]]
    )
    env[tracking.TRACKING_URI_ENV] = tracking_uri
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


# --------------------------------------------------------------------------------------------
# the CLI


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from gitops_ml.schema import load_schema

    params = load_params(args.params)
    schema = load_schema(schema_path(args.schema, args.params))
    check_output_path(args.output)
    df = read_batch(args.input)
    check = check_batch(df, schema, source=str(args.input))
    model = load_model(args.model or champion_uri(params.mlflow.model_name))
    model_features = [str(c) for c in getattr(model.model, "feature_names_in_", ())]
    if any(c not in check.features for c in model_features):
        check = check_batch(df, schema, model_features=model_features, source=str(args.input))
    for note in check.warnings:
        print(f"warning: {args.input}: {note}", file=sys.stderr)
    if check.ignored:
        print(
            f"note: {args.input}: ignoring {len(check.ignored)} column(s) not in the schema: "
            f"{', '.join(check.ignored)}",
            file=sys.stderr,
        )
    scored = score_batch(model.model, check.frame.loc[:, list(check.features)], params)
    scored_at = pd.Timestamp.now(tz="UTC").floor("us")
    out = check.frame.copy()
    for col in scored.columns:
        out[col] = scored[col]
    write_batch(args.output, out)
    logged = ""
    if args.log_dir is not None:
        path = append_prediction_log(
            args.log_dir, log_frame(check, scored, model, scored_at), scored_at
        )
        logged = f"; logged to {path}"
    version = f" (version {model.version})" if model.version else ""
    print(f"scored {len(out)} rows with {model.uri}{version} -> {args.output}{logged}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    if not is_loopback(args.host) and not args.allow_remote:
        raise GitopsMLError(
            f"--host {args.host} is not a loopback address; the scoring server has no "
            "authentication: pass --allow-remote to expose it anyway"
        )
    uri = args.model or champion_uri(params.mlflow.model_name)
    if not is_mlflow_uri(uri) and not (Path(uri) / "MLmodel").is_file():
        raise GitopsMLError(
            f"--model {uri}: mlflow serves an MLflow model (a models:/ or runs:/ URI, or a "
            "directory with an MLmodel file), not a joblib file"
        )
    tracking_uri = _require_store(uri) if is_mlflow_uri(uri) else tracking.tracking_uri()
    version, _ = resolve_alias(uri)
    cmd = serve_command(pinned_uri(uri, version), args.host, args.port, args.workers)
    shown = f"{uri} (version {version})" if version else uri
    print(f"serving {shown} on http://{args.host}:{args.port} (tracking {tracking_uri})")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(cmd[0], cmd, serve_env(tracking_uri))
    except OSError as exc:
        raise GitopsMLError(f"cannot start mlflow models serve: {exc}") from None
    return 0  # not reached: execve replaces this process


def add_params_and_schema(p: argparse.ArgumentParser) -> None:
    """``--params`` and ``--schema`` (resolved by `schema_path`), as predict and drift take them."""
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.add_argument(
        "--schema",
        default=None,
        help="data contract YAML (default: the 'schema' var of dvc.yaml beside --params)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `predict` and `serve` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "predict",
        help="score a CSV or parquet batch with the champion model",
        description="Check a batch against the data contract, score it with the champion (or "
        "--model) and write it with 'prediction' and 'score' columns; --log-dir also appends it "
        "to the prediction log that drift reads.",
        epilog=exit_codes(
            "the batch was scored and written",
            bad="the batch breaks the data contract, no model is registered as the champion, or "
            "bad usage; nothing is written",
        ),
    )
    p.add_argument("--input", required=True, help="batch to score (.csv or .parquet)")
    p.add_argument("--output", required=True, help="scored batch to write (.csv or .parquet)")
    p.add_argument(
        "--model",
        default=None,
        help="model URI (models:/, runs:/), MLflow model directory or joblib file "
        "(default: models:/<mlflow.model_name>@champion)",
    )
    p.add_argument(
        "--log-dir",
        nargs="?",
        const=DEFAULT_LOG_DIR,
        default=None,
        metavar="DIR",
        help="append the scored batch to this prediction log for drift monitoring; "
        f"without a value: {DEFAULT_LOG_DIR} (default: no logging)",
    )
    add_params_and_schema(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "serve",
        help="serve the champion model over HTTP (mlflow models serve)",
        description="Run mlflow models serve --env-manager local on the champion model (or "
        "--model), on loopback unless --allow-remote: GET /ping, POST /invocations.",
        epilog="exit codes: once the server starts it replaces this process and its exit code "
        "is the server's; 2 no model is registered as the champion (run `gitops-ml promote` "
        "first), a non-loopback --host without --allow-remote, or bad usage.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port",
        default=DEFAULT_PORT,
        type=port_number,
        help="port to listen on (default: %(default)s)",
    )
    p.add_argument(
        "--workers", default=1, type=whole_number(1), help="uvicorn workers (default: 1)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="model URI or MLflow model directory (default: models:/<mlflow.model_name>@champion)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the server has no authentication)",
    )
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.set_defaults(func=_serve)
