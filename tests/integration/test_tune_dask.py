"""The tune stage on a real Dask distributed cluster: a scheduler and workers started as separate
processes on loopback, exactly as `dask scheduler` / `dask worker` run on a team's machines.

The same search run locally and on the cluster must choose the same hyperparameters and write
the same bytes, on Adult and on real data sets this project did not make.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from gitops_ml.stages import tune
from tests import datasets
from tests.tune_setup import run_tune, settings, tune_args, workspace

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).with_name("dask"))
READY_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen]


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen([DASK, *args], stdout=fh, stderr=subprocess.STDOUT)


def stop(processes: list[subprocess.Popen]) -> None:
    for proc in reversed(processes):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(processes):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for_workers(address: str, n: int, processes: list[subprocess.Popen], logs: Path) -> None:
    """Block until the scheduler answers and has `n` workers (0: answers), or fail with logs."""
    from distributed import Client

    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        dead = [p.args for p in processes if p.poll() is not None]
        if dead:
            break
        try:
            with Client(address, timeout=5, set_as_default=False) as client:
                if n:
                    client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(0.5)
    text = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(logs.glob("*.log")))
    pytest.fail(f"the Dask cluster at {address} did not come up ({dead or 'timeout'}):\n{text}")


def start_scheduler(port: int, log: Path) -> subprocess.Popen:
    """`dask scheduler` on loopback `port`, without its dashboard, logging to `log`."""
    return start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], log)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A scheduler and two single-threaded workers on loopback, for the module."""
    logs = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(start_scheduler(port, logs / "scheduler.log"))
        processes.append(
            start(
                [
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--memory-limit",
                    "0",
                    "--local-directory",
                    str(logs / "workers"),
                ],
                logs / "workers.log",
            )
        )
        wait_for_workers(address, 2, processes, logs)
        yield Cluster(address, processes)
    finally:
        stop(processes)


def executed_on_workers(address: str) -> int:
    """How many tasks the cluster's workers have run so far."""
    from distributed import Client

    with Client(address, timeout=10, set_as_default=False) as client:
        counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return sum(counts.values())


def local_and_dask(ws: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """Run the stage locally, then on the cluster; the two outputs and the tasks run there."""
    import yaml

    local = run_tune(ws, "local.json")
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    raw["tune"]["backend"] = "dask"
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setenv(tune.SCHEDULER_ENV, cluster.address)
    before = executed_on_workers(cluster.address)
    on_dask = run_tune(ws, "dask.json")
    return local, on_dask, executed_on_workers(cluster.address) - before


def test_adult_on_dask_chooses_what_the_local_search_chooses(
    cluster: Cluster,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = settings(hyperparams={"max_iter": 40})
    ws = workspace(tmp_path, adult_split[0].head(4000), raw)
    local, on_dask, tasks = local_and_dask(ws, cluster, monkeypatch)
    assert tasks >= 4 * 3  # every candidate x fold ran on the workers
    assert on_dask == local  # same folds, same fits: the same scores and the same choice
    record = json.loads(on_dask)
    assert len(record["search"]["candidates"]) == 4
    assert record["hyperparams"] == {"max_iter": 40, **record["search"]["best"]["params"]}


@pytest.mark.parametrize(
    ("loader", "model", "space"),
    [
        (datasets.penguins, "hist_gradient_boosting", None),
        (datasets.cars, "random_forest", {"min_samples_leaf": [1, 5], "max_features": [0.5, 1.0]}),
        (datasets.breast_cancer, "logistic_regression", {"C": [0.01, 0.1, 1.0, 10.0]}),
    ],
    ids=["penguins", "cars", "breast_cancer"],
)
def test_data_sets_we_did_not_make_on_dask_choose_what_local_chooses(
    cluster: Cluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loader,
    model: str,
    space: dict | None,
) -> None:
    data = loader()
    raw = settings(data, model=model)
    if model == "hist_gradient_boosting":
        raw["train"]["hyperparams"] = {"max_iter": 30}
    if space is not None:
        raw["tune"]["space"] = {model: space}
    if model == "logistic_regression":
        raw["train"]["hyperparams"] = {"max_iter": 3000}
    ws = workspace(tmp_path, data.frame, raw)
    local, on_dask, tasks = local_and_dask(ws, cluster, monkeypatch)
    assert tasks > 0
    assert on_dask == local
    candidates = json.loads(on_dask)["search"]["candidates"]
    assert len({json.dumps(c["params"]) for c in candidates}) == len(candidates) == 4


def test_a_scheduler_without_workers_is_one_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(start_scheduler(port, tmp_path / "scheduler.log"))
        wait_for_workers(address, 0, processes, tmp_path)
        frame = pd.DataFrame({"age": range(30), "income": ["a", "b"] * 15})
        ws = workspace(tmp_path / "ws", frame, settings(backend="dask", connect_timeout=2))
        (ws / "tuned.json").write_text("last good\n")
        monkeypatch.setenv(tune.SCHEDULER_ENV, address)
        start_time = time.perf_counter()
        assert tune.main(tune_args(ws)) == 2
        assert time.perf_counter() - start_time < 20
        err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
        assert err == [f"error: the Dask scheduler at {address} has no workers after 2 s"]
        assert (ws / "tuned.json").read_text() == "last good\n"
    finally:
        stop(processes)


def test_the_cli_entry_reports_an_unreachable_scheduler_in_one_line(tmp_path: Path) -> None:
    """The stage as DVC runs it: a new interpreter, exit code and stderr."""
    ws = workspace(tmp_path, pd.DataFrame({"x": [1]}), settings(backend="dask", connect_timeout=1))
    env = {**os.environ, tune.SCHEDULER_ENV: f"tcp://127.0.0.1:{free_port()}"}
    start_time = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gitops_ml.stages.tune", *tune_args(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert time.perf_counter() - start_time < 20
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Dask scheduler")
    assert len([x for x in proc.stderr.splitlines() if x.strip()]) == 1, proc.stderr
    assert not (ws / "tuned.json").exists()
