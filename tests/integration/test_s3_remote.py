"""Team-scale storage: a DVC remote on S3-compatible storage (moto_server on loopback).

A pull request's job pushes what it reproduced; a fresh clone (the promotion job on main) pulls
exactly the outputs dvc.lock declares, without reproducing anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_ml.files import file_md5
from gitops_ml.lineage.dvclock import MODEL_PATH, TEST_PATH
from tests.integration.conftest import lock_hashes, run_in, sample_repo
from tests.integration.s3_remote import S3Remote

pytestmark = pytest.mark.slow

MODEL = MODEL_PATH


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, s3: S3Remote) -> Path:
    """A repo whose reproduced pipeline is committed and pushed to the S3 remote."""
    repo = sample_repo(tmp_path_factory.mktemp("s3") / "origin", 2000)
    run_in(repo, "dvc", "remote", "add", "-d", "storage", f"s3://{s3.bucket}/dvc")
    run_in(repo, "dvc", "remote", "modify", "storage", "endpointurl", s3.endpoint)
    run_in(repo, "git", "commit", "-q", "-am", "an S3 remote")
    run_in(repo, "dvc", "push", extra_env=s3.env)
    return repo


def _clone(origin: Path, dest: Path) -> Path:
    run_in(dest.parent, "git", "clone", "-q", str(origin), str(dest))
    return dest


def test_push_stores_every_cached_output(pushed: Path, s3: S3Remote) -> None:
    keys = s3.keys()
    model_md5 = lock_hashes(pushed)[f"train:{MODEL}"]
    assert f"dvc/files/md5/{model_md5[:2]}/{model_md5[2:]}" in keys
    status = run_in(pushed, "dvc", "status", "--cloud", extra_env=s3.env)
    assert "are in sync" in status.stdout, status.stdout


def test_fresh_clone_pulls_exactly_what_the_lock_declares(
    pushed: Path, s3: S3Remote, tmp_path: Path
) -> None:
    clone = _clone(pushed, tmp_path / "main")
    assert not (clone / MODEL).exists()
    run_in(clone, "dvc", "pull", extra_env=s3.env)
    declared = lock_hashes(clone)
    assert file_md5(clone / MODEL) == declared[f"train:{MODEL}"]
    assert file_md5(clone / TEST_PATH) == declared["split:data/processed/test.parquet"]
    # Everything the lock declares is in place: nothing to reproduce.
    status = run_in(clone, "dvc", "status")
    assert "up to date" in status.stdout.lower(), status.stdout


def test_pull_without_credentials_fails_and_says_so(pushed: Path, tmp_path: Path) -> None:
    clone = _clone(pushed, tmp_path / "nocreds")
    no_creds = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = run_in(clone, "dvc", "pull", check=False, extra_env=no_creds)
    assert proc.returncode != 0
    assert not (clone / MODEL).exists()
