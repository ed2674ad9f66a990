"""Warm stage start: under `dvc repro`, stages after the first skip their library imports.

Every stage is its own `python -m gitops_ml.stages.<name>` process, and each one used to import
pandas, pyarrow, scikit-learn and scipy again: about a second per stage, more than the work itself
on data of Adult's size. Under DVC (``DVC_STAGE`` is set), the first stage starts a helper process
in the background that imports those libraries once, on the other core, while that stage runs
cold. Each later stage hands its command line, working directory, environment and standard
streams to the helper, which forks a child that runs the stage module exactly as `python -m`
would, and reports the child's exit status back; the stage process exits with it.

What the child runs is always read from disk: the helper imports no gitops_ml module beyond this
one, so an edited stage runs as edited. One helper serves one `dvc repro` (it is keyed on the DVC
process, the interpreter, `sys.path`, the interpreter flags and the environment variables that
libraries read at import time), listens on a Unix socket in a folder only this user can open, and
exits as soon as that DVC process is gone (or after ten idle minutes).

Signals mirror a plain process: Ctrl-C (SIGINT) and SIGTERM received by the stage process are passed
to the child; if the stage process dies (kill -9), the helper kills the child at once. Anything
that goes wrong before the hand-over makes the stage run cold, in its own process, as before.
``GITOPS_ML_WARM=0`` turns all of this off; ``GITOPS_ML_WARM=require`` waits for the helper and
fails instead of running cold (the tests use it to prove the warm path gives the same outputs).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

#: Off ("0"), on (default) or mandatory ("require").
MODE_ENV = "GITOPS_ML_WARM"
#: What DVC sets for every stage command it runs (and only there).
DVC_STAGE_ENV = "DVC_STAGE"

#: What the stage modules import. The helper accepts stages once the first group (what the early
#: stages, validate and split, need) is imported, and imports the rest between stages: a stage
#: that comes before its libraries are in imports them itself, in the child.
PRELOAD_FIRST = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "yaml",
    "pandera.pandas",
)
PRELOAD = (
    *PRELOAD_FIRST,
    "joblib",
    "threadpoolctl",
    "scipy.stats",
    "sklearn.base",
    "sklearn.compose",
    "sklearn.dummy",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.inspection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "matplotlib.style",
)

#: Environment variables read at import time by the interpreter or the preloaded libraries: a
#: stage whose values differ gets a helper of its own. Everything else is applied in the child.
_KEY_PREFIXES = (
    "PYTHON",
    "OMP_",
    "KMP_",
    "GOMP_",
    "OPENBLAS_",
    "GOTO",
    "MKL_",
    "BLIS_",
    "VECLIB_",
    "NUMEXPR_",
    "NUMPY_",
    "ARROW_",
    "PANDAS_",
    "SKLEARN_",
    "SCIPY_",
    "JOBLIB_",
    "LOKY_",
    "MPL",
    "LD_",
    "LC_",
    "LANG",
    "TZ",
    "HOME",
    "XDG_",
    "VIRTUAL_ENV",
    "PANDERA_",
)

#: Passed on from the stage process to the child that runs the stage.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: What errors.cli_entry prints on Ctrl-C (the child may be stopped before it runs).
INTERRUPTED = "interrupted: run the same command again to finish\n"

_READY_WAIT = 60.0  # seconds `require` waits for the helper's imports
_START_WAIT = 15.0  # seconds for the helper to fork a stage it accepted
_JOIN_WAIT = 5.0  # seconds a stage waits for a helper that another stage started
_IDLE_LIMIT = 600.0
_POLL = 0.2


class WarmError(RuntimeError):
    """The warm start failed."""


class NotStartedError(WarmError):
    """The helper did not start the stage; the stage process runs it cold."""


def _mode() -> str:
    return os.environ.get(MODE_ENV, "1").strip().lower()


def _runtime_dir() -> Path:
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    folder = base / f"gitops-ml-warm-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    st = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise WarmError(f"{folder} is not a private folder of this user")
    return folder


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    return int(data[data.rindex(b")") + 2 :].split()[1])


def dvc_pid() -> int:
    """The `dvc` process running this stage: the first ancestor that is not part of the stage
    (the stage's shell, if DVC's shell did not exec, carries DVC_STAGE too)."""
    pid = os.getppid()
    for _ in range(8):
        if not _stage_env(pid):
            return pid
        pid = _parent(pid)
    raise WarmError("no DVC process above this stage")


def _stage_env(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            items = fh.read().split(b"\0")
    except OSError as exc:
        raise WarmError(f"cannot read the environment of process {pid}: {exc}") from None
    prefix = f"{DVC_STAGE_ENV}=".encode()
    return any(item.startswith(prefix) for item in items)


def _key(owner: int) -> str:
    here = Path(__file__)
    parts = {
        "owner": owner,
        "python": sys.executable,
        "version": sys.version,
        "flags": repr(sys.flags),
        "path": sys.path,
        "env": sorted(
            (k, v) for k, v in os.environ.items() if k.startswith(_KEY_PREFIXES) and k != MODE_ENV
        ),
        "code": [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in (here,)],
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"{owner}-{digest}"


# --- the stage side --------------------------------------------------------------------------


def hand_over() -> None:
    """Called at the start of `python -m gitops_ml.stages.<name>`: run the stage in the helper and
    exit with its status, or return to run it here (cold)."""
    mode = _mode()
    if mode in ("0", "off", "false", "no") or not os.environ.get(DVC_STAGE_ENV):
        return
    if sys.platform != "linux" or len(getattr(sys, "orig_argv", ())) < 3:
        return
    try:
        folder = _runtime_dir()
        key = _key(dvc_pid())
        sock_path = folder / f"{key}.sock"
        conn = _connect(
            sock_path, wait=_READY_WAIT if mode == "require" else 0.0, folder=folder, key=key
        )
    except (OSError, WarmError, ValueError) as exc:
        if mode == "require":
            sys.stderr.write(f"error: warm stage start failed: {exc}\n")
            os._exit(2)
        return
    if conn is None:
        return
    try:
        status = _run_remote(conn)
    except NotStartedError as exc:
        if mode == "require":
            sys.stderr.write(f"error: warm stage start failed: {exc}\n")
            os._exit(2)
        return
    except (OSError, WarmError, ValueError, KeyError) as exc:
        # The helper went away mid-stage: the stage's outcome is unknown, so it failed.
        sys.stderr.write(f"error: the stage's warm process was lost: {exc}\n")
        os._exit(1)
    if status < 0:
        signum = -status
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(status)


def _connect(sock_path: Path, *, wait: float, folder: Path, key: str) -> socket.socket | None:
    """A connection to the helper, starting it if no stage did. The stage that starts it runs
    cold; a later stage that finds it still importing waits up to `_JOIN_WAIT` (its head start
    makes waiting cheaper than importing the same libraries again), `wait` where longer."""
    deadline = time.monotonic() + wait
    started = False
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _at_short_path(conn.connect, sock_path)
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        if not started:
            started = True
            if not _start_helper(folder, key):
                deadline = max(deadline, time.monotonic() + _JOIN_WAIT)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _at_short_path(call: Any, path: Path) -> None:
    """`call` (bind or connect) on `path` named through /proc/self/fd: a socket's path may hold
    at most 107 bytes, and a temporary folder's can be longer."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        call(f"/proc/self/fd/{fd}/{path.name}")
    finally:
        os.close(fd)


