"""Run one piece of a stage in a forked child, beside the rest of it, on the machine's other core.

The evaluate stage fits its simple baseline this way while it scores the model: the two share
nothing but their inputs, and the fit is mostly Python-level work that threads would serialise on
the GIL. Where fork is not available (or not safe: only Linux is used), the call runs inline, so
the result is the same everywhere; only the wall time differs.

The child is forked before the caller runs any OpenMP code (which is not fork-safe), sends back
its result or its exception through a pipe, and exits without running the caller's cleanup.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ChildLostError(RuntimeError):
    """The child ended without sending a result (killed, or out of memory)."""


def call(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start `fn(*args)`; the returned function waits for it and returns its result, or raises
    the exception it raised."""
    if sys.platform != "linux":
        return _inline(fn, *args)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        try:
            try:
                payload = pickle.dumps((True, fn(*args)))
            except BaseException as exc:
                try:
                    payload = pickle.dumps((False, exc))
                except Exception:
                    payload = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
            with open(write_fd, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(0)
    os.close(write_fd)

    def join() -> T:
        with open(read_fd, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            raise ChildLostError(
                f"the forked {getattr(fn, '__name__', 'task')} ended without a result "
                f"(exit status {os.waitstatus_to_exitcode(status)})"
            )
        ok, value = pickle.loads(data)
        if ok:
            return value
        raise value

    return join


def _inline(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    try:
        result = fn(*args)
    except BaseException as exc:
        error = exc

        def fail() -> T:
            raise error

        return fail
    return lambda: result
