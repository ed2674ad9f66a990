"""What a killed write leaves behind is cleaned by the next write of the same output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from gitops_ml.files import atomic_dir, clean_leftovers, write_json


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def test_a_write_killed_with_sigkill_is_cleaned_by_the_next_one(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "metrics.json"
    code = (
        "import os, sys, time\n"
        "from gitops_ml.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    print('inside', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "inside"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    (left,) = target.parent.glob(".metrics.json.*.tmp")
    assert left.read_text() == "half" and not target.exists()
    write_json(target, {"roc_auc": 0.93})
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_only_leftovers_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    target = tmp_path / "figures"
    stale_file = tmp_path / f".figures.{dead}.ab12.tmp"
    stale_dir = tmp_path / f".figures.{dead}.cd34.tmp"
    busy = tmp_path / f".figures.{alive}.ef56.tmp"  # a live process may still be writing
    other = tmp_path / ".figures-notes.tmp"
    stale_file.write_text("x")
    (stale_dir / "roc.png").parent.mkdir()
    (stale_dir / "roc.png").write_bytes(b"png")
    busy.write_text("y")
    other.write_text("z")
    assert sorted(clean_leftovers(target)) == sorted([stale_file, stale_dir])
    assert busy.exists() and other.exists() and not stale_dir.exists()


def test_a_kill_between_the_two_renames_of_a_folder_restores_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "figures"
    old = tmp_path / ".figures.old"  # the last good folder, moved aside, then the kill
    old.mkdir()
    (old / "roc.png").write_bytes(b"last good")
    with atomic_dir(target) as tmp:
        assert (target / "roc.png").read_bytes() == b"last good"  # restored before the write
        (tmp / "roc.png").write_bytes(b"new")
    assert (target / "roc.png").read_bytes() == b"new" and not old.exists()
