"""A small GitHub REST client over urllib: the sticky PR comment and the retraining PRs.

CML (`cml comment update`) is the primary poster in CI; this is the fallback that needs nothing
beyond the standard library, so a report still reaches the pull request when CML cannot be
installed. Configuration comes from the environment the way GitHub Actions provides it.

The poster and CML share one comment: the poster appends CML's watermark and recognises it, and
CML finds the poster's comment by that watermark. The poster only ever edits comments written by
the identity it posts as (`GET /user`, or `github-actions[bot]` for the Actions GITHUB_TOKEN, which
may not call `/user`); a marked comment by anyone else is left alone and a new one is created.

Rate limits (403/429 with `Retry-After` or an exhausted `X-RateLimit-Remaining`) are waited out, up
to a bounded total, then reported in one line.

Errors are `GitopsMLError`s with one line that says what to fix (a missing workflow permission,
a rejected token, an unset variable); the token never appears in messages or logs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal

from gitops_ml import __version__
from gitops_ml.errors import GitopsMLError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = f"gitops-ml/{__version__} (python-urllib)"

#: GitHub rejects comment bodies longer than this many characters.
MAX_COMMENT_CHARS = 65_536

#: Issue and PR numbers are positive; cap them so a tampered artifact cannot smuggle in a huge value.
_MAX_ISSUE_NUMBER = 2**31 - 1
_REPOSITORY_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_MARKER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_MAX_PAGES = 100  # 100 pages x 100 comments: far beyond any real pull request
_COMMENT_WRITE_HINT = (
    "the workflow token needs `permissions: pull-requests: write` (and `issues: write`)"
)
_PULL_WRITE_HINT = (
    "the workflow token needs `permissions: pull-requests: write` and `contents: write`, and the "
    "repository must allow GitHub Actions to create pull requests "
    "(Settings > Actions > General > Workflow permissions)"
)

#: The login of the Actions GITHUB_TOKEN; that token may not call `GET /user`.
ACTIONS_BOT = "github-actions[bot]"
#: Overrides the login the poster treats as its own (an App installation token, for example).
AUTHOR_VARIABLE = "GITOPS_ML_COMMENT_AUTHOR"
#: Tokens a workflow may have copied into GITHUB_TOKEN/GH_TOKEN; named in a 401 when they match.
_SOURCE_TOKEN_VARIABLES = ("RETRAIN_TOKEN",)
#: What GitHub asks for a secondary rate limit without Retry-After: "wait at least one minute".
_SECONDARY_RATE_WAIT = 60.0
_MAX_RATE_WAITS = 10  # even with `Retry-After: 0`
_CML_WATERMARK_URL = "https://cml.dev/watermark.png"

UpsertAction = Literal["created", "updated"]


@dataclass(frozen=True)
class GitHubConfig:
    """Where and as whom to call the API; read once from the environment."""

    token: str = field(repr=False)
    owner: str
    repo: str
    api_url: str = DEFAULT_API_URL
    token_variable: str = "GITHUB_TOKEN"
    in_actions: bool = False
    author: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GitHubConfig:
        """Read `GITHUB_TOKEN` (or `GH_TOKEN`), `GITHUB_REPOSITORY` and `GITHUB_API_URL`.

        `GITHUB_ACTIONS=true` says the token may be the Actions bot's; `GITOPS_ML_COMMENT_AUTHOR`
        names the poster's login explicitly. When a workflow copied another secret (such as
        `RETRAIN_TOKEN`) into the variable, errors name both.
        """
        env = os.environ if env is None else env
        token_variable = next((n for n in ("GITHUB_TOKEN", "GH_TOKEN") if env.get(n)), None)
        if token_variable is None:
            raise GitopsMLError(
                "GITHUB_TOKEN is not set (nor GH_TOKEN): pass it to the step with "
                "`env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`"
            )
        token = env[token_variable].strip()
        if not token or any(c.isspace() or not c.isprintable() for c in token):
            raise GitopsMLError(f"{token_variable} is empty or contains whitespace")

        repository = env.get("GITHUB_REPOSITORY", "").strip()
        if not repository:
            raise GitopsMLError("GITHUB_REPOSITORY is not set (expected `owner/name`)")
        if not _REPOSITORY_RE.match(repository):
            raise GitopsMLError(f"GITHUB_REPOSITORY={repository!r} is not of the form `owner/name`")
        owner, repo = repository.split("/")

        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise GitopsMLError(f"GITHUB_API_URL={api_url!r} is not an http(s) URL")
        label = token_variable
        for source in _SOURCE_TOKEN_VARIABLES:
            if (env.get(source) or "").strip() == token:
                label = f"{token_variable} (set from {source})"
                break
        author = (env.get(AUTHOR_VARIABLE) or "").strip() or None
        return cls(
            token=token,
            owner=owner,
            repo=repo,
            api_url=api_url,
            token_variable=label,
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            author=author,
        )


def parse_issue_number(value: int | str) -> int:
    """Validate a PR/issue number; in CI it comes from an untrusted artifact, so be strict."""
    if isinstance(value, bool):
        raise GitopsMLError(f"invalid pull request number {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise GitopsMLError(
                f"invalid pull request number {value!r}: expected a positive integer"
            )
        value = int(text)
    if not isinstance(value, int) or not 0 < value <= _MAX_ISSUE_NUMBER:
        raise GitopsMLError(f"invalid pull request number {value!r}: expected a positive integer")
    return value


def marker_tag(marker: str) -> str:
    """The hidden HTML comment that identifies our sticky comment among all the others."""
    if not _MARKER_RE.match(marker):
        raise GitopsMLError(
            f"invalid comment marker {marker!r}: use letters, digits, '-', '_' or '.' (max 64)"
        )
    return f"<!-- gitops-ml:{marker} -->"


def cml_watermark_title(marker: str) -> str:
    """The title of CML's watermark for `--watermark-title="gitops-ml <marker>"`.

    CML escapes `_` (and `*`, `[`, `<`, which a marker cannot hold) the way GitHub stores it.
    """
    marker_tag(marker)  # validates
    return f"CML watermark gitops-ml {marker}".replace("_", "\\_")


def cml_watermark(marker: str, sha: str) -> str:
    """The watermark `cml comment update` appends, and finds again (whatever the sha)."""
    if not _SHA_RE.match(sha):
        raise GitopsMLError(f"invalid commit SHA {sha!r}: expected 40 hex digits")
    return f'![]({_CML_WATERMARK_URL}#{sha} "{cml_watermark_title(marker)}")'


def _watermark_re(marker: str) -> re.Pattern[str]:
    """What CML's `Watermark.isIn` matches: the image with any hex sha and exactly our title."""
    title = re.escape(cml_watermark_title(marker))
    return re.compile(rf'!\[\]\({re.escape(_CML_WATERMARK_URL)}#[0-9a-fA-F]+ "{title}"\)')


