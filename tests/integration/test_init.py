"""`gitops-ml init` in a fresh copy of the template, then the whole pipeline: `dvc repro` must
run green on the user's file with no further edits, and init must leave only its own files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops_ml.config import TASK_METRICS
from gitops_ml.lineage.dvclock import METRICS_PATH
from tests import datasets
from tests.integration.conftest import copy_template, run_in

pytestmark = pytest.mark.slow

#: What `dvc repro` adds to a fresh template copy, whatever the data: the lock, the reports
#: git keeps, and the .gitignore files of the DVC-cached outputs.
PIPELINE_FILES = {
    "dvc.lock",
    METRICS_PATH,
    "reports/slices.json",
    "reports/classes.json",
    "reports/validation.json",
    "reports/baseline.json",
    "reports/tuned.json",
    "reports/.gitignore",
    "data/raw/.gitignore",
    "data/processed/.gitignore",
    "data/predictions/.gitignore",
    "models/.gitignore",
}


def committed_template(dest: Path) -> Path:
    repo = copy_template(dest)
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-q", "-m", "template")
    return repo


def changed(repo: Path) -> set[str]:
    """Paths `git status` lists (modified or untracked, every untracked file on its own)."""
    out = run_in(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout
    return {line[3:].strip('"') for line in out.splitlines()}


def repro_and_metrics(repo: Path, task: str) -> dict[str, float]:
    run_in(repo, "dvc", "repro")
    metrics = json.loads((repo / METRICS_PATH).read_text())
    assert set(TASK_METRICS[task]) <= set(metrics), metrics
    assert "Data and pipelines are up to date" in run_in(repo, "dvc", "repro").stdout
    assert not list(repo.rglob("*.tmp")), "init or a stage left a temporary file"
    return metrics


def test_init_on_a_messy_csv_then_repro(tmp_path: Path) -> None:
    repo = committed_template(tmp_path / "repo")
    data = datasets.messy_csv(tmp_path / "download")
    out = run_in(repo, "gitops-ml", "init", "--data", str(data), "--target", "churned").stdout
    assert "task      binary (inferred" in out and "make repro" in out

    init_files = {
        "params.yaml",
        "gitops.yaml",
        "dvc.yaml",
        "data/schema/messy-customers.yaml",
        "data/source/messy_customers.csv",
    }
    assert changed(repo) == init_files
    metrics = repro_and_metrics(repo, "binary")
    assert metrics["roc_auc"] > 0.6  # churn depends on the kept columns
    assert changed(repo) - init_files <= PIPELINE_FILES
    validation = json.loads((repo / "reports/validation.json").read_text())
    assert validation["passed"] and validation["n_columns"] == 10  # 13 less 3 dropped

    # Re-running init on the file now in data/source changes nothing, so nothing re-runs.
    run_in(repo, "gitops-ml", "init", "--data", "data/source/messy_customers.csv",
           "--target", "churned")  # fmt: skip
    assert "Data and pipelines are up to date" in run_in(repo, "dvc", "repro").stdout
