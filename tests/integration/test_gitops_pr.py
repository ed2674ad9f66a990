"""The GitOps loop on real git: pull requests against `main`, their report and their gate.

One module-scoped repository on a 4,000-row sample of Adult: `main` is reproduced once and
pushed to a local-directory DVC remote; each test branches off `main` like a pull request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import (
    SAMPLE,
    adult_sample,
    copy_template,
    run_in,
    set_params,
    template_env,
)

pytestmark = pytest.mark.slow

#: Limits a 4,000-row sample clears comfortably; a near-constant model does not.
GATE = {
    "thresholds": {"roc_auc": 0.8, "log_loss": 0.45},
    "worst_slice": {"metric": "roc_auc", "min": 0.6, "min_rows": 50},
}


def git(repo: Path, *args: str) -> str:
    return run_in(repo, "git", *args).stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def branch_off_main(repo: Path, name: str) -> None:
    """A fresh PR branch: main's files and main's DVC outputs in the workspace."""
    git(repo, "checkout", "-q", "-f", "main")
    run_in(repo, "dvc", "pull", "--force")  # main's outputs from its cache, or else its remote
    git(repo, "checkout", "-q", "-b", name)


def gate(repo: Path, out: Path, base: str = "main") -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_in(repo, "gitops-ml", "gate", "--base", base, "--json", str(out), check=False)
    return proc, json.loads(out.read_text()) if out.exists() else {}


def report(repo: Path, *args: str, base: str = "main") -> subprocess.CompletedProcess:
    return run_in(repo, "gitops-ml", "report", "--base", base, "--output", "-", *args, check=False)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`main`: the template commit (tag `template`, no pipeline outputs), then a reproduced,
    committed and pushed pipeline on the CSV sample."""
    tmp = tmp_path_factory.mktemp("gitops")
    root = copy_template(tmp / "repo")
    adult_sample(4000).to_csv(root / SAMPLE, index=False)
    set_params(
        root,
        data={"source": "csv", "path": SAMPLE},
        evaluate={"importance_rows": 300, "importance_repeats": 2},
        gate=GATE,
    )
    commit_all(root, "template")
    git(root, "tag", "template")
    run_in(root, "dvc", "remote", "add", "-d", "local", str(tmp / "remote"))
    run_in(root, "dvc", "repro")
    run_in(root, "dvc", "push")
    commit_all(root, "first model")
    return root


def test_first_pr_has_no_champion(repo: Path, tmp_path: Path) -> None:
    """`main` at its first model against the template commit: no metrics, no dvc.lock there."""
    git(repo, "checkout", "-q", "-f", "main")
    proc, verdict = gate(repo, tmp_path / "gate.json", base="template")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verdict["passed"] is True
    skipped = [r for r in verdict["rules"] if r["name"].startswith("max_regression:")]
    assert skipped and all(r["skipped"] for r in skipped)
    assert "no champion yet (template has no reports/metrics.json)" in skipped[0]["message"]
    proc = report(repo, "--gate", str(tmp_path / "gate.json"), base="template")
    assert proc.returncode == 0, proc.stderr
    assert "No champion yet" in proc.stdout
    assert "has no `reports/metrics.json` (first model?)" in proc.stdout
    assert "### Quality gate: ✅ passed" in proc.stdout


def test_base_equal_to_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "-f", "main")
    proc = report(repo, "--gate", "none.json", base="main")
    assert proc.returncode == 0, proc.stderr
    assert "are the same commit" in proc.stdout
    assert "No metric changed." in proc.stdout
    assert "No parameter changed." in proc.stdout


def test_report_ignores_a_gate_verdict_of_another_base(repo: Path, tmp_path: Path) -> None:
    git(repo, "checkout", "-q", "-f", "main")
    template = git(repo, "rev-parse", "template")
    proc, verdict = gate(repo, tmp_path / "gate.json", base="template")
    assert verdict["base"] == template, proc.stderr
    proc = report(repo, "--gate", str(tmp_path / "gate.json"), base="main")
    assert proc.returncode == 0, proc.stderr
    assert f"was computed against `{template[:8]}`, not this base: ignored" in proc.stdout
    proc = report(repo, "--committed-metrics", "--gate", "none.json", base="main")
    assert proc.returncode == 0, proc.stderr
    assert "`--committed-metrics` given. Showing `main`'s committed metrics instead" in proc.stdout


