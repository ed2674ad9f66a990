"""Every interruption is repaired by running the same command again: real processes killed with
SIGKILL, real MLflow stores, real DVC.

- The local SQLite store: `gitops-ml promote` killed while it creates ``mlflow.db`` (at several
  moments of the table creation) leaves no store or a whole one, and the next promote converges.
  A store MLflow itself left half-created (its own creation killed) is rebuilt when it holds
  nothing; one that holds runs, or a file that is not a database, is one line and exit 2, never a
  traceback. Three processes creating a brand-new store at once all succeed.
- Runs a killed process left RUNNING become FAILED on the next command, while a live process's
  run and another host's stay RUNNING (in the SQLite store and on a real `mlflow server`).
- DVC's ``.dvc/tmp/rwlock`` emptied by a kill is removed (no DVC command running); a corrupted
  one is one line naming `rm .dvc/tmp/rwlock`, exit 2, and the command works after it.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import yaml

from gitops_ml import runstore, tracking
from gitops_ml.files import CACHE_ENV
from tests.integration.conftest import lock_hashes, run_in, sample_repo, template_env
from tests.integration.faults import killed_tmp
from tests.integration.mlflow_server import run_mlflow_server

pytestmark = pytest.mark.slow

MODEL = "train:models/model.joblib"
PROMOTE = ("gitops-ml", "promote", "--summary", "", "--card", "")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_repo(
        tmp_path_factory.mktemp("interrupted") / "repo",
        1500,
        files=("Makefile", "requirements.lock", "requirements-runtime.lock"),
    )


def _db(repo: Path) -> Path:
    return repo / "mlflow.db"


def _fresh_store(repo: Path) -> None:
    for path in repo.glob("mlflow.db*"):
        path.unlink()
    for path in repo.glob(".mlflow.db.*"):
        path.unlink()


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The `error: ...` line of a failed command, checked to be its only line about it."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def _registry(repo: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(md5 -> its versions, alias -> the md5 of its version) of the repo's registry, read in
    another process: this one keeps no MLflow engine on a store the tests then remove."""
    name = yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["model_name"]
    code = (
        "import json, sys, mlflow; c = mlflow.MlflowClient(); name = sys.argv[1]; "
        "print(json.dumps([[str(v.version), v.tags['gitops_ml.model_md5']] "
        "for v in c.search_model_versions(f\"name = '{name}'\")] + "
        "[{k: str(v) for k, v in c.get_registered_model(name).aliases.items()}]))"
    )
    *versions, aliases = json.loads(run_in(repo, sys.executable, "-c", code, name).stdout)
    by_md5: dict[str, list[str]] = {}
    for version, md5 in versions:
        by_md5.setdefault(md5, []).append(version)
    md5_of = dict(versions)
    return by_md5, {alias: md5_of[v] for alias, v in aliases.items()}


def _assert_promoted(repo: Path) -> None:
    by_md5, aliases = _registry(repo)
    assert all(len(v) == 1 for v in by_md5.values()), by_md5
    assert aliases["champion"] == lock_hashes(repo)[MODEL]
    assert run_in(repo, "gitops-ml", "verify").returncode == 0


