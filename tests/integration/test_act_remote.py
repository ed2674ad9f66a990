"""pr.yml with a DVC remote on S3 (moto_server on loopback), run by act, logged in both ways.

The recommended way is OIDC: the repository variable AWS_ROLE_ARN names a role, and the login
action exchanges the job's OIDC token for short-lived credentials (here a stand-in of
aws-actions/configure-aws-credentials asks moto's STS, as act has no OIDC token service). The
alternative is the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY secrets. Either way no AWS variable is
in act's own environment: only the login step can give DVC its credentials.

Main's outputs are pushed to the bucket and GitHub's cache is empty, so every output a run did
not compute came from the remote:
- a code change (OIDC): the stages it does not touch are pulled, not run; the changed stage runs
  and its outputs are pushed;
- a README-only change (access keys): main's outputs are pulled and no stage runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.act import (
    ActRun,
    code_change_branch,
    docs_branch,
    run_pr_workflow,
    sample_origin,
)
from tests.integration.conftest import ROOT, run_in
from tests.integration.s3_remote import S3Remote

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::123456789012:role/gitops-ml-dvc"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, s3: S3Remote) -> Path:
    remote = {"url": f"s3://{s3.bucket}/dvc", "endpointurl": s3.endpoint}
    repo = sample_origin(tmp_path_factory.mktemp("act-s3") / "origin", remote=remote)
    run_in(repo, "dvc", "push", extra_env=s3.env)  # what main's runs leave in the remote
    code_change_branch(repo, "code")
    docs_branch(repo, "docs")
    return repo


@pytest.fixture(scope="module")
def oidc_run(origin: Path, s3: S3Remote, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    before = set(s3.keys())
    run = run_pr_workflow(
        origin, "code", 51, tmp_path_factory.mktemp("oidc"),
        env={"GITOPS_ML_TEST_STS_ENDPOINT": s3.endpoint},
        act_args=("--var", f"AWS_ROLE_ARN={ROLE}", "--var", "AWS_REGION=us-east-1"),
    )  # fmt: skip
    pushed = set(s3.keys()) - before
    (run.artifacts / "pushed.json").write_text(json.dumps(sorted(pushed)))
    return run


@pytest.fixture(scope="module")
def keys_run(origin: Path, s3: S3Remote, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(
        origin, "docs", 52, tmp_path_factory.mktemp("keys"),
        secrets={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )  # fmt: skip


def test_oidc_pulls_what_did_not_change_and_pushes_what_did(oidc_run: ActRun) -> None:
    log = oidc_run.log
    assert oidc_run.returncode == 0, log[-6000:]
    assert oidc_run.step_ok("Log in to AWS with OIDC"), log[-6000:]
    assert f"Assumed role {ROLE} with a web identity token" in log
    assert not oidc_run.step_ok("Log in to AWS with access keys")
    assert oidc_run.step_ok("Reproduce the pipeline"), log[-6000:]
    assert "No DVC remote" not in log
    assert "Running stage 'evaluate'" in log
    for stage in ("ingest", "split", "train"):
        assert f"Running stage '{stage}'" not in log  # pulled from the remote instead
    assert oidc_run.step_ok("Push the DVC cache"), log[-6000:]
    pushed = json.loads((oidc_run.artifacts / "pushed.json").read_text())
    assert pushed, "the changed stage's outputs were not pushed"
    assert all(key.startswith("dvc/files/md5/") for key in pushed)
    gate = json.loads((oidc_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is True


def test_access_keys_pull_main_outputs_and_run_no_stage(keys_run: ActRun) -> None:
    log = keys_run.log
    assert keys_run.returncode == 0, log[-6000:]
    assert keys_run.step_ok("Log in to AWS with access keys"), log[-6000:]
    assert "Using the given access keys" in log
    assert not keys_run.step_ok("Log in to AWS with OIDC")
    assert "Cache not found for input keys" in log  # GitHub's cache is empty here
    assert keys_run.step_ok("Pull main's outputs"), log[-6000:]
    assert "no DVC dependency changed: the outputs are main's" in log
    assert not keys_run.step_ok("Reproduce the pipeline")
    assert "Running stage" not in log
    report = (keys_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" not in report


def test_readme_oidc_snippet_is_the_workflows_step() -> None:
    """The README's OIDC login step is, word for word, the one these runs executed (and the one
    promote.yml and monitor.yml run)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- oidc-login -->")
    block = readme[start:].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "role-to-assume: ${{ vars.AWS_ROLE_ARN }}" in block
    lines = [line.strip() for line in block.strip().splitlines()]
    for workflow in ("pr.yml", "promote.yml", "monitor.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        steps = [line.strip() for line in text.splitlines()]
        first = steps.index(lines[0])
        assert steps[first : first + len(lines)] == lines, workflow
