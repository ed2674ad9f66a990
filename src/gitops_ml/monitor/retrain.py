"""Retraining pull requests: a drifted batch becomes new training data in a reviewed PR.

`gitops-ml retrain --batch FILE` runs after `gitops-ml drift` judged FILE (its JSON report says
whether the batch drifted, its markdown becomes the pull request's description). Nothing is
deployed: the pull request gets the usual reproduction, report and quality gate (pr.yml), and
merging it is what promotes the retrained model.

Two reasons retrain (`Drift.reason`), and the pull request's title and description say which:

- data drift (``drift`` in the report): the batch no longer looks like the training data;
- a quality alert alone (``quality.alert``, no data drift): the model breaks ``gate.thresholds``
  on the batch's labelled rows although its features did not move. The relation between the
  features and the label changed (concept drift), which training on these labels fixes, or the
  labels are wrong, which the reviewer checks before merging; either way the pull request's gate
  measures the retrained model on a test split that now holds part of the batch, so labels that
  contradict the rest of the data show up as a worse model there.

A quality alert that comes from labels the model has no class for (a new class, or a broken
label feed such as ``>50K.``) retrains nothing: appending those rows would teach the model a
broken label; the label feed needs fixing first (a message, exit 0). Without drift or alert
there is nothing to retrain (exit 0).

On either reason, step by step:

1. Refuse (exit 2) when no default DVC remote is configured: the batch would stay in this
   machine's DVC cache, so CI could never fetch it and the pull request would be red by design.
   Then, if an open pull request from the retrain branch (``--branch``, default
   ``retrain/drift``) exists, say so and stop (exit 0): one retraining PR at a time, new batches
   wait for it.
2. Check the checkout: no uncommitted changes to tracked files, the pipeline up to date
   (`dvc status` clean, so the PR shows the effect of the batch alone), the batch readable
   with the source's columns.
3. Branch from the current commit (main), copy the batch to
   ``data/source/batches/<UTC date>-<md5 prefix>.<suffix>``, `dvc add data/source/batches`
   (the batches are a DVC-tracked directory: their bytes go to the DVC remote, git holds
   ``data/source/batches.dvc``), `dvc repro` (the ingest stage appends every batch to the
   source), and `dvc push` to the default DVC remote.
4. Commit dvc.lock, the .dvc file and the changed metrics (params are untouched), push the
   branch to ``--remote`` (default ``origin``), open the pull request through the GitHub REST
   client (`gitops_ml.pr.github`).

If a step after branching fails, the checkout is put back: the original branch, the batch file
removed, the DVC outputs checked out again; a run killed on the way (kill -9) is put back the same
way by the next run, from the file it left in the git directory (`RUN_FILE`). Re-running after any failure opens exactly one pull
request: when the remote already has the branch for this batch on this commit (the pull request
could not be opened last time), it is opened from that branch without retraining again; any
other branch left by a failed run is replaced (force push), which is safe because no open pull
request uses it (step 1). The commit's trailers (``Retrain-Batch``, ``Retrain-Batch-MD5``)
identify the batch.

Authentication: the API calls and the git remote use the token of ``GITHUB_TOKEN`` (or
``GH_TOKEN``), with ``GITHUB_REPOSITORY`` and ``GITHUB_API_URL`` as GitHub Actions sets them.
For an ``https://`` remote the token is handed to git as an ``Authorization`` header through
``GIT_CONFIG_*`` environment variables (never on a command line or in .git/config), so the
workflow checks out with ``persist-credentials: false`` and gives the token to this one step
(see the step "Open the retraining pull request" of .github/workflows/monitor.yml).

``RETRAIN_TOKEN`` is a fine-grained personal access token or a GitHub App token with contents
and pull-requests write access: the events of the workflow's own ``github.token`` start no
workflows, so a pull request opened with it would get no CI run (no report, no gate).

Exit codes: 0 a pull request was opened, or one is already open, or there is nothing to retrain;
2 on errors, no DVC remote included (one line; nothing is left half-done in the checkout).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gitops_ml.cliargs import exit_codes
from gitops_ml.errors import GitopsMLError
from gitops_ml.files import atomic_path, file_md5
from gitops_ml.lineage import git
from gitops_ml.lineage.dvclock import dvc_env, error_line

log = logging.getLogger(__name__)

DEFAULT_BRANCH = "retrain/drift"
DEFAULT_SOURCE_DIR = "data/source"
#: At most this many drifted features are named in the pull request's title.
TITLE_FEATURES = 3
#: GitHub refuses pull request descriptions longer than this many characters.
MAX_BODY_CHARS = 65_536
#: The commit author when git has no identity configured (a CI runner).
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
#: Trailers of the retraining commit: which batch it adds, so a rerun can recognise its branch.
BATCH_TRAILER = "Retrain-Batch"
MD5_TRAILER = "Retrain-Batch-MD5"
DATA_TRAILER = "Retrain-Data-Pushed"
#: Written in the git directory before branching, removed when the run ends: a run killed on
#: the way (kill -9, a cancelled job) left its checkout on the branch, and the next run puts it
#: back first (`recover`), as the killed run's own failure handling would have.
RUN_FILE = "gitops-ml-retrain.json"
#: What to do when there is no DVC remote (one line; monitor.yml's job summary says the same).
NO_REMOTE_HINT = (
    "no default DVC remote is configured, so CI could not fetch the batch and the retraining "
    "pull request would fail: add one (`dvc remote add -d storage s3://bucket/path` and `dvc "
    "remote modify storage verify true`, commit .dvc/config) and its write credentials (the "
    "AWS_WRITE_ROLE_ARN variable for OIDC, or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
    "secrets of the retrain environment); see the README, 'Team-scale storage: a DVC remote'"
)


class RetrainError(GitopsMLError):
    """A retraining step failed; the message says which and why."""


@dataclass(frozen=True)
class Drift:
    """What `gitops-ml drift` wrote about the batch: data drift and the quality check."""

    drift: bool
    current: str | None
    drifted_features: tuple[str, ...]
    summary: str
    markdown: str
    quality_alert: bool = False
    #: why the quality alerts (the report's ``quality.reasons``)
    quality_reasons: tuple[str, ...] = ()
    #: the gate.thresholds metrics the labelled rows fail
    failed_metrics: tuple[str, ...] = ()
    labelled_rows: int = 0
    #: labelled rows whose label the model has no class for
    unseen_label_rows: int = 0

    @property
    def reason(self) -> str | None:
        """Why retrain: ``"drift"``, ``"quality"`` (an alert without data drift), or None."""
        if self.drift:
            return "drift"
        if self.quality_alert and not self.unseen_label_rows:
            return "quality"
        return None

    def no_retrain_message(self, json_path: Path) -> str:
        """What retrain says when `reason` is None."""
        if self.quality_alert:
            return (
                f"{json_path}: no data drift, and the quality alert comes from "
                f"{self.unseen_label_rows} labelled row(s) with labels the model has no class "
                "for; not retraining on them: fix the label feed (or the schema, for a new "
                "class) first"
            )
        return f"{json_path}: no drift and no quality alert; nothing to retrain"


# -- inputs -------------------------------------------------------------------------------------


def read_drift(json_path: Path, markdown_path: Path) -> Drift:
    """The drift verdict and its markdown, or a one-line error naming what is wrong."""
    try:
        data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RetrainError(f"{json_path}: file not found (run `gitops-ml drift` first)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RetrainError(f"{json_path}: not a drift report: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("drift"), bool):
        raise RetrainError(f"{json_path}: not a drift report (no boolean 'drift' key)")
    features = data.get("drifted_features") or []
    quality = data.get("quality")  # absent in a report from before the quality check
    quality = quality if isinstance(quality, Mapping) else {}
    if not isinstance(quality.get("alert", False), bool):
        raise RetrainError(f"{json_path}: not a drift report ('quality.alert' is not a boolean)")
    rules = quality.get("rules") if isinstance(quality.get("rules"), list) else []
    unseen = (
        quality.get("unseen_labels") if isinstance(quality.get("unseen_labels"), Mapping) else {}
    )
    drift = Drift(
        drift=data["drift"],
        current=data.get("current") if isinstance(data.get("current"), str) else None,
        drifted_features=tuple(f for f in features if isinstance(f, str)),
        summary=str(data.get("summary", "")),
        markdown="",
        quality_alert=bool(quality.get("alert", False)),
        quality_reasons=tuple(str(r) for r in quality.get("reasons") or ()),
        failed_metrics=tuple(
            str(r.get("metric"))
            for r in rules
            if isinstance(r, Mapping) and r.get("passed") is False and not r.get("skipped")
        ),
        labelled_rows=_count(quality.get("labelled_rows")),
        unseen_label_rows=sum(_count(v) for v in unseen.values()),
    )
    if drift.reason is not None:
        try:
            markdown = Path(markdown_path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RetrainError(
                f"{markdown_path}: file not found (the pull request's description)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RetrainError(f"{markdown_path}: cannot read it: {exc}") from None
        if not markdown.strip():
            raise RetrainError(f"{markdown_path}: is empty; refusing to open an empty PR")
        drift = dataclasses.replace(drift, markdown=markdown)
    return drift


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def pr_title(drift: Drift) -> str:
    """``Retrain: drift detected in age, sex (+2 more)``, or the predictions' drift; for a
    quality alert alone, ``Retrain: roc_auc, log_loss break gate.thresholds on labelled data``."""
    if drift.reason == "quality":
        failed = list(drift.failed_metrics)
        if not failed:
            return "Retrain: quality alert on a labelled batch"
        shown = ", ".join(failed[:TITLE_FEATURES])
        more = f" (+{len(failed) - TITLE_FEATURES} more)" if len(failed) > TITLE_FEATURES else ""
        verb = "breaks" if len(failed) == 1 else "break"
        return f"Retrain: {shown}{more} {verb} gate.thresholds on a labelled batch"
    names = list(drift.drifted_features)
    if not names:
        return "Retrain: drift detected in the model's predictions"
    shown = ", ".join(names[:TITLE_FEATURES])
    more = f" (+{len(names) - TITLE_FEATURES} more)" if len(names) > TITLE_FEATURES else ""
    return f"Retrain: drift detected in {shown}{more}"


def reason_text(drift: Drift) -> str:
    """The pull request's first paragraph: why it retrains."""
    if drift.reason == "quality":
        reasons = "; ".join(drift.quality_reasons) or "see the report below"
        return (
            "**Why: a quality alert, without data drift.** The features of the batch still look "
            "like the training data, but the model breaks gate.thresholds on its "
            f"{drift.labelled_rows} labelled rows: {reasons}. Either the relation between the "
            "features and the label has changed (concept drift), which retraining on these "
            "labels fixes, or the labels are wrong: **check a sample of the batch's labels "
            "before merging**. The batch's rows are now split into train and test like any "
            "data, so labels that contradict the rest show up below as a worse model."
        )
    extra = (
        f" The model also breaks gate.thresholds on its labelled rows: "
        f"{'; '.join(drift.quality_reasons)}."
        if drift.quality_alert and drift.quality_reasons
        else ""
    )
    return (
        "**Why: data drift.** The batch no longer looks like the data the model was trained "
        f"on (the report below).{extra}"
    )


