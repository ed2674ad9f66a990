"""runstore writes runs without MLflow; MLflow's own client must read them as if it wrote them.

Every check reads back through `mlflow.MlflowClient`, against a SQLite store MLflow created and
against a real `mlflow server` with proxied artifacts. Where runstore cannot write (a store or
experiment not created yet, an unknown schema, workspaces, non-finite metrics, oversized values)
it must say so before writing anything, and tracking.py must then write with the MLflow client.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from gitops_ml import runstore, tracking
from tests.integration.mlflow_server import MlflowServer

EXPERIMENT = "runstore"
PARAMS = {"data.target": "income", "train.hyperparams": "{}", "split.test_size": "0.2"}
METRICS = {"train_accuracy": 0.875, "n_train": 3000.0, "fit_seconds": 1.25}
TAGS = {tracking.TAG_MODEL_MD5: "0" * 32, tracking.TAG_MODEL_TYPE: "hist_gradient_boosting"}


def _client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri)


def _sqlite_store(tmp: Path) -> str:
    """A SQLite store MLflow created, with the experiment in it."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    _client(uri).create_experiment(EXPERIMENT, artifact_location=str(tmp / "artifacts"))
    return uri


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sqlite_store(tmp_path_factory.mktemp("store"))


def _run_count(uri: str) -> int:
    with sqlite3.connect(runstore.sqlite_path(uri)) as db:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def _artifacts(tmp: Path) -> list[tuple[str, Path]]:
    figures = tmp / "figures"
    (figures / "nested").mkdir(parents=True)
    (figures / "roc.png").write_bytes(b"\x89PNG roc")
    (figures / "nested" / "pr.png").write_bytes(b"\x89PNG pr")
    metrics = tmp / "metrics.json"
    metrics.write_text('{"roc_auc": 0.9}\n')
    return [("figures", figures), ("reports", metrics)]


def _downloaded(client: mlflow.MlflowClient, run_id: str, tmp: Path) -> dict[str, bytes]:
    out = Path(client.download_artifacts(run_id, "", str(tmp)))
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


EXPECTED_FILES = {
    "figures/roc.png": b"\x89PNG roc",
    "figures/nested/pr.png": b"\x89PNG pr",
    "reports/metrics.json": b'{"roc_auc": 0.9}\n',
}


def _log_with_mlflow(monkeypatch: pytest.MonkeyPatch, **kwargs) -> str:
    """tracking.log_training_run as it runs when runstore cannot write: the MLflow client."""

    def unsupported(uri: str):
        raise runstore.Unsupported("forced by the test")

    with monkeypatch.context() as mp:
        mp.setattr(runstore, "open_store", unsupported)
        return tracking.log_training_run(**kwargs)


