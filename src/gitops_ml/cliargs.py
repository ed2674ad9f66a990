"""argparse helpers shared by the `gitops-ml` subcommands: one wording for every bad number,
one way to state exit codes, deprecated option spellings and a help layout."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


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


#: What exit code 2 means for every subcommand (`errors.cli_entry`, and argparse on bad usage).
BAD_INPUT = "bad input or usage (a one-line error names the file, key or option)"


def exit_codes(ok: str, failed: str | None = None, bad: str = BAD_INPUT) -> str:
    """A subcommand's epilog: ``exit codes: 0 <ok>; 1 <failed>; 2 <bad>`` (no 1 if not given)."""
    codes = [f"0 {ok}"] + ([f"1 {failed}"] if failed else []) + [f"2 {bad}"]
    return "exit codes: " + "; ".join(codes) + "."


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option: stores into the new option's dest and warns on stderr.

    Add it after the new option with the same ``dest``; its default is suppressed, so the new
    option's default stands when neither is given.
    """

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs: Any) -> None:
        kwargs["help"] = argparse.SUPPRESS
        kwargs["default"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class CommandListFormatter(argparse.HelpFormatter):
    """Help that lists subcommands one per line, name and help side by side.

    argparse measures subcommand names one indent short of where it prints them, so a name
    as long as the longest one goes on a line of its own; this adds the missing indent.
    """

    def __init__(self, prog: str, max_help_position: int = 30, **kwargs: Any) -> None:
        super().__init__(prog, max_help_position=max_help_position, **kwargs)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            self._action_max_length += self._indent_increment
