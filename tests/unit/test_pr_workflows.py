"""pr.yml and pr-comment.yml: their structure, and pr-comment's scripts run as GitHub runs them.

The scripts are taken from the workflow files and run with `bash -eo pipefail` like a runner,
with `gh`, `npm`, `cml` and `make` replaced by small fakes on PATH and the Python fallback posting
to the in-memory GitHub of test_github.py. The whole pr.yml runs under act in
tests/integration/test_act.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_github import OWNER, REPO, TAG, TOKEN, FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
CML_WATERMARK = f'![](https://cml.dev/watermark.png#{HEAD_SHA} "CML watermark gitops-ml pr-report")'


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = doc["jobs"].values()
    return job["steps"]


def step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in steps(doc) if s.get("name") == name)


def index(doc: dict[str, Any], name: str) -> int:
    return next(i for i, s in enumerate(steps(doc)) if s.get("name") == name)


# -- structure ----------------------------------------------------------------------------------


def test_pr_workflow_uploads_after_the_gate_even_when_it_fails() -> None:
    doc = load("pr.yml")
    assert doc["permissions"] == {"contents": "read"}
    assert doc["jobs"]["reproduce"].get("permissions") is None
    order = [s.get("name") for s in steps(doc)]
    gate, report, upload = (index(doc, n) for n in ("Quality gate", "Report", "Upload the report"))
    assert gate < report < upload, order
    assert "!cancelled()" in step(doc, "Report")["if"]
    assert "!cancelled()" in step(doc, "Upload the report")["if"]
    assert "if" not in step(doc, "Quality gate")  # its exit code is the job's verdict
    checkout = steps(doc)[0]
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    paths = step(doc, "Upload the report")["with"]["path"].split()
    assert set(paths) == {
        "reports/pr-report.md", "reports/gate.json", "reports/pr-number", "reports/figures/",
    }  # fmt: skip


def test_dvc_remote_steps_need_credentials() -> None:
    doc = load("pr.yml")
    for name in ("Pull the DVC cache", "Push the DVC cache"):
        s = step(doc, name)
        assert set(s["env"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert 'if [[ -n "${AWS_ACCESS_KEY_ID:-}"' in s["run"]


def test_pr_comment_never_runs_pr_code() -> None:
    doc = load("pr-comment.yml")
    assert doc["permissions"] == {}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {
        "actions": "read", "pull-requests": "write", "issues": "write",
    }  # fmt: skip
    assert "github.event.workflow_run.event == 'pull_request'" in job["if"]
    download = steps(doc)[0]
    assert download["uses"].startswith("actions/download-artifact@")
    assert download["with"]["path"].startswith("${{ runner.temp }}")  # outside the workspace
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    checkouts = [s for s in steps(doc) if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 1
    # No ref or repository: the default branch of this repository, never the PR's head.
    assert checkouts[0]["with"] == {"persist-credentials": False}
    assert index(doc, "Check out the default branch") > index(doc, "Post with CML")
    # The PR's branch names the concurrency group only; no step ever sees it.
    text = yaml.safe_dump(doc["jobs"])
    assert "head_branch" not in text and "head_repository" not in text


def test_pr_comment_posts_one_at_a_time_and_skips_unapproved_runs() -> None:
    doc = load("pr-comment.yml")
    group = doc["concurrency"]["group"]
    assert "github.event.workflow_run.head_branch" in group
    assert "github.event.workflow_run.head_repository.id" in group
    assert doc["concurrency"]["cancel-in-progress"] is False  # never cut a post in half
    (job,) = doc["jobs"].values()
    assert "github.event.workflow_run.conclusion != 'action_required'" in job["if"]
    assert "steps.watermarks.outputs.cml == 'true'" in step(doc, "Post with CML")["if"]


# -- pr-comment's scripts ---------------------------------------------------------------------


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def runner(tmp_path: Path) -> dict[str, Path]:
    """A runner's directories and a PATH with fakes for gh, npm and make."""
    temp, work, bin_dir = tmp_path / "runner-temp", tmp_path / "workspace", tmp_path / "bin"
    for d in (temp / "pr-report", work, bin_dir):
        d.mkdir(parents=True)
    # gh api repos/<repo>/pulls/<n> --jq .head.sha: the PR's head commit, or a 404.
    # gh api --paginate repos/<repo>/issues/<n>/comments... --jq ...: $FAKE_COMMENTS, the lines
    # the real jq filter prints ([login, body] as JSON).
    _fake(
        bin_dir, "gh",
        'echo "gh $*" >> "$FAKE_LOG"\n'
        'if [[ $2 == --paginate ]]; then\n'
        '  [[ $3 == "repos/$GITHUB_REPOSITORY/issues/${FAKE_PR:-7}/comments?per_page=100" ]] || '
        '{ echo "gh: Not Found (HTTP 404)" >&2; exit 1; }\n'
        '  [[ $4 == --jq ]] || exit 3\n'
        '  cat "${FAKE_COMMENTS:-/dev/null}"; exit 0\n'
        'fi\n'
        '[[ $2 == "repos/$GITHUB_REPOSITORY/pulls/${FAKE_PR:-7}" ]] || '
        '{ echo "gh: Not Found (HTTP 404)" >&2; exit 1; }\n'
        'echo "${FAKE_PR_HEAD:-' + HEAD_SHA + '}"\n',
    )  # fmt: skip
    # npm install --prefix P ...: fails when FAKE_NPM_FAILS, else installs a fake cml in P/bin.
    _fake(
        bin_dir, "npm",
        'echo "npm $*" >> "$FAKE_LOG"\n'
        '[[ -z ${FAKE_NPM_FAILS:-} ]] || { echo "npm ERR! network" >&2; exit 1; }\n'
        'prefix=$4; mkdir -p "$prefix/bin"\n'
        'printf \'#!/usr/bin/env bash\\necho "cml $*" >> "$FAKE_LOG"\\n'
        'cp "${@: -1}" "$FAKE_LOG.body"\\necho "$GITHUB_SHA" > "$FAKE_LOG.sha"\\n'
        'exit ${FAKE_CML_EXIT:-0}\\n\' > "$prefix/bin/cml"\n'
        'chmod +x "$prefix/bin/cml"\n',
    )  # fmt: skip
    _fake(bin_dir, "make", 'echo "make $*" >> "$FAKE_LOG"\n')
    return {"temp": temp, "work": work, "bin": bin_dir, "log": tmp_path / "calls.log"}


