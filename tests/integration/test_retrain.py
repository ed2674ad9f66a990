"""`gitops-ml retrain`: a drifted batch becomes one retraining pull request, in a real repository.

The team's checkout of `main` (a 3,000-row Adult sample, reproduced, committed) pushes to a bare
`origin` and to a local-directory DVC remote; the GitHub API is the loopback stand-in of
tests/fake_github.py (the `github` fixture of tests/conftest.py). The tests run in file order: the retraining flow last, since it leaves the
checkout on the retrain branch. Without a DVC remote (the template's default) retrain refuses.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.files import file_md5
from tests.fake_github import OWNER, REPO, TOKEN, FakeGitHub
from tests.integration.act import git
from tests.integration.conftest import lock_hashes, run_in, sample_repo

pytestmark = pytest.mark.slow

BRANCH = "retrain/drift"
BATCH_ROWS = "500"  # of the 600 held-out rows; drift.min_rows is 500


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`main` reproduced, committed and pushed to a bare `origin` and to the DVC remote."""
    base = tmp_path_factory.mktemp("retrain")
    repo = sample_repo(base / "repo", 3000, remote=base / "dvc-remote")
    git(base, "init", "-q", "--bare", "origin.git")
    git(repo, "remote", "add", "origin", str(base / "origin.git"))
    git(repo, "push", "-q", "origin", "main")
    return repo


