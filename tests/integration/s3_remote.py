"""An S3-compatible DVC remote on loopback: `moto_server` in a process of its own.

Tests use it as a team uses S3: a bucket, a `dvc remote` with an `endpointurl`, and credentials
from the environment. The credentials are moto's placeholders; nothing leaves the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_ml.release.loadtest import stop_server
from tests.integration.mlflow_server import free_port

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

    def client(self) -> Any:
        """A boto3 S3 client of the server, with the credentials of `env`."""
        import boto3

        env = self.env
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys += [obj["Key"] for obj in page.get("Contents", [])]
        return keys


@contextmanager
def run_moto_server(log_dir: Path, bucket: str = "team-dvc") -> Iterator[S3Remote]:
    """Start `moto_server` on a free loopback port with an empty `bucket`; stop it afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (log_dir / "moto.log").open("wb") as log:
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
        remote.client().create_bucket(Bucket=bucket)
        yield remote
    finally:
        stop_server(proc)
