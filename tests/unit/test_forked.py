"""gitops_ml.forked: a piece of a stage run in a forked child gives what the inline call gives."""

from __future__ import annotations

import os
import signal

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
