"""The load generator keeps one connection per client thread, as real clients do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from gitops_ml.release import loadtest


class _Counting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn answers
    connections = 0
    requests = 0
    lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with self.lock:
            type(self).connections += 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).requests += 1
        body = b'{"predictions": [1]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[str]:
    _Counting.connections = _Counting.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_each_client_thread_reuses_one_connection(counting_server: str) -> None:
    rows = pd.DataFrame({"age": [30, 40, 50]})
    result = loadtest.measure_serving(counting_server, rows, n_requests=60, concurrency=4)
    assert result["errors"] == 0 and result["requests"] == 60
    assert _Counting.requests == 61  # the warm-up request, then the measured ones
    # the warm-up's own connection, then at most one per client thread
    assert _Counting.connections <= 1 + 4


def test_a_server_that_goes_away_counts_errors_not_crashes(counting_server: str) -> None:
    rows = pd.DataFrame({"age": [30]})
    client = loadtest.KeepAliveClient(f"{counting_server}/invocations", timeout=5)
    assert client.post(b"{}")[0] == 200
    client.close()
    dead = loadtest.KeepAliveClient("http://127.0.0.1:1/invocations", timeout=5)
    with pytest.raises(OSError):
        dead.post(b"{}")
    assert dead.conn is None  # closed: the next request opens a new connection
    assert (
        loadtest.measure_serving(counting_server, rows, n_requests=5, concurrency=2)["errors"] == 0
    )


def test_the_servers_connections_turn_nagle_off() -> None:
    """uvicorn's bound socket says protocol 0, so asyncio would leave Nagle's algorithm on for
    the connections it accepts, and a keep-alive client would wait 40 ms for a delayed ACK
    between an answer's headers and its body; `tcp_socket` fixes what asyncio reads."""
    import asyncio
    import socket

    from gitops_ml.release.server import tcp_socket

    def nodelay_of_accepted(listening: socket.socket) -> int:
        async def main() -> int:
            loop = asyncio.get_running_loop()
            seen: asyncio.Future[int] = loop.create_future()

            class Probe(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    sock = transport.get_extra_info("socket")
                    seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    transport.close()

            server = await loop.create_server(Probe, sock=listening)
            _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
            try:
                return await asyncio.wait_for(seen, 10)
            finally:
                writer.close()
                server.close()

        return asyncio.run(main())

    def bound() -> socket.socket:  # as uvicorn's Config.bind_socket makes it
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        return sock

    assert nodelay_of_accepted(bound()) == 0  # the trap
    assert nodelay_of_accepted(tcp_socket(bound())) != 0
