"""The GitHub client against a real HTTP server on loopback: one sticky comment, clear errors.

The fake (tests/fake_github.py) implements the few endpoints in memory with a page size of 2, so
pagination is really followed, and can be told to fail chosen calls; nothing in urllib is mocked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gitops_ml.cli import main as cli_main
from gitops_ml.errors import GitopsMLError
from gitops_ml.pr.github import (
    MAX_COMMENT_CHARS,
    GitHubClient,
    GitHubConfig,
    TransientGitHubError,
    carries_marker,
    cml_watermark,
    cml_watermark_title,
    marker_tag,
    parse_issue_number,
    render_comment,
)
from tests.fake_github import MARKER, OWNER, REPO, TAG, TOKEN, FakeGitHub


@pytest.fixture
def env(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": f"{OWNER}/{REPO}",
        "GITHUB_API_URL": github.url,
        "GITHUB_ACTIONS": "true",  # the token is the Actions bot's, like the fake's
    }
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.delenv("RETRAIN_TOKEN", raising=False)
    monkeypatch.delenv("GITOPS_ML_COMMENT_AUTHOR", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("NO_PROXY", "no_proxy"):  # a CI proxy must not intercept loopback
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return values


@pytest.fixture
def client(env: dict[str, str]) -> GitHubClient:
    return GitHubClient.from_env(env, backoff=0.0, timeout=5.0)


# -- the sticky comment -----------------------------------------------------------------------


def test_first_post_creates_then_updates_the_same_comment(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.add_comment(7, "LGTM", login="alice")

    action, url = client.upsert_comment(7, "## Report v1", MARKER)
    assert action == "created"
    assert len(github.marked(7)) == 1
    first = github.marked(7)[0]
    assert url == first["html_url"]
    assert first["body"].count(TAG) == 1

    action, url2 = client.upsert_comment(7, "## Report v2", MARKER)
    assert (action, url2) == ("updated", url)
    assert [c["id"] for c in github.marked(7)] == [first["id"]]
    assert "Report v2" in first["body"] and "Report v1" not in first["body"]
    assert github.comments[7][0] == {
        "id": github.comments[7][0]["id"],
        "body": "LGTM",
        "user": {"login": "alice"},
        "html_url": github.comments[7][0]["html_url"],
    }
    assert len(github.calls("POST")) == 1
    assert len(github.calls("PATCH", r"/issues/comments/\d+$")) == 1


def test_marker_on_page_three_is_found_and_others_untouched(
    github: FakeGitHub, client: GitHubClient
) -> None:
    others = [github.add_comment(3, f"comment {i}", login=f"user{i}") for i in range(4)]
    ours = github.add_comment(3, f"{TAG}\nold report", login="github-actions[bot]")
    others.append(github.add_comment(3, "after", login="bob"))
    before = [dict(c) for c in others]

    action, url = client.upsert_comment(3, "new report", MARKER)

    assert (action, url) == ("updated", ours["html_url"])
    assert ours["body"] == f"{TAG}\nnew report"
    assert [dict(c) for c in others] == before
    pages = [r["query"].get("page", "1") for r in github.calls("GET", "/issues/3/comments")]
    assert pages == ["1", "2", "3"]  # followed rel="next" to the last page
    assert not github.calls("POST")
    assert len(github.comments[3]) == 6


def test_several_marked_comments_update_the_newest_only(
    github: FakeGitHub, client: GitHubClient
) -> None:
    """The newest, like `cml comment update`, so both posters keep editing the same one."""
    github.add_comment(5, "hello", "alice")
    older = github.add_comment(5, f"{TAG}\nrun 1")
    github.add_comment(5, "noise", "bob")
    newest = github.add_comment(5, f"{TAG}\nrun 2 (raced)")

    assert client.upsert_comment(5, "run 3", MARKER) == ("updated", newest["html_url"])
    assert newest["body"].endswith("run 3")
    assert older["body"].endswith("run 1")
    assert len(github.marked(5)) == 2


def test_other_markers_are_separate_comments(github: FakeGitHub, client: GitHubClient) -> None:
    client.upsert_comment(9, "report", MARKER)
    assert client.upsert_comment(9, "drift", "drift-report")[0] == "created"
    assert client.upsert_comment(9, "report 2", MARKER)[0] == "updated"
    assert len(github.comments[9]) == 2


def test_auth_and_api_headers_are_sent(github: FakeGitHub, client: GitHubClient) -> None:
    client.upsert_comment(1, "body", MARKER)
    assert github.requests
    for request in github.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["authorization"] == f"Bearer {TOKEN}"
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
        assert headers["user-agent"].startswith("gitops-ml/")
    post = github.calls("POST")[0]
    assert post["path"] == f"/repos/{OWNER}/{REPO}/issues/1/comments"
    assert github.calls("GET")[0]["query"]["per_page"] == "100"


def test_body_carries_the_marker_exactly_once(github: FakeGitHub, client: GitHubClient) -> None:
    client.upsert_comment(2, f"{TAG}\n# Report\n{TAG}\n", MARKER)
    assert github.comments[2][0]["body"] == f"{TAG}\n# Report"


def test_comment_deleted_before_update_is_listed_again(
    github: FakeGitHub, client: GitHubClient
) -> None:
    ours = github.add_comment(5, f"{TAG}\nold")
    github.fail("PATCH", r".*/issues/comments/\d+", 404, times=1, message="Not Found")
    assert client.upsert_comment(5, "new", MARKER) == ("updated", ours["html_url"])
    assert len(github.calls("GET", "/comments$")) == 2 and len(github.calls("PATCH")) == 2


def test_long_body_is_truncated_with_a_note() -> None:
    body = "```\n" + "\n".join(f"row {i:07d}" for i in range(10_000)) + "\n```\n"
    assert len(body) > MAX_COMMENT_CHARS
    text = render_comment(body, MARKER)
    assert len(text) <= MAX_COMMENT_CHARS
    assert text.startswith(TAG + "\n") and text.count(TAG) == 1
    assert "Report truncated" in text
    head = text.split("\n\n---\n")[0]
    assert head.count("```") % 2 == 0  # the cut code block is closed before the note
    assert render_comment("short", MARKER) == f"{TAG}\nshort"


def test_long_body_is_posted_truncated(github: FakeGitHub, client: GitHubClient) -> None:
    client.upsert_comment(4, "x" * (MAX_COMMENT_CHARS + 10), MARKER)
    posted = github.calls("POST")[0]["json"]["body"]
    assert len(posted) <= MAX_COMMENT_CHARS
    assert "Report truncated" in posted


# -- errors -----------------------------------------------------------------------------------


def test_403_on_create_names_the_workflow_permission(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.fail(
        "POST", r".*/issues/\d+/comments", 403, message="Resource not accessible by integration"
    )
    with pytest.raises(GitopsMLError) as info:
        client.upsert_comment(8, "report", MARKER)
    message = str(info.value)
    assert "pull-requests: write" in message and "issues: write" in message
    assert "403" in message and "Resource not accessible by integration" in message
    assert "POST /repos/acme/churn/issues/8/comments" in message
    assert "\n" not in message and TOKEN not in message
    assert len(github.calls("POST")) == 1  # a 403 is not retried


def test_403_on_update_names_the_workflow_permission(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.add_comment(8, f"{TAG}\nold")
    github.fail("PATCH", r".*/issues/comments/\d+", 403)
    with pytest.raises(GitopsMLError, match="pull-requests: write"):
        client.upsert_comment(8, "report", MARKER)


def test_401_names_the_token(github: FakeGitHub, client: GitHubClient) -> None:
    github.fail("GET", r".*", 401, message="Bad credentials")
    with pytest.raises(GitopsMLError) as info:
        client.upsert_comment(8, "report", MARKER)
    assert "GITHUB_TOKEN" in str(info.value) and "Bad credentials" in str(info.value)
    assert TOKEN not in str(info.value)


def test_500_is_retried_then_fails_clearly(github: FakeGitHub, client: GitHubClient) -> None:
    github.fail("GET", r".*/comments", 500, message="Server Error")
    with pytest.raises(TransientGitHubError) as info:
        client.upsert_comment(8, "report", MARKER)
    message = str(info.value)
    assert "GET /repos/acme/churn/issues/8/comments -> 500: Server Error" in message
    assert "after 3 attempts" in message and "\n" not in message
    assert len(github.calls("GET")) == 3


def test_transient_500_recovers(github: FakeGitHub, client: GitHubClient) -> None:
    github.fail("GET", r".*/comments", 502, times=2)
    assert client.upsert_comment(8, "report", MARKER)[0] == "created"
    assert len(github.calls("GET")) == 3


def test_500_after_a_stored_create_does_not_duplicate(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.fail("POST", r".*/issues/\d+/comments", 502, times=1, apply=True)
    assert client.upsert_comment(8, "report", MARKER)[0] == "updated"
    assert len(github.marked(8)) == 1
    assert len(github.calls("POST")) == 1


def test_422_shows_method_path_status_and_message(github: FakeGitHub, client: GitHubClient) -> None:
    github.fail("POST", r".*/comments", 422, message="Validation Failed")
    with pytest.raises(GitopsMLError, match=r"POST /repos/acme/churn/issues/8/comments -> 422: Validation Failed$"):  # fmt: skip
        client.upsert_comment(8, "report", MARKER)


def test_unreachable_api_is_one_line(env: dict[str, str]) -> None:
    # A port that was free a moment ago: connection refused, retried, then one line.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = GitHubClient.from_env(
        {**env, "GITHUB_API_URL": f"http://127.0.0.1:{port}"}, backoff=0.0, timeout=2.0
    )
    with pytest.raises(TransientGitHubError) as info:
        dead.upsert_comment(8, "report", MARKER)
    assert "cannot reach the GitHub API" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("bad", [0, -3, True, "7; rm -rf /", "1e3", "", " ", "٣", 2**40, 1.5])
def test_bad_pr_numbers_are_rejected(bad: Any, github: FakeGitHub, client: GitHubClient) -> None:
    with pytest.raises(GitopsMLError, match="invalid pull request number"):
        client.upsert_comment(bad, "report", MARKER)
    assert not github.requests


def test_pr_number_parsing() -> None:
    assert parse_issue_number("42") == 42
    assert parse_issue_number(" 42\n") == 42
    assert parse_issue_number(42) == 42


@pytest.mark.parametrize("bad", ["", "has space", "x-->y", "<!--", "a" * 65])
def test_bad_markers_are_rejected(bad: str) -> None:
    with pytest.raises(GitopsMLError, match="invalid comment marker"):
        marker_tag(bad)


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"GITHUB_REPOSITORY": None}, "GITHUB_REPOSITORY is not set"),
        ({"GITHUB_REPOSITORY": "just-a-name"}, "GITHUB_REPOSITORY"),
        ({"GITHUB_REPOSITORY": "a/b/c"}, "GITHUB_REPOSITORY"),
        ({"GITHUB_TOKEN": None}, "GITHUB_TOKEN is not set"),
        ({"GITHUB_TOKEN": "two words"}, "GITHUB_TOKEN"),
        ({"GITHUB_API_URL": "ftp://example.com"}, "GITHUB_API_URL"),
        ({"GITHUB_API_URL": "not a url"}, "GITHUB_API_URL"),
    ],
)
def test_bad_config_names_the_variable(
    env: dict[str, str], changes: dict[str, str | None], needle: str
) -> None:
    values = {k: v for k, v in {**env, **changes}.items() if v is not None}
    with pytest.raises(GitopsMLError, match=needle) as info:
        GitHubConfig.from_env(values)
    assert "\n" not in str(info.value)


def test_config_defaults_and_gh_token() -> None:
    config = GitHubConfig.from_env({"GH_TOKEN": "t", "GITHUB_REPOSITORY": "o/r"})
    assert (config.owner, config.repo, config.api_url) == ("o", "r", "https://api.github.com")
    assert config.token_variable == "GH_TOKEN"
    assert "token='t'" not in repr(config)  # never in logs or tracebacks
    ghes = GitHubConfig.from_env(
        {"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": "https://ghe.x/api/v3/"}
    )
    assert ghes.api_url == "https://ghe.x/api/v3"


def test_next_link_to_another_host_is_refused(github: FakeGitHub, client: GitHubClient) -> None:
    github.url = "http://elsewhere.invalid"  # the fake's Link headers now point off the API host
    for i in range(3):
        github.add_comment(6, f"c{i}")
    with pytest.raises(GitopsMLError, match="outside GITHUB_API_URL"):
        client.upsert_comment(6, "report", MARKER)
    assert len(github.calls("GET")) == 1  # the token was not sent to the other host


# -- pull requests ----------------------------------------------------------------------------


def test_find_and_create_pull(github: FakeGitHub, client: GitHubClient) -> None:
    assert client.find_open_pull("retrain/2024-06") is None
    pull = client.create_pull("Retrain on new data", "retrain/2024-06", "main", "Automated.")
    assert pull["number"] == 1 and pull["head"]["ref"] == "retrain/2024-06"
    found = client.find_open_pull("retrain/2024-06")
    assert found is not None and found["number"] == 1
    get = github.calls("GET", "/pulls$")[-1]
    assert get["query"]["head"] == f"{OWNER}:retrain/2024-06" and get["query"]["state"] == "open"
    assert github.calls("POST", "/pulls$")[0]["json"] == {
        "title": "Retrain on new data",
        "head": "retrain/2024-06",
        "base": "main",
        "body": "Automated.",
    }
    assert client.find_open_pull("other") is None


def test_create_pull_twice_reports_githubs_validation_error(client: GitHubClient) -> None:
    client.create_pull("t", "retrain/x", "main", "")
    with pytest.raises(GitopsMLError, match=r"422: Validation Failed \(A pull request already exists\)"):  # fmt: skip
        client.create_pull("t", "retrain/x", "main", "")


def test_create_pull_after_a_stored_502_returns_the_pull(
    github: FakeGitHub, client: GitHubClient
) -> None:
    github.fail("POST", r".*/pulls", 502, times=1, apply=True)
    pull = client.create_pull("t", "retrain/y", "main", "")
    assert pull["number"] == 1 and len(github.pulls) == 1


def test_create_pull_403_names_the_permissions(github: FakeGitHub, client: GitHubClient) -> None:
    github.fail("POST", r".*/pulls", 403, message="GitHub Actions is not permitted to create or approve pull requests.")  # fmt: skip
    with pytest.raises(GitopsMLError, match="pull-requests: write") as info:
        client.create_pull("t", "retrain/z", "main", "")
    assert "allow GitHub Actions to create pull requests" in str(info.value)


# -- the CLI ----------------------------------------------------------------------------------


def test_cli_comment_creates_then_updates(
    github: FakeGitHub, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_text("# Model report\n\naccuracy 0.91\n", encoding="utf-8")

    assert cli_main(["comment", "--pr", "12", "--body-file", str(report)]) == 0
    url = github.marked(12)[0]["html_url"]
    assert capsys.readouterr().out == f"created {url}\n"

    report.write_text("# Model report\n\naccuracy 0.93\n", encoding="utf-8")
    assert cli_main(["comment", "--pr", "12", "--body-file", str(report), "--marker", MARKER]) == 0
    assert capsys.readouterr().out == f"updated {url}\n"
    assert len(github.comments[12]) == 1
    assert github.comments[12][0]["body"] == f"{TAG}\n# Model report\n\naccuracy 0.93"


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "12abc"])
def test_cli_rejects_a_bad_pr_number(
    bad: str, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    report.write_text("x", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        cli_main(["comment", f"--pr={bad}", "--body-file", str(report)])
    assert info.value.code == 2
    assert "invalid pull request number" in capsys.readouterr().err


def test_cli_errors_are_one_line_exit_2(
    github: FakeGitHub,
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "report.md"
    assert cli_main(["comment", "--pr", "3", "--body-file", str(report)]) == 2
    assert "cannot read --body-file" in capsys.readouterr().err

    report.write_text("  \n", encoding="utf-8")
    assert cli_main(["comment", "--pr", "3", "--body-file", str(report)]) == 2
    assert "is empty" in capsys.readouterr().err

    report.write_text("# report\n", encoding="utf-8")
    github.fail("POST", r".*/comments", 403, message="Resource not accessible by integration")
    assert cli_main(["comment", "--pr", "3", "--body-file", str(report)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: GitHub API: POST") and "pull-requests: write" in err

    monkeypatch.delenv("GITHUB_REPOSITORY")
    assert cli_main(["comment", "--pr", "3", "--body-file", str(report)]) == 2
    assert "error: GITHUB_REPOSITORY is not set" in capsys.readouterr().err
    assert len(github.calls("POST")) == 1  # only the refused one; nothing was ever created
    assert not github.comments.get(3)


# -- the pull request of a commit (promote.yml comments on the merged PR) -----------------------

MERGE_SHA = "ab" * 20


def test_pull_for_commit_prefers_the_merged_pull(github: FakeGitHub, client: GitHubClient) -> None:
    assert client.pull_for_commit(MERGE_SHA) is None
    # An open pull request listed first for the same commit: taken only while none is merged.
    github.pulls.append(
        {"number": 11, "state": "open", "merged_at": None, "merge_commit_sha": MERGE_SHA}
    )
    assert client.pull_for_commit(MERGE_SHA)["number"] == 11
    github.add_merged_pull(12, MERGE_SHA)
    pull = client.pull_for_commit(MERGE_SHA)
    assert pull is not None and pull["number"] == 12
    assert github.calls("GET", rf"/commits/{MERGE_SHA}/pulls$")


@pytest.mark.parametrize("bad", ["", "HEAD", "ab" * 19, "AB" * 20, "../../x" + "a" * 33])
def test_pull_for_commit_rejects_what_is_not_a_sha(bad: str, client: GitHubClient) -> None:
    with pytest.raises(GitopsMLError, match="invalid commit SHA"):
        client.pull_for_commit(bad)


def test_cli_comment_on_the_pull_of_a_commit(
    github: FakeGitHub, env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "promotion.md"
    body.write_text("## Promoted version 3\n")
    assert cli_main(["comment", "--commit", MERGE_SHA, "--body-file", str(body)]) == 0
    assert "nothing to comment on" in capsys.readouterr().out
    assert not github.calls("POST")

    github.add_merged_pull(5, MERGE_SHA)
    args = ["comment", "--commit", MERGE_SHA, "--body-file", str(body), "--marker", "promotion"]
    assert cli_main(args) == 0
    assert cli_main(args) == 0
    posted = [c for c in github.comments[5] if marker_tag("promotion") in c["body"]]
    assert len(posted) == 1 and "Promoted version 3" in posted[0]["body"]


# -- whose comments: only the poster's own identity's are edited --------------------------------

WATERMARK = (
    "![](https://cml.dev/watermark.png#0123456789abcdef0123456789abcdef01234567 "
    '"CML watermark gitops-ml pr-report")'
)


def test_a_marked_comment_by_someone_else_is_never_edited(
    github: FakeGitHub, client: GitHubClient, caplog: pytest.LogCaptureFixture
) -> None:
    planted = github.add_comment(4, f"{TAG}\nfake report", "mallory")
    planted_wm = github.add_comment(4, f"fake\n\n{WATERMARK}", "mallory")
    action, url = client.upsert_comment(4, "report", MARKER)
    assert action == "created"
    assert planted["body"] == f"{TAG}\nfake report"
    assert planted_wm["body"] == f"fake\n\n{WATERMARK}"
    assert "mallory" in caplog.text and "creating a new comment" in caplog.text
    assert client.upsert_comment(4, "report 2", MARKER) == ("updated", url)
    assert [c["user"]["login"] for c in github.comments[4]] == [
        "mallory", "mallory", "github-actions[bot]",
    ]  # fmt: skip
    assert not github.calls("PATCH", f"/{planted['id']}$|/{planted_wm['id']}$")


def test_cmls_watermarked_comment_is_ours_and_the_watermark_stays_last(
    github: FakeGitHub, client: GitHubClient
) -> None:
    cml = github.add_comment(6, f"## Report by CML\n\n\n{WATERMARK}")  # CML adds no marker
    body = f"{TAG}\n## Report\n\n{WATERMARK}\n"
    assert client.upsert_comment(6, body, MARKER) == ("updated", cml["html_url"])
    assert cml["body"] == f"{TAG}\n## Report\n\n{WATERMARK}"
    # Truncated, the watermark is still the end of the body, so CML finds it again.
    client.upsert_comment(6, "x\n" * MAX_COMMENT_CHARS + f"\n\n{WATERMARK}", MARKER)
    assert len(cml["body"]) <= MAX_COMMENT_CHARS
    assert cml["body"].endswith(f"\n\n{WATERMARK}") and cml["body"].count(WATERMARK) == 1
    # Another title (another marker, or someone else's CML) is not ours.
    assert not carries_marker(WATERMARK.replace("pr-report", "drift"), MARKER)
    no_sha = WATERMARK.replace("#0123456789abcdef0123456789abcdef01234567", "")
    assert not carries_marker(no_sha, MARKER)  # CML needs a hex sha


def test_cml_watermark_title_escapes_like_cml() -> None:
    assert cml_watermark_title("pr-report") == "CML watermark gitops-ml pr-report"
    assert cml_watermark_title("my_report") == "CML watermark gitops-ml my\\_report"
    sha = "ab" * 20
    assert cml_watermark("my_report", sha) == (
        f'![](https://cml.dev/watermark.png#{sha} "CML watermark gitops-ml my\\_report")'
    )
    assert carries_marker(cml_watermark("my_report", sha), "my_report")


def test_a_user_token_is_identified_through_get_user(
    github: FakeGitHub, env: dict[str, str]
) -> None:
    github.login, github.user_endpoint = "octocat", True
    mine = github.add_comment(3, f"{TAG}\nold")
    github.add_comment(3, f"{TAG}\nby the bot", "github-actions[bot]")
    client = GitHubClient.from_env({**env, "GITHUB_ACTIONS": ""}, backoff=0.0)
    assert client.upsert_comment(3, "new", MARKER) == ("updated", mine["html_url"])
    assert client.login() == "octocat" and len(github.calls("GET", "^/user$")) == 1


def test_an_unknown_identity_outside_actions_fails_clearly(
    github: FakeGitHub, env: dict[str, str]
) -> None:
    github.add_comment(3, f"{TAG}\nold")
    client = GitHubClient.from_env({**env, "GITHUB_ACTIONS": ""}, backoff=0.0)
    with pytest.raises(GitopsMLError, match="GITOPS_ML_COMMENT_AUTHOR") as info:
        client.upsert_comment(3, "new", MARKER)
    assert "\n" not in str(info.value)
    client = GitHubClient.from_env(
        {**env, "GITHUB_ACTIONS": "", "GITOPS_ML_COMMENT_AUTHOR": "github-actions[bot]"}
    )
    assert client.upsert_comment(3, "new", MARKER)[0] == "updated"
    assert len(github.calls("GET", "^/user$")) == 1  # the explicit login needs no lookup


# -- rate limits and the token's name ------------------------------------------------------------


def test_429_waits_as_retry_after_asks_then_succeeds(
    github: FakeGitHub, env: dict[str, str]
) -> None:
    slept: list[float] = []
    client = GitHubClient.from_env(env, backoff=0.0, sleep=slept.append, max_rate_wait=10)
    github.fail("POST", r".*/comments", 429, times=2, headers={"Retry-After": "3"})
    assert client.upsert_comment(8, "report", MARKER)[0] == "created"
    assert slept == [3.0, 3.0]
    assert len(github.marked(8)) == 1


def test_403_rate_limit_waits_until_the_reset(github: FakeGitHub, env: dict[str, str]) -> None:
    slept: list[float] = []
    client = GitHubClient.from_env(env, backoff=0.0, sleep=slept.append, max_rate_wait=10)
    reset = str(int(time.time()) - 5)  # already past: the minimum wait
    github.fail(
        "GET", r".*/comments", 403, times=1, message="API rate limit exceeded",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
    )  # fmt: skip
    assert client.upsert_comment(8, "report", MARKER)[0] == "created"
    assert slept == [1.0]


def test_rate_limit_waits_are_capped_with_a_one_line_error(
    github: FakeGitHub, env: dict[str, str]
) -> None:
    slept: list[float] = []
    client = GitHubClient.from_env(env, backoff=0.0, sleep=slept.append, max_rate_wait=5)
    github.fail("GET", r".*/comments", 429, headers={"Retry-After": "2"})
    with pytest.raises(GitopsMLError) as info:
        client.upsert_comment(8, "report", MARKER)
    assert slept == [2.0, 2.0]  # a third wait would pass the 5 s cap
    message = str(info.value)
    assert "\n" not in message and "429" in message and "retry later" in message
    assert "beyond the 5s" in message
    github.failures.clear()
    github.fail("GET", r".*/comments", 403, message="You have exceeded a secondary rate limit")
    with pytest.raises(GitopsMLError, match="wait 60s"):  # GitHub's minute, over the cap
        client.upsert_comment(8, "report", MARKER)


def test_a_plain_403_is_not_a_rate_limit(github: FakeGitHub, env: dict[str, str]) -> None:
    slept: list[float] = []
    client = GitHubClient.from_env(env, backoff=0.0, sleep=slept.append)
    github.fail("POST", r".*/comments", 403, message="Resource not accessible by integration")
    with pytest.raises(GitopsMLError, match="pull-requests: write"):
        client.upsert_comment(8, "report", MARKER)
    assert slept == []


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({}, "the token in GITHUB_TOKEN was"),
        ({"RETRAIN_TOKEN": TOKEN}, "the token in GITHUB_TOKEN (set from RETRAIN_TOKEN) was"),
        ({"RETRAIN_TOKEN": "another"}, "the token in GITHUB_TOKEN was"),
        ({"GITHUB_TOKEN": "", "GH_TOKEN": TOKEN}, "the token in GH_TOKEN was"),
    ],
)
def test_401_names_the_variable_the_token_came_from(
    github: FakeGitHub, env: dict[str, str], extra: dict[str, str], named: str
) -> None:
    github.fail("GET", r".*", 401, message="Bad credentials")
    client = GitHubClient.from_env({**env, **extra}, backoff=0.0)
    with pytest.raises(GitopsMLError) as info:
        client.upsert_comment(8, "report", MARKER)
    assert named in str(info.value) and TOKEN not in str(info.value)
