"""`gitops-ml serve`: the project's scoring server, speaking MLflow's scoring protocol, over real
HTTP on a loopback port.

The module's server serves the small Adult model registered @champion (with the signature
promote logs) in a throw-away SQLite store, with two workers. It is stopped by a SIGTERM to
`gitops-ml serve` alone, which passes it on: every worker ends and the checked copy of the model
is removed. Answers are compared with the model loaded in-process (`load_model`). Two more
servers serve a local MLflow model directory: one worker stopped by SIGINT, and the spawned
workers used where processes cannot fork.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gitops_ml import tracking
from gitops_ml.lineage import artifacts, formats
from gitops_ml.release import loadtest
from tests.unit.test_predict import TARGET, TRAIN_ROWS, Champion, build_champion

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

#: Seconds the server may take to answer /ping (it checks the model against dvc.lock first).
START_TIMEOUT = 120
#: Seconds the server may take to stop after a signal.
STOP_TIMEOUT = 60


@dataclass(frozen=True)
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    champion: Champion
    model: Any  # the champion loaded in-process, as `gitops-ml predict` loads it
    log: Path
    start_seconds: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, body: bytes | None = None, content_type: str | None = None):
    """(status, content type, body) of a GET, or of a POST when `body` is given."""
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read()


def invoke(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    status, _, raw = request(f"{url}/invocations", body, content_type)
    return status, json.loads(raw) if raw else {}


def start_server(
    cmd: list[str], url: str, cwd: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], float]:
    """Start `cmd` in a session of its own; (process, seconds until `url`/ping answered 200)."""
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {_tail(log)}")
        if time.perf_counter() - start > START_TIMEOUT:
            loadtest.stop_server(proc)
            pytest.fail(f"no /ping answer in {START_TIMEOUT} s: {_tail(log)}")
        try:
            if request(f"{url}/ping")[0] == 200:
                return proc, time.perf_counter() - start
        except OSError:
            time.sleep(0.2)


def stop_with(proc: subprocess.Popen[bytes], sig: int, tmp: Path) -> None:
    """Signal the server's own process only: it must pass the signal on, so that the whole
    session ends, exit 0 and leave nothing in `tmp`."""
    try:
        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
        assert not _session_alive(proc.pid), "a worker outlived the server"
        assert not any(tmp.iterdir()), list(tmp.iterdir())
    finally:
        loadtest.stop_server(proc)


def _session_alive(pgid: int) -> bool:
    deadline = time.monotonic() + 10  # the session's last processes are being reaped
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def workers(pid: int) -> list[int]:
    """The worker processes of server `pid` (Linux: /proc lists a process's children)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs /proc (Linux) to find the worker processes")
    return [int(p) for p in path.read_text().split()]


def _tail(path: Path) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-5:])


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp), "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


