"""pr.yml and promote.yml with a DVC remote on S3 (moto_server on loopback), run by act.

Pull requests read, the jobs on main write. pr.yml logs in with the read-only role (OIDC): the
repository variable AWS_READ_ROLE_ARN names it, and the login action exchanges the job's OIDC token
for short-lived credentials (here a stand-in of aws-actions/configure-aws-credentials asks moto's
STS, as act has no OIDC token service). promote.yml, after the merge, writes with the `production`
environment's access keys (act passes the secrets it is given: it treats `environment:` as a label).
No AWS variable is in act's own environment: only the login step can give DVC its credentials.

Main's outputs are pushed to the bucket and GitHub's cache is empty, so every output a run did
not compute came from the remote:
- a code change: the stages it does not touch are pulled, not run; the changed stage runs and
  nothing is pushed, even with keys among the secrets;
- a README-only change: main's outputs are pulled and no stage runs;
- the code change merged: promote.yml reproduces main's dvc.lock and pushes what the pull
  request could not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fake_github import TOKEN, serve_fake_github
from tests.integration.act import (
    ActRun,
    code_change_branch,
    docs_branch,
    forged_branch,
    git,
    run_pr_workflow,
    run_promote_workflow,
    sample_origin,
)
from tests.integration.conftest import ROOT, lock_hashes, run_in
from tests.integration.s3_remote import S3Remote

pytestmark = pytest.mark.slow

READ_ROLE = "arn:aws:iam::123456789012:role/gitops-ml-dvc-read"
#: Static keys a repository may still hold as secrets: pull requests must not use them.
METRICS = "reports/metrics.json"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, s3: S3Remote) -> Path:
    remote = {"url": f"s3://{s3.bucket}/dvc", "endpointurl": s3.endpoint}
    repo = sample_origin(tmp_path_factory.mktemp("act-s3") / "origin", remote=remote)
    run_in(repo, "dvc", "push", extra_env=s3.env)  # what main's runs leave in the remote
    code_change_branch(repo, "code")
    docs_branch(repo, "docs")
    forged_branch(repo, "forged", s3.env)
    return repo


def _read_role(s3: S3Remote) -> dict:
    return {
        "env": {"GITOPS_ML_TEST_STS_ENDPOINT": s3.endpoint},
        "act_args": ("--var", f"AWS_READ_ROLE_ARN={READ_ROLE}", "--var", "AWS_REGION=us-east-1"),
    }


@pytest.fixture(scope="module")
def code_run(origin: Path, s3: S3Remote, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    before = set(s3.keys())
    run = run_pr_workflow(
        origin, "code", 51, tmp_path_factory.mktemp("code"), secrets=KEYS, **_read_role(s3)
    )
    pushed = set(s3.keys()) - before
    (run.artifacts / "pushed.json").write_text(json.dumps(sorted(pushed)))
    return run


@pytest.fixture(scope="module")
def docs_run(origin: Path, s3: S3Remote, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(origin, "docs", 52, tmp_path_factory.mktemp("docs"), **_read_role(s3))


@pytest.fixture(scope="module")
def forged_run(origin: Path, s3: S3Remote, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr_workflow(
        origin, "forged", 53, tmp_path_factory.mktemp("forged"), **_read_role(s3)
    )


@pytest.fixture(scope="module")
def promote_run(
    origin: Path, s3: S3Remote, code_run: ActRun, tmp_path_factory: pytest.TempPathFactory
) -> ActRun:
    """Pull request 51 merged: promote.yml on main with the production environment's keys."""
    before = set(s3.keys())
    with serve_fake_github() as gh:
        run = run_promote_workflow(
            origin, "code", tmp_path_factory.mktemp("promote"),
            env={"GITHUB_API_URL": gh.url, "GITHUB_REPOSITORY": "acme/churn"},
            secrets={"GITHUB_TOKEN": TOKEN, **KEYS},
        )  # fmt: skip
    pushed = set(s3.keys()) - before
    (run.artifacts / "pushed.json").write_text(json.dumps(sorted(pushed)))
    return run


