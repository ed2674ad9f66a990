"""Ctrl-C in any command: one line and exit 130, never a KeyboardInterrupt traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from gitops_ml.errors import INTERRUPTED, USER_ERROR, DataError, cli_entry


def test_the_entry_turns_errors_and_interrupts_into_exit_codes() -> None:
    def bad() -> int:
        raise DataError("data/x.csv: no such file")

    def stopped() -> int:
        raise KeyboardInterrupt

    assert cli_entry(bad)() == USER_ERROR
    assert cli_entry(stopped)() == INTERRUPTED == 130
    assert cli_entry(lambda: None)() == 0


def test_ctrl_c_in_a_running_command_prints_one_line_and_exits_130() -> None:
    """A real process and a real SIGINT, as a terminal sends it, while the command works."""
    code = (
        "import sys, time\n"
        "from gitops_ml.errors import cli_entry\n"
        "@cli_entry\n"
        "def main():\n"
        "    print('working', flush=True)\n"
        "    time.sleep(60)\n"
        "sys.exit(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "working"
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["interrupted: run the same command again to finish"]


_ENDING = """
import atexit, logging, sys, threading, time
from pathlib import Path
from gitops_ml.errors import end_process

out = Path(sys.argv[1])
logging.basicConfig(filename=out / "log.txt", level=logging.INFO)
logging.getLogger("t").info("logged")
atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
threading.Thread(target=lambda: (time.sleep(0.3), (out / "thread.txt").write_text("ran"))).start()
sys.stdout.write("unflushed output")
end_process(258)
"""


def test_end_process_keeps_what_an_ordinary_exit_does(tmp_path) -> None:
    """Threads joined, atexit functions run, logs and standard streams flushed, the status kept
    (masked to a byte, as the OS does); only the teardown of the modules is skipped."""
    proc = subprocess.run(
        [sys.executable, "-c", _ENDING, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "unflushed output", "")
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").read_text() == "ran"
    assert "logged" in (tmp_path / "log.txt").read_text()
