"""An S3-compatible DVC remote on loopback: `moto_server` in a process of its own.

Tests use it as a team uses S3: a bucket, a `dvc remote` with an `endpointurl`, and credentials
from the environment. The credentials are moto's placeholders; nothing leaves the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class S3Remote:
    endpoint: str
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        """What a CI job gets from its secrets: credentials and a region."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, **_boto_credentials(self.env))
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        return keys


def _boto_credentials(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def run_moto_server(log_dir: Path, bucket: str = "team-dvc") -> Iterator[S3Remote]:
    """Start `moto_server` on a free loopback port with an empty `bucket`; stop it afterwards."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = (log_dir / "moto.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto_server did not start: {(log_dir / 'moto.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        remote = S3Remote(endpoint, bucket)
        client = boto3.client("s3", endpoint_url=endpoint, **_boto_credentials(remote.env))
        client.create_bucket(Bucket=bucket)
        yield remote
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
