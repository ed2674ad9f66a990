"""The real CML 0.20.6 and the Python poster share one PR comment, as pr-comment.yml runs them.

CML is installed once per module (tests/integration/cml.py: from ../shared/vendor/cml, else from
the npm registry; the test is skipped only when neither works) and put on PATH, where
iterative/setup-cml leaves it. pr-comment.yml's steps are taken from the workflow file and run
with bash as a runner would, against the HTTPS stand-in of tests/fake_github.py (self-signed
certificate, GitHub Enterprise's `/api/v3` paths, which is what CML calls for any host but
github.com; the steps' curl calls use GITHUB_API_URL). Only `make install` is replaced, by a
no-op (this interpreter already has gitops-ml). The whole workflow runs under act in
tests/integration/test_act_pr_comment.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_github import OWNER, REPO, TAG, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.cml import install_cml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "pr-comment.yml"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
PR = 7
BOT = "github-actions[bot]"
WATERMARK = f'![](https://cml.dev/watermark.png#{HEAD_SHA} "CML watermark gitops-ml pr-report")'


@pytest.fixture(scope="module")
def cml_bin() -> Iterator[Path]:
    """The real `cml` executable, installed without running any package install scripts."""
    with tempfile.TemporaryDirectory(prefix="cml-") as tmp:
        yield install_cml(Path(tmp))


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def runner(tmp_path: Path, cml_bin: Path) -> dict[str, Path]:
    temp, work, bin_dir = tmp_path / "runner-temp", tmp_path / "workspace", tmp_path / "bin"
    for d in (temp, work / ".venv" / "bin", bin_dir):
        d.mkdir(parents=True)
    # CML on PATH, as setup-cml leaves it.
    (bin_dir / "cml").symlink_to(cml_bin)
    _script(bin_dir / "make", '#!/usr/bin/env bash\necho "make $*" >> "$FAKE_LOG"\n')
    (work / ".venv" / "bin" / "gitops-ml").symlink_to(Path(sys.executable).parent / "gitops-ml")
    return {"temp": temp, "work": work, "bin": bin_dir, "log": tmp_path / "calls.log"}


def _step_script(name: str) -> str:
    (job,) = yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
    return next(s for s in job["steps"] if s.get("name") == name)["run"]


def test_the_cml_step_calls_cml_the_way_it_accepts() -> None:
    """The exact command line is run below; here, the arguments CML 0.20.6 rejects stay out."""
    run = "\n".join(
        line
        for line in _step_script("Post with CML").splitlines()
        if not line.strip().startswith("#")
    )
    assert 'GITHUB_SHA="$HEAD_SHA" cml comment update --target="pr/$PR"' in run
    assert "--commit-sha" not in run and "--head-sha" not in run  # exclusive with --target
    assert 'GITHUB_SHA="$HEAD_SHA"' in run  # the watermark's sha: the evaluated commit


def run_step(
    runner: dict[str, Path], gh: FakeGitHub, name: str, report: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run pr-comment.yml's step `name` with bash, as a runner would, against the stand-in."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    (job,) = doc["jobs"].values()
    if report is not None:  # what the "Check the artifact" step writes
        (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n{report}")
    output = runner["temp"] / f"output-{name}"
    output.write_text("")
    assert gh.ca_file is not None
    env = {
        "PATH": f"{runner['bin']}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(runner["temp"]),
        "RUNNER_TEMP": str(runner["temp"]),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "workflow_run",
        "GITHUB_SHA": "f" * 40,  # the default branch's commit on workflow_run, not the PR's
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        # The stand-in in place of github.com: CML derives <server>/api/v3 from --repo.
        "GITHUB_SERVER_URL": gh.url,
        "GITHUB_API_URL": f"{gh.url}/api/v3",
        "NODE_EXTRA_CA_CERTS": str(gh.ca_file),  # CML (Node)
        "SSL_CERT_FILE": str(gh.ca_file),  # the Python poster
        "CURL_CA_BUNDLE": str(gh.ca_file),  # the steps' curl
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "FAKE_LOG": str(runner["log"]),
        **{k: str(v) for k, v in job["env"].items()},
        # The step's own `env:`, with the expressions' values.
        "PR": str(PR),
        "HEAD_SHA": HEAD_SHA,
        "REPO_TOKEN": TOKEN,
        "GITHUB_TOKEN": TOKEN,
    }
    script = runner["temp"] / "step.sh"
    script.write_text(_step_script(name))
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=runner["work"], env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc, outputs


def ours(gh: FakeGitHub) -> list[dict[str, Any]]:
    return [c for c in gh.comments.get(PR, []) if c["user"]["login"] == BOT]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github(tls=True) as gh:
        gh.page_size = 100  # GitHub's real maximum; CML reads one page of its default 30
        yield gh


def test_cml_and_the_poster_keep_one_comment(runner: dict[str, Path], github: FakeGitHub) -> None:
    github.add_comment(PR, "LGTM", "alice")
    planted_marker = github.add_comment(PR, f"{TAG}\n## A fake report", "mallory")
    github.add_comment(PR + 1, "another pull request", "alice")
    github.add_open_pull(PR, HEAD_SHA)

    # 0. The artifact names the PR whose head the run tested (asked of the API with curl).
    artifact = runner["temp"] / "pr-report"
    artifact.mkdir()
    (artifact / "pr-number").write_text(f"{PR}\n")
    (artifact / "pr-report.md").write_text("## Report v1\n")
    _, out = run_step(runner, github, "Check the artifact")
    assert out == {"post": "true", "pr": str(PR)}

    # 1. CML creates the comment on the PR.
    _, out = run_step(runner, github, "Check the comments CML would pick")
    assert out == {"cml": "true"}
    proc, out = run_step(runner, github, "Post with CML", "## Report v1\n")
    assert out == {"posted": "true"}, proc.stdout + proc.stderr
    (comment,) = ours(github)
    assert comment["body"].startswith(f"{TAG}\n## Report v1")
    assert comment["body"].rstrip().endswith(WATERMARK)  # the evaluated commit, not GITHUB_SHA
    assert all(r["prefix"] == "/api/v3" for r in github.requests)
    assert github.comments[PR + 1] == [github.comments[PR + 1][0]]

    # 2. CML again: the same comment, updated.
    run_step(runner, github, "Post with CML", "## Report v2\n")
    assert ours(github) == [comment] and "Report v2" in comment["body"]

    # 3. The Python poster (the fallback step): the same comment.
    run_step(runner, github, "Post with the Python poster", "## Report v3\n")
    assert ours(github) == [comment]
    assert "Report v3" in comment["body"] and "Report v2" not in comment["body"]
    assert comment["body"].rstrip().endswith(WATERMARK) and comment["body"].count(TAG) == 1

    # 4. CML again finds the poster's comment by its watermark.
    _, out = run_step(runner, github, "Check the comments CML would pick")
    assert out == {"cml": "true"}
    proc, out = run_step(runner, github, "Post with CML", "## Report v4\n")
    assert out == {"posted": "true"}, proc.stdout + proc.stderr
    assert ours(github) == [comment] and "Report v4" in comment["body"]

    # 5. A watermark planted by another account: CML is kept away (it would edit the newest
    #    watermarked comment, whoever wrote it) and the poster edits only our own comment.
    planted_body = f"{TAG}\n## Approve me\n\n{WATERMARK}"
    planted = github.add_comment(PR, planted_body, "mallory")
    proc, out = run_step(runner, github, "Check the comments CML would pick")
    assert out == {}
    assert "another account carries the CML watermark" in proc.stdout
    proc, _ = run_step(runner, github, "Post with the Python poster", "## Report v5\n")
    assert ours(github) == [comment] and "Report v5" in comment["body"]
    assert "mallory" in proc.stderr and "left untouched" in proc.stderr

    assert planted["body"] == planted_body
    assert planted_marker["body"] == f"{TAG}\n## A fake report"
    assert github.comments[PR][0]["body"] == "LGTM"
    assert len(github.comments[PR]) == 4
    assert "make install" in runner["log"].read_text()
    patched = {r["path"] for r in github.calls("PATCH")}
    assert patched == {f"/repos/{OWNER}/{REPO}/issues/comments/{comment['id']}"}
    assert json.dumps(github.comments).count("Report v5") == 1