def gitops(repo: Path, gh: FakeGitHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": f"{OWNER}/{REPO}", "GITHUB_API_URL": gh.url}
    return run_in(repo, "gitops-ml", *args, check=False, extra_env=env)


def demo_batch(repo: Path, path: Path, shift: str) -> None:
    run_in(repo, "gitops-ml", "demo-batch", "--output", str(path), "--rows", BATCH_ROWS,
           "--seed", "3", "--shift", shift)  # fmt: skip


def drift(repo: Path, batch: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return run_in(repo, "gitops-ml", "drift", "--current", str(batch),
                  "--json", str(out / "drift.json"), "--markdown", str(out / "drift.md"),
                  check=False)  # fmt: skip


def retrain(repo: Path, gh: FakeGitHub, batch: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return gitops(repo, gh, "retrain", "--batch", str(batch),
                  "--drift-json", str(out / "drift.json"),
                  "--drift-markdown", str(out / "drift.md"))  # fmt: skip


def origin_branches(repo: Path) -> list[str]:
    out = git(repo, "ls-remote", "--heads", "origin")
    return [line.split("refs/heads/", 1)[1] for line in out.splitlines()]


def assert_clean_main(repo: Path) -> None:
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert not (repo / "data/source/batches").exists() or not any(
        (repo / "data/source/batches").iterdir()
    )


def test_a_batch_like_the_training_data_opens_nothing(
    repo: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.parquet"
    demo_batch(repo, batch, "none")
    proc = drift(repo, batch, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "drift.json").read_text())["drift"] is False
    # Called anyway, retrain reads the verdict and does nothing.
    proc = retrain(repo, github, batch, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no drift" in proc.stdout
    assert github.requests == []
    assert origin_branches(repo) == ["main"]
    assert_clean_main(repo)


def test_a_malformed_batch_is_refused_in_one_line(
    repo: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.parquet"
    demo_batch(repo, batch, "missing")
    pd.read_parquet(batch).drop(columns=["age"]).to_parquet(batch, index=False)
    proc = drift(repo, batch, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "age" in proc.stderr and not (tmp_path / "drift.json").exists()
    # A drift report forged for it: retrain checks the batch before touching anything.
    (tmp_path / "drift.json").write_text(json.dumps({"drift": True, "current": str(batch)}))
    (tmp_path / "drift.md").write_text("## Data drift: **drift detected**\n")
    proc = retrain(repo, github, batch, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert "batch.parquet" in errors[0] and "missing age" in errors[0]
    assert github.calls("POST") == []
    assert origin_branches(repo) == ["main"]
    assert_clean_main(repo)


def test_without_a_dvc_remote_retrain_refuses_before_branching(
    repo: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.parquet"
    demo_batch(repo, batch, "missing")
    proc = drift(repo, batch, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    config = repo / ".dvc" / "config"
    saved = config.read_bytes()
    run_in(repo, "dvc", "remote", "default", "--unset")  # the template's default: no remote
    try:
        proc = retrain(repo, github, batch, tmp_path)
    finally:
        config.write_bytes(saved)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "no default DVC remote" in errors[0]
    assert "`dvc remote add -d storage s3://" in errors[0] and "AWS_ACCESS_KEY_ID" in errors[0]
    assert "Team-scale storage: a DVC remote" in errors[0]
    assert "Running stage" not in proc.stdout
    assert github.requests == []  # refused before asking GitHub anything
    assert origin_branches(repo) == ["main"]
    assert_clean_main(repo)


def test_drift_opens_exactly_one_retraining_pull_request(
    repo: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    main_lock = lock_hashes(repo)
    main_sha = git(repo, "rev-parse", "HEAD")
    batch = tmp_path / "batch.parquet"
    demo_batch(repo, batch, "missing")
    proc = drift(repo, batch, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    drifted = json.loads((tmp_path / "drift.json").read_text())["drifted_features"]
    assert "workclass" in drifted

    # 1. Opening the pull request is refused once (the token lacks a permission): one error
    # line, the checkout is put back as it was; the branch stays on origin.
    github.fail("POST", rf"/repos/{OWNER}/{REPO}/pulls", 403, times=1)
    proc = retrain(repo, github, batch, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Running stage 'train'" in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pull-requests: write" in errors[0], proc.stderr
    assert_clean_main(repo)
    assert git(repo, "rev-parse", "HEAD") == main_sha
    assert lock_hashes(repo) == main_lock
    assert run_in(repo, "dvc", "status", "--json").stdout.strip() == "{}"
    assert github.pulls == [] and sorted(origin_branches(repo)) == ["main", BRANCH]

    # 2. Run again: the pushed branch is recognised and its pull request opened, no retraining.
    proc = retrain(repo, github, batch, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from an earlier run" in proc.stdout and "Running stage" not in proc.stdout
    assert "opened the retraining pull request #1" in proc.stdout
    posts = len(github.calls("POST", r"/pulls$"))

    # 3. And again: the open pull request is found; no second create request, no second PR.
    proc = retrain(repo, github, batch, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "already open" in proc.stdout
    assert len(github.calls("POST", r"/pulls$")) == posts == 2  # the refused one, then one
    assert len(github.pulls) == 1
    pull = github.pulls[0]
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    assert pull["title"].startswith("Retrain: drift detected in ")
    assert "workclass" in pull["title"]
    assert "### Features" in pull["body"] and "gitops-ml retrain" in pull["body"]
    assert "pushed to the DVC remote" in pull["body"]

    # The branch on origin: one commit on main with the batch DVC-tracked and a new dvc.lock.
    git(repo, "fetch", "-q", "origin")
    head = f"origin/{BRANCH}"
    assert git(repo, "rev-parse", f"{head}~1") == main_sha
    changed = set(git(repo, "diff", "--name-only", "main", head).splitlines())
    assert {"dvc.lock", "data/source/batches.dvc", "data/source/.gitignore"} <= changed
    assert "reports/metrics.json" in changed and "params.yaml" not in changed
    assert not any(name.endswith(".parquet") for name in changed)  # the batch is not in git
    lock = yaml.safe_load(git(repo, "show", f"{head}:dvc.lock"))
    ingest_out = lock["stages"]["ingest"]["outs"][0]["md5"]
    assert ingest_out != main_lock["ingest:data/raw/dataset.parquet"]
    tracked = yaml.safe_load(git(repo, "show", f"{head}:data/source/batches.dvc"))
    assert tracked["outs"][0]["path"] == "batches" and tracked["outs"][0]["nfiles"] == 1

    message = git(repo, "log", "-1", "--format=%B", head)
    md5 = file_md5(batch)
    added = f"data/source/batches/{datetime.now(UTC):%Y-%m-%d}-{md5[:8]}.parquet"
    assert f"Retrain-Batch: {added}" in message and f"Retrain-Batch-MD5: {md5}" in message

    # The batch and the retrained outputs went to the DVC remote: a fresh clone of the branch
    # pulls them, its pipeline is up to date, and its data holds the sample plus the batch.
    remote = Path(run_in(repo, "dvc", "remote", "list").stdout.split()[1])
    assert (remote / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    clone = tmp_path / "clone"
    origin = git(repo, "remote", "get-url", "origin")
    git(tmp_path, "clone", "-q", "--branch", BRANCH, origin, str(clone))
    run_in(clone, "dvc", "pull", "-q")
    assert file_md5(clone / added) == md5
    assert run_in(clone, "dvc", "status", "--json").stdout.strip() == "{}"
    raw = pd.read_parquet(clone / "data/raw/dataset.parquet")
    assert len(raw) == 3000 + int(BATCH_ROWS)

    # A fair comparison: appending the batch moved no row of main's train split into the new
    # test split (the split goes by row content), and the report says so.
    from gitops_ml.pr.report import seen_in_training

    base_lock = yaml.safe_load(git(clone, "show", "origin/main:dvc.lock"))
    test = pd.read_parquet(clone / "data/processed/test.parquet")
    seen = seen_in_training(clone, git(clone, "rev-parse", "origin/main"), base_lock, test)
    assert seen is not None and len(seen) == len(test) and int(seen.sum()) == 0
    report = run_in(clone, "gitops-ml", "report", "--base", "origin/main", "--output", "-").stdout
    assert f"Test rows the champion saw in training: 0 of {len(test)}." in report