def pr_body(drift: Drift, batch_path: str, pushed: bool) -> str:
    """Why it retrains, the drift markdown and what the pull request changes, within GitHub's
    limit."""
    storage = (
        "pushed to the DVC remote"
        if pushed
        else "**not pushed: no DVC remote is configured**, so CI cannot fetch it"
    )
    footer = (
        "\n\n---\n"
        f"Opened by `gitops-ml retrain`: the batch is appended to the training data as "
        f"`{batch_path}` (DVC-tracked, {storage}) and the pipeline was reproduced; "
        "dvc.lock and the metrics are in this branch, params.yaml is unchanged. "
        "Merge only if the report and the quality gate of this pull request are good: "
        "merging promotes the retrained model.\n"
    )
    text = reason_text(drift) + "\n\n" + drift.markdown.strip("\n")
    room = MAX_BODY_CHARS - len(footer) - 100
    if len(text) > room:
        cut = text.rfind("\n", 0, room)
        text = text[: cut if cut > 0 else room] + "\n\n(drift report truncated)"
    return text + footer


# -- subprocesses -------------------------------------------------------------------------------


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return dvc_env({"GIT_TERMINAL_PROMPT": "0", **(extra or {})})


def _run(
    root: Path,
    cmd: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    echo: bool = False,
    stdin: str | None = None,
    timeout: int = 3600,
) -> str:
    """stdout of `cmd`; a failure is a RetrainError with the command's last error line."""
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=root,
            env=dict(env) if env is not None else _env(),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise RetrainError(f"{what}: {cmd[0]} is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise RetrainError(f"{what}: no answer after {timeout} s") from None
    if echo and (proc.stdout.strip() or proc.stderr.strip()):
        sys.stdout.write(proc.stdout + proc.stderr)
        sys.stdout.flush()
    if proc.returncode != 0:
        raise RetrainError(f"{what} failed: {error_line(proc)}")
    return proc.stdout


def _dvc(root: Path, *args: str, what: str | None = None, echo: bool = False) -> str:
    return _run(root, [sys.executable, "-m", "dvc", *args], what or f"dvc {args[0]}", echo=echo)


def _git(root: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    return _run(root, ["git", *args], f"git {args[0]}", env=env)


def push_env(remote_url: str, token: str | None) -> dict[str, str]:
    """Environment for `git push`: for an https remote, the token as an Authorization header.

    Passed through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` (git 2.31+),
    so it is in no process's arguments and in no config file; the empty value first clears any
    header a checkout left for the same host.
    """
    env = _env()
    parts = urllib.parse.urlsplit(remote_url)
    if not token or parts.scheme != "https" or not parts.hostname:
        return env
    key = f"http.https://{parts.netloc.rsplit('@', 1)[-1]}/.extraheader"
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    n = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    env.update(
        {
            "GIT_CONFIG_COUNT": str(n + 2),
            f"GIT_CONFIG_KEY_{n}": key,
            f"GIT_CONFIG_VALUE_{n}": "",
            f"GIT_CONFIG_KEY_{n + 1}": key,
            f"GIT_CONFIG_VALUE_{n + 1}": f"AUTHORIZATION: basic {basic}",
        }
    )
    return env


def _commit_env(root: Path) -> dict[str, str]:
    """Commit as the configured user, else as the GitHub Actions bot (a CI runner has none)."""
    env = _env()
    for key, variables, default in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"), BOT_NAME),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"), BOT_EMAIL),
    ):
        if git.git("config", "--get", key, cwd=root, check=False) is None:
            for variable in variables:
                env.setdefault(variable, default)
    return env


