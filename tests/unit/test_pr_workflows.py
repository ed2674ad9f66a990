"""pr.yml and pr-comment.yml: their structure, and pr-comment's scripts run as GitHub runs them.

The scripts are taken from the workflow files and run with `bash -eo pipefail` like a runner,
their curl calls and the Python fallback talking HTTP to the GitHub stand-in of
tests/fake_github.py, with `cml` and `make` replaced by small fakes on PATH. The whole pr.yml runs
under act in tests/integration/test_act.py, the whole pr-comment.yml with the real CML in
tests/integration/test_act_pr_comment.py.
"""

from __future__ import annotations

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
    # Read-only, plus the OIDC token for the DVC remote's short-lived credentials.
    assert doc["jobs"]["reproduce"]["permissions"] == {"contents": "read", "id-token": "write"}
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
        "reports/pr-report.md", "reports/gate.json", "reports/pr-number", "reports/dvc.lock",
        "reports/figures/",
    }  # fmt: skip


def _first_dvc_step(doc: dict[str, Any]) -> int:
    return min(
        i
        for i, s in enumerate(steps(doc))
        if "dvc " in s.get("run", "") or "promote" in s.get("run", "")
    )


def test_pull_requests_read_the_dvc_remote_with_a_role_of_their_own() -> None:
    """pr.yml logs in with the read-only role (OIDC) and nothing else: no stored key, no push.
    (Its login step is the README's, checked in test_act_remote, which runs it under act.)"""
    doc = load("pr.yml")
    (job,) = doc["jobs"].values()
    assert job["permissions"]["id-token"] == "write"
    assert "environment" not in job  # no deployment per pull request, and no secret to guard
    (login,) = [s for s in steps(doc) if "configure-aws-credentials@" in s.get("uses", "")]
    assert login["name"] == "Log in to AWS with OIDC"
    assert login["if"] == "vars.AWS_READ_ROLE_ARN != ''"
    assert login["with"]["role-to-assume"] == "${{ vars.AWS_READ_ROLE_ARN }}"
    assert set(login["with"]) == {"role-to-assume", "aws-region"}
    assert index(doc, "Log in to AWS with OIDC") < _first_dvc_step(doc)
    assert job["env"]["DVC_REMOTE_CREDENTIALS"] == (
        "${{ vars.AWS_READ_ROLE_ARN != '' || vars.DVC_REMOTE_READY == 'true' }}"
    )
    for s in steps(doc):
        assert "dvc push" not in s.get("run", ""), s.get("name")
        assert "AWS_WRITE_ROLE_ARN" not in yaml.safe_dump(s), s.get("name")


@pytest.mark.parametrize(
    ("name", "environment"), [("promote.yml", "production"), ("monitor.yml", "retrain")]
)
def test_main_writes_the_dvc_remote_from_an_environment(name: str, environment: str) -> None:
    """The jobs on the default branch that push: OIDC with the write role first, else the
    environment's keys. The login action exports AWS_* to later steps; no step may override
    them with a (possibly empty) secret, which is how OIDC credentials used to be lost."""
    doc = load(name)
    # The job that pushes (monitor.yml's model-age job only reads the registry).
    doc["jobs"] = {k: j for k, j in doc["jobs"].items() if j.get("environment") == environment}
    (job,) = doc["jobs"].values()
    assert job["environment"] == environment
    assert "default_branch" in job["if"]
    assert job["permissions"]["id-token"] == "write"
    oidc = step(doc, "Log in to AWS with OIDC")
    keys = step(doc, "Log in to AWS with access keys")
    assert oidc["uses"] == keys["uses"]
    assert oidc["uses"].startswith("aws-actions/configure-aws-credentials@")
    assert oidc["if"] == "vars.AWS_WRITE_ROLE_ARN != ''"
    assert oidc["with"]["role-to-assume"] == "${{ vars.AWS_WRITE_ROLE_ARN }}"
    assert keys["if"] == "vars.AWS_WRITE_ROLE_ARN == '' && env.AWS_KEYS == 'true'"
    assert job["env"]["AWS_KEYS"] == "${{ secrets.AWS_ACCESS_KEY_ID != '' }}"
    assert index(doc, "Log in to AWS with access keys") < _first_dvc_step(doc), name
    for s in steps(doc):
        assert not any(k.startswith("AWS_") for k in (s.get("env") or {})), (name, s.get("name"))
        assert "AWS_READ_ROLE_ARN" not in yaml.safe_dump(s), (name, s.get("name"))


