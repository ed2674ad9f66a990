"""The `gitops-ml` command line itself: every subcommand says what it does and what its exit
codes mean, `--help` lists them one per line, and JSON verdicts are written by `--json`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_ml import cli
from gitops_ml.cliargs import exit_codes

ROOT = Path(__file__).resolve().parents[2]


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The direct subcommands of `parser`, by name (aliases would repeat a parser: skipped)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if child not in found.values():
                    found[name] = child
    return found


def walk(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand under `parser`, nested ones (`schema infer`) included."""
    for name, child in subparsers(parser).items():
        yield f"{prefix}{name}", child
        yield from walk(child, f"{prefix}{name} ")


COMMANDS = dict(walk(cli.build_parser()))


def test_the_walk_finds_every_command() -> None:
    expected = {
        "check-params", "schema", "schema infer", "comment", "gate", "report", "summary",
        "predict", "serve", "drift", "demo-batch", "promote", "verify", "retrain",
        "model-age",
    }  # fmt: skip
    assert expected <= set(COMMANDS), sorted(expected - set(COMMANDS))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_and_states_its_exit_codes(name: str) -> None:
    parser = COMMANDS[name]
    assert parser.description and len(parser.description) > 20, name
    assert parser.epilog and "exit" in parser.epilog.lower(), name
    assert re.search(r"\b2\b", parser.epilog), f"{name}: exit code 2 (bad input) is not stated"
    help_text = parser.format_help()
    assert parser.description.split()[0] in help_text and "exit" in help_text


def test_only_the_checks_exit_1() -> None:
    """Exit code 1 is a failed check (gate, verify, model-age, drift); every other command
    either works (0) or has bad input (2)."""
    with_1 = {name for name, p in COMMANDS.items() if re.search(r"\b1 ", p.epilog or "")}
    assert with_1 == {"gate", "verify", "model-age", "drift"}


def test_exit_codes_wording() -> None:
    assert exit_codes("ok", "failed", "bad") == "exit codes: 0 ok; 1 failed; 2 bad."
    assert exit_codes("done").startswith("exit codes: 0 done; 2 bad input or usage")


def test_help_lists_each_command_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gitops-ml --help` on an 80-column terminal: name and help side by side, no wrapping."""
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    listing = out.split("  COMMAND\n", 1)[1].split("\n\n", 1)[0].splitlines()
    top = [name for name in COMMANDS if " " not in name]
    first_words = [line.split()[0] for line in listing]
    wrapped = [first_words[i - 1] for i, w in enumerate(first_words) if w not in top]
    assert not wrapped, f"help= of {wrapped} wraps at 80 columns: keep it under 60 characters"
    assert first_words == top
    for line in listing:
        name, _, text = line.strip().partition(" ")
        assert text.strip(), f"{name}: its help is not on the same line"


def test_gate_writes_json_and_still_takes_the_old_output_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["gate"]).json == "reports/gate.json"
    assert parser.parse_args(["gate", "--json", "v.json"]).json == "v.json"
    args = parser.parse_args(["gate", "--output", "old.json"])
    assert args.json == "old.json" and not hasattr(args, "output")
    assert "--output is deprecated; use --json" in capsys.readouterr().err
    assert "--output" not in COMMANDS["gate"].format_help()  # hidden


@pytest.mark.parametrize("name", ["gate", "drift", "promote", "verify"])
def test_commands_writing_a_json_verdict_take_json(name: str) -> None:
    (option,) = [a for a in COMMANDS[name]._actions if "--json" in a.option_strings]
    assert option.dest == "json" and option.metavar == "PATH"


def test_workflows_readme_and_makefile_use_json_for_the_gate() -> None:
    for path in [ROOT / "README.md", ROOT / "Makefile", *ROOT.glob(".github/workflows/*.yml")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"gitops-ml gate[^\n]*--output", text), path
