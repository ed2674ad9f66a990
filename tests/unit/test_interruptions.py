"""The pieces that let a command repair what an interrupted one left: which process owns a RUNNING
run, the schema revision a store must have, database errors as one line, DVC's rwlock."""

from __future__ import annotations

import fcntl
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gitops_ml import runstore
from gitops_ml.errors import USER_ERROR, cli_entry, store_error_line
from gitops_ml.lineage import dvclock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_is_only_closed_when_its_process_on_this_host_is_gone() -> None:
    mine = runstore.process_tags()
    assert mine[runstore.TAG_HOST] == socket.gethostname()
    assert mine[runstore.TAG_PID] == str(os.getpid())
    assert not runstore.process_gone(mine)  # this process
    parent = {**mine, runstore.TAG_PID: str(os.getppid())}
    parent.pop(runstore.TAG_PID_STARTED, None)
    assert not runstore.process_gone(parent)  # alive
    dead = {**mine, runstore.TAG_PID: str(_dead_pid())}
    assert runstore.process_gone(dead)
    assert not runstore.process_gone({**dead, runstore.TAG_HOST: "another-host"})
    if runstore.TAG_PID_NAMESPACE in mine:  # a container's numbering is not this one's
        assert not runstore.process_gone({**dead, runstore.TAG_PID_NAMESPACE: "pid:[1]"})
    if runstore.TAG_PID_STARTED in mine:  # the pid is alive, but another process holds it
        assert runstore.process_gone({**parent, runstore.TAG_PID_STARTED: "1000.00"})
    assert not runstore.process_gone({**mine, runstore.TAG_PID: "not-a-pid"})
    assert not runstore.process_gone({})


def test_the_schema_head_is_the_one_mlflow_migrates_to() -> None:
    from mlflow.store.db.utils import _get_latest_schema_revision

    assert runstore.schema_head() == _get_latest_schema_revision()


def test_a_database_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    error = sqlite3.OperationalError("table assessments already exists\n[SQL: CREATE TABLE ...]")
    assert store_error_line(error) == "OperationalError: table assessments already exists"
    assert store_error_line(ValueError("x")) is None

    @cli_entry
    def main() -> int:
        raise error

    assert main() == USER_ERROR
    err = capsys.readouterr().err
    assert err == "error: tracking database: OperationalError: table assessments already exists\n"

    @cli_entry
    def other() -> int:
        raise ValueError("a bug is still a traceback")

    with pytest.raises(ValueError):
        other()


def _rwlock(root: Path, content: bytes) -> Path:
    path = root / dvclock.RWLOCK_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_an_empty_rwlock_is_removed_unless_a_dvc_command_runs(tmp_path: Path) -> None:
    readable = b'{"read": {}, "write": {"models": {"pid": 1, "cmd": "dvc repro"}}}'
    path = _rwlock(tmp_path, readable)
    dvclock.check_rwlock(tmp_path)
    assert path.read_bytes() == readable  # DVC's own business
    _rwlock(tmp_path, b"")
    dvclock.check_rwlock(tmp_path)
    assert not path.exists()

    _rwlock(tmp_path, b"")
    with open(tmp_path / dvclock.REPO_LOCK_PATH, "a") as held:  # as DVC holds it while it runs
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        dvclock.check_rwlock(tmp_path)
        assert path.exists()
    dvclock.check_rwlock(tmp_path)
    assert not path.exists()

    (tmp_path / ".dvc" / "config").write_text("[core]\n    hardlink_lock = true\n")
    _rwlock(tmp_path, b"")
    with pytest.raises(dvclock.RwlockError, match="is empty"):
        dvclock.check_rwlock(tmp_path)
    assert path.exists()


@pytest.mark.parametrize(
    "content", [b'{"write": {', b"[]", b'{"locks": {}}', b'{"read": []}', b"\xff\xfe"]
)
def test_any_other_unreadable_rwlock_names_the_command_that_clears_it(
    tmp_path: Path, content: bytes
) -> None:
    path = _rwlock(tmp_path, content)
    with pytest.raises(dvclock.RwlockError) as err:
        dvclock.check_rwlock(tmp_path)
    assert f"`rm {dvclock.RWLOCK_PATH}`" in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == content


