"""A real `mlflow server` on loopback for tests: SQLite backend, artifacts served by the server.

`run_mlflow_server(tmp)` is the simple form (start, wait for ``/health``, yield the URI, stop).
`MlflowServer` splits those steps, so a test module can start the server, do slow work while it
boots (it takes tens of seconds on two cores), and only then wait for it. The server always runs
in its own process group, which `stop()` ends (TERM, then KILL), so no worker outlives the test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gitops_ml.release.loadtest import stop_server

#: Seconds to wait for ``/health`` (the FastAPI app imports a lot on its first start).
READY_TIMEOUT = 180.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """One `mlflow server` process with its store, artifacts and log under `tmp`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = Path(tmp)
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.tmp / 'server.db'}",
            "--artifacts-destination", str(self.tmp / "artifacts"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """Block until ``/health`` answers 200; the URI. Raises if the process dies or hangs."""
        assert self.proc is not None, "start() the server first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with code {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return self.uri
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"mlflow server not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """End the server's process group (TERM, then KILL); a second call does nothing."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_server(proc)


@contextmanager
def run_mlflow_server(tmp: Path) -> Iterator[str]:
    """A running `mlflow server` under `tmp`; yields its URI and always stops it."""
    server = MlflowServer(tmp).start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()
