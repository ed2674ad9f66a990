"""User-facing errors and the one place that turns them into an exit code, with the set-up every
command shares (logging, and how long a server that does not answer may keep it waiting)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])

#: Exit code for bad input (params, data, files): the user can fix it.
USER_ERROR = 2
#: Exit code of a command stopped by Ctrl-C (SIGINT), as a shell reports it (128 + 2).
INTERRUPTED = 130


#: MLflow's HTTP defaults (120 s per request, 7 retries with exponential backoff) turn a server
#: that is down into minutes of silence (a refused connection failed after 249 s). These bound
#: every MLflow call a command makes: a refused connection fails in about 5 s, a server that
#: accepts and never answers in about 50 s (3 tries of 15 s). The environment's values win.
MLFLOW_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}


class GitopsMLError(Exception):
    """An error caused by the user's input; printed as one line, never with a traceback."""


class ConfigError(GitopsMLError):
    """params.yaml (or another config file) is missing, malformed or has a bad value."""


class DataError(GitopsMLError):
    """Input data cannot be read or breaks the schema."""


#: Packages whose errors come from the tracking database itself (a locked, corrupted or
#: half-created SQLite file, a database server refusing): one line at the CLI, never a traceback.
STORE_ERROR_MODULES = ("sqlalchemy", "sqlite3", "_sqlite3", "alembic", "pymysql", "psycopg2")


def store_error_line(exc: BaseException) -> str | None:
    """The first line of a database error raised under MLflow (SQLAlchemy, sqlite3, alembic),
    naming its type; None for any other exception."""
    module = type(exc).__module__ or ""
    if module.split(".", 1)[0] not in STORE_ERROR_MODULES:
        return None
    text = str(exc).strip()
    first = text.splitlines()[0].strip() if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def cli_entry(func: F) -> F:
    """Run a `main()`: set up logging, and turn a GitopsMLError or a tracking database error
    (`store_error_line`) into `error: ...` and exit 2, and Ctrl-C into one line and exit 130
    (outputs are written atomically, so running the command again repairs whatever it was
    doing)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # each retry is not news
        for name, value in MLFLOW_HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        try:
            code = func(*args, **kwargs)
        except GitopsMLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USER_ERROR
        except KeyboardInterrupt:
            print("interrupted: run the same command again to finish", file=sys.stderr)
            return INTERRUPTED
        except Exception as exc:
            line = store_error_line(exc)
            if line is None:
                raise
            print(f"error: tracking database: {line}", file=sys.stderr)
            return USER_ERROR
        return 0 if code is None else code

    return wrapper  # type: ignore[return-value]


def end_process(code: int) -> NoReturn:
    """End this process with exit status `code` as `sys.exit` would, less the interpreter's
    teardown: threads that are not daemons are waited for, the `atexit` functions run (logging is
    flushed and closed, temporary directories removed) and the standard streams flushed; freeing
    every object of every module is skipped. After MLflow and its SQLAlchemy store are imported,
    that teardown alone takes a second of CPU. Only for a command that ran as the process's own
    command line: nothing may run after it."""
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code & 0xFF)