def test_dvcs_own_rwlock_error_becomes_the_hint() -> None:
    proc = subprocess.CompletedProcess(
        ["dvc", "status"],
        1,
        "",
        "ERROR: Unable to read RWLock-file '.dvc/tmp/rwlock'. JSON structure is corrupted: x\n",
    )
    assert dvclock.error_line(proc) == dvclock.rwlock_hint()


# -- a new store from the kept template ---------------------------------------------------------


def _schema(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select type, name, sql from sqlite_master order by name").fetchall()


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _new_store(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from gitops_ml import tracking

    folder.mkdir()
    monkeypatch.chdir(folder)  # MLflow puts the default experiment's artifacts in ./mlruns
    tracking.ensure_store("sqlite:///mlflow.db")
    return folder / "mlflow.db"


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A store MLflow migrated into being, and the template it left in an empty cache folder."""
    from gitops_ml import tracking
    from gitops_ml.files import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    migrated = _new_store(tmp_path / "migrated", monkeypatch)
    template = tracking._template(runstore.schema_head())
    assert template.parent == tmp_path / "cache" and template.is_file()
    assert [path.name for path in template.parent.iterdir()] == [template.name]  # no leftovers
    assert runstore.holds_nothing(template, runstore.schema_head())
    return migrated, template


def test_a_new_store_is_a_copy_of_the_template_less_mlflows_migrations(
    kept: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.store.db.utils

    migrated, _ = kept

    def no_migrations(engine: object) -> None:
        raise AssertionError("MLflow migrated a store the template should have given")

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", no_migrations)
    copied = _new_store(tmp_path / "copied", monkeypatch)
    assert _schema(copied) == _schema(migrated)
    for sql in ("select * from alembic_version", "select * from workspaces"):
        assert _rows(copied, sql) == _rows(migrated, sql)
    experiments = "select experiment_id, name, artifact_location, workspace from experiments"
    (default,) = _rows(copied, experiments)
    assert default == (0, "Default", str(tmp_path / "copied" / "mlruns" / "0"), "default")
    assert _rows(migrated, experiments)[0][2] == str(tmp_path / "migrated" / "mlruns" / "0")
    assert runstore.store_health(copied).complete


def test_a_template_that_holds_anything_is_not_used_and_is_replaced(
    kept: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, template = kept
    with sqlite3.connect(template) as conn:  # planted: an experiment every new store would get
        conn.execute(
            "insert into experiments (experiment_id, name, artifact_location, lifecycle_stage, "
            "workspace) values (7, 'planted', '/elsewhere', 'active', 'default')"
        )
    store = _new_store(tmp_path / "fresh", monkeypatch)
    assert [row[1] for row in _rows(store, "select experiment_id, name from experiments")] == [
        "Default"
    ]
    assert runstore.holds_nothing(template, runstore.schema_head())  # kept again, clean

    with sqlite3.connect(template) as conn:  # an older schema: MLflow migrates instead
        conn.execute("update alembic_version set version_num = 'an-older-revision'")
    assert not runstore.holds_nothing(template, runstore.schema_head())
    store = _new_store(tmp_path / "again", monkeypatch)
    assert runstore.store_health(store).complete
    assert runstore.holds_nothing(template, runstore.schema_head())


# -- a tracking server that takes connections and never answers ----------------------------------


def test_a_silent_tracking_server_is_one_line_after_one_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import http.server
    import threading
    import time

    from gitops_ml import tracking

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        uri = f"http://user:secret@127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(tracking.TrackingError) as caught:
            tracking.require_answer(uri)
        assert time.perf_counter() - start < 5
    message = str(caught.value)
    assert "did not answer within 1 s" in message and "secret" not in message
    assert f"***@127.0.0.1:{uri.rsplit(':', 1)[1]}" in message

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracking.require_answer(
            f"http://127.0.0.1:{server.server_port}"
        )  # an answer: MLflow's turn
    finally:
        server.shutdown()
        server.server_close()
    tracking.require_answer(
        "http://127.0.0.1:1"
    )  # refused: left to MLflow's client and its retries