def carries_marker(body: str, marker: str) -> bool:
    """Whether a comment body is ours by content: our marker, or CML's watermark for it."""
    return marker_tag(marker) in body or bool(_watermark_re(marker).search(body))


def render_comment(body: str, marker: str) -> str:
    """The body to post: the marker exactly once on the first line, then the report.

    A report longer than GitHub's limit is cut at a line boundary with a visible note, so the
    comment is still posted instead of the whole step failing with a 422. CML's watermark, if the
    body holds one, is kept once at the very end, truncated or not, so CML still finds the comment.
    """
    tag = marker_tag(marker)
    text = body.replace(tag, "")
    watermarks = _watermark_re(marker).findall(text)
    tail = f"\n\n{watermarks[-1]}" if watermarks else ""
    text = _watermark_re(marker).sub("", text).strip("\n")
    total = len(tag) + 1 + len(text) + len(tail)
    if total <= MAX_COMMENT_CHARS:
        return f"{tag}\n{text}{tail}"
    note = (
        f"\n\n---\n> [!WARNING]\n> Report truncated: it has {len(text):,} characters and a GitHub "
        f"comment holds at most {MAX_COMMENT_CHARS:,}. See the workflow run for the full report.\n"
    )
    room = MAX_COMMENT_CHARS - len(tag) - 1 - len(note) - len("\n```") - len(tail)
    kept = text[:room]
    cut = kept.rfind("\n")
    if cut > room // 2:
        kept = kept[:cut]
    if sum(1 for line in kept.splitlines() if line.lstrip().startswith("```")) % 2:
        kept += "\n```"  # close a code block cut in half, or the note renders inside it
    log.warning("report is %d characters; truncated to fit a GitHub comment", len(text))
    return f"{tag}\n{kept}{note}{tail}"


