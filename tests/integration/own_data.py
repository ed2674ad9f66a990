"""A team's first day with the template, on data nobody here prepared.

The flow of every own-data test: the template's `main` still holds the Adult demo (its dvc.lock
and metrics, as a repository made from the template has them); on a branch the team runs
`gitops-ml init` on its own file and `dvc repro` with no hand edits, commits, and opens a pull
request that changes a param. Its gate and report against the Adult `main` take the new-baseline
path; once the own-data commit is `main`, the same pull request takes the normal path, with the
champion scored on the PR's test split.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops_ml.config import TASK_METRICS
from gitops_ml.lineage.dvclock import METRICS_PATH
from tests.datasets import Dataset, write_csv
from tests.integration.conftest import ROOT, copy_template, run_in

#: The template's committed results of the Adult demo, as a repository made from it has them.
TEMPLATE_RESULTS = (
    "dvc.lock",
    METRICS_PATH,
    "reports/slices.json",
    "reports/classes.json",
    "reports/validation.json",
)


def template_main(dest: Path) -> Path:
    """A repository as "Use this template" makes it: the Adult demo committed on `main`."""
    repo = copy_template(dest)
    for rel in TEMPLATE_RESULTS:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    run_in(repo, "git", "add", "-A")
    run_in(repo, "git", "commit", "-q", "-m", "Initial commit from the template")
    return repo


@dataclass(frozen=True)
class OwnData:
    repo: Path
    dataset: Dataset
    init_output: str


def switch_to_own_data(
    repo: Path, dataset: Dataset, *extra_init: str, directory: Path | None = None
) -> OwnData:
    """On branch `own-data`: `gitops-ml init` on the data set's CSV, `dvc repro`, commit."""
    run_in(repo, "git", "checkout", "-q", "-b", "own-data")
    csv = write_csv(dataset, directory or repo.parent)
    init = run_in(
        repo, "gitops-ml", "init", "--data", str(csv), "--target", dataset.target, *extra_init
    )
    run_in(repo, "dvc", "repro")
    metrics = json.loads((repo / METRICS_PATH).read_text())
    assert set(TASK_METRICS[dataset.task]) <= set(metrics), metrics
    run_in(repo, "git", "add", "-A")
    status = run_in(repo, "git", "status", "--porcelain").stdout
    assert "mlflow.db" not in status and "model.joblib" not in status, status
    run_in(repo, "git", "commit", "-q", "-m", f"Own data: {dataset.name}")
    return OwnData(repo, dataset, init.stdout + init.stderr)


def tune_branch(repo: Path) -> None:
    """On branch `tune` (from `own-data`): a pull request that changes one hyperparameter."""
    run_in(repo, "git", "checkout", "-q", "-b", "tune")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["model"] == "hist_gradient_boosting"
    text = (repo / "params.yaml").read_text()
    assert "  hyperparams: {}" in text
    (repo / "params.yaml").write_text(
        text.replace("  hyperparams: {}", "  hyperparams: {learning_rate: 0.05}", 1)
    )
    run_in(repo, "dvc", "repro")
    run_in(repo, "git", "commit", "-q", "-am", "Slower learning rate")


def gate(repo: Path, base: str = "main") -> tuple[int, dict, str]:
    """`gitops-ml gate --base`: exit code, gate.json, printed lines."""
    proc = run_in(repo, "gitops-ml", "gate", "--base", base, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    verdict = json.loads((repo / "reports/gate.json").read_text())
    return proc.returncode, verdict, proc.stdout


def report(repo: Path, base: str = "main") -> str:
    return run_in(repo, "gitops-ml", "report", "--base", base, "--output", "-").stdout


def check_new_baseline(repo: Path, dataset: Dataset) -> None:
    """Against the Adult `main`: a new baseline, not a crash; thresholds still apply."""
    code, verdict, printed = gate(repo)
    reason = verdict["new_baseline"]
    assert reason and "another data contract" in reason, verdict
    assert f"'income' -> '{dataset.target}'" in reason
    regression = [r for r in verdict["rules"] if r["name"].startswith("max_regression:")]
    assert regression and all(r["skipped"] for r in regression)
    assert all("new baseline" in r["message"] for r in regression)
    failed = [r["name"] for r in verdict["rules"] if not r["passed"]]
    assert code == (1 if failed else 0), (failed, printed)
    assert verdict["champion_source"] is None
    text = report(repo)
    assert "🆕 **New baseline**" in text and "Traceback" not in text
    assert f"'income' -> '{dataset.target}'" in text


def check_normal_path(repo: Path) -> None:
    """Against the team's own first `main`: the champion is re-scored and compared."""
    run_in(repo, "git", "branch", "-f", "main", "own-data")
    code, verdict, printed = gate(repo)
    assert verdict["new_baseline"] is None, verdict
    assert "DVC cache" in (verdict["champion_source"] or ""), verdict
    regression = [r for r in verdict["rules"] if r["name"].startswith("max_regression:")]
    assert regression and not any(r["skipped"] for r in regression), regression
    assert all(r["details"]["champion"] is not None for r in regression)
    assert code == (0 if verdict["passed"] else 1), printed
    text = report(repo)
    assert "New baseline" not in text
    assert "| metric | champion | challenger (PR) | Δ |" in text


def first_day(dest: Path, dataset: Dataset, *extra_init: str) -> OwnData:
    """The whole flow of the module docstring; returns the repository on branch `tune`."""
    own = switch_to_own_data(template_main(dest), dataset, *extra_init)
    tune_branch(own.repo)
    check_new_baseline(own.repo, dataset)
    check_normal_path(own.repo)
    return own


def git_tracked(repo: Path) -> list[str]:
    return subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.splitlines()
