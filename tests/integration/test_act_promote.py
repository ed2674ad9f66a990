"""The real `.github/workflows/promote.yml`, run by `act` for a push to main.

Once without a tracking server (a dry run into a sqlite registry on the runner), once with
`MLFLOW_TRACKING_URI` set to a real `mlflow server` on loopback.

main's pipeline was reproduced and pushed to a DVC remote (a local directory here) by the pull
request that was merged; the workflow pulls exactly the model dvc.lock declares, promotes it,
verifies the registry, writes the job summary and comments on the merged pull request through
the GitHub REST API (the loopback stand-in of tests/fake_github.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_ml.files import file_md5
from gitops_ml.pr.github import marker_tag
from tests.fake_github import OWNER, REPO, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.act import ActRun, git, require_act, run_act
from tests.integration.conftest import lock_hashes, sample_repo
from tests.integration.mlflow_server import run_mlflow_server

pytestmark = pytest.mark.slow

WORKFLOW = ".github/workflows/promote.yml"
PR = 7
MODEL_NAME = "adult-income"


@pytest.fixture(scope="module")
def main_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`main` after merging pull request #7: reproduced, committed and pushed to the remote."""
    require_act()
    base = tmp_path_factory.mktemp("act-promote")
    return sample_repo(
        base / "origin",
        2000,
        files=("Makefile", "requirements.lock", "requirements-runtime.lock", WORKFLOW),
        remote=base / "dvc-remote",
        message=f"Merge pull request #{PR} from {OWNER}/better-model",
    )


@pytest.fixture(scope="module")
def fake_github(main_repo: Path) -> Iterator[FakeGitHub]:
    with serve_fake_github() as gh:
        gh.add_merged_pull(PR, git(main_repo, "rev-parse", "HEAD"))
        yield gh


def run_promote(main_repo: Path, gh: FakeGitHub, work: Path, tracking_uri: str = "") -> ActRun:
    clone = work / "clone"
    git(work, "clone", "-q", str(main_repo), str(clone))
    sha = git(clone, "rev-parse", "HEAD")
    event = {
        "ref": "refs/heads/main",
        "after": sha,
        "head_commit": {"id": sha, "message": git(clone, "log", "-1", "--format=%B")},
        "repository": {"default_branch": "main", "full_name": f"{OWNER}/{REPO}"},
    }
    secrets = {"GITHUB_TOKEN": TOKEN}
    if tracking_uri:
        secrets["MLFLOW_TRACKING_URI"] = tracking_uri
    return run_act(
        clone,
        work,
        event_name="push",
        workflow=WORKFLOW,
        event=event,
        env={"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": f"{OWNER}/{REPO}"},
        secrets=secrets,
    )


@pytest.fixture(scope="module")
def dry_run(
    main_repo: Path, fake_github: FakeGitHub, tmp_path_factory: pytest.TempPathFactory
) -> ActRun:
    return run_promote(main_repo, fake_github, tmp_path_factory.mktemp("dry"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback: the team's tracking server (the secret's value)."""
    with run_mlflow_server(tmp_path_factory.mktemp("registry")) as uri:
        yield uri


@pytest.fixture(scope="module")
def real_run(
    main_repo: Path,
    fake_github: FakeGitHub,
    registry: str,
    dry_run: ActRun,  # the dry run first: both post to the same pull request
    tmp_path_factory: pytest.TempPathFactory,
) -> ActRun:
    return run_promote(main_repo, fake_github, tmp_path_factory.mktemp("real"), registry)


def test_without_a_tracking_server_it_is_a_dry_run(dry_run: ActRun) -> None:
    log = dry_run.log
    assert dry_run.returncode == 0, log[-6000:]
    for step in ("Install", "Promote", "Verify", "Comment on the merged pull request"):
        assert dry_run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    assert "Running stage" not in log  # pulled from the remote, not rebuilt
    summary = dry_run.job_summary()
    assert "dry run" in summary.lower(), summary
    assert "champion" in summary


def test_promotes_the_declared_model_and_comments_once(
    real_run: ActRun, main_repo: Path, registry: str, fake_github: FakeGitHub
) -> None:
    import mlflow

    assert real_run.returncode == 0, real_run.log[-6000:]
    summary = real_run.job_summary()
    assert "dry run" not in summary.lower()
    # A link into the server's registry UI (act masks the secret URI itself as ***).
    assert f"/#/models/{MODEL_NAME}/versions/" in summary, summary
    client = mlflow.MlflowClient(tracking_uri=registry, registry_uri=registry)
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    declared = lock_hashes(main_repo)["train:models/model.joblib"]
    assert champion.tags["gitops_ml.model_md5"] == declared
    assert champion.tags["gitops_ml.git_sha"] == git(main_repo, "rev-parse", "HEAD")
    assert champion.tags["gitops_ml.pr_number"] == str(PR)
    # One sticky promotion comment on the merged PR, updated by the second run.
    posted = [c for c in fake_github.comments.get(PR, []) if marker_tag("promotion") in c["body"]]
    assert len(posted) == 1
    assert f"version {champion.version}" in posted[0]["body"].lower()


def test_saves_mains_outputs_for_pull_requests(dry_run: ActRun, main_repo: Path) -> None:
    """What pr.yml restores: every object of main's dvc.lock, pulled (not rebuilt), under the
    lock's key, each object's content matching its name."""
    assert dry_run.step_ok("Reproduce main's outputs for pull requests"), dry_run.log[-6000:]
    assert "DVC push failed" not in dry_run.log  # main writes the remote; pull requests only read
    assert dry_run.step_ok("Save main's DVC cache"), dry_run.log[-6000:]
    (entry,) = (dry_run.artifacts.parent / "gh-cache").iterdir()
    assert entry.name.startswith("dvc-cache-Linux-")
    objects = {p.parent.name + p.name: p for p in entry.glob("md5/*/*")}
    for name, path in objects.items():
        assert file_md5(path) == name.removesuffix(".dir"), name
    names = {n.removesuffix(".dir") for n in objects}
    tracked = git(main_repo, "ls-files").splitlines()  # `cache: false` outputs live in git
    cached = {
        md5.removesuffix(".dir")
        for key, md5 in lock_hashes(main_repo).items()
        if not any(
            t == key.split(":", 1)[1] or t.startswith(key.split(":", 1)[1] + "/") for t in tracked
        )
    }
    assert lock_hashes(main_repo)["train:models/model.joblib"] in cached
    assert cached <= names, cached - names