def test_a_code_change_pulls_what_did_not_change_and_pushes_nothing(code_run: ActRun) -> None:
    log = code_run.log
    assert code_run.returncode == 0, log[-6000:]
    assert code_run.step_ok("Log in to AWS with OIDC"), log[-6000:]
    assert f"Assumed role {READ_ROLE} with a web identity token" in log
    assert "Using the given access keys" not in log  # the repository's keys are not read
    assert code_run.step_ok("Reproduce the pipeline"), log[-6000:]
    assert "No DVC remote" not in log
    assert "Running stage 'evaluate'" in log
    for stage in ("ingest", "split", "train"):
        assert f"Running stage '{stage}'" not in log  # pulled from the remote instead
    assert json.loads((code_run.artifacts / "pushed.json").read_text()) == []
    gate = json.loads((code_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is True


def test_a_readme_change_pulls_mains_outputs_and_runs_no_stage(docs_run: ActRun) -> None:
    log = docs_run.log
    assert docs_run.returncode == 0, log[-6000:]
    assert docs_run.step_ok("Log in to AWS with OIDC"), log[-6000:]
    assert "Cache not found for input keys" in log  # GitHub's cache is empty here
    assert docs_run.step_ok("Pull main's outputs"), log[-6000:]
    assert "no DVC dependency changed: the outputs are main's" in log
    assert not docs_run.step_ok("Reproduce the pipeline")
    assert "Running stage" not in log
    report = (docs_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" not in report


def test_committed_numbers_are_a_claim_the_runner_reproduces(
    forged_run: ActRun, origin: Path
) -> None:
    """A PR's dvc.lock is its own claim: the runner reproduces against main's record, so the
    champion's metrics committed for a one-stump model (its outputs in the remote, its lock
    consistent) are recomputed, and the gate fails on the stump's real numbers."""
    log = forged_run.log
    assert forged_run.step_ok("Reproduce the pipeline"), log[-6000:]
    for stage in ("train", "evaluate"):  # their dependencies differ from main's record
        assert f"Running stage '{stage}'" in log, log[-6000:]
    assert "Running stage 'ingest'" not in log  # unchanged: pulled from the remote
    assert forged_run.step_failed("Quality gate"), log[-6000:]
    assert "FAIL threshold:roc_auc" in log
    gate = json.loads((forged_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is False
    forged = json.loads(git(origin, "show", "forged:reports/metrics.json"))
    rules = {r["name"]: r for r in gate["rules"]}
    assert rules["threshold:roc_auc"]["observed"] < forged["roc_auc"] - 0.05
    # What the PR committed and what the runner computed are not the same: said, not hidden.
    assert any("reports/metrics.json" in w for w in gate["warnings"]), gate["warnings"]
    ran = yaml.safe_load((forged_run.artifacts / "pr-report" / "dvc.lock").read_text())
    claimed = yaml.safe_load(git(origin, "show", "forged:dvc.lock"))

    def metrics_md5(lock: dict) -> str:
        (md5,) = [o["md5"] for o in lock["stages"]["evaluate"]["outs"] if o["path"] == METRICS]
        return md5

    assert metrics_md5(ran) != metrics_md5(claimed)
    assert ran["stages"]["train"] == claimed["stages"]["train"]  # the stump, rebuilt byte for byte


def test_after_the_merge_promote_pushes_what_the_pull_request_reproduced(
    promote_run: ActRun, origin: Path
) -> None:
    log = promote_run.log
    assert promote_run.returncode == 0, log[-6000:]
    assert promote_run.step_ok("Log in to AWS with access keys"), log[-6000:]
    assert "Using the given access keys" in log
    assert not promote_run.step_ok("Log in to AWS with OIDC")
    for step in ("Promote", "Verify", "Reproduce main's outputs for pull requests"):
        assert promote_run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    assert "DVC push failed" not in log
    pushed = {
        key.removeprefix("dvc/files/md5/").replace("/", "").removesuffix(".dir")
        for key in json.loads((promote_run.artifacts / "pushed.json").read_text())
    }
    # What the merged dvc.lock declares that main's did not: the outputs the PR run computed.
    assert _new_outputs(origin, "main", "code") <= pushed, pushed
    assert lock_hashes(origin)["train:models/model.joblib"] not in pushed  # already there


def _new_outputs(repo: Path, base: str, head: str) -> set[str]:
    """md5s of the DVC-cached outputs `head`'s dvc.lock declares and `base`'s does not."""

    def cached(rev: str) -> set[str]:
        lock = yaml.safe_load(git(repo, "show", f"{rev}:dvc.lock"))
        tracked = git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()
        return {
            out["md5"].removesuffix(".dir")
            for stage in lock["stages"].values()
            for out in stage.get("outs", [])
            if not any(t == out["path"] or t.startswith(out["path"] + "/") for t in tracked)
        }

    new = cached(head) - cached(base)
    assert new, f"{head} declares no new cached output"
    return new


def test_readme_oidc_snippet_is_the_workflows_step() -> None:
    """The README's OIDC login step is, word for word, the one pr.yml's runs executed; promote.yml
    and monitor.yml run it with the write role."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- oidc-login -->")
    block = readme[start:].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "role-to-assume: ${{ vars.AWS_READ_ROLE_ARN }}" in block
    lines = [line.strip() for line in block.strip().splitlines()]
    for workflow, role in (
        ("pr.yml", "AWS_READ_ROLE_ARN"), ("promote.yml", "AWS_WRITE_ROLE_ARN"),
        ("monitor.yml", "AWS_WRITE_ROLE_ARN"),
    ):  # fmt: skip
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        steps = [line.strip() for line in text.splitlines()]
        expected = [line.replace("AWS_READ_ROLE_ARN", role) for line in lines]
        first = steps.index(expected[0])
        assert steps[first : first + len(expected)] == expected, workflow
