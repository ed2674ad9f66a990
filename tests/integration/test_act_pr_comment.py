"""The real `.github/workflows/pr-comment.yml`, run by `act` for a finished run of pr.yml.

`act workflow_run` runs it in host mode on a throw-away copy of the template, with GitHub played
by the HTTPS stand-in of tests/fake_github.py: act's `--github-instance` points GITHUB_SERVER_URL
and GITHUB_API_URL at it (GitHub Enterprise's `/api/v3`), so the workflow's curl calls, the real
CML and the Python poster all talk to it, trusting its certificate through NODE_EXTRA_CA_CERTS,
CURL_CA_BUNDLE and SSL_CERT_FILE. The actions that would download something are replaced by the
fixtures in tests/fixtures/actions/: download-artifact hands over the report this test writes,
setup-cml installs the real CML 0.20.6 with npm (tests/integration/cml.py says from where; the
test is skipped when it cannot be installed), setup-python puts this virtualenv on PATH.

Runs on one PR, in order: the first posts through CML, the second (a failed gate) updates that
comment, the third finds a watermark planted by another account, so CML is skipped and the Python
poster updates only our comment; a last one, for a run still awaiting approval, does nothing.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_github import OWNER, REPO, TAG, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.act import ActRun, git, require_act, run_act
from tests.integration.cml import CML_VERSION, install_cml, vendored
from tests.integration.conftest import ROOT, copy_template

pytestmark = pytest.mark.slow

WORKFLOW = ".github/workflows/pr-comment.yml"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
PR = 7
BOT = "github-actions[bot]"
WATERMARK = f'![](https://cml.dev/watermark.png#{HEAD_SHA} "CML watermark gitops-ml pr-report")'
FALLBACK = ("Check out the default branch", "Set up Python", "Post with the Python poster")


@dataclass(frozen=True)
class Posted:
    run: ActRun
    comments: list[dict[str, Any]]  # the PR's comments right after the run
    requests: list[dict[str, Any]]  # what the run asked of the API


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's default branch: the template with its workflow, Makefile and lockfile."""
    require_act()
    repo = copy_template(tmp_path_factory.mktemp("act-pr-comment") / "origin")
    for rel in ("Makefile", "requirements.lock", "requirements-runtime.lock", WORKFLOW):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the template")
    return repo


@pytest.fixture(scope="module")
def cml_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the setup-cml fixture needs: CML is installed here first (skipping the module when
    that cannot work), which also fills the npm cache the fixture's installs then read."""
    npm_cache = tmp_path_factory.mktemp("npm-cache")
    with tempfile.TemporaryDirectory(prefix="cml-") as tmp:
        install_cml(Path(tmp), npm_cache)
    source = vendored()
    return {
        "GITOPS_ML_TEST_CML": str(source) if source is not None else "",
        "npm_config_cache": str(npm_cache),
        "npm_config_prefer_offline": "true",
        "npm_config_update_notifier": "false",
    }


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    """The PR, open at the commit pr.yml tested, with a reviewer's comment; another PR."""
    with serve_fake_github(tls=True) as gh:
        gh.page_size = 100  # GitHub's real maximum; CML reads one page of its default 30
        gh.add_open_pull(PR, HEAD_SHA)
        gh.add_comment(PR, "LGTM", "alice")
        gh.add_comment(PR + 1, "another pull request", "alice")
        yield gh


def post(
    origin: Path,
    gh: FakeGitHub,
    cml_env: dict[str, str],
    work: Path,
    report: str,
    conclusion: str = "success",
) -> Posted:
    """Run pr-comment.yml with act for a pr.yml run on PR that ended in `conclusion` and uploaded
    `report`."""
    clone = work / "clone"
    git(work, "clone", "-q", str(origin), str(clone))
    artifact = work / "artifacts" / "pr-report"  # what the download-artifact fixture hands over
    artifact.mkdir(parents=True)
    (artifact / "pr-number").write_text(f"{PR}\n")
    (artifact / "pr-report.md").write_text(report)
    event = {
        "workflow_run": {
            "id": 4242,
            "event": "pull_request",
            "conclusion": conclusion,
            "head_sha": HEAD_SHA,
            "head_branch": "feature",
            "head_repository": {"id": 99},
        },
        "repository": {"default_branch": "main", "full_name": f"{OWNER}/{REPO}"},
    }
    assert gh.ca_file is not None
    seen = len(gh.requests)
    run = run_act(
        clone,
        work,
        event_name="workflow_run",
        workflow=WORKFLOW,
        event=event,
        env={
            "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
            "NODE_EXTRA_CA_CERTS": str(gh.ca_file),  # CML (Node)
            "CURL_CA_BUNDLE": str(gh.ca_file),  # the steps' curl
            "SSL_CERT_FILE": str(gh.ca_file),  # the Python poster
            **cml_env,
        },
        secrets={"GITHUB_TOKEN": TOKEN},
        act_args=("--github-instance", gh.url.removeprefix("https://")),
    )
    return Posted(run, copy.deepcopy(gh.comments.get(PR, [])), gh.requests[seen:])


