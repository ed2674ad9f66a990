"""Scoring with the production model: `gitops-ml predict` (batch) and `gitops-ml serve` (online).

The production model is the registry alias ``models:/<mlflow.model_name>@champion``. A batch is
checked against the data contract (the schema YAML the validate stage uses) before it is scored,
so a broken extract is refused with one line instead of being scored into nonsense. Scores follow
the evaluate stage (`gitops_ml.scoring`), so a batch is scored exactly as the test split was:
binary ``score`` is the probability of ``data.positive_label`` and ``prediction`` cuts it at
``evaluate.threshold``; multiclass ``prediction`` is the most probable class and ``score`` its
probability.

With ``--log-dir``, every scored batch is appended to a prediction log (one parquet file per
batch, never overwritten) that the drift check reads back with `read_prediction_log`. Each
logged batch holds the raw input features, so the log is pruned right after the append to
gitops.yaml's ``monitoring: {retention_days, retention_rows}`` (`prune_prediction_log`: only
the log's own files, in that directory, are ever deleted).

`gitops-ml serve` serves the model with the project's own scoring server
(`gitops_ml.release.server`), which speaks MLflow's scoring protocol (``/ping``, ``/invocations``
and the rest), so clients of ``mlflow models serve`` do not change, on loopback unless
``--allow-remote`` is given. A registry model is checked first
(`gitops_ml.lineage.artifacts.registry_model`: its bytes against dvc.lock), and only the checked
model, written anew as a skops archive, and its signature's input columns go into a temporary
directory, which is what the server loads (trusted types only; nothing the downloaded artifact
names is imported). A local MLflow model directory is loaded the same way, from its
``model.skops``. The ``--workers`` processes are forked from this one once the model is loaded;
SIGINT and SIGTERM are passed on to them, and the directory is removed when they have stopped.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_ml import tracking
from gitops_ml.batches import (
    DEFAULT_LOG_DIR,
    append_prediction_log,
    check_batch,
    check_output_path,
    log_frame,
    prune_prediction_log,
    read_batch,
    retention_config,
    schema_path,
    score_batch,
    write_batch,
)
from gitops_ml.cliargs import exit_codes, whole_number
from gitops_ml.cliargs import port as port_number
from gitops_ml.config import load_params
from gitops_ml.errors import GitopsMLError
from gitops_ml.lineage.artifacts import (
    SKOPS_FILE,
    _registry_alias,
    _registry_version,
    _require_store,
    champion_uri,
    is_mlflow_uri,
    load_model,
    lock_model_md5,
    pinned_uri,
    registry_model,
    resolve_alias,
)
from gitops_ml.lineage.dvclock import LOCK_PATH
from gitops_ml.release import server

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001


# --------------------------------------------------------------------------------------------
# the model


# --------------------------------------------------------------------------------------------
# checking a batch against the data contract


# --------------------------------------------------------------------------------------------
# scoring


# --------------------------------------------------------------------------------------------
# the prediction log


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


# --------------------------------------------------------------------------------------------
# the CLI


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from gitops_ml.schema import load_schema

    params = load_params(args.params)
    retention = retention_config(params.raw)
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
        pruned = prune_prediction_log(args.log_dir, retention, scored_at, keep=path)
        if pruned.files:
            logged += (
                f"; pruned {len(pruned.files)} older batch(es), {pruned.rows} rows "
                "(gitops.yaml monitoring:)"
            )
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
    from gitops_ml.schema import load_schema

    contract = server.Contract.from_schema(
        load_schema(schema_path(args.schema, args.params)), args.max_rows, args.max_bytes
    )
    server.check_port_free(args.host, args.port)
    uri = args.model or champion_uri(params.mlflow.model_name)
    if not is_mlflow_uri(uri) and not (Path(uri) / "MLmodel").is_file():
        raise GitopsMLError(
            f"--model {uri}: gitops-ml serve serves an MLflow model (a models:/ URI, or a "
            "directory with an MLmodel file), not a joblib file"
        )
    tracking_uri = _require_store(uri) if is_mlflow_uri(uri) else tracking.tracking_uri()
    with tempfile.TemporaryDirectory(prefix="gitops-ml-serve-") as tmp:
        served, shown = Path(uri), uri
        if is_mlflow_uri(uri):
            served, version = _verified_copy(uri, Path(LOCK_PATH), Path(tmp))
            shown = f"{uri} (version {version}, md5 checked against {LOCK_PATH})"
        workers = args.workers or server.default_workers()
        print(
            f"serving {shown} on http://{args.host}:{args.port} with {workers} "
            f"worker{'s' if workers > 1 else ''} (tracking {tracking_uri})"
        )
        sys.stdout.flush()
        return server.serve(served, args.host, args.port, workers, contract=contract)


def _verified_copy(uri: str, lock_path: Path, tmp: Path) -> tuple[Path, str]:
    """(directory, version): the registry model `uri`, checked (`registry_model`), written anew
    from the checked bytes as a skops archive, with an MLmodel file that holds nothing but its
    signature's input columns, so that nothing else of the downloaded artifact reaches the
    server (an MLmodel file can name code to import). A model holding types outside the trusted
    list is refused here, naming them."""
    import shutil

    import yaml

    from gitops_ml.lineage import formats

    if _registry_alias(uri) is None and not _registry_version(uri):
        raise GitopsMLError(
            f"--model {uri}: serve a registry model (models:/<name>@<alias> or "
            "models:/<name>/<version>), whose bytes can be checked, or a local MLflow model"
        )
    expected = lock_model_md5(lock_path)
    version, _ = resolve_alias(uri)
    pinned = pinned_uri(uri, version)
    download = tmp / "download"
    checked = registry_model(pinned, expected, download, pinned)
    # None: no signature the server can use, and it scores the frame a request makes
    columns = server.read_signature(checked.path)
    data = formats.dumps(checked.model)
    formats.trusted_types(data, pinned)
    target = tmp / "model"
    target.mkdir()
    (target / SKOPS_FILE).write_bytes(data)
    mlmodel = {"signature": {"inputs": server.signature_inputs(columns)}} if columns else {}
    (target / "MLmodel").write_text(
        f"# {pinned} as `gitops-ml serve` checked it: the signature's inputs only\n"
        + yaml.safe_dump(mlmodel, sort_keys=False),
        encoding="utf-8",
    )
    shutil.rmtree(download, ignore_errors=True)
    return target, version or pinned.rsplit("/", 1)[-1]


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
        help="append the scored batch to this prediction log for drift monitoring, then "
        "delete its batches beyond gitops.yaml's monitoring: retention_days/retention_rows; "
        f"without a value: {DEFAULT_LOG_DIR} (default: no logging)",
    )
    add_params_and_schema(p)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "serve",
        help="serve the champion model over HTTP (MLflow protocol)",
        description="Serve the champion model (or --model) on loopback unless --allow-remote, "
        "speaking MLflow's scoring protocol (GET /ping, POST /invocations): the model is "
        "checked against dvc.lock first, then scored by --workers processes.",
        epilog="exit codes: 0 stopped by SIGINT or SIGTERM; 3 the server could not start (a "
        "worker failed before it was ready); 2 the port is taken, no model is registered as "
        "the champion (run `gitops-ml promote` first), a model that fails its check, no data "
        "contract (--schema), a non-loopback --host without --allow-remote, or bad usage. "
        "Requests that break the data contract are answered 400, larger than --max-rows or "
        "--max-bytes 413.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    p.add_argument(
        "--port",
        default=DEFAULT_PORT,
        type=port_number,
        help="port to listen on (default: %(default)s)",
    )
    p.add_argument(
        "--workers",
        default=None,
        type=whole_number(1),
        help="worker processes, each with the model loaded (default: one per CPU core, at "
        f"most {server.MAX_DEFAULT_WORKERS}: {server.default_workers()} here)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="registry model URI or MLflow model directory saved with skops "
        "(default: models:/<mlflow.model_name>@champion)",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the server has no authentication)",
    )
    p.add_argument(
        "--max-rows",
        default=server.DEFAULT_MAX_ROWS,
        type=whole_number(1),
        help="rows one request may hold; more is answered 413 (default: %(default)s)",
    )
    p.add_argument(
        "--max-bytes",
        default=server.DEFAULT_MAX_BYTES,
        type=whole_number(1),
        help="bytes one request body may hold; more is answered 413 (default: %(default)s)",
    )
    add_params_and_schema(p)
    p.set_defaults(func=_serve)