def test_a_sqlite_run_reads_back_exactly_as_one_the_mlflow_client_wrote(
    sqlite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, sqlite_uri)
    args = {
        "experiment": EXPERIMENT,
        "run_name": "hgb-00000000",
        "params": PARAMS,
        "metrics": METRICS,
        "tags": TAGS,
    }
    fast_id = tracking.log_training_run(**args)
    slow_id = _log_with_mlflow(monkeypatch, **args)
    client = _client(sqlite_uri)
    fast, slow = client.get_run(fast_id), client.get_run(slow_id)

    assert fast.data.params == slow.data.params == PARAMS
    assert fast.data.metrics == slow.data.metrics == METRICS
    assert fast.data.tags == slow.data.tags
    assert fast.data.tags["mlflow.runName"] == "hgb-00000000"
    for attr in ("status", "lifecycle_stage", "run_name", "experiment_id", "user_id"):
        assert getattr(fast.info, attr) == getattr(slow.info, attr), attr
    assert fast.info.status == "FINISHED"
    assert fast.info.artifact_uri == slow.info.artifact_uri.replace(slow_id, fast_id)
    assert fast.info.end_time >= fast.info.start_time
    history = client.get_metric_history(fast_id, "train_accuracy")
    assert [(m.value, m.step) for m in history] == [(0.875, 0)]

    found = client.search_runs(
        [fast.info.experiment_id],
        f"tags.`{tracking.TAG_MODEL_MD5}` = '{'0' * 32}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    assert {r.info.run_id for r in found} >= {fast_id, slow_id}


def test_test_results_land_in_the_newest_run_of_the_model_with_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _sqlite_store(tmp_path)
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
    md5 = "a" * 32
    older = tracking.log_training_run(
        experiment=EXPERIMENT,
        run_name="old",
        params={},
        metrics={},
        tags={"gitops_ml.model_md5": md5},
    )
    time.sleep(0.01)
    newest = tracking.log_training_run(
        experiment=EXPERIMENT,
        run_name="new",
        params={},
        metrics={},
        tags={"gitops_ml.model_md5": md5},
    )
    run_id = tracking.log_test_results(
        md5,
        EXPERIMENT,
        metrics={"roc_auc": 0.9, "brier": None, "n_test": 1000},
        tags={tracking.TAG_POSITIVE_LABEL: ">50K"},
        artifacts=_artifacts(tmp_path),
    )
    assert run_id == newest
    client = _client(uri)
    run = client.get_run(newest)
    assert run.data.metrics == {"test_roc_auc": 0.9, "test_n_test": 1000.0}
    assert run.data.tags[tracking.TAG_POSITIVE_LABEL] == ">50K"
    assert client.get_run(older).data.metrics == {}
    assert _downloaded(client, newest, tmp_path / "down") == EXPECTED_FILES

    # Evaluated again (a new threshold): the latest value is the new one, the history has both.
    time.sleep(0.01)
    tracking.log_test_results(md5, EXPERIMENT, metrics={"roc_auc": 0.8}, tags={})
    assert client.get_run(newest).data.metrics["test_roc_auc"] == 0.8
    history = client.get_metric_history(newest, "test_roc_auc")
    assert sorted(m.value for m in history) == [0.8, 0.9]

    assert tracking.log_test_results("b" * 32, EXPERIMENT, metrics={"x": 1.0}, tags={}) is None
    assert tracking.log_test_results(md5, "no-such-experiment", metrics={}, tags={}) is None


def test_a_failed_artifact_copy_adds_nothing_to_the_run(tmp_path: Path) -> None:
    uri = _sqlite_store(tmp_path)
    store = runstore.open_store(uri)
    run_id = store.log_run(EXPERIMENT, "r", {}, {}, {"k": "v"})
    # A file where the run's artifact folder should be: the copy fails.
    artifact_dir = Path(_client(uri).get_run(run_id).info.artifact_uri)
    artifact_dir.parent.mkdir(parents=True)
    artifact_dir.write_text("in the way")
    with pytest.raises(runstore.StoreError, match="copying"):
        store.add_to_newest_run(
            EXPERIMENT, ("k", "v"), {"m": 1.0}, {"t": "x"}, _artifacts(tmp_path)
        )
    data = _client(uri).get_run(run_id).data
    assert data.metrics == {} and "t" not in data.tags


def test_what_runstore_cannot_write_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _sqlite_store(tmp_path)
    store = runstore.open_store(uri)
    cases = {
        "a missing experiment": lambda: store.log_run("not-created", "r", {}, {}, {}),
        "a non-finite metric": lambda: store.log_run(EXPERIMENT, "r", {}, {"m": float("nan")}, {}),
        "an oversized param": lambda: store.log_run(EXPERIMENT, "r", {"p": "x" * 6001}, {}, {}),
        "an oversized tag": lambda: store.log_run(EXPERIMENT, "r", {}, {}, {"t": "x" * 8001}),
    }
    for what, call in cases.items():
        with pytest.raises(runstore.Unsupported):
            call()
        assert _run_count(uri) == 0, what

    with pytest.raises(runstore.Unsupported, match="does not exist yet"):
        runstore.open_store(f"sqlite:///{tmp_path / 'absent.db'}")
    assert not (tmp_path / "absent.db").exists()
    for other in ("file:///tmp/mlruns", "databricks", "postgresql://u@h/db", "sqlite://"):
        with pytest.raises(runstore.Unsupported):
            runstore.open_store(other)
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    with pytest.raises(runstore.Unsupported, match="workspaces"):
        runstore.open_store(uri)
    monkeypatch.delenv("MLFLOW_WORKSPACE")

    # A schema this module does not know (a later MLflow adds a column): refused, not guessed.
    with sqlite3.connect(runstore.sqlite_path(uri)) as db:
        db.execute("ALTER TABLE runs ADD COLUMN added_later TEXT")
    with pytest.raises(runstore.Unsupported, match="table 'runs'"):
        store.log_run(EXPERIMENT, "r", {}, {}, {})
    assert _run_count(uri) == 0

    # ... and tracking.py then writes through the MLflow client, which knows its schema.
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
    run_id = tracking.log_training_run(
        experiment=EXPERIMENT, run_name="r", params={}, metrics={"m": 1.0}, tags={}
    )
    assert _client(uri).get_run(run_id).data.metrics == {"m": 1.0}


def test_a_locked_store_is_one_error_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _sqlite_store(tmp_path)
    monkeypatch.setattr(runstore, "SQLITE_BUSY_SECONDS", 0.2)
    holder = sqlite3.connect(runstore.sqlite_path(uri), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(runstore.StoreError, match="locked"):
            runstore.open_store(uri).log_run(EXPERIMENT, "r", {}, {}, {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
    holder = sqlite3.connect(runstore.sqlite_path(uri), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(tracking.TrackingError, match=r"^mlflow \(sqlite:.*locked"):
            tracking.log_training_run(
                experiment=EXPERIMENT, run_name="r", params={}, metrics={}, tags={}
            )
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_the_stages_tracking_path_never_imports_mlflow(sqlite_uri: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from gitops_ml import tracking
        run = tracking.log_training_run(experiment={EXPERIMENT!r}, run_name="sub", params={{}},
                                        metrics={{"m": 1.0}}, tags={{"gitops_ml.model_md5": "c" * 32}})
        again = tracking.log_test_results("c" * 32, {EXPERIMENT!r}, metrics={{"auc": 0.5}}, tags={{}})
        assert run == again, (run, again)
        print(run, "mlflow" in sys.modules, "sqlalchemy" in sys.modules)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**_env(), tracking.TRACKING_URI_ENV: sqlite_uri},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    run_id, imported_mlflow, imported_sqlalchemy = proc.stdout.split()
    assert (imported_mlflow, imported_sqlalchemy) == ("False", "False")
    assert _client(sqlite_uri).get_run(run_id).data.metrics == {"m": 1.0, "test_auc": 0.5}


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != tracking.TRACKING_URI_ENV}


# --- a real tracking server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MlflowServer(tmp_path_factory.mktemp("server")).start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.mark.slow
def test_a_server_run_reads_back_with_proxied_artifacts(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, server_uri)
    client = _client(server_uri)
    assert client.get_experiment_by_name(EXPERIMENT) is None
    args = {
        "experiment": EXPERIMENT,
        "run_name": "server-run",
        "params": {f"p{i:03d}": str(i) for i in range(150)},  # more than one log-batch
        "metrics": METRICS,
        "tags": TAGS,
    }
    fast_id = tracking.log_training_run(**args)  # creates the experiment, as MLflow does
    slow_id = _log_with_mlflow(monkeypatch, **args)
    fast, slow = client.get_run(fast_id), client.get_run(slow_id)
    assert fast.data.params == slow.data.params == args["params"]
    assert fast.data.metrics == slow.data.metrics == METRICS
    assert fast.data.tags == slow.data.tags
    assert (fast.info.status, fast.info.run_name) == ("FINISHED", "server-run")
    assert fast.info.artifact_uri.startswith("mlflow-artifacts:/")

    time.sleep(0.01)
    newest = tracking.log_training_run(**{**args, "params": {}})
    run_id = tracking.log_test_results(
        "0" * 32,
        EXPERIMENT,
        metrics={"roc_auc": 0.9},
        tags={"t": "x"},
        artifacts=_artifacts(tmp_path),
    )
    assert run_id == newest
    run = client.get_run(newest)
    assert run.data.metrics["test_roc_auc"] == 0.9 and run.data.tags["t"] == "x"
    assert _downloaded(client, newest, tmp_path / "down") == EXPECTED_FILES
    assert tracking.log_test_results("f" * 32, EXPERIMENT, metrics={}, tags={}) is None


def test_a_server_that_refuses_or_never_answers_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        port = silent.getsockname()[1]
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
        for uri in ("http://127.0.0.1:1", f"http://127.0.0.1:{port}"):
            monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
            with pytest.raises(tracking.TrackingError) as err:
                tracking.log_training_run(
                    experiment=EXPERIMENT, run_name="r", params={}, metrics={}, tags={}
                )
            message = str(err.value)
            assert message.startswith(f"mlflow ({uri}): logging the training run failed: ")
            assert "no answer from the tracking server" in message and "\n" not in message