def run_step(
    runner: dict[str, Path], name: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run pr-comment.yml's step `name` as a runner would; return it and its outputs."""
    doc = load("pr-comment.yml")
    (job,) = doc["jobs"].values()
    output = runner["temp"] / f"output-{name}"
    output.write_text("")
    full_env = {
        "PATH": f"{runner['bin']}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(runner["temp"]),
        "RUNNER_TEMP": str(runner["temp"]),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_ACTIONS": "true",
        "FAKE_LOG": str(runner["log"]),
        **{k: str(v) for k, v in job["env"].items()},
        **env,
    }
    script = runner["temp"] / "step.sh"
    script.write_text(step(doc, name)["run"])
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=runner["work"], env=full_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return proc, outputs


def write_artifact(runner: dict[str, Path], pr: str, report: str | None = "## Report\n") -> None:
    art = runner["temp"] / "pr-report"
    (art / "pr-number").write_text(pr)
    if report is not None:
        (art / "pr-report.md").write_text(report)


def test_check_accepts_a_matching_pr(runner: dict[str, Path]) -> None:
    write_artifact(runner, "7\n", "## Report\n\n| a | b |\n")
    proc, out = run_step(runner, "Check the artifact", HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "true", "pr": "7"}
    body = (runner["temp"] / "pr-comment.md").read_text()
    assert body == f"{TAG}\n## Report\n\n| a | b |\n"


@pytest.mark.parametrize(
    "bad", ["", "abc", "-3", "0", "7 8", "7;id", "$(id)", "1e3", "99999999999", "٣"]
)
def test_check_refuses_a_pr_number_that_is_not_an_integer(
    runner: dict[str, Path], bad: str
) -> None:
    write_artifact(runner, bad)
    proc, out = run_step(runner, "Check the artifact", HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 1
    assert "not a pull request number" in proc.stdout
    assert "post" not in out
    assert not runner["log"].exists()  # not even the API was asked


def test_check_refuses_a_report_aimed_at_another_pr(runner: dict[str, Path]) -> None:
    """A PR's own pr.yml can upload any number: only the PR whose head is this run's counts."""
    write_artifact(runner, "8")
    proc, out = run_step(
        runner, "Check the artifact", HEAD_SHA=HEAD_SHA, FAKE_PR="8", FAKE_PR_HEAD="f" * 40
    )
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "false"}
    assert not (runner["temp"] / "pr-comment.md").exists()


def test_check_fails_on_an_unknown_pr(runner: dict[str, Path]) -> None:
    write_artifact(runner, "9")
    proc, out = run_step(runner, "Check the artifact", HEAD_SHA=HEAD_SHA, FAKE_PR="7")
    assert proc.returncode != 0
    assert "post" not in out


def test_check_skips_a_run_without_report(runner: dict[str, Path]) -> None:
    write_artifact(runner, "7", report=None)
    proc, out = run_step(runner, "Check the artifact", HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "false"}
    assert "no report" in proc.stdout


def test_check_refuses_a_bad_head_sha(runner: dict[str, Path]) -> None:
    write_artifact(runner, "7")
    proc, _ = run_step(runner, "Check the artifact", HEAD_SHA="main; id")
    assert proc.returncode == 1


def test_cml_posts_with_the_pinned_version(runner: dict[str, Path]) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n## Report\n")
    proc, out = run_step(runner, "Post with CML", PR="7", HEAD_SHA=HEAD_SHA, REPO_TOKEN=TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert out == {"posted": "true"}
    calls = runner["log"].read_text()
    assert "@dvcorg/cml@0.20.6" in calls and "--ignore-scripts" in calls
    cml = next(line for line in calls.splitlines() if line.startswith("cml "))
    assert "comment update --target=pr/7 " in cml
    assert "--commit-sha" not in cml  # CML 0.20.6 refuses it with --target
    assert (runner["log"].parent / "calls.log.sha").read_text().strip() == HEAD_SHA
    assert "--watermark-title=gitops-ml pr-report" in cml
    assert "--no-publish" in cml
    assert f"--repo=https://github.com/{OWNER}/{REPO}" in cml


@pytest.mark.parametrize("failure", [{"FAKE_NPM_FAILS": "1"}, {"FAKE_CML_EXIT": "1"}])
def test_cml_failure_leaves_it_to_the_fallback(
    runner: dict[str, Path], failure: dict[str, str]
) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n## Report\n")
    proc, out = run_step(
        runner, "Post with CML", PR="7", HEAD_SHA=HEAD_SHA, REPO_TOKEN=TOKEN, **failure
    )
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "falling back to the Python poster" in proc.stdout


def _watermark_check(
    runner: dict[str, Path], comments: list[tuple[str, str]]
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    listing = runner["temp"] / "fake-comments.jsonl"
    listing.write_text("".join(json.dumps(list(c)) + "\n" for c in comments))
    return run_step(runner, "Check the comments CML would pick", PR="7", FAKE_COMMENTS=str(listing))


def test_cml_runs_when_only_our_comments_carry_the_watermark(runner: dict[str, Path]) -> None:
    proc, out = _watermark_check(runner, [])
    assert proc.returncode == 0, proc.stderr
    assert out == {"cml": "true"}
    ours = [("alice", "LGTM"), ("github-actions[bot]", f"{TAG}\nold\n\n{CML_WATERMARK}")]
    proc, out = _watermark_check(runner, [*ours, ("bob", 'a "quote") and\nnewlines')])
    assert proc.returncode == 0, proc.stderr
    assert out == {"cml": "true"}


def test_a_planted_watermark_keeps_cml_away(runner: dict[str, Path]) -> None:
    """CML would edit the newest watermarked comment whoever wrote it: the poster posts."""
    planted = ("mallory", f"{TAG}\nfake report\n\n{CML_WATERMARK}")
    ours = ("github-actions[bot]", f"{TAG}\nold\n\n{CML_WATERMARK}")
    for comments in ([planted], [ours, planted], [planted, ours]):
        proc, out = _watermark_check(runner, comments)
        assert proc.returncode == 0, proc.stderr
        assert out == {}
        assert "another account carries the CML watermark" in proc.stdout
    # Another watermark title is not ours to worry about.
    other = CML_WATERMARK.replace("gitops-ml pr-report", "someone else")
    proc, out = _watermark_check(runner, [("mallory", other)])
    assert out == {"cml": "true"}


def test_comments_that_cannot_be_listed_leave_it_to_the_poster(runner: dict[str, Path]) -> None:
    proc, out = run_step(runner, "Check the comments CML would pick", PR="7", FAKE_PR="8")
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "could not list" in proc.stdout


def test_our_comment_beyond_cmls_first_page_keeps_cml_away(runner: dict[str, Path]) -> None:
    """CML lists one page of 30 comments: past it, it would add a second comment."""
    noise = [("alice", f"comment {i}") for i in range(30)]
    proc, out = _watermark_check(runner, [*noise, ("github-actions[bot]", CML_WATERMARK)])
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "beyond the first page" in proc.stdout
    proc, out = _watermark_check(runner, [*noise[:29], ("github-actions[bot]", CML_WATERMARK)])
    assert out == {"cml": "true"}


def _python_fallback(runner: dict[str, Path], gh: FakeGitHub, report: str) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n{report}")
    venv_bin = runner["work"] / ".venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    if not (venv_bin / "gitops-ml").exists():
        (venv_bin / "gitops-ml").symlink_to(Path(sys.executable).parent / "gitops-ml")
    proc, _ = run_step(
        runner, "Post with the Python poster", PR="7", HEAD_SHA=HEAD_SHA,
        GITHUB_TOKEN=TOKEN, GITHUB_API_URL=gh.url, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_fallback_posts_one_comment_both_posters_recognise(
    runner: dict[str, Path],
    github: FakeGitHub,
) -> None:
    _python_fallback(runner, github, "## Report v1\n")
    _python_fallback(runner, github, "## Report v2\n")
    assert "make install" in runner["log"].read_text()
    (comment,) = github.comments[7]
    assert comment["body"].startswith(TAG)
    assert "## Report v2" in comment["body"] and "v1" not in comment["body"]
    assert comment["body"].rstrip().endswith(CML_WATERMARK)  # what `cml comment update` finds


def test_python_fallback_updates_the_comment_cml_posted(
    runner: dict[str, Path],
    github: FakeGitHub,
) -> None:
    github.add_comment(7, "unrelated", "alice")
    github.add_comment(7, f"{TAG}\n## Report by CML\n\n{CML_WATERMARK}", "github-actions[bot]")
    _python_fallback(runner, github, "## Report by Python\n")
    assert len(github.comments[7]) == 2
    assert "## Report by Python" in github.comments[7][1]["body"]
    assert github.comments[7][0]["body"] == "unrelated"


def test_python_fallback_never_edits_a_planted_comment(
    runner: dict[str, Path],
    github: FakeGitHub,
) -> None:
    planted = f"{TAG}\n## Fake report\n\n{CML_WATERMARK}"
    github.add_comment(7, planted, "mallory")
    _python_fallback(runner, github, "## Report\n")
    _python_fallback(runner, github, "## Report v2\n")
    assert [c["user"]["login"] for c in github.comments[7]] == ["mallory", "github-actions[bot]"]
    assert github.comments[7][0]["body"] == planted
    assert "## Report v2" in github.comments[7][1]["body"]
