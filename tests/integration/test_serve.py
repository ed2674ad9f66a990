"""`gitops-ml serve`: a real `mlflow models serve --env-manager local` on a loopback port.

The server serves the small Adult model registered @champion in a throw-away SQLite store; it is
started once for the module and its whole process group is stopped by the fixture.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import pandas as pd
import pytest

from gitops_ml import tracking
from gitops_ml.release import loadtest, serve
from tests.unit.test_predict import TARGET, TRAIN_ROWS, Champion, build_champion

pytestmark = pytest.mark.slow

#: Seconds the server may take to answer /ping (it loads mlflow and the model first).
START_TIMEOUT = 120


@dataclass(frozen=True)
class Server:
    url: str
    champion: Champion
    log: Path
    start_seconds: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status


def invoke(url: str, body: bytes) -> tuple[int, dict]:
    status, raw = loadtest.post_json(f"{url}/invocations", body)
    return status, json.loads(raw) if raw else {}


@pytest.fixture(scope="module")
def server(
    adult_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    ws = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{ws / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        mp.setenv(tracking.TRACKING_URI_ENV, uri)
        champion = build_champion(ws, adult_split[0].head(TRAIN_ROWS))
    port = free_port()
    tmp = ws / "tmp"  # where serve saves the checked model: gone once the server stops
    tmp.mkdir()
    log = (ws / "server.log").open("wb")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitops_ml.cli", "serve", "--port", str(port)],
        cwd=ws,
        env={**serve.serve_env(uri), "TMPDIR": str(tmp)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {_tail(ws / 'server.log')}")
            if time.perf_counter() - start > START_TIMEOUT:
                pytest.fail(f"no /ping answer in {START_TIMEOUT} s: {_tail(ws / 'server.log')}")
            try:
                if get(f"{url}/ping") == 200:
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        elapsed = time.perf_counter() - start
        print(f"\nmlflow models serve answered /ping after {elapsed:.1f} s")
        yield Server(url, champion, ws / "server.log", elapsed)
    finally:
        loadtest.stop_server(proc)
        log.close()
    assert proc.returncode is not None and not any(tmp.iterdir()), list(tmp.iterdir())


def _tail(path: Path) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-5:])


def test_invocations_equal_the_joblib_model(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].head(20).drop(columns=[TARGET])
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(rows))
    assert status == 200, answer
    model = joblib.load(server.champion.model_file)
    assert answer["predictions"] == model.predict(rows).tolist()
    started = (server.log.read_text(errors="replace").splitlines() or [""])[0]
    assert started.startswith(
        f"serving {server.champion.uri} (version {server.champion.version}, md5 checked against "
        "dvc.lock)"
    )


def test_missing_column_answers_400(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].head(3).drop(columns=[TARGET, "age"])
    status, answer = invoke(server.url, loadtest.dataframe_split_payload(rows))
    assert status == 400
    assert "age" in json.dumps(answer)


def test_non_json_body_answers_400(server: Server) -> None:
    status, _ = loadtest.post_json(f"{server.url}/invocations", b"age=39,workclass=Private")
    assert status == 400


def test_measure_serving_reports_latency_and_throughput(
    server: Server, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    rows = adult_split[1].head(10).drop(columns=[TARGET])
    result = loadtest.measure_serving(server.url, rows, n_requests=20, concurrency=2)
    print(f"\nmeasure_serving: {result}")
    assert result["requests"] == 20 and result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["rows_per_s"] > 0
    assert result["seconds"] * 1000 >= result["max_ms"]