class GitHubAPIError(GitopsMLError):
    """GitHub answered with an HTTP error."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RateLimitedError(GitHubAPIError):
    """A 403/429 rate limit; `wait` is how long GitHub asks to wait, in seconds."""

    def __init__(self, message: str, status: int, wait: float) -> None:
        super().__init__(message, status)
        self.wait = wait


class TransientGitHubError(GitopsMLError):
    """A 5xx answer or a network failure that outlasted the retries."""


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Message
    data: Any


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects (GitHub sends 301 for renamed repositories) but never to another host,
    where urllib would otherwise forward the Authorization header."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old = urllib.parse.urlsplit(req.full_url)
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl))
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            return None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class GitHubClient:
    """The few REST calls gitops-ml needs, with one-line errors and a small bounded retry."""

    def __init__(
        self,
        config: GitHubConfig,
        *,
        attempts: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
        max_rate_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.config = config
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.max_rate_wait = max_rate_wait  # total seconds one call may wait out rate limits
        self._sleep = sleep
        self._login: str | None = config.author
        self._opener = urllib.request.build_opener(_SameOriginRedirects())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> GitHubClient:
        """A client configured the way GitHub Actions provides the environment."""
        return cls(GitHubConfig.from_env(env), **kwargs)

    @property
    def _repo_path(self) -> str:
        return f"/repos/{self.config.owner}/{self.config.repo}"

    # -- comments -------------------------------------------------------------------------------

    def login(self) -> str:
        """The login this token posts as: only its comments are ever edited.

        `GITOPS_ML_COMMENT_AUTHOR` if set; else `GET /user` (user tokens); else, when that is
        refused inside GitHub Actions (the GITHUB_TOKEN may not call it), `github-actions[bot]`.
        """
        if self._login is None:
            try:
                data = self._request("GET", "/user").data
            except GitHubAPIError as exc:
                if exc.status not in (403, 404) or not self.config.in_actions:
                    raise GitopsMLError(
                        f"{exc}; cannot tell which account {self.config.token_variable} belongs "
                        f"to, so no comment would be safe to edit: set {AUTHOR_VARIABLE} to its login"
                    ) from None
                self._login = ACTIONS_BOT
            else:
                login = data.get("login") if isinstance(data, dict) else None
                if not isinstance(login, str) or not login:
                    raise GitopsMLError("GitHub API: GET /user returned no login")
                self._login = login
            log.debug("posting as %s", self._login)
        return self._login

    def upsert_comment(self, issue_number: int, body: str, marker: str) -> tuple[UpsertAction, str]:
        """Create or update the one comment carrying `marker`; return the action and its URL.

        A comment is ours when it holds the marker or CML's watermark for the same title AND was
        written by this token's identity (`login`): a marked comment by anyone else is never
        edited (a new comment is created instead, with a warning). Of our comments the newest is
        updated, the one `cml comment update` picks too, so both posters keep editing the same one.

        A failed create is not blindly retried: GitHub may have stored the comment before the
        5xx, so the comments are listed again first and a found marker turns the retry into an
        update.
        """
        number = parse_issue_number(issue_number)
        text = render_comment(body, marker)
        for attempt in range(1, self.attempts + 1):
            existing = self.find_own_comment(number, marker)
            if existing is not None:
                path = f"{self._repo_path}/issues/comments/{existing['id']}"
                try:
                    response = self._request(
                        "PATCH", path, {"body": text}, hint=_COMMENT_WRITE_HINT
                    )
                except GitHubAPIError as exc:
                    if exc.status != 404 or attempt == self.attempts:
                        raise
                    log.warning(
                        "comment %s vanished before the update; listing again", existing["id"]
                    )
                    continue
                data = _object(response.data, "PATCH", path)
                log.info("updated comment %s", data.get("html_url"))
                return "updated", str(data.get("html_url", ""))
            path = f"{self._repo_path}/issues/{number}/comments"
            try:
                response = self._request(
                    "POST", path, {"body": text}, hint=_COMMENT_WRITE_HINT, retry=False
                )
            except TransientGitHubError:
                if attempt == self.attempts:
                    raise
                log.warning(
                    "creating the comment failed; checking it was not stored, then retrying"
                )
                self._sleep(self._delay(attempt))
                continue
            data = _object(response.data, "POST", path)
            log.info("created comment %s", data.get("html_url"))
            return "created", str(data.get("html_url", ""))
        raise AssertionError("unreachable")  # pragma: no cover

    def list_comments(self, issue_number: int) -> list[dict[str, Any]]:
        """All comments of the issue, oldest first, following pagination."""
        number = parse_issue_number(issue_number)
        url: str | None = self._url(f"{self._repo_path}/issues/{number}/comments?per_page=100")
        comments: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            response = self._request("GET", url)
            if not isinstance(response.data, list):
                raise GitopsMLError(f"GitHub API: GET {self._path_of(url)} did not return a list")
            comments += [
                c for c in response.data if isinstance(c, dict) and isinstance(c.get("id"), int)
            ]
            url = self._next_link(response.headers)
        if url is not None:
            log.warning("stopped listing comments after %d pages", _MAX_PAGES)
        return comments

    def find_own_comment(self, issue_number: int, marker: str) -> dict[str, Any] | None:
        """The newest comment by this token's identity carrying the marker or CML's watermark."""
        marked = [
            c
            for c in self.list_comments(issue_number)
            if carries_marker(c.get("body") or "", marker)
        ]
        if not marked:
            return None
        me = self.login()
        own = [c for c in marked if _author(c) == me]
        foreign = [c for c in marked if _author(c) != me]
        if foreign:
            authors = ", ".join(sorted({_author(c) or "?" for c in foreign}))
            log.warning(
                "%d comment(s) by %s carry the %s marker: not ours (we post as %s), left untouched%s",
                len(foreign),
                authors,
                marker,
                me,
                "" if own else "; creating a new comment",
            )
        if len(own) > 1:
            log.warning("%d of our comments carry %s; updating the newest", len(own), marker)
        return own[-1] if own else None

    # -- pull requests --------------------------------------------------------------------------

    def find_open_pull(self, head_branch: str) -> dict[str, Any] | None:
        """The open pull request from `head_branch` of this repository, if any."""
        _check_branch(head_branch, "head")
        query = urllib.parse.urlencode(
            {"state": "open", "head": f"{self.config.owner}:{head_branch}", "per_page": 100}
        )
        data = self._request("GET", f"{self._repo_path}/pulls?{query}").data
        if not isinstance(data, list):
            raise GitopsMLError(f"GitHub API: GET {self._repo_path}/pulls did not return a list")
        return data[0] if data else None

    def pull_for_commit(self, sha: str) -> dict[str, Any] | None:
        """The pull request that brought commit `sha` in: the merged one first, else any.

        A merge, squash or rebase commit on the default branch is associated with its PR; a
        direct push to the branch has none.
        """
        if not _SHA_RE.match(sha):
            raise GitopsMLError(f"invalid commit SHA {sha!r}: expected 40 hex digits")
        path = f"{self._repo_path}/commits/{sha}/pulls"
        data = self._request("GET", f"{path}?per_page=100").data
        if not isinstance(data, list):
            raise GitopsMLError(f"GitHub API: GET {path} did not return a list")
        pulls = [p for p in data if isinstance(p, dict) and isinstance(p.get("number"), int)]
        merged = [p for p in pulls if p.get("merged_at")]
        return (merged or pulls or [None])[0]

    def create_pull(self, title: str, head: str, base: str, body: str) -> dict[str, Any]:
        """Open a pull request from `head` into `base`; callers check `find_open_pull` first.

        Like comments, a failed create is retried only after checking it did not go through.
        """
        _check_branch(head, "head")
        _check_branch(base, "base")
        if not title.strip():
            raise GitopsMLError("a pull request needs a non-empty title")
        payload = {"title": title, "head": head, "base": base, "body": body}
        path = f"{self._repo_path}/pulls"
        for attempt in range(1, self.attempts + 1):
            if attempt > 1 and (existing := self.find_open_pull(head)) is not None:
                return existing
            try:
                response = self._request("POST", path, payload, hint=_PULL_WRITE_HINT, retry=False)
            except TransientGitHubError:
                if attempt == self.attempts:
                    raise
                self._sleep(self._delay(attempt))
                continue
            data = _object(response.data, "POST", path)
            log.info("opened pull request %s", data.get("html_url"))
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    # -- transport ------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.config.api_url + path

    def _path_of(self, url: str) -> str:
        """The URL without the API root, for short error messages."""
        return url[len(self.config.api_url) :] if url.startswith(self.config.api_url) else url

    def _delay(self, attempt: int) -> float:
        return self.backoff * 2 ** (attempt - 1)

    def _next_link(self, headers: Message) -> str | None:
        """The `rel="next"` page, only if it stays on the API host (the token goes with it)."""
        for url, rels in _LINK_RE.findall(headers.get("Link", "")):
            if "next" in rels.split():
                if not url.startswith(self.config.api_url + "/"):
                    raise GitopsMLError(f"GitHub API: next page {url!r} is outside GITHUB_API_URL")
                return url
        return None

    def _request(
        self,
        method: str,
        path_or_url: str,
        payload: Any = None,
        *,
        hint: str | None = None,
        retry: bool = True,
    ) -> _Response:
        """One API call; 5xx and network errors are retried (if `retry`) with a short backoff."""
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        attempts = self.attempts if retry else 1
        attempt = 0
        waited = 0.0
        rate_waits = 0
        while True:
            attempt += 1
            try:
                return self._send(method, url, payload, hint)
            except RateLimitedError as exc:
                # A rate-limited request was not processed: retrying even a create is safe.
                rate_waits += 1
                if waited + exc.wait > self.max_rate_wait or rate_waits > _MAX_RATE_WAITS:
                    raise GitHubAPIError(
                        f"{exc}; GitHub asks to wait {exc.wait:.0f}s more, beyond the "
                        f"{self.max_rate_wait:.0f}s this command waits (waited {waited:.0f}s): "
                        "retry later",
                        exc.status,
                    ) from None
                log.warning("%s; waiting %.0fs as GitHub asks", exc, exc.wait)
                self._sleep(exc.wait)
                waited += exc.wait
                attempt -= 1  # rate-limit waits are bounded by time, not by the attempt count
            except TransientGitHubError as exc:
                if attempt == attempts:
                    if attempts > 1:
                        raise TransientGitHubError(f"{exc} (after {attempts} attempts)") from exc
                    raise
                delay = self._delay(attempt)
                log.warning("%s; retrying in %.1fs", exc, delay)
                self._sleep(delay)

    def _send(self, method: str, url: str, payload: Any, hint: str | None) -> _Response:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("Authorization", f"Bearer {self.config.token}")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json; charset=utf-8")
        path = self._path_of(url).split("?")[0]
        log.debug("%s %s", method, path)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
                return _Response(response.status, response.headers, _json_or_none(raw))
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read()
            except OSError:
                raw = b""
            finally:
                exc.close()
            raise self._http_error(method, path, exc.code, exc.headers, raw, hint) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientGitHubError(
                f"cannot reach the GitHub API at {self.config.api_url} ({method} {path}): {reason}"
            ) from None

    def _http_error(
        self, method: str, path: str, status: int, headers: Message, raw: bytes, hint: str | None
    ) -> GitopsMLError:
        """Turn an HTTP error into one line that says what to fix."""
        message = _github_message(raw) or "no message"
        where = f"GitHub API: {method} {path} -> {status}: {message}"
        if status >= 500:
            return TransientGitHubError(where)
        if status == 401:
            return GitHubAPIError(
                f"{where}; the token in {self.config.token_variable} was rejected "
                "(expired, revoked or not a GitHub token)",
                status,
            )
        wait = _rate_limit_wait(status, headers, message)
        if wait is not None:
            return RateLimitedError(f"{where}; API rate limit reached", status, wait)
        if status in (403, 404) and hint is not None:
            return GitHubAPIError(f"{where}; {hint}", status)
        return GitHubAPIError(where, status)


def _rate_limit_wait(status: int, headers: Message, message: str) -> float | None:
    """Seconds GitHub asks to wait when a 403/429 is a rate limit, else None.

    `Retry-After` first; else an exhausted primary limit waits until `X-RateLimit-Reset`; else a
    secondary limit waits the minute GitHub's documentation asks for.
    """
    if status not in (403, 429):
        return None
    retry_after = (headers.get("Retry-After") or "").strip()
    remaining = (headers.get("X-RateLimit-Remaining") or "").strip()
    if not (status == 429 or retry_after or remaining == "0" or "rate limit" in message.lower()):
        return None
    if retry_after.isdigit():
        return float(retry_after)
    reset = (headers.get("X-RateLimit-Reset") or "").strip()
    if remaining == "0" and reset.isdigit():
        return max(0.0, int(reset) - time.time()) + 1.0
    return _SECONDARY_RATE_WAIT


def _author(comment: Mapping[str, Any]) -> str | None:
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return login if isinstance(login, str) else None


def _check_branch(name: str, role: str) -> None:
    if not name or not name.strip() or any(c.isspace() or c in "~^:?*[\\" for c in name):
        raise GitopsMLError(f"invalid {role} branch name {name!r}")


def _object(data: Any, method: str, path: str) -> dict[str, Any]:
    """GitHub answers writes with the written object; anything else is a broken proxy or API."""
    if not isinstance(data, dict):
        raise GitopsMLError(f"GitHub API: {method} {path} did not return an object")
    return data


def _json_or_none(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise GitopsMLError(f"GitHub API returned a non-JSON answer: {exc}") from None


def _github_message(raw: bytes) -> str:
    """GitHub's `message` (plus the first validation error), squeezed onto one short line."""
    try:
        data = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace")
    else:
        if isinstance(data, dict):
            text = str(data.get("message", ""))
            errors = data.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                detail = errors[0].get("message") or errors[0].get("code")
                if detail:
                    text = f"{text} ({detail})"
        else:
            text = str(data)
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")