def test_pr_reuses_mains_outputs_when_no_stage_input_changed() -> None:
    """What act cannot show: PRs only read main's cache (objects, never the run-cache), and the
    one writer, promote.yml on main, saves under the key pr.yml restores."""
    doc = load("pr.yml")
    order = [
        "Find what the PR changes", "Restore main's DVC cache", "Check the restored DVC cache",
        "Pull main's outputs", "Reproduce the pipeline", "Quality gate",
    ]  # fmt: skip
    assert [index(doc, n) for n in order] == sorted(index(doc, n) for n in order)
    restore = step(doc, "Restore main's DVC cache")
    assert restore["uses"].startswith("actions/cache/restore@")  # restore only: PRs never save
    assert restore["with"]["path"] == ".dvc/cache/files"  # objects only, never the run-cache
    assert not any("actions/cache/save@" in s.get("uses", "") for s in steps(doc))
    # promote.yml, on main only, saves what pr.yml restores, under the same key.
    promote = load("promote.yml")
    assert promote[True]["push"]["branches"] == ["main"]  # YAML reads `on:` as true
    save = step(promote, "Save main's DVC cache")
    assert save["uses"].startswith("actions/cache/save@")
    # ... and pushes them: what a merged pull request reproduced but could not push.
    assert "dvc push" in step(promote, "Reproduce main's outputs for pull requests")["run"]
    assert save["with"]["key"] == restore["with"]["key"]
    assert save["with"]["path"] == restore["with"]["path"]
    assert restore["with"]["restore-keys"] == "dvc-cache-${{ runner.os }}-"


