"""Run one piece of a stage in a forked child, beside the rest of it, on the machine's other core.

The evaluate stage fits its simple baseline this way while it scores the model: the two share
nothing but their inputs, and the fit is mostly Python-level work that threads would serialise on
the GIL. Where fork is not available (or not safe: only Linux is used), the call runs inline, so
the result is the same everywhere; only the wall time differs.

The child is forked before the caller runs any OpenMP code (which is not fork-safe), or runs
none itself (evaluate's figures: matplotlib), sends back its result or its exception through a
pipe, and exits without running the caller's cleanup.

`worker` forks a child before its inputs exist: it imports what its task needs (scikit-learn's
import is seconds) on the other core while this process computes them, then receives them.

`speculate` starts work whose result may go unused (promotion prepares the model's skops archive
before it knows whether the registry already holds that model): what the work logs and warns is
held back and replayed by the parent when it takes the result, and `Job.cancel` ends the child,
so work that is not used leaves no trace. It forks only while no OpenMP runtime is loaded in the
process (a library caller that already ran scikit-learn could leave the child waiting forever on
OpenMP threads that fork did not copy); otherwise the work runs when its result is taken.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ChildLostError(RuntimeError):
    """The child ended without sending a result (killed, or out of memory)."""


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def call(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start `fn(*args)`; the returned function waits for it and returns its result, or raises
    the exception it raised."""
    if sys.platform != "linux":
        return _inline(fn, *args)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _run_child(write_fd, fn, *args)
    os.close(write_fd)
    return lambda: _result(read_fd, pid, fn)


def _run_child(write_fd: int, fn: Callable[..., Any], *args: Any) -> None:
    """In a forked child: send back fn(*args) or its exception, and exit."""
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


def _result(read_fd: int, pid: int, fn: Callable[..., Any]) -> Any:
    """What the child `pid` sent through `read_fd`, once it has exited."""
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


_LENGTH = struct.Struct("<Q")


class Worker:
    """`fn(receive, *args)` in a child forked now, which first imports `preload`; each
    `receive()` there returns the next object `send` passes from here, in order. `join` waits for
    its result (or raises its exception); `cancel` stops it. Without fork, `join` runs it inline.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, preload: tuple[str, ...] = ()) -> None:
        self._fn, self._args = fn, args
        self._pid: int | None = None
        self._sent: deque[Any] = deque()
        self._writers: list[threading.Thread] = []
        if sys.platform != "linux":
            return
        task_read, self._task_write = os.pipe()
        self._result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(self._task_write)
            os.close(self._result_read)
            try:
                for name in preload:
                    try:
                        importlib.import_module(name)
                    except Exception:  # the task meets the error itself, and reports it
                        continue
                inbox = os.fdopen(task_read, "rb")
            except BaseException:
                os._exit(0)
            _run_child(result_write, fn, lambda: _receive(inbox), *args)
        os.close(task_read)
        os.close(result_write)
        self._pid = pid

    def send(self, obj: Any) -> None:
        """Pass `obj` to the child's next `receive()`; returns at once (a thread writes it)."""
        if self._pid is None:
            self._sent.append(obj)
            return
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        writer = threading.Thread(target=self._write, args=(_LENGTH.pack(len(data)) + data,))
        writer.daemon = True
        for previous in self._writers:  # messages arrive in order
            previous.join()
        writer.start()
        self._writers.append(writer)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._task_write, view) :]
        except OSError:  # the child is gone (or stopped reading): `join` says what it sent
            pass

    def join(self) -> Any:
        """The task's result, or the exception it raised."""
        if self._pid is None:
            return _inline(self._fn, self._sent.popleft, *self._args)()
        pid, self._pid = self._pid, None
        try:  # the child may end without reading everything: its exit unblocks the writers
            return _result(self._result_read, pid, self._fn)
        finally:
            self._close()

    def cancel(self) -> None:
        """Stop the child if it has not been joined (nothing to do without fork)."""
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(self._result_read)
        self._close()

    def _close(self) -> None:
        for writer in self._writers:
            writer.join()
        os.close(self._task_write)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def _receive(inbox: Any) -> Any:
    header = inbox.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the parent sent nothing more")
    return pickle.loads(inbox.read(_LENGTH.unpack(header)[0]))


