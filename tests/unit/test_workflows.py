"""Workflow lint: actionlint (with shellcheck) and zizmor pass, and unsafe patterns are refused."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make install` (it is in requirements.lock)")
    return path


def test_there_are_workflows() -> None:
    assert any(p.name == "ci.yml" for p in WORKFLOWS)


def test_actionlint_with_shellcheck() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _tool("shellcheck")
    proc = subprocess.run(
        [_tool("actionlint"), *map(str, WORKFLOWS)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_default_policy() -> None:
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_unsafe_patterns(path: Path) -> None:
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert "write-all" not in text
    assert "pull_request_target" not in text
    assert "permissions" in doc, "set workflow-level permissions explicitly"
    for job in doc["jobs"].values():
        assert "timeout-minutes" in job, "every job needs a timeout"
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"unpinned: {uses}"
            run = step.get("run", "")
            assert "${{ github.event." not in run, f"expression expanded in a script: {run!r}"