@pytest.fixture(scope="module")
def server(
    adult_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    ws = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{ws / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        mp.setenv(tracking.TRACKING_URI_ENV, uri)
        champion = build_champion(ws, adult_split[0].head(TRAIN_ROWS), adult_split[1].head(100))
        model = artifacts.load_model(champion.uri, lock_path=ws / "dvc.lock").model
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tmp = ws / "tmp"  # where serve keeps the checked model: gone once the server stops
    tmp.mkdir()
    log = ws / "server.log"
    cmd = [sys.executable, "-m", "gitops_ml.cli", "serve", "--port", str(port), "--workers", "2"]
    env = _env(tmp, **{tracking.TRACKING_URI_ENV: uri})
    proc, elapsed = start_server(cmd, url, ws, env, log)
    print(f"\ngitops-ml serve answered /ping after {elapsed:.1f} s")
    try:
        yield Server(url, proc, champion, model, log, elapsed)
    finally:
        stop_with(proc, signal.SIGTERM, tmp)


def test_invocations_equal_the_in_process_model(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].iloc[100:300].drop(columns=[TARGET])
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(rows))
    assert status == 200, answer
    assert answer == {"predictions": server.model.predict(rows).tolist()}
    started = (server.log.read_text(errors="replace").splitlines() or [""])[0]
    assert started.startswith(
        f"serving {server.champion.uri} (version {server.champion.version}, md5 checked against "
        f"dvc.lock) on {server.url} with 2 workers"
    )


def test_every_payload_format_answers_the_same_predictions(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].iloc[300:340].drop(columns=[TARGET])
    want = {"predictions": server.model.predict(rows).tolist()}
    records = json.loads(rows.to_json(orient="records"))
    columns = {c: [r[c] for r in records] for c in rows.columns}
    for payload in (
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": columns},
        {"inputs": records},
    ):
        assert invoke(server.url, json.dumps(payload).encode()) == (200, want), list(payload)
    csv = rows.to_csv(index=False).encode()
    assert invoke(server.url, csv, "text/csv") == (200, want)
    parquet = io.BytesIO()
    rows.to_parquet(parquet, index=False)
    assert invoke(server.url, parquet.getvalue(), "application/vnd.apache.parquet") == (200, want)
    charset = "application/json; charset=utf-8"
    assert invoke(server.url, loadtest.dataframe_split_payload(rows), charset) == (200, want)


def test_ping_health_and_version(server: Server) -> None:
    assert request(f"{server.url}/ping")[0] == 200
    assert request(f"{server.url}/health")[0] == 200
    status, _, body = request(f"{server.url}/version")
    assert (status, body.decode()) == (200, version("mlflow"))
    assert request(f"{server.url}/nowhere")[0] == 404
    assert request(f"{server.url}/invocations")[0] == 405


def test_malformed_requests_get_mlflow_error_bodies(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].head(3).drop(columns=[TARGET])
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(rows.drop(columns="age")))
    assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Model is missing inputs ['age']" in answer["message"]
    status, answer = invoke(server.url, b"age=39,workclass=Private")
    assert status == 400 and answer["error_code"] == "BAD_REQUEST"
    wrong = rows.astype({"age": "str"}).assign(age="old")
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(wrong))
    assert status == 400 and answer["error_code"] == "BAD_REQUEST" and "age" in answer["message"]
    status, content_type, body = request(f"{server.url}/invocations", b"hello", "text/plain")
    assert (status, content_type) == (415, "text/plain")
    assert b"application/json" in body


def test_the_server_enforces_the_data_contract_and_size_limits(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """What `gitops-ml predict` refuses, the server refuses: out-of-range numbers and unknown
    categories get one 400 naming the column and the rule; beyond the size limits, 413."""
    rows = adult_split[1].head(3).drop(columns=[TARGET])
    for change, column, rule in (
        ({"age": -5}, "age", "below the minimum 17 (e.g. -5)"),
        ({"age": 1_000_000}, "age", "above the maximum 90 (e.g. 1e+06)"),
        ({"workclass": "Martian"}, "workclass", "not among its categories"),
    ):
        bad = rows.copy()
        for name, value in change.items():
            bad[name] = bad[name].astype(object)
            bad.loc[bad.index[1], name] = value
        status, answer = invoke(server.url, loadtest.dataframe_split_payload(bad))
        assert status == 400 and answer["error_code"] == "BAD_REQUEST", answer
        message = answer["message"]
        assert f"Column '{column}' breaks the data contract" in message and rule in message
        assert "data/schema/adult.yaml" in message and "\n" not in message
    assert invoke(server.url, loadtest.dataframe_split_payload(rows))[0] == 200
    many = adult_split[1].drop(columns=[TARGET]).sample(10_001, replace=True, random_state=0)
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(many))
    assert status == 413 and "10001 rows, above the server's limit of 10000" in answer["message"]
    status, answer = invoke(server.url, b" " * (16 * 1024 * 1024 + 1))
    assert status == 413 and "above the server's limit of 16777216" in answer["message"]
    assert invoke(server.url, loadtest.dataframe_split_payload(rows))[0] == 200  # still serving