# -- checks -------------------------------------------------------------------------------------


def check_batch(batch: Path, root: Path, source_dir: Path, params_path: Path) -> int:
    """Read the batch as the ingest stage will; its row count, or a DataError naming the file."""
    from gitops_ml.config import load_params
    from gitops_ml.sources import BATCH_SUFFIXES, load_source, read_batch

    if not batch.is_file():
        raise RetrainError(f"{batch}: batch file not found")
    if not batch.name.lower().endswith(BATCH_SUFFIXES):
        raise RetrainError(f"{batch}: not a batch file; use one of {', '.join(BATCH_SUFFIXES)}")
    cfg = load_params(params_path).data
    if cfg.path is not None and not Path(cfg.path).is_absolute():
        # data.path is relative to the repository root, where `dvc repro` runs the stage.
        cfg = dataclasses.replace(cfg, path=str(root / cfg.path))
    source = load_source(cfg, root / source_dir)
    return len(read_batch(batch, source))


def check_checkout(root: Path, branch: str) -> None:
    """Refuse a checkout that cannot be branched from cleanly (a one-line reason why)."""
    from gitops_ml.lineage.dvclock import dvc_status

    changed = _git(root, "status", "--porcelain", "--untracked-files=no").splitlines()
    if changed:
        names = ", ".join(line[3:] for line in changed[:5])
        raise RetrainError(
            f"uncommitted changes to tracked files ({names}); retrain from a clean checkout of main"
        )
    current = _git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if current == branch:
        raise RetrainError(f"already on {branch}; check out main first")
    stale = sorted(dvc_status(root))
    if stale:
        raise RetrainError(
            f"the pipeline is not up to date ({', '.join(stale)} changed); run `dvc pull` or "
            "`dvc repro` on main first, so the pull request shows the batch's effect alone"
        )


