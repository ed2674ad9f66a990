"""The real `.github/workflows/monitor.yml`, run by `act` for a hand-started drift check.

The team's `main` (a 3,000-row Adult sample, reproduced and pushed to a local-directory DVC
remote) lives in a bare repository that is the clone's `origin`; the GitHub API is the loopback
stand-in of tests/fake_github.py, reached through act's `--env GITHUB_API_URL=...`. Two runs: a
batch like the training data (a summary, nothing else) and a shifted one (a summary, the retrain
branch pushed to origin, one pull request).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gitops_ml.lineage.dvclock import METRICS_PATH
from tests.fake_github import OWNER, REPO, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.act import ActRun, git, require_act, run_act
from tests.integration.conftest import sample_repo

pytestmark = pytest.mark.slow

WORKFLOW = ".github/workflows/monitor.yml"
BRANCH = "retrain/drift"
ROWS = "500"  # of the 600 held-out rows of the sample; drift.min_rows is 500


@dataclass(frozen=True)
class Monitored:
    run: ActRun
    github: FakeGitHub


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository holding `main`, reproduced; its data and model in the DVC remote."""
    require_act()
    base = tmp_path_factory.mktemp("act-monitor")
    repo = sample_repo(
        base / "main",
        3000,
        files=("Makefile", "requirements.lock", WORKFLOW),
        remote=base / "dvc-remote",
    )
    git(base, "clone", "-q", "--bare", str(repo), "origin.git")
    return base / "origin.git"


def monitor(origin: Path, shift: str, work: Path) -> Monitored:
    """Clone `origin` and run monitor.yml on the clone as a dispatch with this demo shift."""
    clone = work / "clone"
    git(work, "clone", "-q", str(origin), str(clone))
    event = {
        "ref": "refs/heads/main",
        "inputs": {"shift": shift, "rows": ROWS},
        "repository": {"default_branch": "main", "full_name": f"{OWNER}/{REPO}"},
    }
    with serve_fake_github() as gh:
        run = run_act(
            clone,
            work,
            event_name="workflow_dispatch",
            workflow=WORKFLOW,
            event=event,
            env={"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": f"{OWNER}/{REPO}"},
            secrets={"RETRAIN_TOKEN": TOKEN},
        )
    return Monitored(run, gh)


@pytest.fixture(scope="module")
def unshifted(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    return monitor(origin, "none", tmp_path_factory.mktemp("unshifted"))


@pytest.fixture(scope="module")
def shifted(
    origin: Path, unshifted: Monitored, tmp_path_factory: pytest.TempPathFactory
) -> Monitored:
    return monitor(origin, "missing", tmp_path_factory.mktemp("shifted"))


def branches(origin: Path) -> list[str]:
    return sorted(git(origin, "for-each-ref", "--format=%(refname:short)", "refs/heads").split())


def test_a_batch_like_the_training_data_only_writes_the_summary(
    unshifted: Monitored, origin: Path
) -> None:
    run, log = unshifted.run, unshifted.run.log
    assert run.returncode == 0, log[-6000:]
    for step in ("Install", "Get main's data and model", "Get the newest batch", "Drift check"):
        assert run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    assert "pulled from the DVC remote" in log and "Running stage" not in log
    summary = run.job_summary()
    assert "## Data drift: no drift" in summary, summary
    assert "| feature |" in summary
    assert not run.step_ok("Open the retraining pull request")
    assert unshifted.github.requests == []
    assert branches(origin) == ["main"]
    report = (run.artifacts / "drift-report" / "drift.md").read_text()
    assert report.strip() == summary.strip()


def test_a_shifted_batch_opens_one_retraining_pull_request(
    shifted: Monitored, origin: Path
) -> None:
    run, log = shifted.run, shifted.run.log
    assert run.returncode == 0, log[-6000:]
    assert run.step_ok("Drift check") and run.step_ok("Job summary"), log[-6000:]
    assert run.step_ok("Open the retraining pull request"), log[-6000:]
    summary = run.job_summary()
    assert "## Data drift: **drift detected**" in summary, summary
    assert "**workclass**" in summary
    assert "No RETRAIN_TOKEN" not in log  # the secret was given
    assert "Running stage 'train'" in log  # retrained on the branch

    gh = shifted.github
    assert len(gh.calls("POST", r"/pulls$")) == 1
    (pull,) = gh.pulls
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    assert pull["title"].startswith("Retrain: drift detected in ")
    assert "## Data drift: **drift detected**" in pull["body"]
    # Every call carried RETRAIN_TOKEN, not the workflow's own token.
    assert {r["headers"].get("Authorization") for r in gh.requests} == {f"Bearer {TOKEN}"}

    assert branches(origin) == ["main", BRANCH]
    assert git(origin, "rev-parse", f"{BRANCH}~1") == git(origin, "rev-parse", "main")
    changed = git(origin, "diff", "--name-only", "main", BRANCH).split()
    assert {"dvc.lock", "data/source/batches.dvc", METRICS_PATH} <= set(changed)
    tracked = yaml.safe_load(git(origin, "show", f"{BRANCH}:data/source/batches.dvc"))
    assert tracked["outs"][0]["nfiles"] == 1