def _start_helper(folder: Path, key: str) -> bool:
    """Start the helper unless another stage already did (its pid file is taken with O_EXCL);
    whether this call started it."""
    pid_file = folder / f"{key}.pid"
    try:
        fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            alive = _alive(int(pid_file.read_text() or "0"))
        except (OSError, ValueError):
            alive = True  # being written right now
        if alive:
            return False
        pid_file.unlink(missing_ok=True)  # a helper that was killed: start a new one
        try:
            fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
    import subprocess

    owner = key.split("-", 1)[0]
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out:
        proc = subprocess.Popen(
            [
                sys.executable,
                *_interpreter_options(),
                "-m",
                "gitops_ml.warm",
                str(folder),
                key,
                owner,
            ],
            stdin=null_in,
            stdout=null_out,
            stderr=null_out,
            start_new_session=True,
            close_fds=True,
        )
    os.write(fd, str(proc.pid).encode())
    os.close(fd)
    return True


def _interpreter_options() -> list[str]:
    argv = list(sys.orig_argv)
    # python [options] -m module args: keep the options
    try:
        end = argv.index("-m")
    except ValueError:
        return []
    return argv[1:end]


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: nobody may reap it soon where PID 1 does not)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")


def _run_remote(conn: socket.socket) -> int:
    argv = list(sys.orig_argv)
    module = argv[argv.index("-m") + 1]
    request = {
        "module": module,
        "args": argv[argv.index("-m") + 2 :],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "path": sys.path,
        "umask": _umask(),
        "streams": [
            [getattr(stream, "encoding", None), getattr(stream, "errors", None)]
            for stream in (sys.stdin, sys.stdout, sys.stderr)
        ],
    }
    payload = json.dumps(request).encode()
    # Signals are caught from here on: one that comes before the child's pid is known is
    # passed on as soon as it is.
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(OSError):
            os.kill(child[0], signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        socket.send_fds(conn, [struct.pack("!I", len(payload)) + payload], [0, 1, 2])
        conn.settimeout(_START_WAIT)
        child.append(int(_read_message(conn)["pid"]))
        conn.settimeout(None)
    except (OSError, WarmError, ValueError, KeyError) as exc:
        # Not started: closing the connection makes the helper kill a child it forks late.
        conn.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            os.kill(os.getpid(), signum)
        raise NotStartedError(str(exc)) from None
    for signum in pending:
        forward(signum, None)
    return int(_read_message(conn)["status"])


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        try:
            chunk = conn.recv(size - len(data))
        except InterruptedError:
            continue
        if not chunk:
            raise WarmError("the warm process closed the connection")
        data += chunk
    return data


def _read_message(conn: socket.socket) -> dict[str, Any]:
    (size,) = struct.unpack("!I", _read_exact(conn, 4))
    return json.loads(_read_exact(conn, size))


def _send_message(conn: socket.socket, message: dict[str, Any]) -> None:
    payload = json.dumps(message).encode()
    conn.sendall(struct.pack("!I", len(payload)) + payload)


# --- the helper side -------------------------------------------------------------------------


def serve(folder: Path, key: str, owner: int) -> int:
    """Import the libraries, then run stages until the DVC process `owner` is gone."""
    import importlib

    later = [name for name in PRELOAD if name not in PRELOAD_FIRST]
    for name in PRELOAD_FIRST:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    sock_path = folder / f"{key}.sock"
    pid_file = folder / f"{key}.pid"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = folder / f".{key}.{os.getpid()}.sock"
    tmp.unlink(missing_ok=True)
    _at_short_path(listener.bind, tmp)
    listener.listen(8)
    os.replace(tmp, sock_path)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    children: dict[int, socket.socket] = {}  # child pid -> its stage's connection
    idle_since = time.monotonic()
    try:
        while _alive(owner):
            if later:  # between two imports, a stage that waits is started first
                with contextlib.suppress(ImportError):
                    importlib.import_module(later.pop(0))
            for event, _ in selector.select(timeout=0 if later else _POLL):
                if event.fileobj is listener:
                    conn, _ = listener.accept()
                    pid = _start_child(conn, [listener, selector, *children.values()])
                    if pid:
                        children[pid] = conn
                        selector.register(conn, selectors.EVENT_READ, pid)
                        _watch_exit(selector, pid)
                    else:
                        conn.close()
                elif isinstance(event.data, tuple):  # a child exited: reaped below
                    selector.unregister(event.fileobj)
                    os.close(event.fd)
                else:
                    # A stage connection is readable only when its process is gone.
                    pid = event.data
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            for pid, conn in list(children.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
                code = os.waitstatus_to_exitcode(status)
                with contextlib.suppress(OSError):
                    _send_message(conn, {"status": code})
                selector.unregister(conn)
                conn.close()
                del children[pid]
                idle_since = time.monotonic()
            if not children and time.monotonic() - idle_since > _IDLE_LIMIT:
                break
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        sock_path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        listener.close()
    return 0


def _watch_exit(selector: selectors.BaseSelector, pid: int) -> None:
    """Wake the helper as soon as child `pid` exits (a pidfd turns readable), so its stage
    process gets the status at once; without pidfds the next poll finds it."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return
    selector.register(fd, selectors.EVENT_READ, ("exited", pid))


def _start_child(conn: socket.socket, inherited: list[Any]) -> int:
    """Fork a child that runs the requested stage on the stage process's streams."""
    try:
        head, fds, _flags, _addr = socket.recv_fds(conn, 4 + (1 << 20), 3)
        if len(head) < 4 or len(fds) != 3:
            raise WarmError("a malformed request")
        (size,) = struct.unpack("!I", head[:4])
        body = head[4:]
        if len(body) < size:
            body += _read_exact(conn, size - len(body))
        request = json.loads(body)
    except (OSError, ValueError, WarmError):
        return 0
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for item in (conn, *inherited):
                with contextlib.suppress(OSError):
                    item.close()
            code = _child(request, fds)
        except KeyboardInterrupt:  # Ctrl-C before the stage's own handling took over
            code = 130
            with contextlib.suppress(OSError):
                os.write(2, INTERRUPTED.encode())
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    try:
        _send_message(conn, {"pid": pid})
    except OSError:
        os.kill(pid, signal.SIGKILL)
    return pid


def _child(request: dict[str, Any], fds: list[int]) -> int:
    import runpy

    os.setsid()
    _die_with_parent()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:] = request["path"]
    streams = request.get("streams") or [[None, None]] * 3
    sys.stdin = _text_stream(0, "r", *streams[0])
    sys.stdout = _text_stream(1, "w", *streams[1])
    sys.stderr = _text_stream(2, "w", *streams[2], line_buffering=True)
    for name in [m for m in sys.modules if m == "gitops_ml" or m.startswith("gitops_ml.")]:
        del sys.modules[name]
    # runpy puts the module's path in argv[0]; until then it must not read "-m", or the
    # stages package would hand the stage over again.
    sys.argv = ["", *request["args"]]
    code = 0
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:  # before the stage's own handler (errors.cli_entry) was set
        sys.stderr.write(INTERRUPTED)
        code = 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    with contextlib.suppress(Exception):
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write(f"{code}\n")
    return 1


def _text_stream(
    fd: int,
    mode: str,
    encoding: str | None,
    errors: str | None,
    *,
    line_buffering: bool | None = None,
) -> io.TextIOWrapper:
    """A standard stream on `fd` as the stage process had it (encoding, errors, buffering)."""
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    return io.TextIOWrapper(
        buffered,  # type: ignore[arg-type]
        encoding=encoding or "utf-8",
        errors=errors or "strict",
        line_buffering=os.isatty(fd) if line_buffering is None else line_buffering,
    )


def _die_with_parent() -> None:
    """Linux: the child is killed if the helper dies (it must not outlive the stage process)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the helper died before the call
            os._exit(1)


def main(argv: list[str]) -> int:
    folder, key, owner = Path(argv[0]), argv[1], int(argv[2])
    try:
        return serve(folder, key, owner)
    finally:
        (folder / f"{key}.pid").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