def test_two_thousand_good_requests_get_no_error(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The contract costs good requests nothing: 2,000 single rows at concurrency 8 (the
    benchmark sends 10,000 and times them: `scripts/bench.py`)."""
    rows = adult_split[1].head(500).drop(columns=[TARGET])
    result = loadtest.measure_serving(server.url, rows, n_requests=2_000, concurrency=8)
    print(f"\n2,000 good requests: {result}")
    assert result["requests"] == 2_000 and result["errors"] == 0


def test_serving_on_a_busy_port_is_one_line_and_exit_2(server: Server) -> None:
    """The module's server holds its port: a second `serve` there says so at once."""
    port = server.url.rsplit(":", 1)[1]
    ws = server.log.parent
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gitops_ml.cli", "serve", "--port", port],
        cwd=ws, env=_env(ws), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use: stop the server there or pass "
        "another --port"
    ]
    print(f"\nbusy port refused in {elapsed:.2f} s")


def test_two_workers_answer_concurrent_requests_with_each_rows_own_prediction(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Concurrent single rows are scored together in each worker: every answer is its row's."""
    assert len(workers(server.proc.pid)) == 2
    rows = adult_split[1].iloc[400:560].drop(columns=[TARGET])
    want = server.model.predict(rows).tolist()
    bodies = [loadtest.dataframe_split_payload(rows.iloc[[i]]) for i in range(len(rows))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda body: invoke(server.url, body), bodies))
    assert answers == [(200, {"predictions": [label]}) for label in want]


def test_measure_serving_reports_latency_and_throughput(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].head(10).drop(columns=[TARGET])
    result = loadtest.measure_serving(server.url, rows, n_requests=40, concurrency=8)
    print(f"\nmeasure_serving: {result}")
    assert result["requests"] == 40 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["rows_per_s"] > 0
    assert result["seconds"] * 1000 >= result["max_ms"]


def test_a_worker_that_dies_is_replaced(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    before = workers(server.proc.pid)
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        now = workers(server.proc.pid)
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no new worker: {_tail(server.log)}")
    rows = adult_split[1].head(5).drop(columns=[TARGET])
    for _ in range(4):
        status, answer = invoke(server.url, loadtest.dataframe_split_payload(rows))
        assert (status, answer) == (200, {"predictions": server.model.predict(rows).tolist()})


@pytest.fixture(scope="module")
def mlflow_dir(
    adult_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any, pd.DataFrame]:
    """A local MLflow model directory (skops, with a signature) of a small model, the model,
    and rows to score."""
    import mlflow
    from sklearn.ensemble import HistGradientBoostingClassifier

    train, test = adult_split
    numeric = [c for c in train.columns if train[c].dtype.kind == "i"]
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(train[numeric].head(2000), train[TARGET].head(2000))
    rows = test[numeric].head(30)
    path = tmp_path_factory.mktemp("mlflow-model") / "model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=tracking.model_signature(model, rows),
        serialization_format="skops",
        skops_trusted_types=formats.trusted_types(formats.dumps(model), "test model"),
    )
    return path, model, rows


@pytest.mark.parametrize(
    ("how", "stop"),
    [("gitops-ml serve, 1 worker", signal.SIGINT), ("spawned workers", signal.SIGTERM)],
)
def test_local_mlflow_model_directory(
    how: str, stop: int, mlflow_dir: tuple[Path, Any, pd.DataFrame], tmp_path: Path
) -> None:
    """`--model DIR` serves a local MLflow model (its skops archive) with one worker; the same
    directory served by spawned workers, as where processes cannot fork."""
    path, model, rows = mlflow_dir
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if how.startswith("gitops-ml"):
        cmd = [sys.executable, "-m", "gitops_ml.cli", "serve", "--model", str(path)]
        cmd += ["--params", str(ROOT / "params.yaml"), "--workers", "1", "--port", str(port)]
    else:
        code = (
            "import sys; from pathlib import Path; from gitops_ml.release import server; "
            "sys.exit(server.serve(Path(sys.argv[1]), '127.0.0.1', int(sys.argv[2]), 2, "
            "fork=False))"
        )
        cmd = [sys.executable, "-c", code, str(path), str(port)]
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "server.log"
    proc, elapsed = start_server(cmd, url, tmp_path, _env(tmp_path / "tmp"), log)
    print(f"\n{how}: /ping after {elapsed:.1f} s")
    try:
        status, answer = invoke(url, loadtest.dataframe_split_payload(rows))
        assert (status, answer) == (200, {"predictions": model.predict(rows).tolist()})
    finally:
        stop_with(proc, stop, tmp_path / "tmp")
