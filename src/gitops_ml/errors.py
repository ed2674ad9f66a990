"""User-facing errors and the one place that turns them into an exit code."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., int | None])

#: Exit code for bad input (params, data, files): the user can fix it.
USER_ERROR = 2
#: Exit code of a command stopped by Ctrl-C (SIGINT), as a shell reports it (128 + 2).
INTERRUPTED = 130


class GitopsMLError(Exception):
    """An error caused by the user's input; printed as one line, never with a traceback."""


class ConfigError(GitopsMLError):
    """params.yaml (or another config file) is missing, malformed or has a bad value."""


class DataError(GitopsMLError):
    """Input data cannot be read or breaks the schema."""


def cli_entry(func: F) -> F:
    """Run a `main()`: set up logging, and turn a GitopsMLError into `error: ...` and exit 2,
    and Ctrl-C into one line and exit 130 (outputs are written atomically, so running the
    command again repairs whatever it was doing)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
        try:
            code = func(*args, **kwargs)
        except GitopsMLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return USER_ERROR
        except KeyboardInterrupt:
            print("interrupted: run the same command again to finish", file=sys.stderr)
            return INTERRUPTED
        return 0 if code is None else code

    return wrapper  # type: ignore[return-value]
