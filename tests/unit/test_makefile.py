"""What the Makefile exports to every target's commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _exported(name: str, env: dict[str, str]) -> str:
    """The value `make` gives `name` in a target's environment ('' when unset)."""
    proc = subprocess.run(
        [
            "make", "--no-print-directory",
            "--eval", f'show-env: ; @printf "%s" "$${{{name}}}"',
            "show-env",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "UV_CACHE_DIR")}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_on_github_actions_uvs_cache_lives_in_the_pip_cache_setup_python_saves(
    tmp_path: Path,
) -> None:
    pip = subprocess.run(["python3", "-m", "pip", "--version"], capture_output=True, check=False)
    if pip.returncode != 0:
        pytest.skip("the Makefile's python3 has no pip here")
    cache = tmp_path / "cache"
    assert _exported("UV_CACHE_DIR", _env(GITHUB_ACTIONS="true", XDG_CACHE_HOME=str(cache))) == (
        f"{cache}/pip/uv"
    )
    # A folder the user chose is kept; elsewhere, and with pip's cache off, uv decides.
    assert _exported("UV_CACHE_DIR", _env(GITHUB_ACTIONS="true", UV_CACHE_DIR="/mine")) == "/mine"
    assert _exported("UV_CACHE_DIR", _env(XDG_CACHE_HOME=str(cache))) == ""
    assert _exported("UV_CACHE_DIR", _env(GITHUB_ACTIONS="true", PIP_NO_CACHE_DIR="1")) == ""


def test_bytecode_is_written_even_where_the_environment_forbids_it() -> None:
    assert _exported("PYTHONDONTWRITEBYTECODE", _env(PYTHONDONTWRITEBYTECODE="1")) == ""