def batch_destination(batch: Path, batches_dir: Path, today: datetime | None = None) -> Path:
    """``<UTC date>-<md5 prefix><suffix>`` in `batches_dir`; a batch already there is an error."""
    from gitops_ml.sources import BATCH_SUFFIXES

    digest = file_md5(batch)[:8]
    suffix = next(s for s in BATCH_SUFFIXES if batch.name.lower().endswith(s))
    if batches_dir.is_dir():
        for existing in sorted(batches_dir.iterdir()):
            if f"-{digest}." in existing.name:
                raise RetrainError(
                    f"{batch}: this batch is already in the training data as {existing}"
                )
    date = (today or datetime.now(UTC)).strftime("%Y-%m-%d")
    return batches_dir / f"{date}-{digest}{suffix}"


# -- the flow -----------------------------------------------------------------------------------


def retrain(
    *,
    batch: Path,
    drift_json: Path,
    drift_markdown: Path,
    branch: str = DEFAULT_BRANCH,
    base: str = "main",
    remote: str = "origin",
    source_dir: Path = Path(DEFAULT_SOURCE_DIR),
    params_path: Path = Path("params.yaml"),
    env: Mapping[str, str] | None = None,
) -> None:
    """Open the retraining pull request for a drifted batch (see the module docstring)."""
    from gitops_ml.pr.github import GitHubClient

    drift = read_drift(drift_json, drift_markdown)
    if drift.reason is None:
        print(drift.no_retrain_message(drift_json))
        return
    batch = batch.resolve()
    if drift.current is not None and Path(drift.current).resolve() != batch:
        raise RetrainError(
            f"{drift_json} judged {drift.current}, not the batch {batch}; "
            "run `gitops-ml drift` on this batch first"
        )

    root = git.repo_root(Path.cwd())
    dvc_remote = default_dvc_remote(root)
    if dvc_remote is None:
        raise RetrainError(NO_REMOTE_HINT)

    client = GitHubClient.from_env(env)
    existing = client.find_open_pull(branch)
    if existing is not None:
        print(
            f"a retraining pull request is already open: #{existing.get('number')} "
            f"{existing.get('html_url', '')}; not opening another (this batch waits for it)"
        )
        return

    recover(root)
    rel_source = _inside(root, source_dir, "--source-dir")
    remote_url = _run(root, ["git", "remote", "get-url", remote], f"git remote {remote}").strip()
    git_env = push_env(remote_url, client.config.token)
    start = git.resolve("HEAD", cwd=root)
    digest = file_md5(batch)
    earlier = pushed_earlier(root, remote, branch, start, digest, git_env)
    if earlier is not None:
        print(
            f"{remote} has {branch} with this batch on {start[:12]} from an earlier run: "
            "opening its pull request"
        )
        body = pr_body(drift, earlier.get(BATCH_TRAILER, "?"), earlier.get(DATA_TRAILER) == "yes")
        _opened(client.create_pull(pr_title(drift), branch, base, body))
        return

    rows = check_batch(batch, root, rel_source, params_path.resolve())
    check_checkout(root, branch)
    original = _git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if original == "HEAD":  # a detached checkout: come back to the commit
        original = start
    batches_dir = rel_source / "batches"
    dest = batch_destination(batch, root / batches_dir)
    rel_dest = dest.relative_to(root).as_posix()
    dvc_file = f"{batches_dir.as_posix()}.dvc"
    created_dir = not dest.parent.exists()
    added = None if (root / dvc_file).exists() else root / dvc_file
    copied = False
    run_file = _run_file(root)
    with atomic_path(run_file) as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "branch": branch,
                    "original": original,
                    "start": start,
                    "copied": rel_dest,
                    "created_dir": created_dir,
                    "added": None if added is None else dvc_file,
                }
            )
        )
    try:
        _git(root, "checkout", "-q", "-B", branch, start)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(batch, dest)
        copied = True
        print(f"added the batch ({rows} rows) as {rel_dest}")
        _dvc(root, "add", batches_dir.as_posix(), what=f"dvc add {batches_dir.as_posix()}")
        _dvc(root, "repro", echo=True)
        pushed = _push_data(root, dvc_remote)

        _git(root, "add", "--", "dvc.lock", dvc_file, f"{rel_source.as_posix()}/.gitignore")
        _git(root, "add", "-u")
        message = (
            f"{pr_title(drift)}\n\nThe batch ({rows} rows) is appended to the training data and "
            f"the pipeline reproduced, for {_REASONS[drift.reason]}.\n{drift.summary}\n\n"
            f"{BATCH_TRAILER}: {rel_dest}\n{MD5_TRAILER}: {digest}\n"
            f"{DATA_TRAILER}: {'yes' if pushed else 'no'}\n"
        )
        _run(
            root,
            ["git", "commit", "-q", "-F", "-"],
            "git commit",
            env=_commit_env(root),
            stdin=message,
            timeout=120,
        )
        # --force: a branch left by a failed run is replaced (no open PR uses it, see above).
        _run(
            root,
            ["git", "push", "--force", "-q", remote, f"HEAD:refs/heads/{branch}"],
            f"git push to {remote}",
            env=git_env,
        )
        print(f"pushed {branch} to {remote}")
        pull = client.create_pull(pr_title(drift), branch, base, pr_body(drift, rel_dest, pushed))
    except BaseException:
        if _restore(root, original, start, dest if copied else None, created_dir, added):
            run_file.unlink(missing_ok=True)
        raise
    run_file.unlink(missing_ok=True)
    print(f"this checkout is on {branch}; `git checkout {original} && dvc checkout` to go back")
    _opened(pull)