def _kill_when(proc: subprocess.Popen[str], ready, after: float, limit: float = 300) -> bool:
    """SIGKILL `proc` `after` seconds once `ready()` holds; False when it ended first."""
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return False
        time.sleep(0.01)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def _start(repo: Path, *cmd: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`cmd` in `repo`, to be killed: its temporary folders go beside `repo` (`killed_tmp`)."""
    env = {**template_env(repo), "TMPDIR": str(killed_tmp(repo)), **(extra_env or {})}
    return subprocess.Popen(
        list(cmd), cwd=repo, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# -- the local store ---------------------------------------------------------------------------


def _building(repo: Path, pid: int) -> bool:
    """Whether process `pid` is creating the store (its temporary file is there)."""
    return any(p.name.startswith(f".mlflow.db.{pid}.") for p in repo.iterdir())


def test_promote_killed_while_it_creates_the_store_converges(repo: Path, tmp_path: Path) -> None:
    """SIGKILL at several moments of the creation, by MLflow's migrations (an empty cache
    folder) and from the template this machine keeps: never a half-built mlflow.db."""
    head = runstore.schema_head()
    kills = ((0.0, True), (0.3, True), (0.8, True), (0.1, True), (0.0, False), (0.05, False))
    for i, (after, migrate) in enumerate(kills):
        _fresh_store(repo)
        cache = {CACHE_ENV: str(tmp_path / f"cache{i}")} if migrate else {}
        proc = _start(repo, *PROMOTE, extra_env=cache)
        started = functools.partial(_building, repo, proc.pid)
        assert _kill_when(proc, started, after), after
        db = _db(repo)
        if after == 0.0:  # killed as the creation began: no store, only its temporary file
            assert not db.exists() and started()
        assert not db.exists() or runstore.store_health(db).revision == head, after
    # Before the fix, MLflow created mlflow.db in place, and each of these kills left a file
    # on which promote, verify and the train stage failed until someone deleted it.
    done = run_in(repo, *PROMOTE, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    _assert_promoted(repo)
    assert not list(repo.glob(".mlflow.db.*")), "the killed creation's leftovers are removed"


def _half_created_by_mlflow(repo: Path, after: float) -> runstore.StoreHealth | None:
    """Kill MLflow's own creation of mlflow.db `after` seconds into it (as `mlflow ui`, an
    older gitops-ml or a script would have); the store's health, None when it finished first."""
    _fresh_store(repo)
    code = (
        "import sys; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as S; "
        "print('go', flush=True); S(sys.argv[1], './mlruns')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, f"sqlite:///{_db(repo)}"],
        cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "go\n"
    if not _kill_when(proc, lambda: _db(repo).exists(), after):
        return None
    health = runstore.store_health(_db(repo))
    return None if health.complete else health


def test_a_store_mlflow_left_half_created_is_rebuilt_when_it_holds_nothing(repo: Path) -> None:
    broken = [h for h in (_half_created_by_mlflow(repo, t) for t in (0.4, 0.1)) if h]
    assert broken, "no kill landed inside MLflow's table creation"
    # Before the fix, promote, verify and the train stage failed here with a traceback
    # (`table ... already exists`, an out-of-date schema) until mlflow.db was deleted.
    verify = run_in(repo, "gitops-ml", "verify", check=False)
    assert "Traceback" not in verify.stderr and verify.returncode == 1  # no champion: empty
    assert "half-created" in verify.stderr
    assert runstore.store_health(_db(repo)).complete
    _half_created_by_mlflow(repo, 0.4)
    done = run_in(repo, *PROMOTE, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_promoted(repo)


def test_a_store_that_holds_runs_is_never_rebuilt_but_named_in_one_line(repo: Path) -> None:
    _fresh_store(repo)
    run_in(repo, *PROMOTE)  # a store with runs and a registered model
    db = _db(repo)
    with sqlite3.connect(db) as conn:  # as an older MLflow left it: an earlier schema revision
        conn.execute("UPDATE alembic_version SET version_num = 'c48cb773bb87'")
    before = db.read_bytes()
    for cmd in (PROMOTE, ("gitops-ml", "verify")):
        line = _one_line_error(run_in(repo, *cmd, check=False))
        assert "holds runs or models" in line and "mlflow db upgrade" in line, line
    train = run_in(repo, "dvc", "repro", "--force", "train", check=False)
    assert train.returncode != 0 and "holds runs or models" in train.stderr
    assert "Traceback" not in train.stderr
    assert db.read_bytes() == before  # untouched
    run_in(repo, "git", "checkout", "--", "dvc.lock")

    db.write_bytes(b"not a database, e.g. a file copied over it\n" * 100)
    for cmd in (PROMOTE, ("gitops-ml", "verify")):  # verify: exit 2 (an error), not 1
        line = _one_line_error(run_in(repo, *cmd, check=False))
        assert "not a database" in line, line
    _fresh_store(repo)


def test_three_processes_creating_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """The train stage's logging path, three times at once against a store nobody made yet
    (MLflow's own creation crashes with `table ... already exists` in all but one)."""
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "from gitops_ml import tracking; import os; print(tracking.log_training_run("
        "experiment='at-once', run_name='r' + str(os.getpid()), params={'p': '1'}, "
        "metrics={'m': 0.5}, tags={}))"
    )
    env = {**template_env(tmp_path), tracking.TRACKING_URI_ENV: uri}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]  # fmt: skip
    outs = [proc.communicate(timeout=600) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1500:] for _, err in outs]
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("at-once")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip() for out, _ in outs)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new.db.")]


