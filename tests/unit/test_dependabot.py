""".github/dependabot.yml: zizmor (the workflow lint, which also checks Dependabot files against
their schema) finds nothing, and every ecosystem points at a directory that has its manifest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".github" / "dependabot.yml"
#: ecosystem -> files that must be in its directory (the manifests it updates)
MANIFESTS = {
    "pip": ("pyproject.toml", "requirements.lock"),
    "npm": ("package.json", "package-lock.json"),
    "github-actions": (".github/workflows",),
}


def _zizmor() -> str:
    bin_dir = Path(sys.executable).parent
    path = shutil.which("zizmor", path=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail("zizmor is not installed: run `make install` (it is in requirements.lock)")
    return path


def _run_zizmor(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_zizmor(), "--offline", "--no-progress", "--persona", "pedantic", str(path)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip


def test_zizmor_pedantic_finds_nothing() -> None:
    proc = _run_zizmor(CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings to report" in proc.stdout + proc.stderr


def test_zizmor_refuses_a_file_that_breaks_the_schema(tmp_path: Path) -> None:
    """The check above can fail: a misspelt ecosystem is not a Dependabot file to zizmor."""
    bad = tmp_path / ".github" / "dependabot.yml"
    bad.parent.mkdir()
    bad.write_text(CONFIG.read_text().replace("package-ecosystem: npm", "package-ecosystem: nmp"))
    assert _run_zizmor(bad).returncode != 0


def test_every_ecosystem_is_updated_weekly_from_a_directory_with_its_manifests() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["version"] == 2
    updates = config["updates"]
    assert sorted(u["package-ecosystem"] for u in updates) == sorted(MANIFESTS)
    for update in updates:
        ecosystem = update["package-ecosystem"]
        directory = ROOT / update["directory"].lstrip("/")
        for manifest in MANIFESTS[ecosystem]:
            assert (directory / manifest).exists(), f"{ecosystem}: no {manifest} in {directory}"
        assert update["schedule"]["interval"] == "weekly"
        assert update["cooldown"]["default-days"] >= 7
        assert update.get("groups"), f"{ecosystem}: updates are not grouped"