#: The retraining commit's words for `Drift.reason`.
_REASONS = {
    "drift": "data drift",
    "quality": "a quality alert without data drift (the model breaks gate.thresholds on the "
    "batch's labels)",
}


def _opened(pull: Mapping[str, Any]) -> None:
    print(f"opened the retraining pull request #{pull.get('number')} {pull.get('html_url', '')}")


def pushed_earlier(
    root: Path, remote: str, branch: str, start: str, digest: str, env: Mapping[str, str]
) -> dict[str, str] | None:
    """The trailers of `branch` on `remote` when an earlier run pushed it for this very batch on
    this very commit (and then failed to open the pull request); None otherwise."""
    heads = _run(
        root,
        ["git", "ls-remote", "--heads", remote, f"refs/heads/{branch}"],
        f"git ls-remote {remote}",
        env=env,
    )
    if not heads.strip():
        return None
    _run(
        root,
        ["git", "fetch", "-q", "--no-tags", remote, f"refs/heads/{branch}"],
        f"git fetch {remote} {branch}",
        env=env,
    )
    parent = git.git("rev-parse", "--verify", "--quiet", "FETCH_HEAD^", cwd=root, check=False)
    parent = (parent or "").strip()
    trailers: dict[str, str] = {}
    for line in _git(root, "log", "-1", "--format=%B", "FETCH_HEAD").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in (BATCH_TRAILER, MD5_TRAILER, DATA_TRAILER):
            trailers[key] = value.strip()
    if parent != start or trailers.get(MD5_TRAILER) != digest:
        return None
    return trailers


