"""gitops_ml.forked: a piece of a stage run in a forked child gives what the inline call gives,
and a worker forked before its inputs exist gets them in order, without blocking the sender."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
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
