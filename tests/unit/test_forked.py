"""gitops_ml.forked: a piece of a stage run in a forked child gives what the inline call gives,
and a worker forked before its inputs exist gets them in order, without blocking the sender."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gitops_ml import forked
from gitops_ml.errors import DataError


def _fit_line(seed: int, rows: int) -> tuple[int, list[float]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=rows)
    return os.getpid(), np.linalg.lstsq(x, y, rcond=None)[0].tolist()


def _bad(column: str) -> None:
    raise DataError(f"column '{column}' is not in the data")


def _killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_child_returns_what_the_inline_call_returns() -> None:
    join = forked.call(_fit_line, 3, 500)
    pid, coefs = join()
    assert pid != os.getpid()  # it did run elsewhere
    assert coefs == forked._inline(_fit_line, 3, 500)()[1]


def test_the_childs_exception_is_raised_in_the_parent_as_it_was() -> None:
    join = forked.call(_bad, "rase")
    with pytest.raises(DataError, match="column 'rase' is not in the data"):
        join()
    with pytest.raises(DataError, match="column 'rase'"):
        forked._inline(_bad, "rase")()


def test_a_child_that_dies_is_an_error_not_a_result() -> None:
    join = forked.call(_killed)
    with pytest.raises(
        forked.ChildLostError, match=r"_killed ended without a result \(exit status -9\)"
    ):
        join()


def _sum_of_messages(receive: Callable[[], Any], scale: int) -> tuple[int, bool, int]:
    """The sum of what the parent sends (its first message says how many more), times `scale`."""
    count = receive()
    total = sum(int(receive().sum()) for _ in range(count))
    return os.getpid(), "json" in sys.modules, total * scale


def _fails_before_reading(receive: Callable[[], Any]) -> None:
    raise DataError("no champion")


def test_a_worker_imports_first_then_works_on_what_it_is_sent() -> None:
    big = np.ones(3_000_000, dtype=np.int8)  # far more than a pipe holds: send must not block
    messages = [2, big, np.arange(10)]
    with forked.Worker(_sum_of_messages, 3, preload=("json",)) as worker:
        for message in messages:
            worker.send(message)
        pid, imported, total = worker.join()
    assert pid != os.getpid() and imported
    assert total == 3 * (3_000_000 + 45)


def test_a_worker_without_fork_runs_inline_at_join(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked.sys, "platform", "win32")
    worker = forked.Worker(_sum_of_messages, 2)
    for message in (1, np.arange(4)):
        worker.send(message)
    assert worker.join() == (os.getpid(), True, 12)
    worker.cancel()  # nothing to stop


def test_a_worker_that_fails_unread_messages_do_not_hang_join() -> None:
    with forked.Worker(_fails_before_reading) as worker:
        worker.send(np.ones(3_000_000, dtype=np.int8))
        with pytest.raises(DataError, match="no champion"):
            worker.join()


def test_a_cancelled_worker_is_gone() -> None:
    worker = forked.Worker(_sum_of_messages, 1)
    pid = worker._pid
    assert pid is not None
    worker.send(np.ones(3_000_000, dtype=np.int8))  # its writer is blocked: cancel ends it too
    worker.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # killed and reaped
    worker.cancel()  # twice is harmless


# -- speculate: output held until the result is taken, cancel leaves no trace -------------------


def _chatty(value: int) -> tuple[int, int]:
    logging.getLogger("gitops_ml.test_forked").warning("working on %d", value)
    warnings.warn(f"careful with {value}", UserWarning, stacklevel=1)
    return os.getpid(), value * 2


def _slow_write(path: str) -> None:
    time.sleep(1.0)
    Path(path).write_text("done", encoding="utf-8")


@pytest.mark.parametrize("how", ["forked", "inline"])
def test_speculative_output_waits_for_the_result(
    how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # this test process has run OpenMP code: the forked case pretends it has not
    monkeypatch.setattr(forked, "_openmp_loaded", lambda: how == "inline")
    with caplog.at_level(logging.WARNING, logger="gitops_ml.test_forked"):
        job = forked.speculate(_chatty, 21)
        time.sleep(0.2)
        assert "working on" not in caplog.text  # held back, whether it ran or not
        with pytest.warns(UserWarning, match="careful with 21"):
            pid, value = job()
    assert value == 42 and (pid != os.getpid()) == (how == "forked")
    assert "working on 21" in caplog.text
    job.cancel()  # harmless once taken


@pytest.mark.parametrize("how", ["forked", "inline"])
def test_a_cancelled_job_leaves_no_trace(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "_openmp_loaded", lambda: how == "inline")
    out = tmp_path / "out.txt"
    job = forked.speculate(_slow_write, str(out))
    job.cancel()
    time.sleep(1.3)
    assert not out.exists()
    with pytest.raises(forked.ChildLostError, match="cancelled"):
        job()


@pytest.mark.parametrize("how", ["forked", "inline"])
def test_a_speculative_exception_is_raised_when_the_result_is_taken(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "_openmp_loaded", lambda: how == "inline")
    job = forked.speculate(_bad, "rase")
    with pytest.raises(DataError, match="column 'rase' is not in the data"):
        job()


def test_no_fork_once_openmp_is_loaded() -> None:
    """This test process has imported scikit-learn, and so its OpenMP runtime."""
    assert forked._openmp_loaded()
    pid, _ = forked.speculate(_fit_line, 1, 10)()
    assert pid == os.getpid()


def _cores_on_one_cpu(cpu: int) -> int:
    os.sched_setaffinity(0, {cpu})
    return forked.usable_cores()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")
def test_usable_cores_follow_the_process_affinity() -> None:
    # in a child, so this process keeps its cores
    assert forked.call(_cores_on_one_cpu, min(os.sched_getaffinity(0)))() == 1
    assert forked.usable_cores() == len(os.sched_getaffinity(0))
