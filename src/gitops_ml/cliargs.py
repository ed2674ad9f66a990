"""argparse value types shared by the `gitops-ml` subcommands: one wording for every bad number."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse `type` accepting integers in [minimum, maximum] (no upper bound if None)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < minimum or (maximum is not None and number > maximum):
            limits = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {number}")
        return number

    return parse


#: A TCP port.
port = whole_number(1, 65535)