@pytest.mark.parametrize(
    ("changed", "docs_only"),
    [
        (["README.md"], "true"),
        (["README.md", "src/gitops_ml/cli.py"], "false"),
        ([".github/workflows/ci.yml"], "false"),
    ],
)
def test_ci_runs_the_fast_tests_only_for_markdown(
    tmp_path: Path, changed: list[str], docs_only: str
) -> None:
    """ci.yml's script on a pull request's merge commit (first parent: the base)."""
    from tests.integration.act import git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel in ("README.md", "src/gitops_ml/cli.py", ".github/workflows/ci.yml"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("v1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    for rel in changed:
        (repo / rel).write_text("v2\n")
    git(repo, "commit", "-q", "-am", "the change")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "pr")  # what refs/pull/N/merge is
    output = tmp_path / "output"
    script = step(load("ci.yml"), "Find what the change touches")["run"]
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=repo, capture_output=True, text=True,
        env={**os.environ, "GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert output.read_text() == f"docs_only={docs_only}\n"
    ci = load("ci.yml")
    assert step(ci, "Test")["if"] == "steps.changes.outputs.docs_only != 'true'"
    assert step(ci, "Test (fast tests only)")["run"] == "make test-fast"


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
    """A runner's directories and a PATH with fakes for cml (as setup-cml leaves it) and make."""
    temp, work, bin_dir = tmp_path / "runner-temp", tmp_path / "workspace", tmp_path / "bin"
    for d in (temp / "pr-report", work, bin_dir):
        d.mkdir(parents=True)
    # cml ...: logs its arguments, the body file and GITHUB_SHA; exits $FAKE_CML_EXIT.
    _fake(
        bin_dir, "cml",
        'echo "cml $*" >> "$FAKE_LOG"\n'
        'cp "${@: -1}" "$FAKE_LOG.body"\necho "$GITHUB_SHA" > "$FAKE_LOG.sha"\n'
        'exit "${FAKE_CML_EXIT:-0}"\n',
    )  # fmt: skip
    _fake(bin_dir, "make", 'echo "make $*" >> "$FAKE_LOG"\n')
    return {"temp": temp, "work": work, "bin": bin_dir, "log": tmp_path / "calls.log"}


def run_step(
    runner: dict[str, Path], name: str, gh: FakeGitHub | None = None, **env: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run pr-comment.yml's step `name` as a runner would, with `gh` as the GitHub API; return
    it and its outputs."""
    doc = load("pr-comment.yml")
    (job,) = doc["jobs"].values()
    output = runner["temp"] / f"output-{name}"
    output.write_text("")
    api_url = gh.url if gh is not None else "http://127.0.0.1:9"  # nothing listens there
    full_env = {
        "PATH": f"{runner['bin']}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(runner["temp"]),
        "RUNNER_TEMP": str(runner["temp"]),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": api_url,
        "GITHUB_ACTIONS": "true",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        "FAKE_LOG": str(runner["log"]),
        **{k: str(v) for k, v in job["env"].items()},
        # What the steps' own `env:` give.
        "GITHUB_TOKEN": TOKEN,
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


def test_check_accepts_a_matching_pr(runner: dict[str, Path], github: FakeGitHub) -> None:
    github.add_open_pull(7, HEAD_SHA)
    write_artifact(runner, "7\n", "## Report\n\n| a | b |\n")
    proc, out = run_step(runner, "Check the artifact", github, HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "true", "pr": "7"}
    body = (runner["temp"] / "pr-comment.md").read_text()
    assert body == f"{TAG}\n## Report\n\n| a | b |\n"
    (request,) = github.requests
    assert request["path"] == f"/repos/{OWNER}/{REPO}/pulls/7"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Accept"] == "application/vnd.github+json"


@pytest.mark.parametrize(
    "bad", ["", "abc", "-3", "0", "7 8", "7;id", "$(id)", "1e3", "99999999999", "٣"]
)
def test_check_refuses_a_pr_number_that_is_not_an_integer(
    runner: dict[str, Path], github: FakeGitHub, bad: str
) -> None:
    write_artifact(runner, bad)
    proc, out = run_step(runner, "Check the artifact", github, HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 1
    assert "not a pull request number" in proc.stdout
    assert "post" not in out
    assert github.requests == []  # not even the API was asked


def test_check_refuses_a_report_aimed_at_another_pr(
    runner: dict[str, Path], github: FakeGitHub
) -> None:
    """A PR's own pr.yml can upload any number: only the PR whose head is this run's counts."""
    github.add_open_pull(7, HEAD_SHA)
    github.add_open_pull(8, "f" * 40, head="other")
    write_artifact(runner, "8")
    proc, out = run_step(runner, "Check the artifact", github, HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "false"}
    assert "PR #8 is at ffffffffffff" in proc.stdout
    assert not (runner["temp"] / "pr-comment.md").exists()


@pytest.mark.parametrize("status", [404, 401])
def test_check_fails_when_the_api_does_not_confirm_the_pr(
    runner: dict[str, Path], github: FakeGitHub, status: int
) -> None:
    github.add_open_pull(7, HEAD_SHA)
    write_artifact(runner, "9" if status == 404 else "7")
    if status != 404:
        github.fail("GET", r".*/pulls/7", status)
    proc, out = run_step(runner, "Check the artifact", github, HEAD_SHA=HEAD_SHA)
    assert proc.returncode != 0
    assert f"error: {status}" in proc.stderr  # curl --fail
    assert "post" not in out


def test_check_fails_when_the_api_is_unreachable(runner: dict[str, Path]) -> None:
    write_artifact(runner, "7")
    proc, out = run_step(runner, "Check the artifact", HEAD_SHA=HEAD_SHA)
    assert proc.returncode != 0
    assert "post" not in out


def test_check_skips_a_run_without_report(runner: dict[str, Path], github: FakeGitHub) -> None:
    github.add_open_pull(7, HEAD_SHA)
    write_artifact(runner, "7", report=None)
    proc, out = run_step(runner, "Check the artifact", github, HEAD_SHA=HEAD_SHA)
    assert proc.returncode == 0, proc.stderr
    assert out == {"post": "false"}
    assert "no report" in proc.stdout


def test_check_refuses_a_bad_head_sha(runner: dict[str, Path], github: FakeGitHub) -> None:
    write_artifact(runner, "7")
    proc, _ = run_step(runner, "Check the artifact", github, HEAD_SHA="main; id")
    assert proc.returncode == 1
    assert github.requests == []


def test_cml_is_set_up_by_the_pinned_action_only_when_it_posts() -> None:
    doc = load("pr-comment.yml")
    setup = step(doc, "Set up CML")
    assert setup["uses"] == "iterative/setup-cml@f12ea7685438c1fc438d50f77519b3860cf5fa98"
    assert setup["with"] == {"version": "0.20.6", "vega": False}
    assert setup["continue-on-error"] is True  # a failed install leaves it to the poster
    assert "env" not in setup  # its release lookup uses no token: it is given none
    assert setup["if"] == step(doc, "Check the comments CML would pick")["if"] + (
        " && steps.watermarks.outputs.cml == 'true'"
    )
    post = step(doc, "Post with CML")
    assert "steps.setup-cml.outcome == 'success'" in post["if"]
    assert index(doc, "Set up CML") + 1 == index(doc, "Post with CML")
    for name in ("Check out the default branch", "Set up Python", "Post with the Python poster"):
        assert step(doc, name)["if"] == (
            "steps.check.outputs.post == 'true' && steps.cml.outputs.posted != 'true'"
        )
    text = (WORKFLOWS / "pr-comment.yml").read_text()
    assert "npm " not in text and "gh api" not in text


def test_cml_posts_with_the_arguments_it_accepts(runner: dict[str, Path]) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n## Report\n")
    proc, out = run_step(runner, "Post with CML", PR="7", HEAD_SHA=HEAD_SHA, REPO_TOKEN=TOKEN)
    assert proc.returncode == 0, proc.stderr
    assert out == {"posted": "true"}
    cml = next(line for line in runner["log"].read_text().splitlines() if line.startswith("cml "))
    assert "comment update --target=pr/7 " in cml
    assert "--commit-sha" not in cml  # CML 0.20.6 refuses it with --target
    assert (runner["log"].parent / "calls.log.sha").read_text().strip() == HEAD_SHA
    assert "--watermark-title=gitops-ml pr-report" in cml
    assert "--no-publish" in cml
    assert f"--repo=https://github.com/{OWNER}/{REPO}" in cml
    assert (runner["log"].parent / "calls.log.body").read_text() == f"{TAG}\n## Report\n"


@pytest.mark.parametrize("failure", ["exit", "missing"])
def test_cml_failure_leaves_it_to_the_fallback(runner: dict[str, Path], failure: str) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n## Report\n")
    if failure == "missing":
        (runner["bin"] / "cml").unlink()
    proc, out = run_step(
        runner, "Post with CML", PR="7", HEAD_SHA=HEAD_SHA, REPO_TOKEN=TOKEN, FAKE_CML_EXIT="1"
    )
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "falling back to the Python poster" in proc.stdout


def _watermark_check(
    runner: dict[str, Path], gh: FakeGitHub, comments: list[tuple[str, str]]
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    gh.comments.clear()
    for login, body in comments:
        gh.add_comment(7, body, login)
    gh.add_comment(8, f"another PR\n{CML_WATERMARK}", "mallory")
    return run_step(runner, "Check the comments CML would pick", gh, PR="7")


def test_cml_runs_when_only_our_comments_carry_the_watermark(
    runner: dict[str, Path], github: FakeGitHub
) -> None:
    proc, out = _watermark_check(runner, github, [])
    assert proc.returncode == 0, proc.stderr
    assert out == {"cml": "true"}
    ours = [("alice", "LGTM"), ("github-actions[bot]", f"{TAG}\nold\n\n{CML_WATERMARK}")]
    proc, out = _watermark_check(runner, github, [*ours, ("bob", 'a "quote") and\nnewlines')])
    assert proc.returncode == 0, proc.stderr
    assert out == {"cml": "true"}
    listed = github.calls("GET", r"/issues/7/comments$")
    assert listed and all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in listed)


def test_a_planted_watermark_keeps_cml_away(runner: dict[str, Path], github: FakeGitHub) -> None:
    """CML would edit the newest watermarked comment whoever wrote it: the poster posts."""
    planted = ("mallory", f"{TAG}\nfake report\n\n{CML_WATERMARK}")
    ours = ("github-actions[bot]", f"{TAG}\nold\n\n{CML_WATERMARK}")
    noise = [("alice", f"comment {i}") for i in range(5)]  # a page holds 2: several pages
    for comments in ([planted], [ours, planted], [planted, ours], [*noise, ours, planted]):
        proc, out = _watermark_check(runner, github, comments)
        assert proc.returncode == 0, proc.stderr
        assert out == {}
        assert "another account carries the CML watermark" in proc.stdout
    # Another watermark title is not ours to worry about.
    other = CML_WATERMARK.replace("gitops-ml pr-report", "someone else")
    proc, out = _watermark_check(runner, github, [("mallory", other)])
    assert out == {"cml": "true"}


@pytest.mark.parametrize("how", ["refused", "unreachable", "foreign-next-page"])
def test_comments_that_cannot_be_listed_leave_it_to_the_poster(
    runner: dict[str, Path], github: FakeGitHub, how: str
) -> None:
    for i in range(3):
        github.add_comment(7, f"comment {i}", "alice")
    if how == "refused":
        github.fail("GET", r".*/issues/7/comments", 403)
    gh = None if how == "unreachable" else github
    if how == "foreign-next-page":  # the API's Link: rel="next" leads elsewhere: not followed
        api_url, github.url = github.url, "http://127.0.0.2:9"
        proc, out = run_step(
            runner, "Check the comments CML would pick", PR="7", GITHUB_API_URL=api_url
        )
        assert len(github.requests) == 1
    else:
        proc, out = run_step(runner, "Check the comments CML would pick", gh, PR="7")
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "could not list" in proc.stdout


def test_our_comment_beyond_cmls_first_page_keeps_cml_away(
    runner: dict[str, Path], github: FakeGitHub
) -> None:
    """CML lists one page of 30 comments: past it, it would add a second comment."""
    noise = [("alice", f"comment {i}") for i in range(30)]
    proc, out = _watermark_check(runner, github, [*noise, ("github-actions[bot]", CML_WATERMARK)])
    assert proc.returncode == 0, proc.stderr
    assert out == {}
    assert "beyond the first page" in proc.stdout
    assert len(github.calls("GET", r"/issues/7/comments$")) == 16  # every page of 2
    proc, out = _watermark_check(
        runner, github, [*noise[:29], ("github-actions[bot]", CML_WATERMARK)]
    )
    assert out == {"cml": "true"}


def _python_fallback(runner: dict[str, Path], gh: FakeGitHub, report: str) -> None:
    (runner["temp"] / "pr-comment.md").write_text(f"{TAG}\n{report}")
    venv_bin = runner["work"] / ".venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    if not (venv_bin / "gitops-ml").exists():
        (venv_bin / "gitops-ml").symlink_to(Path(sys.executable).parent / "gitops-ml")
    proc, _ = run_step(runner, "Post with the Python poster", gh, PR="7", HEAD_SHA=HEAD_SHA)
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