def _inline(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    try:
        result = fn(*args)
    except BaseException as exc:
        error = exc

        def fail() -> T:
            raise error

        return fail
    return lambda: result


# -- speculative work: output held until the result is taken -------------------------------------


class _Held(logging.Handler):
    """Collects the records the work logs, made picklable (message formatted, traceback as
    text), instead of writing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(
                record.exc_info
            )
            record.exc_info = None
        self.records.append(record)


def _held(fn: Callable[..., T], *args: Any) -> tuple[bool, Any, list[Any], list[Any]]:
    """(ok, result or exception, log records, warnings) of `fn(*args)`, its output held back."""
    root = logging.getLogger()
    held, handlers = _Held(), root.handlers[:]
    root.handlers = [held]
    try:
        with warnings.catch_warnings(record=True) as caught:  # the filters in force still apply
            try:
                ok, value = True, fn(*args)
            except BaseException as exc:
                ok, value = False, exc
    finally:
        root.handlers = handlers
    shown = [(w.message, w.category, w.filename, w.lineno) for w in caught]
    return ok, value, held.records, shown


def _replay(records: list[logging.LogRecord], shown: list[Any]) -> None:
    for message, category, filename, lineno in shown:
        warnings.showwarning(message, category, filename, lineno)
    for record in records:
        logging.getLogger(record.name).handle(record)


class Job(Generic[T]):
    """Work started by `speculate`: call it for the result (or the exception), `cancel` it when
    the result is not wanted (harmless once taken)."""

    def __init__(
        self, name: str, pid: int | None, read_fd: int | None, later: Callable[[], T] | None = None
    ) -> None:
        self._name, self._pid, self._fd, self._later = name, pid, read_fd, later
        self._done: Any = None

    def __call__(self) -> T:
        if self._later is not None:  # not forked: the work runs now, as an inline call would
            later, self._later = self._later, None
            try:
                value = later()
            except BaseException as exc:
                self._done = (False, exc, [], [])
                raise
            self._done = (True, value, [], [])
            return value
        if self._done is None:
            assert self._pid is not None and self._fd is not None
            with open(self._fd, "rb") as pipe:
                self._fd = None
                data = pipe.read()
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
            if not data:
                raise ChildLostError(
                    f"the forked {self._name} ended without a result "
                    f"(exit status {os.waitstatus_to_exitcode(status)})"
                )
            self._done = pickle.loads(data)
        ok, value, records, shown = self._done
        self._done = (ok, value, [], [])  # the output is replayed once
        _replay(records, shown)
        if ok:
            return value
        raise value

    def cancel(self) -> None:
        """End the child (if it is still running) and forget its output."""
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._later = None
        self._done = (False, ChildLostError(f"the forked {self._name} was cancelled"), [], [])


#: OpenMP runtimes (GNU, Intel, LLVM): once one is loaded, a forked child may hang in it.
_OPENMP_RUNTIMES = ("libgomp", "libiomp", "libomp")


def _openmp_loaded() -> bool:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any(name in line for line in maps for name in _OPENMP_RUNTIMES)
    except OSError:
        return True


def speculate(fn: Callable[..., T], *args: Any) -> Job[T]:
    """Start `fn(*args)` in a forked child, holding back its log records and warnings until the
    result is taken. Off Linux, or once an OpenMP runtime is loaded here, nothing starts: the
    work runs when its result is taken, and not at all when it is cancelled."""
    name = getattr(fn, "__name__", "task")
    if sys.platform != "linux" or _openmp_loaded():
        return Job(name, None, None, lambda: fn(*args))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        try:
            held = _held(fn, *args)
            try:
                payload = pickle.dumps(held)
            except Exception as exc:  # a result, an exception or a record that cannot travel
                ok, value = held[0], held[1]
                error = value if not ok else exc
                payload = pickle.dumps(
                    (False, RuntimeError(f"{type(error).__name__}: {error}"), [], [])
                )
            with open(write_fd, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(0)
    os.close(write_fd)
    return Job(name, pid, read_fd)