# -- runs left RUNNING -------------------------------------------------------------------------


@pytest.fixture
def live_run(repo: Path) -> Iterator[tuple[str, int]]:
    """(run id, pid) of a RUNNING run whose process is alive, started as promote starts its."""
    code = (
        "import mlflow, time; from gitops_ml import runstore, tracking; tracking.configure(); "
        "mlflow.set_experiment('gitops-ml'); "
        "run = mlflow.start_run(run_name='live', tags=runstore.process_tags()); "
        "print(run.info.run_id, flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=template_env(repo),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    try:
        yield run_id, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_runs_of_a_killed_process_become_failed_on_the_next_command(
    repo: Path, live_run: tuple[str, int]
) -> None:
    uri = f"sqlite:///{_db(repo)}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("gitops-ml").experiment_id
    # Another host's run, with a pid that is free here: not this host's to judge.
    elsewhere = client.create_run(
        experiment, tags={runstore.TAG_HOST: "another-host", runstore.TAG_PID: "999999"}
    ).info.run_id

    def running_promotion() -> list[str]:
        runs = client.search_runs(
            [experiment], "attributes.status = 'RUNNING' and tags.`gitops_ml.promotion` = 'true'"
        )
        return [r.info.run_id for r in runs]

    # A promotion killed while it logs the model: its run stays RUNNING.
    name = yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["model_name"]
    for version in client.search_model_versions(f"name = '{name}'"):
        client.delete_model_version(name, version.version)
    for run in client.search_runs([experiment], "tags.`gitops_ml.promotion` = 'true'"):
        client.delete_run(run.info.run_id)
    proc = _start(repo, *PROMOTE)
    assert _kill_when(proc, lambda: bool(running_promotion()), 0.0)
    (killed,) = running_promotion()
    assert client.get_run(killed).data.tags[runstore.TAG_PID] == str(proc.pid)

    done = run_in(repo, *PROMOTE, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"run {killed} was left RUNNING by a process that is gone: marked FAILED" in done.stderr
    dead = client.get_run(killed).info
    assert dead.status == "FAILED" and dead.end_time >= dead.start_time
    assert client.get_run(live_run[0]).info.status == "RUNNING"  # its process is alive
    assert client.get_run(elsewhere).info.status == "RUNNING"  # another host's
    _assert_promoted(repo)

    # The train stage's logging closes them too, and a reused pid is not the killed process.
    reused = client.create_run(experiment, tags={
        **runstore.process_tags(), runstore.TAG_PID: str(live_run[1]),
        runstore.TAG_PID_STARTED: "1000.00",
    }).info.run_id  # fmt: skip
    env = {"MLFLOW_TRACKING_URI": uri}
    code = (
        "from gitops_ml import tracking; tracking.log_training_run(experiment='gitops-ml', "
        "run_name='r', params={}, metrics={}, tags={})"
    )
    logged = run_in(repo, sys.executable, "-c", code, extra_env=env)
    assert f"run {reused} was left RUNNING" in logged.stderr
    assert client.get_run(reused).info.status == "FAILED"
    assert client.get_run(live_run[0]).info.status == "RUNNING"
    client.set_terminated(elsewhere)


def test_a_tracking_server_gets_the_same_repair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a real `mlflow server`: the training run logged through its REST API closes the
    RUNNING run of a killed process of this host, and only that one."""
    with run_mlflow_server(tmp_path / "server") as uri:
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("served")
        killed = subprocess.Popen([sys.executable, "-c", "pass"])
        killed.wait()
        mine = runstore.process_tags()
        runs = {
            "killed": {**mine, runstore.TAG_PID: str(killed.pid)},
            "live": {**mine, runstore.TAG_PID: str(os.getppid())},
            "elsewhere": {runstore.TAG_HOST: "another-host", runstore.TAG_PID: str(killed.pid)},
        }
        runs["live"].pop(runstore.TAG_PID_STARTED, None)
        ids = {key: client.create_run(experiment, tags=tags).info.run_id
               for key, tags in runs.items()}  # fmt: skip
        monkeypatch.setenv(tracking.TRACKING_URI_ENV, uri)
        run_id = tracking.log_training_run(
            experiment="served", run_name="r", params={}, metrics={"m": 1.0}, tags={}
        )
        status = {key: client.get_run(i).info.status for key, i in ids.items()}
        assert status == {"killed": "FAILED", "live": "RUNNING", "elsewhere": "RUNNING"}
        assert client.get_run(ids["killed"]).info.end_time is not None
        logged = client.get_run(run_id)
        assert logged.info.status == "FINISHED"
        assert logged.data.tags[runstore.TAG_PID] == str(os.getpid())


# -- DVC's rwlock ------------------------------------------------------------------------------

RWLOCK = ".dvc/tmp/rwlock"


def _make_repro(repo: Path) -> subprocess.CompletedProcess[str]:
    """`make repro` with this interpreter's bin as the venv (never installs anything)."""
    return run_in(
        repo, "make", "--no-print-directory", "-o", ".venv/.installed-runtime", "repro",
        f"BIN={Path(sys.executable).parent}", check=False,
    )  # fmt: skip


def test_an_empty_rwlock_is_removed_and_a_corrupted_one_named_in_one_line(repo: Path) -> None:
    rwlock = repo / RWLOCK
    rwlock.parent.mkdir(parents=True, exist_ok=True)
    rwlock.write_bytes(b"")  # what a DVC command killed while rewriting it leaves
    before = run_in(repo, "dvc", "status", check=False)
    assert before.returncode != 0 and "JSON structure is corrupted" in before.stderr

    for cmd in (("gitops-ml", "gate", "--base", "main"), ("make",)):
        rwlock.write_bytes(b"")
        proc = _make_repro(repo) if cmd == ("make",) else run_in(repo, *cmd, check=False)
        assert proc.returncode in (0, 1), (cmd, proc.stderr[-2000:])  # gate: pass or fail
        assert f"removed the empty {RWLOCK}" in proc.stderr + proc.stdout, cmd
        assert "RWLock" not in proc.stderr + proc.stdout

    # While a DVC command holds the repository lock, an empty rwlock may be mid-write: kept.
    rwlock.write_bytes(b"")
    with open(repo / ".dvc/tmp/lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        code = "from pathlib import Path; from gitops_ml.lineage import dvclock; " \
               "dvclock.check_rwlock(Path.cwd())"  # fmt: skip
        run_in(repo, sys.executable, "-c", code)
    assert rwlock.exists() and rwlock.read_bytes() == b""

    for junk in (b'{"write": {"models/model.joblib": {"pid": 1', b"[]", b"\x00\x00\x00"):
        rwlock.write_bytes(junk)
        for cmd in (("gitops-ml", "gate", "--base", "main"), ("make",)):
            proc = _make_repro(repo) if cmd == ("make",) else run_in(repo, *cmd, check=False)
            assert proc.returncode == 2, (cmd, proc.stdout, proc.stderr)
            lines = [x for x in (proc.stderr + proc.stdout).splitlines() if x.startswith("error:")]
            assert len(lines) == 1 and f"`rm {RWLOCK}`" in lines[0], proc.stderr
            assert "Traceback" not in proc.stderr
        assert rwlock.read_bytes() == junk  # never removed without the user
    run_in(repo, "rm", RWLOCK)  # the suggested fix
    assert _make_repro(repo).returncode == 0
    assert run_in(repo, "gitops-ml", "gate", "--base", "main", check=False).returncode in (0, 1)
