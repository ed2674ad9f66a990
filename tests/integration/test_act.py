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
import shutil
from pathlib import Path

import pytest

from tests.integration.act import ActRun, git, require_act, run_act
from tests.integration.conftest import ROOT, SAMPLE, adult_sample, copy_template, run_in, set_params

pytestmark = pytest.mark.slow

PR_WORKFLOW = ".github/workflows/pr.yml"
#: Gate limits a 3,000-row sample clears with the default model (the shipped ones are for Adult).
SAMPLE_GATE = {
    "thresholds": {"roc_auc": 0.8, "log_loss": 0.45},
    "worst_slice": {"metric": "roc_auc", "min": 0.7, "min_rows": 50},
}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's repository: `main` reproduced and committed, plus two PR branches."""
    require_act()
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
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main: the pipeline on a sample")

    # Each PR is what a contributor pushes: the change, reproduced, dvc.lock and metrics committed.
    git(repo, "checkout", "-q", "-b", "good")
    set_params(repo, evaluate={"importance_repeats": 3})
    run_in(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a harmless change")

    git(repo, "checkout", "-q", "-b", "weak", "main")
    set_params(repo, train={"hyperparams": {"max_iter": 1, "max_depth": 1}})
    run_in(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a weak model: one stump")
    git(repo, "checkout", "-q", "main")
    return repo


def run_pr_workflow(origin: Path, branch: str, number: int, work: Path) -> ActRun:
    """Clone `origin` at `branch` (so `origin/main` exists, as after actions/checkout) and run
    pr.yml on it with act, as for pull request `number` into main."""
    clone = work / "clone"
    git(work, "clone", "-q", "--branch", branch, str(origin), str(clone))
    head_sha = git(clone, "rev-parse", "HEAD")
    event = {
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"ref": branch, "sha": head_sha},
            "base": {"ref": "main"},
        },
    }
    return run_act(clone, work, event_name="pull_request", workflow=PR_WORKFLOW, event=event)


@pytest.fixture(scope="module")
def good_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(origin, "good", 41, tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def weak_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(origin, "weak", 42, tmp_path_factory.mktemp("weak"))


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
        assert good_run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    # The real install step ran, and found the fixture's .venv up to date.
    assert "make: Nothing to be done for 'install'." in log
    assert "No DVC remote" in log  # no secrets: the notice, then a full reproduction
    assert "Running stage 'train'" in log
    report = (good_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert report.strip()
    assert (good_run.artifacts / "pr-report" / "pr-number").read_text().strip() == "41"
    gate = json.loads((good_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is True
    assert (good_run.artifacts / "pr-report" / "figures" / "roc.png").stat().st_size > 0
    assert "Quality gate" in report and "❌" not in report
    assert good_run.job_summary().strip() == report.strip()


def test_weak_model_fails_the_gate_but_still_uploads(weak_run: ActRun) -> None:
    log = weak_run.log
    assert weak_run.returncode != 0, log[-6000:]
    assert weak_run.step_ok("Reproduce the pipeline"), log[-6000:]
    assert weak_run.step_ok("Report"), log[-6000:]
    assert weak_run.step_failed("Quality gate"), log[-6000:]
    assert "FAIL threshold:roc_auc" in log
    assert "Job failed" in log
    # The upload runs after the failed gate, so the comment can say why it failed.
    assert (weak_run.artifacts / "pr-report" / "pr-number").read_text().strip() == "42"
    gate = json.loads((weak_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is False
    report = (weak_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" in report
    assert "threshold:roc_auc" in report
    assert weak_run.job_summary().strip() == report.strip()
