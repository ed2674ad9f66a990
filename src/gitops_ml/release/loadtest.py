"""Latency and throughput of a running scoring server (`gitops-ml serve`), measured from loopback.

A bounded number of single-row (or `batch_rows`-row) ``/invocations`` requests is sent from a few
client threads; the answer is the latency distribution and the rows scored per second. Only
loopback servers are measured: this is a check of the local serving stack, not a load test of
somebody else's host.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from gitops_ml.errors import GitopsMLError
from gitops_ml.release.serve import is_loopback

if TYPE_CHECKING:
    import pandas as pd

#: Upper bounds that keep a measurement short whatever the caller asks for.
MAX_REQUESTS = 10_000
MAX_CONCURRENCY = 32
INVOCATIONS_PATH = "/invocations"


def invocations_url(url: str) -> str:
    """``http://host:port[/invocations]`` -> the invocations URL; non-loopback hosts fail."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitopsMLError(f"not an http URL: {url!r}")
    if not is_loopback(parts.hostname):
        raise GitopsMLError(f"{url}: only a server on loopback (127.0.0.1, ::1) is measured")
    path = parts.path.rstrip("/") or INVOCATIONS_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def dataframe_split_payload(rows: pd.DataFrame) -> bytes:
    """``{"dataframe_split": {"columns": [...], "data": [[...]]}}``, missing values as null."""
    split = json.loads(rows.to_json(orient="split", index=False, date_format="iso"))
    return json.dumps({"dataframe_split": split}).encode("utf-8")


def post_json(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """POST a JSON body; (HTTP status, response body), HTTP errors included."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class KeepAliveClient:
    """POSTs over one persistent HTTP/1.1 connection, as a real client keeps one (a load
    balancer, `requests.Session`): the latency measured is the server's, not a new TCP
    connection's. A failed request closes the connection; the next one opens a new one."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host, self.port, self.path = parts.hostname or "", parts.port, parts.path or "/"
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            if self.conn is None:
                cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                self.conn = cls(self.host, self.port, timeout=self.timeout)
                self.conn.connect()
                # http.client writes the headers and the body separately: without TCP_NODELAY
                # the body waits for the server's delayed ACK (40 ms) on a reused connection.
                # urllib3 (requests) sets it too.
                self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, OSError):
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def measure_serving(
    url: str,
    rows: pd.DataFrame,
    n_requests: int = 200,
    concurrency: int = 4,
    *,
    batch_rows: int = 1,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Send `n_requests` requests of `batch_rows` rows (cycling through `rows`) from
    `concurrency` threads, each over its own keep-alive connection (`KeepAliveClient`), after
    one warm-up request; return latency and throughput.

    Keys: ``requests``, ``concurrency``, ``batch_rows``, ``errors``, ``p50_ms``, ``p99_ms``,
    ``mean_ms``, ``max_ms`` (successful requests), ``rows_per_s``, ``seconds`` (wall time).
    """
    target = invocations_url(url)
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise GitopsMLError(f"n_requests must be in 1..{MAX_REQUESTS}, got {n_requests}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise GitopsMLError(f"concurrency must be in 1..{MAX_CONCURRENCY}, got {concurrency}")
    if batch_rows < 1 or len(rows) == 0:
        raise GitopsMLError("need at least one row and batch_rows >= 1")
    n = len(rows)
    payloads = [
        dataframe_split_payload(rows.iloc[[(i * batch_rows + j) % n for j in range(batch_rows)]])
        for i in range(n_requests)
    ]
    try:
        status, body = post_json(target, payloads[0], timeout)
    except OSError as exc:
        raise GitopsMLError(f"{target}: no answer: {exc}") from None
    if status != 200:
        first = body.decode("utf-8", "replace").strip().splitlines()[:1]
        raise GitopsMLError(f"{target}: warm-up request answered HTTP {status}: {first}")

    local = threading.local()
    clients: list[KeepAliveClient] = []

    def one(body: bytes) -> float | None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = KeepAliveClient(target, timeout)
            clients.append(client)
        start = time.perf_counter()
        try:
            code, _ = client.post(body)
        except (http.client.HTTPException, OSError):
            return None
        return time.perf_counter() - start if code == 200 else None

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(one, payloads))
    finally:
        for client in clients:
            client.close()
    wall = time.perf_counter() - start
    latencies = [r * 1000 for r in results if r is not None]
    ok = len(latencies)
    return {
        "requests": n_requests,
        "concurrency": concurrency,
        "batch_rows": batch_rows,
        "errors": n_requests - ok,
        "p50_ms": round(_percentile(latencies, 50), 3),
        "p99_ms": round(_percentile(latencies, 99), 3),
        "mean_ms": round(sum(latencies) / ok, 3) if ok else float("nan"),
        "max_ms": round(max(latencies), 3) if ok else float("nan"),
        "rows_per_s": round(ok * batch_rows / wall, 1) if wall > 0 else float("nan"),
        "seconds": round(wall, 3),
    }


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session (`start_new_session=True`): TERM to the whole
    process group (`gitops-ml serve` and the workers it forks), then KILL."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # a worker may outlive the group leader
        os.killpg(proc.pid, signal.SIGKILL)
