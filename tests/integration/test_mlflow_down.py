"""MLflow down: `promote` and `verify` fail within seconds, in one line naming the URI.

Against a refused port (127.0.0.1:1) and a socket that accepts connections and never answers,
each command must exit 2 with one `error:` line that names the tracking URI, within the bounds
the CLI sets for MLflow's HTTP calls (`gitops_ml.errors.MLFLOW_HTTP_LIMITS`): 15 s for a refused
connection; a silent server is found out by one request (`tracking.require_answer`) instead of
MLflow's three: its 15 s timeout and the start-up within 30 s (three would take 45 s). Both
commands run at once, as they are independent.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_ml.errors import MLFLOW_HTTP_LIMITS
from tests.integration.conftest import sample_repo, template_env

pytestmark = pytest.mark.slow

BOUNDS = {"refused": 15.0, "silent": 30.0}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_repo(tmp_path_factory.mktemp("down") / "repo", 1500)


@pytest.fixture
def silent() -> Iterator[str]:
    """A loopback port whose connections are queued by the kernel and never answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_promote_and_verify_fail_fast_naming_the_uri(
    repo: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    uri = "http://127.0.0.1:1" if kind == "refused" else request.getfixturevalue("silent")
    env = template_env(repo)
    env["MLFLOW_TRACKING_URI"] = uri
    for name in MLFLOW_HTTP_LIMITS:  # the CLI's defaults, not the machine's
        env.pop(name, None)
    start = time.perf_counter()
    procs = {
        cmd: subprocess.Popen(
            ["gitops-ml", cmd, "--json", str(repo.parent / f"{cmd}-{kind}.json")],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in ("promote", "verify")
    }
    results = {}
    for cmd, proc in procs.items():
        try:
            _, err = proc.communicate(timeout=BOUNDS[kind] + 60)
        finally:
            proc.kill()
        results[cmd] = (proc.returncode, err, time.perf_counter() - start)
    for cmd, (code, err, seconds) in results.items():
        print(f"\n{cmd} against a {kind} server: exit {code} after {seconds:.1f} s")
        lines = err.strip().splitlines()
        assert code == 2, err
        assert len(lines) == 1 and lines[0].startswith("error: ") and uri in lines[0], err
        assert seconds <= BOUNDS[kind], f"{cmd}: {seconds:.1f} s against a {kind} server"
