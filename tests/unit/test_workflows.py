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


def test_zizmor_pedantic_has_no_finding_and_every_ignore_says_why() -> None:
    """The pedantic persona (code smells too) finds nothing; what an inline comment ignores
    carries its reason on the same line."""
    proc = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona", "pedantic", *map(str, WORKFLOWS)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "zizmor: ignore[" in line:
                reason = line.split("zizmor: ignore[", 1)[1].split("]", 1)[1].strip()
                assert len(reason.split()) >= 3, f"{path.name}: an ignore without a reason: {line}"


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


# -- what the workflows share -------------------------------------------------------------------

MLFLOW_SECRETS = (
    "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)  # fmt: skip


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


@pytest.mark.parametrize("name", ["pr.yml", "monitor.yml", "promote.yml"])
def test_every_job_that_logs_to_mlflow_gets_the_same_credentials(name: str) -> None:
    (job,) = _load(name)["jobs"].values()
    for key in MLFLOW_SECRETS:
        assert job["env"].get(key) == f"${{{{ secrets.{key} }}}}", (name, key)


def test_ci_sets_up_node_and_cancels_only_pull_request_runs() -> None:
    doc = _load("ci.yml")
    assert doc["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"
    (job,) = doc["jobs"].values()
    uses = [s.get("uses", "") for s in job["steps"]]
    (node,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-node@")]
    assert node["with"]["node-version"] == "22"  # jsdom 29: ^20.19, ^22.13 or >=24
    test = next(i for i, s in enumerate(job["steps"]) if s.get("run") == "make test")
    assert uses.index(node["uses"]) < test


def _monitor_step(name: str) -> dict:
    (job,) = _load("monitor.yml")["jobs"].values()
    return next(s for s in job["steps"] if s.get("name") == name)


@pytest.mark.parametrize(("code", "remote"), [("1", ""), ("1", "storage"), ("0", "")])
def test_monitor_without_a_dvc_remote_says_what_to_configure(
    tmp_path: Path, code: str, remote: str
) -> None:
    from gitops_ml.monitor.retrain import NO_REMOTE_HINT

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "drift.md").write_text("## Data drift: **drift detected**\n")
    summary = tmp_path / "summary.md"
    script = tmp_path / "step.sh"
    script.write_text(_monitor_step("Job summary")["run"])
    env = {
        "PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary),
        "DRIFT_CODE": code, "DVC_REMOTE": remote,
    }  # fmt: skip
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert text.startswith("## Data drift")
    if code == "1" and not remote:
        # The same words as `gitops-ml retrain` refusing, in the summary and as a warning.
        assert f"No retraining pull request: {NO_REMOTE_HINT}" in text
        assert proc.stdout.startswith("::warning title=No DVC remote::No retraining pull request")
    else:
        assert "DVC remote" not in text and proc.stdout == ""
    opened = _monitor_step("Open the retraining pull request")["if"]
    assert opened == "steps.drift.outputs.code == '1' && steps.dvc.outputs.remote != ''"


def test_codeowners_cover_what_decides_a_release() -> None:
    """Every path that can loosen the gate or change what is promoted has an owner."""
    owned = []
    for line in (ROOT / ".github" / "CODEOWNERS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pattern, *owners = line.split()
            assert owners, line
            owned.append(pattern)
    for path in (
        ".github/workflows/pr.yml", "dvc.yaml", "dvc.lock", "params.yaml", "gitops.yaml",
        "src/gitops_ml/pr/gate.py", "src/gitops_ml/release/promote.py",
        "src/gitops_ml/lineage/artifacts.py", "src/gitops_ml/stages/split.py",
    ):  # fmt: skip
        assert (ROOT / path).exists(), path
        assert any(
            f"/{path}" == p or (p.endswith("/") and f"/{path}".startswith(p)) for p in owned
        ), path
