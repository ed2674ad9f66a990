"""The baseline and disparity gate rules on real git and DVC: pull requests against `main`.

One module-scoped repository on a 4,000-row sample of Adult with both rules on. One pull
request makes the model worse than the simple baseline (a hyperparameter change), another
widens the gap between two groups of a slice column (a data change: labels of one group made
noisy); each fails the gate on its rule, and the report gives the reason.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import SAMPLE, adult_sample, copy_template, run_in, set_params

pytestmark = pytest.mark.slow

#: Limits the sample's model clears on `main`; no regression limits, so that the rules under
#: test are the only ones a pull request can fail on.
GATE = {
    "thresholds": {"roc_auc": 0.8},
    "max_regression": {},
    "worst_slice": None,
    "baseline": {"metric": "roc_auc", "margin": 0.0},
    "disparity": {"metric": "roc_auc", "max_gap": 0.10, "min_rows": 100},
}


def git(repo: Path, *args: str) -> str:
    return run_in(repo, "git", *args).stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def pull_request(repo: Path, name: str) -> None:
    """A branch off `main` with main's DVC outputs in the workspace (from the local cache)."""
    git(repo, "checkout", "-q", "-f", "main")
    run_in(repo, "dvc", "checkout", "--force")
    git(repo, "checkout", "-q", "-b", name)


def gate(repo: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_in(repo, "gitops-ml", "gate", "--base", "main", "--json", str(out), check=False)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def report(repo: Path, gate_json: Path) -> str:
    proc = run_in(
        repo, "gitops-ml", "report", "--base", "main", "--gate", str(gate_json), "--output", "-"
    )
    return proc.stdout


def rules(verdict: dict) -> dict[str, dict]:
    return {rule["name"]: rule for rule in verdict["rules"]}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`main`: the pipeline reproduced on the sample with both rules on, committed."""
    root = copy_template(tmp_path_factory.mktemp("gaterules") / "repo")
    adult_sample(4000).to_csv(root / SAMPLE, index=False)
    set_params(
        root,
        data={"source": "csv", "path": SAMPLE},
        evaluate={"importance_rows": 0, "slices": ["sex"]},
        gate=GATE,
    )
    run_in(root, "dvc", "repro")
    commit_all(root, "first model")
    return root


def test_main_passes_both_rules(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-f", "main")
    assert git(repo, "ls-files", "reports/baseline.json") == "reports/baseline.json"
    baseline = json.loads((repo / "reports/baseline.json").read_text())
    assert baseline["model"] == "logistic_regression"
    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_name = rules(verdict)
    assert by_name["baseline:roc_auc"]["passed"], by_name["baseline:roc_auc"]["message"]
    assert by_name["disparity:roc_auc"]["passed"], by_name["disparity:roc_auc"]["message"]
    assert not by_name["disparity:roc_auc"]["skipped"]


def test_a_model_worse_than_the_baseline_fails(repo: Path, tmp_path: Path) -> None:
    """Three depth-2 trees (AUC about 0.85 on this sample): the absolute threshold (0.8) lets
    the model through, a logistic regression on the same split (about 0.9) does not."""
    pull_request(repo, "pr-small-trees")
    set_params(repo, train={"hyperparams": {"max_iter": 3, "max_depth": 2}})
    run_in(repo, "dvc", "repro")
    commit_all(repo, "fewer, shallower trees")
    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert rules(verdict)["threshold:roc_auc"]["passed"]
    rule = rules(verdict)["baseline:roc_auc"]
    assert not rule["passed"] and rule["observed"] < 0
    baseline = json.loads((repo / "reports/baseline.json").read_text())["metrics"]["roc_auc"]
    assert rule["details"]["baseline"] == baseline
    assert f"vs baseline logistic_regression {baseline:.4f}: worse by" in rule["message"]
    assert "FAIL baseline:roc_auc" in proc.stdout
    text = report(repo, tmp_path / "gate.json")
    assert "### Quality gate: ❌ failed" in text
    row = next(line for line in text.splitlines() if line.startswith("| `baseline:roc_auc` |"))
    assert "| ❌ |" in row and "(must be better by at least 0.0000)" in row


def test_a_wider_gap_between_groups_fails(repo: Path, tmp_path: Path) -> None:
    """A data change: 40 % of the women's labels flipped at random, the men's untouched."""
    pull_request(repo, "pr-noisy-labels")
    data = pd.read_csv(repo / SAMPLE)
    rng = np.random.default_rng(0)
    flip = (data["sex"] == "Female").to_numpy() & (rng.random(len(data)) < 0.4)
    data.loc[flip, "income"] = np.where(data.loc[flip, "income"] == ">50K", "<=50K", ">50K")
    data.to_csv(repo / SAMPLE, index=False)
    run_in(repo, "dvc", "repro")
    commit_all(repo, "relabelled sample")
    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rule = rules(verdict)["disparity:roc_auc"]
    assert not rule["passed"] and rule["observed"] > GATE["disparity"]["max_gap"]
    assert rule["details"]["column"] == "sex"
    assert rule["details"]["groups"] == ["Male", "Female"]
    assert rule["message"].startswith("largest gap in sex: sex=Male (n=")
    text = report(repo, tmp_path / "gate.json")
    row = next(line for line in text.splitlines() if line.startswith("| `disparity:roc_auc` |"))
    assert "| ❌ |" in row and "sex=Male" in row and "sex=Female" in row
