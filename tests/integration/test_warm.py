"""Warm stage start (gitops_ml.warm): under `dvc repro`, stages run in forks of one process that
imported the libraries once. The outputs must be the bytes cold processes write, Ctrl-C and kill -9
must reach the stage as they would a plain process, and the helper must go when DVC goes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datasets import penguins
from tests.integration.conftest import lock_hashes, run_in, sample_repo, template_env
from tests.integration.own_data import switch_to_own_data, template_main

pytestmark = pytest.mark.slow


def warm_env(run_dir: Path, mode: str) -> dict[str, str]:
    return {"GITOPS_ML_WARM": mode, "XDG_RUNTIME_DIR": str(run_dir)}


def helper_files(run_dir: Path) -> list[str]:
    folder = run_dir / f"gitops-ml-warm-{os.getuid()}"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _processes(read: str) -> Iterator[tuple[int, bytes]]:
    """Each process's pid and one of its /proc files (gone or unreadable ones are skipped)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / read).read_bytes()
            except OSError:
                continue


def processes_mentioning(text: str) -> list[int]:
    return [pid for pid, cmd in _processes("cmdline") if text.encode() in cmd.replace(b"\0", b" ")]


def children_of(parent: int) -> list[int]:
    return [
        pid
        for pid, stat in _processes("stat")
        if int(stat[stat.rindex(b")") + 2 :].split()[1]) == parent
    ]


def wait_for(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_warm_stages_write_the_bytes_cold_ones_do_and_the_helper_leaves_with_dvc(
    tmp_path: Path,
) -> None:
    repo = sample_repo(tmp_path / "repo", 1500)
    committed = lock_hashes(repo)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_in(repo, "dvc", "repro", "-f", extra_env=warm_env(run_dir, "0"))
    assert lock_hashes(repo) == committed
    assert helper_files(run_dir) == []  # off means off
    # `require`: every stage, the first included, runs in the helper, or the repro fails
    run_in(repo, "dvc", "repro", "-f", extra_env=warm_env(run_dir, "require"))
    assert lock_hashes(repo) == committed
    assert run_in(repo, "git", "status", "--porcelain").stdout == ""
    wait_for(lambda: helper_files(run_dir) == [], 5.0, "the helper to remove its socket")
    wait_for(lambda: not processes_mentioning(str(run_dir)), 5.0, "the helper to exit")


def test_own_multiclass_data_reproduces_cold_what_warm_stages_built(tmp_path: Path) -> None:
    """Penguins (text and numbers with gaps, three classes) through `gitops-ml init`: its first
    `dvc repro` runs with the default (warm) start; cold processes rebuild the same bytes."""
    repo = switch_to_own_data(template_main(tmp_path / "repo"), penguins()).repo
    warm = lock_hashes(repo)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_in(repo, "dvc", "repro", "-f", extra_env=warm_env(run_dir, "0"))
    assert lock_hashes(repo) == warm


def _blocked_stage(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int, Path]:
    """A validate stage that waits on its schema (a FIFO nobody writes), run in the helper.

    A small parent process plays DVC: the helper lives as long as it does. Returns that parent,
    the stage process, the helper's child running the stage, and the runtime folder."""
    repo = Path(__file__).resolve().parents[2]
    work = tmp_path / "work"
    work.mkdir(parents=True)
    for name in ("params.yaml", "gitops.yaml"):
        (work / name).write_bytes((repo / name).read_bytes())
    os.mkfifo(work / "schema.yaml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = template_env(work)
    env.update(warm_env(run_dir, "require"))
    stage = [sys.executable, "-m", "gitops_ml.stages.validate", "--input", "none.parquet"]
    stage += ["--schema", "schema.yaml", "--report", "report.json"]
    # DVC's stand-in: sets DVC_STAGE for its child only, prints the child's exit status
    play_dvc = (
        "import os, subprocess, sys; "
        "print(subprocess.call(sys.argv[1:], env=dict(os.environ, DVC_STAGE='validate')))"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", play_dvc, *stage],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return owner, *_find_stage(owner, run_dir), run_dir


def _find_stage(owner: subprocess.Popen[str], run_dir: Path) -> tuple[int, int]:
    def started() -> bool:
        if owner.poll() is not None:
            raise AssertionError(f"the stage ended early: {owner.communicate()}")
        return bool(children_of(owner.pid))

    wait_for(started, what="the stage process")
    (stage,) = children_of(owner.pid)
    folder = run_dir / f"gitops-ml-warm-{os.getuid()}"
    wait_for(lambda: any(p.suffix == ".sock" for p in folder.glob("*")), what="the helper")
    (pid_file,) = folder.glob("*.pid")
    helper = int(pid_file.read_text())
    wait_for(lambda: children_of(helper), what="the helper to fork the stage")
    (child,) = children_of(helper)
    return stage, child


def test_ctrl_c_reaches_the_stage_and_kill_9_takes_its_fork_down(tmp_path: Path) -> None:
    owner, stage, child, run_dir = _blocked_stage(tmp_path / "a")
    os.kill(stage, signal.SIGINT)
    out, err = owner.communicate(timeout=30)
    assert out.strip() == "130", err
    assert err.strip().splitlines() == ["interrupted: run the same command again to finish"]
    wait_for(lambda: not Path(f"/proc/{child}").exists(), 5.0, "the stage's fork to end")
    wait_for(lambda: not processes_mentioning(str(run_dir)), 5.0, "the helper to exit")

    owner, stage, child, run_dir = _blocked_stage(tmp_path / "b")
    os.kill(stage, signal.SIGKILL)
    out, err = owner.communicate(timeout=30)
    assert out.strip() == str(-signal.SIGKILL), err
    wait_for(lambda: not Path(f"/proc/{child}").exists(), 5.0, "the killed stage's fork to end")
    wait_for(lambda: not processes_mentioning(str(run_dir)), 5.0, "the helper to exit")
    assert helper_files(run_dir) == []