def _inside(root: Path, path: Path, flag: str) -> Path:
    full = (Path.cwd() / path).resolve()
    if not full.is_relative_to(root.resolve()):
        raise RetrainError(f"{flag} {path} is outside the repository {root}")
    return full.relative_to(root.resolve())


def default_dvc_remote(root: Path) -> str | None:
    """The name of the default DVC remote (`dvc remote default`), None when there is none."""
    try:
        name = _dvc(root, "remote", "default").strip()
    except RetrainError:  # "No default remote set", exit code 1
        return None
    return name or None


def _push_data(root: Path, name: str) -> bool:
    """`dvc push` the batch and the retrained outputs to the default DVC remote `name`."""
    _dvc(root, "push", what=f"dvc push to the DVC remote {name}")
    print(f"pushed the data to the DVC remote {name}")
    return True


def _restore(
    root: Path,
    original: str,
    start: str,
    copied: Path | None,
    created_dir: bool,
    added: Path | None = None,
) -> bool:
    """Put the checkout back as it was before branching (best effort, after a failure); whether
    it all went back. `added` is the .dvc file of the batches when this run created it."""
    try:
        _git(root, "reset", "-q", "--hard", start)
        _git(root, "checkout", "-q", original)
    except RetrainError as exc:
        log.warning("could not restore the checkout: %s", exc)
        return False
    if copied is not None:
        copied.unlink(missing_ok=True)
        if created_dir and copied.parent.is_dir() and not any(copied.parent.iterdir()):
            copied.parent.rmdir()
    if added is not None:
        added.unlink(missing_ok=True)  # untracked (never committed on `original`)
    try:
        _dvc(root, "checkout", "--force", "--quiet")
    except RetrainError as exc:
        log.warning("restored git, but %s", exc)
        return False
    log.warning("restored the checkout to %s", original)
    return True


