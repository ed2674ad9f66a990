"""The real CML 0.20.6 for the tests: where it comes from and how it is installed.

From ../shared/vendor/cml (the packed release and its lockfile) when that folder exists next to
the repository, else from the npm registry; either way no package install script runs. A test
that cannot get CML is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT.parent / "shared" / "vendor" / "cml"
CML_VERSION = "0.20.6"
NPM_FLAGS = ("--ignore-scripts", "--no-audit", "--no-fund")


def vendored() -> Path | None:
    """The vendored CML folder (package.json, package-lock.json and the packed release), if any."""
    return VENDOR if VENDOR.is_dir() else None


def npm_env(npm_cache: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "npm_config_update_notifier": "false", "DO_NOT_TRACK": "1"}
    if npm_cache is not None:
        env["npm_config_cache"] = str(npm_cache)
    return env


def install_cml(where: Path, npm_cache: Path | None = None) -> Path:
    """Install CML into the empty folder `where` and return its `cml` executable, checked to be
    CML_VERSION; skip the calling test when neither the vendored copy nor the registry works."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are needed to install CML")
    source = vendored()
    if source is not None:
        for item in source.iterdir():
            if item.is_file():
                shutil.copy(item, where / item.name)
        args = ["ci", *NPM_FLAGS]
    else:
        args = ["install", *NPM_FLAGS, f"@dvcorg/cml@{CML_VERSION}"]
    proc = subprocess.run(
        ["npm", *args], cwd=where, env=npm_env(npm_cache),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        origin = source or "the npm registry"
        pytest.skip(f"cannot install CML from {origin}: {proc.stderr.strip()[-300:]}")
    cml = where / "node_modules" / ".bin" / "cml"
    version = subprocess.run([cml, "--version"], capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == CML_VERSION, version.stdout + version.stderr
    return cml