def test_hyperparameter_pr_report(repo: Path, tmp_path: Path) -> None:
    branch_off_main(repo, "tune")
    set_params(repo, train={"hyperparams": {"max_iter": 30, "learning_rate": 0.05}})
    run_in(repo, "dvc", "repro")
    commit_all(repo, "tune: fewer, smaller boosting steps")
    main_sha, head_sha = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "HEAD")

    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode in (0, 1), proc.stderr
    assert {r["name"] for r in verdict["rules"]} >= {"threshold:roc_auc", "stale_lock"}
    stale = next(r for r in verdict["rules"] if r["name"] == "stale_lock")
    assert stale["passed"] is True, stale["message"]
    # The regression rules compare with the champion re-scored on this PR's test split.
    assert "loaded from the DVC cache" in verdict["champion_source"]
    assert "scored on the PR's `data/processed/test.parquet`" in verdict["champion_source"]
    assert "champion: Champion `models/model.joblib`" in proc.stdout

    proc = report(repo, "--gate", str(tmp_path / "gate.json"))
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert f"| head (this PR) | `{head_sha}` |" in md
    assert f"| base (`main`) | `{main_sha}` |" in md
    assert f"| merge base | `{main_sha}` |" in md
    assert "loaded from the DVC cache" in md
    assert "| metric | champion | challenger (PR) | Δ | 95% interval of Δ |" in md
    assert "| `train.hyperparams.max_iter` | — | `30` |" in md
    assert "| `train.hyperparams.learning_rate` | — | `0.05` |" in md
    assert "🟢 better" in md or "🔴 worse" in md or "⚪ no real change" in md
    assert "xychart-beta horizontal" in md and "95% interval, right is better" in md
    assert "### Slices: `roc_auc`" in md and "sex=Female" in md
    assert "### Data validation\n\n✅ passed" in md

    # The champion is not in the cache: fetched from the DVC remote.
    lock = yaml.safe_load(git(repo, "show", "main:dvc.lock"))
    md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"])
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    cached.unlink()
    md = report(repo, "--gate", str(tmp_path / "gate.json")).stdout
    assert "fetched from the DVC remote" in md
    assert "Regression rules compare with the champion: Champion" in md
    proc = run_in(repo, "gitops-ml", "gate", "--base", "main", "--committed-metrics",
                  "--json", str(tmp_path / "committed.json"), check=False)  # fmt: skip
    committed = json.loads((tmp_path / "committed.json").read_text())
    assert committed["champion_source"].startswith("main's committed reports/metrics.json")
    assert "champion: main's committed" in proc.stdout

    # Neither cache nor remote, no rebuild: the committed metrics, with a warning.
    cached.unlink(missing_ok=True)
    remote = Path(run_in(repo, "dvc", "remote", "list").stdout.split()[1])
    remote.rename(remote.with_suffix(".off"))
    try:
        md = report(repo, "--no-rebuild").stdout
        assert "its test data may differ" in md
        assert "| **`roc_auc`** (primary) |" in md

        # Rebuilt from the base in a git worktree that shares this repository's DVC cache.
        proc = report(repo)
        assert proc.returncode == 0, proc.stderr
        assert "Champion rebuilt from the base with `dvc repro` in a git worktree" in proc.stdout
        assert cached.exists()  # the next report finds it in the cache
        assert git(repo, "worktree", "list").count("\n") == 0  # the worktree is gone
    finally:
        remote.with_suffix(".off").rename(remote)


def test_weak_model_fails_the_gate(repo: Path, tmp_path: Path) -> None:
    branch_off_main(repo, "weak")
    set_params(repo, train={"model": "logistic_regression", "hyperparams": {"C": 0.00001}})
    run_in(repo, "dvc", "repro")
    commit_all(repo, "weak: an over-regularised model")
    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert verdict["passed"] is False and verdict["verdict"] == "failed"
    failed = {r["name"] for r in verdict["rules"] if not r["passed"]}
    assert "max_regression:roc_auc" in failed
    assert "threshold:log_loss" in failed
    assert "FAIL max_regression:roc_auc" in proc.stdout
    md = report(repo, "--gate", str(tmp_path / "gate.json")).stdout
    assert "### Quality gate: ❌ failed" in md

    # gate.fail_on_violation: false reports the same verdict but does not fail the check.
    set_params(repo, gate={"fail_on_violation": False})
    proc, verdict = gate(repo, tmp_path / "gate2.json")
    assert proc.returncode == 0 and verdict["verdict"] == "failed"
    git(repo, "checkout", "-q", "--", "params.yaml")


def test_stale_lock_fails_the_gate(repo: Path, tmp_path: Path) -> None:
    branch_off_main(repo, "stale")
    set_params(repo, train={"hyperparams": {"max_iter": 20}})
    commit_all(repo, "stale: params changed without dvc repro")
    proc, verdict = gate(repo, tmp_path / "gate.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rule = next(r for r in verdict["rules"] if r["name"] == "stale_lock")
    assert rule["passed"] is False
    assert "dvc.lock is stale: run `dvc repro` and commit dvc.lock" in rule["message"]
    assert "stage 'train': param train.hyperparams" in rule["message"]
    assert "FAIL stale_lock" in proc.stdout


def test_shallow_clone_says_how_to_fix_it(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", "tune", f"file://{repo}", str(clone)],
        check=True, env=template_env(repo), capture_output=True,
    )  # fmt: skip
    shutil.copy(repo / ".dvc/config", clone / ".dvc/config")
    proc = report(clone, base="main")
    assert proc.returncode == 2
    assert "git fetch --unshallow" in proc.stderr and "fetch-depth: 0" in proc.stderr
    proc = run_in(clone, "gitops-ml", "gate", "--base", "origin/main", check=False)
    assert proc.returncode == 2 and "git fetch --unshallow" in proc.stderr
