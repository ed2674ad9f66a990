"""A stand-in for the few GitHub REST endpoints the project calls, served on loopback.

Issue comments (list with pagination, create, update), pull requests (list by head, get one,
create) and the pull requests of a commit, kept in memory. A page holds at most `page_size` items
whatever `per_page` asks, so pagination is really followed; chosen calls can be told to fail (with
headers such as `Retry-After`).

Like GitHub Enterprise, paths may carry the `/api/v3` prefix (what CML calls for any host but
github.com); `serve_fake_github(tls=True)` serves HTTPS with a self-signed certificate made at test
time (`gh.ca_file`: trust it with NODE_EXTRA_CA_CERTS or SSL_CERT_FILE). Comments have authors
(`user.login`); the API's own identity is `gh.login`, by default the Actions bot, whose token may
not call `GET /user` (403) unless `user_endpoint` is set, like a personal token.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gitops_ml.pr.github import marker_tag

OWNER, REPO = "acme", "churn"
TOKEN = "ghs_test-token-123"
PAGE_SIZE = 2
ACTIONS_BOT = "github-actions[bot]"
API_PREFIX = "/api/v3"
MARKER = "pr-report"
TAG = marker_tag(MARKER)


@dataclass
class Failure:
    """Answer `status` to requests matching `method` and `path` (a regex), `times` times."""

    method: str
    path: str
    status: int
    times: int = 1_000
    message: str = "Injected failure"
    apply: bool = False  # perform the change anyway, like a 502 from a proxy after the write
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After


@dataclass
class FakeGitHub:
    """In-memory issue comments and pull requests of one repository."""

    url: str = ""
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    next_id: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)
    login: str = ACTIONS_BOT  # who the token is: the author of comments created through the API
    user_endpoint: bool = False  # GET /user answers (a user token) or 403s (the Actions token)
    page_size: int = PAGE_SIZE
    ca_file: Path | None = None

    def add_comment(self, number: int, body: str, login: str | None = None) -> dict[str, Any]:
        """A comment by `login`, by default the token's own identity."""
        self.next_id += 1
        comment = {
            "id": self.next_id,
            "body": body,
            "user": {"login": self.login if login is None else login},
            "html_url": f"https://github.test/{OWNER}/{REPO}/pull/{number}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def add_merged_pull(self, number: int, merge_commit_sha: str, head: str = "feature") -> None:
        """A pull request already merged as `merge_commit_sha` (what a push to main follows)."""
        self.pulls.append(
            {
                "number": number,
                "state": "closed",
                "merged_at": "2026-01-01T00:00:00Z",
                "merge_commit_sha": merge_commit_sha,
                "title": f"PR {number}",
                "body": "",
                "head": {"ref": head, "label": f"{OWNER}:{head}"},
                "base": {"ref": "main"},
                "html_url": f"https://github.test/{OWNER}/{REPO}/pull/{number}",
            }
        )

    def add_open_pull(self, number: int, head_sha: str, head: str = "feature") -> dict[str, Any]:
        """An open pull request whose head branch is at `head_sha`."""
        pull = {
            "number": number,
            "state": "open",
            "title": f"PR {number}",
            "body": "",
            "head": {"ref": head, "label": f"{OWNER}:{head}", "sha": head_sha},
            "base": {"ref": "main"},
            "html_url": f"https://github.test/{OWNER}/{REPO}/pull/{number}",
        }
        self.pulls.append(pull)
        return pull

    def fail(self, method: str, path: str, status: int, **kwargs: Any) -> None:
        self.failures.append(Failure(method, path, status, **kwargs))

    def calls(self, method: str, path_regex: str = "") -> list[dict[str, Any]]:
        return [
            r for r in self.requests if r["method"] == method and re.search(path_regex, r["path"])
        ]

    def marked(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.get(number, []) if TAG in c["body"]]


def _handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    base = f"/repos/{OWNER}/{REPO}"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def _reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length)) if length else None
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            path = split.path
            prefix = API_PREFIX if path.startswith(API_PREFIX + "/") else ""
            path = path[len(prefix) :]
            with gh.lock:
                gh.requests.append(
                    {
                        "method": method,
                        "path": path,
                        "prefix": prefix,
                        "query": query,
                        "headers": dict(self.headers),
                        "json": payload,
                    }
                )
                failure = next(
                    (
                        f
                        for f in gh.failures
                        if f.times > 0 and f.method == method and re.fullmatch(f.path, path)
                    ),
                    None,
                )
                if failure is not None:
                    failure.times -= 1
                    if failure.apply:
                        self._route(method, path, query, payload, base, prefix)
                    self._reply(failure.status, {"message": failure.message}, failure.headers)
                    return
                status, data, headers = self._route(method, path, query, payload, base, prefix)
            self._reply(status, data, headers)

        def _route(
            self,
            method: str,
            path: str,
            query: dict[str, str],
            payload: Any,
            base: str,
            prefix: str = "",
        ) -> tuple[int, Any, dict[str, str]]:
            if path == "/user" and method == "GET":
                if gh.user_endpoint:
                    return 200, {"login": gh.login}, {}
                return 403, {"message": "Resource not accessible by integration"}, {}
            if m := re.fullmatch(rf"{base}/issues/(\d+)/comments", path):
                number = int(m[1])
                if method == "GET":
                    return self._page(gh.comments.get(number, []), prefix + path, query)
                if method == "POST":
                    return 201, gh.add_comment(number, payload["body"]), {}
            if (m := re.fullmatch(rf"{base}/issues/comments/(\d+)", path)) and method == "PATCH":
                for comment in (c for cs in gh.comments.values() for c in cs):
                    if comment["id"] == int(m[1]):
                        comment["body"] = payload["body"]
                        return 200, comment, {}
                return 404, {"message": "Not Found"}, {}
            if path == f"{base}/pulls" and method == "GET":
                pulls = [
                    p
                    for p in gh.pulls
                    if p["state"] == query.get("state", "open")
                    and ("head" not in query or p["head"]["label"] == query["head"])
                ]
                return 200, pulls, {}
            if (m := re.fullmatch(rf"{base}/pulls/(\d+)", path)) and method == "GET":
                pull = next((p for p in gh.pulls if p["number"] == int(m[1])), None)
                if pull is None:
                    return 404, {"message": "Not Found"}, {}
                return 200, pull, {}
            if path == f"{base}/pulls" and method == "POST":
                label = f"{OWNER}:{payload['head']}"
                if any(p["head"]["label"] == label and p["state"] == "open" for p in gh.pulls):
                    return 422, {"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]}, {}  # fmt: skip
                number = len(gh.pulls) + 1
                pull = {
                    "number": number,
                    "state": "open",
                    "title": payload["title"],
                    "body": payload["body"],
                    "head": {"ref": payload["head"], "label": label},
                    "base": {"ref": payload["base"]},
                    "html_url": f"https://github.test/{OWNER}/{REPO}/pull/{number}",
                }
                gh.pulls.append(pull)
                return 201, pull, {}
            if (
                m := re.fullmatch(rf"{base}/commits/([0-9a-f]{{40}})/pulls", path)
            ) and method == "GET":
                return 200, [p for p in gh.pulls if p.get("merge_commit_sha") == m[1]], {}
            return 404, {"message": "Not Found"}, {}

        def _page(
            self, items: list[dict[str, Any]], path: str, query: dict[str, str]
        ) -> tuple[int, Any, dict[str, str]]:
            """Like GitHub, but never more than gh.page_size per page, whatever per_page asks."""
            page = int(query.get("page", "1"))
            size = min(int(query.get("per_page", "30")), gh.page_size)
            chunk = items[(page - 1) * size : page * size]
            headers = {}
            if page * size < len(items):
                nxt = urllib.parse.urlencode({**query, "page": page + 1})
                headers["Link"] = (
                    f'<{gh.url}{path}?{nxt}>; rel="next", <{gh.url}{path}>; rel="last"'
                )
            return 200, chunk, headers

    return Handler


def make_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed server certificate for `host` (an IP address) and its key, as PEM files.

    It is its own trust anchor: give its path to NODE_EXTRA_CA_CERTS (Node) or SSL_CERT_FILE.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-github.test")])
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=True, key_cert_sign=False,
        crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "fake-github.pem", directory / "fake-github.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def serve_fake_github(host: str = "127.0.0.1", *, tls: bool = False) -> Iterator[FakeGitHub]:
    """Run the fake on a free port of `host` until the block ends; over HTTPS if `tls`."""
    gh = FakeGitHub()
    server = ThreadingHTTPServer((host, 0), _handler(gh))
    with tempfile.TemporaryDirectory(prefix="fake-github-") as tmp:
        scheme = "http"
        if tls:
            cert_file, key_file = make_certificate(Path(tmp), host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            gh.ca_file = cert_file
            scheme = "https"
        gh.url = f"{scheme}://{host}:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        try:
            yield gh
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
