"""Fixtures that build a throw-away copy of the template as a real git + DVC repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.config import GITOPS_FILE
from gitops_ml.sources import ADULT_COLUMNS
from tests.conftest import load_bench
from tests.integration.s3_remote import S3Remote, run_moto_server

ROOT = Path(__file__).resolve().parents[2]


def template_env(root: Path) -> dict[str, str]:
    """The environment of `make`: this interpreter's bin first, telemetry off, a local tracker."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        OMP_WAIT_POLICY="passive",
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    env.pop("OMP_NUM_THREADS", None)
    return env


def copy_template(dest: Path) -> Path:
    """Copy the template's files into `dest` and make it a git repository with DVC set up
    (the benchmark's copy: one list of what a team gets when it uses the template)."""
    dest.mkdir(parents=True, exist_ok=True)
    load_bench().copy_template(ROOT, dest)
    return dest


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """A fresh copy of the template: a git repo with DVC, nothing run yet."""
    return copy_template(tmp_path / "repo")


def run_in(
    repo: Path, *cmd: str, check: bool = True, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in a template copy; `check=False` returns failures instead of raising."""
    env = template_env(repo)
    env.update(extra_env or {})
    proc = subprocess.run(list(cmd), cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def set_params(repo: Path, **sections: dict) -> None:
    """Update keys of params.yaml, or of gitops.yaml for its sections (gate, drift), in a
    template copy (section=dict of keys)."""
    for name in ("params.yaml", GITOPS_FILE):
        path = repo / name
        if not path.exists():
            continue
        settings = yaml.safe_load(path.read_text())
        mine = {section: values for section, values in sections.items() if section in settings}
        for section, values in mine.items():
            settings[section].update(values)
        if mine:
            path.write_text(yaml.safe_dump(settings, sort_keys=False))


# -- a team's repository on a small sample: what the GitOps tests start from --------------------

SAMPLE = "data/source/adult_sample.csv"


def adult_sample(n: int) -> pd.DataFrame:
    """A team's own CSV: n rows of the shipped Adult training file, with a header."""
    df = pd.read_csv(
        ROOT / "data/source/adult/adult.data.gz",
        header=None,
        names=list(ADULT_COLUMNS),
        skipinitialspace=True,
    )
    return df.sample(n=n, random_state=7)


def in_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For in-process calls: in `repo`, against its own SQLite registry, with no PR number and
    no injected crash."""
    from gitops_ml import tracking
    from gitops_ml.release import promote

    monkeypatch.chdir(repo)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo / 'mlflow.db'}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.delenv(tracking.PR_NUMBER_ENV, raising=False)
    monkeypatch.delenv(promote.CRASH_ENV, raising=False)
    return repo


def lock_hashes(repo: Path) -> dict[str, str]:
    """Every output's md5 in dvc.lock, keyed by stage and path."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {
        f"{name}:{out['path']}": out["md5"]
        for name, stage in lock["stages"].items()
        for out in stage.get("outs", [])
    }


def sample_repo(
    dest: Path,
    rows: int,
    *,
    files: tuple[str, ...] = (),
    remote: Path | None = None,
    message: str = "main: the pipeline on a sample",
) -> Path:
    """The template on `rows` rows of Adult (a CSV source), reproduced and committed on `main`.

    `files` are more of this repository's files to copy in (the Makefile, a workflow...); with a
    `remote` directory, it becomes the default DVC remote and everything is pushed there.
    """
    repo = copy_template(dest)
    for rel in files:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    adult_sample(rows).to_csv(repo / SAMPLE, index=False)
    set_params(repo, data={"source": "csv", "path": SAMPLE}, evaluate={"importance_rows": 0})
    if remote is not None:
        run_in(repo, "dvc", "remote", "add", "-d", "storage", str(remote))
    run_in(repo, "dvc", "repro")
    if remote is not None:
        run_in(repo, "dvc", "push")
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-q", "-m", message)
    return repo


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Remote]:
    """An S3-compatible DVC remote (moto_server on loopback) for one test module."""
    with run_moto_server(tmp_path_factory.mktemp("moto")) as remote:
        yield remote