def _run_file(root: Path) -> Path:
    return root / _git(root, "rev-parse", "--git-path", RUN_FILE).strip()


def recover(root: Path) -> None:
    """Put back the checkout a killed run left (see RUN_FILE); nothing when none was killed.

    Only a checkout still on the killed run's branch or commit is touched; a live run in the
    same checkout is an error."""
    path = _run_file(root)
    try:
        left = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except ValueError:  # not written whole: the run was killed before it branched
        path.unlink(missing_ok=True)
        return
    try:
        os.kill(int(left["pid"]), 0)
        alive = True
    except ProcessLookupError:
        alive = False
    except OSError:  # another user's process
        alive = True
    if alive:
        raise RetrainError(
            f"another retrain (pid {left['pid']}) is running in {root} (if not, remove {path})"
        )
    # git's own locks, when the kill fell in one of the run's git commands (git refuses to
    # start while they exist, saying another git process seems to be running)
    for name in ("index.lock", "HEAD.lock", f"refs/heads/{left['branch']}.lock"):
        lock = root / _git(root, "rev-parse", "--git-path", name).strip()
        if lock.is_file():
            lock.unlink()
            print(f"removed {lock}, left by the killed retrain")
    current = _git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    if current == left["branch"] or git.resolve("HEAD", cwd=root) == left["start"]:
        print(f"putting back the checkout a killed retrain left on {current}")
        added = root / left["added"] if left.get("added") else None
        copied = root / left["copied"]
        if not _restore(root, left["original"], left["start"], copied, left["created_dir"], added):
            raise RetrainError(
                f"could not put back the checkout a killed retrain left ({path}): see the "
                "warnings above"
            )
    path.unlink(missing_ok=True)


# -- the CLI ------------------------------------------------------------------------------------


def _retrain_cmd(args: argparse.Namespace) -> int:
    retrain(
        batch=Path(args.batch),
        drift_json=Path(args.drift_json),
        drift_markdown=Path(args.drift_markdown),
        branch=args.branch,
        base=args.base,
        remote=args.remote,
        source_dir=Path(args.source_dir),
        params_path=Path(args.params),
    )
    return 0


def register(sub: Any) -> None:
    """Add the `retrain` subcommand to the `gitops-ml` parser."""
    p = sub.add_parser(
        "retrain",
        help="open a PR that retrains on a drifted or failing batch",
        description="After `gitops-ml drift` found drift in a batch, or a quality alert on its "
        "labels: append the batch to the DVC-tracked training data on a branch, reproduce the "
        "pipeline, push, and open one pull request (none when one is already open) that says "
        "which reason it retrains for.",
        epilog=exit_codes(
            "pull request opened, one already open, or nothing to retrain (no drift, no quality "
            "alert, or one from labels the model has no class for)",
            bad="no default DVC remote, the checkout is not clean or up to date, git, DVC or "
            "GitHub failed, or bad usage",
        ),
    )
    p.add_argument("--batch", required=True, help="the batch drift judged (.parquet or .csv)")
    p.add_argument(
        "--drift-json", default="reports/drift.json", help="drift's JSON (default: %(default)s)"
    )
    p.add_argument(
        "--drift-markdown",
        default="reports/drift.md",
        help="drift's markdown, the PR description (default: %(default)s)",
    )
    p.add_argument(
        "--branch", default=DEFAULT_BRANCH, help="the PR's head branch (default: %(default)s)"
    )
    p.add_argument("--base", default="main", help="the PR's base branch (default: %(default)s)")
    p.add_argument(
        "--remote", default="origin", help="git remote to push to (default: %(default)s)"
    )
    p.add_argument(
        "--source-dir",
        default=DEFAULT_SOURCE_DIR,
        help="the ingest stage's source directory (default: %(default)s)",
    )
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.set_defaults(func=_retrain_cmd)
