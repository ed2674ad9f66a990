"""The real `.github/workflows/monitor.yml`, run by `act` for a hand-started drift check.

The team's `main` (a 3,000-row Adult sample, reproduced and pushed to a local-directory DVC
remote) lives in a bare repository that is the clone's `origin`; the GitHub API is the loopback
stand-in of tests/fake_github.py, reached through act's `--env GITHUB_API_URL=...`. Three runs of
the drift job: a batch like the training data (a summary, nothing else), a shifted one (a
summary, the retrain branch pushed to origin, one pull request), and one whose labels are all
changed but whose features do not drift (a quality alert: the same, for that reason). Then the
model-age job against main's model promoted into a real SQLite registry, fresh and 100 days old.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gitops_ml.lineage.dvclock import METRICS_PATH
from tests.fake_github import OWNER, REPO, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.act import ActRun, git, require_act, run_act
from tests.integration.conftest import run_in, sample_repo

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
        files=("Makefile", "requirements.lock", "requirements-runtime.lock", WORKFLOW),
        remote=base / "dvc-remote",
    )
    git(base, "clone", "-q", "--bare", str(repo), "origin.git")
    return base / "origin.git"


def monitor(
    origin: Path,
    shift: str,
    work: Path,
    job: str = "drift",
    secrets: dict[str, str] | None = None,
) -> Monitored:
    """Clone `origin` and run monitor.yml's `job` on the clone as a dispatch with this demo
    shift (one job at a time: their logs and summaries stay apart)."""
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
            secrets=secrets if secrets is not None else {"RETRAIN_TOKEN": TOKEN},
            act_args=("--job", job),
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


@pytest.fixture(scope="module")
def relabelled(
    origin: Path, shifted: Monitored, tmp_path_factory: pytest.TempPathFactory
) -> Monitored:
    return monitor(origin, "labels", tmp_path_factory.mktemp("relabelled"))


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


def test_changed_labels_without_drift_open_a_pull_request_for_the_quality_alert(
    relabelled: Monitored, shifted: Monitored, origin: Path
) -> None:
    """The batch of `none` with every label swapped: no feature drifts, the model fails the
    gate's thresholds on the labels, and the retraining pull request says that is why."""
    run, log = relabelled.run, relabelled.run.log
    assert run.returncode == 0, log[-6000:]
    assert run.step_ok("Drift check") and run.step_ok("Job summary"), log[-6000:]
    assert run.step_ok("Open the retraining pull request"), log[-6000:]
    summary = run.job_summary()
    assert "## Data drift: no drift" in summary, summary
    assert "model quality: **below the gate**" in summary, summary
    assert "::warning title=Model quality::on the batch's labels: roc_auc " in log
    assert "no drift; nothing to retrain" not in log
    assert "Running stage 'train'" in log  # retrained on the branch

    (pull,) = relabelled.github.pulls
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    assert pull["title"] == "Retrain: roc_auc, log_loss break gate.thresholds on a labelled batch"
    why = pull["body"].split("\n\n", 1)[0]
    assert why.startswith("**Why: a quality alert, without data drift.**"), pull["body"][:500]
    assert "the model breaks gate.thresholds on its 500 labelled rows: roc_auc " in why
    assert "check a sample of the batch's labels" in why
    assert "## Data drift: no drift" in pull["body"]

    # The shifted run's branch is replaced by this batch's (no pull request was open for it).
    assert branches(origin) == ["main", BRANCH]
    assert git(origin, "rev-parse", f"{BRANCH}~1") == git(origin, "rev-parse", "main")
    message = git(origin, "log", "-1", "--format=%B", BRANCH)
    assert message.startswith(pull["title"]) and "a quality alert without data drift" in message
    tracked = yaml.safe_load(git(origin, "show", f"{BRANCH}:data/source/batches.dvc"))
    assert tracked["outs"][0]["nfiles"] == 1


# -- the model-age job -------------------------------------------------------------------------

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def registry(origin: Path, relabelled: Monitored) -> Path:
    """main's model promoted into a SQLite registry: the database the read secret names."""
    main = origin.parent / "main"
    db = origin.parent / "registry.db"
    run_in(main, "gitops-ml", "promote", "--card", "",
           extra_env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})  # fmt: skip
    return db


def age_check(origin: Path, db: Path, work: Path) -> ActRun:
    return monitor(
        origin, "none", work, job="model-age", secrets={"MLFLOW_READ_URI": f"sqlite:///{db}"}
    ).run


def test_a_fresh_champion_passes_the_model_age_check(
    origin: Path, registry: Path, tmp_path: Path
) -> None:
    run = age_check(origin, registry, tmp_path)
    assert run.returncode == 0, run.log[-6000:]
    assert run.step_ok("Model age"), run.log[-6000:]
    summary = run.job_summary()
    assert summary.startswith("## Model age: ok"), summary
    assert "(version 1) holds model md5" in summary
    assert "the limit is 90 days (gitops.yaml monitoring.max_model_age_days)" in summary
    assert "Stale champion" not in run.log and "Running stage" not in run.log


def test_a_champion_older_than_the_limit_fails_the_model_age_check(
    origin: Path, registry: Path, tmp_path: Path
) -> None:
    """The version's creation time moved back 100 days in the registry's own database."""
    db = sqlite3.connect(registry)
    try:
        with db:
            db.execute("UPDATE model_versions SET creation_time = creation_time - ?",
                       (100 * DAY_MS,))  # fmt: skip
    finally:
        db.close()
    run = age_check(origin, registry, tmp_path)
    assert run.returncode != 0 and run.step_failed("Model age"), run.log[-6000:]
    summary = run.job_summary()
    assert summary.startswith("## Model age: **stale champion**"), summary
    assert "was registered 100.0 days ago" in summary and "more than --max-age-days 90" in summary
    # act 0.2.89 in host mode returns from a failing step without reading the rest of its
    # terminal, so the step's last line can be lost under load: the workflow annotates first.
    assert "::error title=Stale champion::too old: " in run.log