@pytest.fixture(scope="module")
def first(
    origin: Path,
    github: FakeGitHub,
    cml_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Posted:
    return post(origin, github, cml_env, tmp_path_factory.mktemp("first"), "## Report v1\n")


@pytest.fixture(scope="module")
def second(
    first: Posted,
    origin: Path,
    github: FakeGitHub,
    cml_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Posted:
    # A failed gate still has its report posted.
    work = tmp_path_factory.mktemp("second")
    return post(origin, github, cml_env, work, "## Report v2\n", conclusion="failure")


@pytest.fixture(scope="module")
def planted(
    second: Posted,
    origin: Path,
    github: FakeGitHub,
    cml_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Posted, dict[str, Any]]:
    """Another account pastes our watermark into a comment of its own, then pr.yml runs again."""
    comment = github.add_comment(PR, f"{TAG}\n## Approve me\n\n{WATERMARK}", "mallory")
    run = post(origin, github, cml_env, tmp_path_factory.mktemp("planted"), "## Report v3\n")
    return run, comment


@pytest.fixture(scope="module")
def unapproved(
    planted: tuple[Posted, dict[str, Any]],
    origin: Path,
    github: FakeGitHub,
    cml_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Posted:
    """A fork's first run, still waiting for a maintainer: nothing uploaded, nothing to post."""
    work = tmp_path_factory.mktemp("unapproved")
    return post(origin, github, cml_env, work, "## Report v4\n", conclusion="action_required")


def ours(comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in comments if c["user"]["login"] == BOT]


def test_the_first_run_posts_one_comment_through_cml(first: Posted) -> None:
    run, log = first.run, first.run.log
    assert run.returncode == 0, log[-6000:]
    for step in ("Download the report", "Check the artifact", "Check the comments CML would pick"):
        assert run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    assert run.step_ok("Set up CML") and run.step_ok("Post with CML"), log[-6000:]
    assert "falling back" not in log
    for step in FALLBACK:
        assert not run.step_ok(step), f"fallback step {step!r} ran\n{log[-6000:]}"
    (comment,) = ours(first.comments)
    assert comment["body"].startswith(f"{TAG}\n## Report v1")
    assert comment["body"].rstrip().endswith(WATERMARK)  # the evaluated commit's sha
    assert [c["body"] for c in first.comments] == ["LGTM", comment["body"]]
    # Every call went to the stand-in's GitHub Enterprise API with the workflow's token.
    assert first.requests and all(r["prefix"] == "/api/v3" for r in first.requests)
    for r in first.requests:
        auth = {k.lower(): v for k, v in r["headers"].items()}["authorization"]
        assert auth in (f"Bearer {TOKEN}", f"token {TOKEN}"), r
    assert [r["method"] for r in first.requests if r["method"] != "GET"] == ["POST"]
    assert any(r["path"] == f"/repos/{OWNER}/{REPO}/pulls/{PR}" for r in first.requests)


def test_the_second_run_updates_that_comment(first: Posted, second: Posted) -> None:
    run, log = second.run, second.run.log
    assert run.returncode == 0, log[-6000:]
    assert run.step_ok("Post with CML"), log[-6000:]
    assert not any(run.step_ok(step) for step in FALLBACK), log[-6000:]
    (before,) = ours(first.comments)
    (comment,) = ours(second.comments)
    assert comment["id"] == before["id"]
    assert comment["body"].startswith(f"{TAG}\n## Report v2") and "v1" not in comment["body"]
    assert comment["body"].rstrip().endswith(WATERMARK)
    assert len(second.comments) == 2
    patched = [r["path"] for r in second.requests if r["method"] != "GET"]
    assert patched == [f"/repos/{OWNER}/{REPO}/issues/comments/{comment['id']}"]


def test_a_planted_watermark_leaves_the_post_to_the_python_poster(
    second: Posted, planted: tuple[Posted, dict[str, Any]]
) -> None:
    posted, comment = planted
    run, log = posted.run, posted.run.log
    assert run.returncode == 0, log[-6000:]
    assert "another account carries the CML watermark" in log
    assert not run.step_ok("Set up CML") and not run.step_ok("Post with CML"), log[-6000:]
    for step in FALLBACK:
        assert run.step_ok(step), f"fallback step {step!r} did not succeed\n{log[-6000:]}"
    assert "make: Nothing to be done for 'install-runtime'." in log  # the real install step ran
    assert "by mallory carry the pr-report marker" in log and "left untouched" in log
    (before,) = ours(second.comments)
    (ours_now,) = ours(posted.comments)
    assert ours_now["id"] == before["id"]
    assert "## Report v3" in ours_now["body"] and "v2" not in ours_now["body"]
    assert ours_now["body"].rstrip().endswith(WATERMARK) and ours_now["body"].count(TAG) == 1
    (mallory,) = (c for c in posted.comments if c["user"]["login"] == "mallory")
    assert mallory == comment  # untouched
    assert len(posted.comments) == 3
    patched = [r["path"] for r in posted.requests if r["method"] != "GET"]
    assert patched == [f"/repos/{OWNER}/{REPO}/issues/comments/{before['id']}"]


def test_a_run_awaiting_approval_posts_nothing(
    planted: tuple[Posted, dict[str, Any]], unapproved: Posted
) -> None:
    run, log = unapproved.run, unapproved.run.log
    assert run.returncode == 0, log[-6000:]
    assert not run.step_ok("Download the report") and not run.step_ok("Check the artifact")
    assert unapproved.requests == []
    assert unapproved.comments == planted[0].comments


def test_the_fixture_installs_the_workflows_cml_version() -> None:
    assert f"version: {CML_VERSION}" in (ROOT / WORKFLOW).read_text()
