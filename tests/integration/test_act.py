"""The real `.github/workflows/pr.yml`, run by `act` on this machine, on a throw-away template repo.

`act pull_request` runs the workflow in host mode (no containers, no network): `actions/checkout`
is act's built-in copy of the repository, and the actions that would download something are
replaced by the fixtures in tests/fixtures/actions/ with `--local-repository`: setup-python puts
this virtualenv on PATH (so `make install` finds `.venv` up to date and does nothing),
upload-artifact copies the files, and the job summary, where the test reads them, and
cache/restore reads GitHub's cache from a folder that holds main's DVC objects.

The repository is a clone whose `main` holds a reproduced pipeline on a small Adult sample and
whose PR branches change one thing each: a code change runs only the stage it touches, a README
change runs no stage at all, a weak model (with no cache of main) must fail the gate.

No run gets a secret. MLflow: the code change's run has no tracking URI at all (its runs go to
the local sqlite store); the weak model's run has the MLFLOW_EXPERIMENTS_URI variable pointing at a
real `mlflow server` on loopback, which then holds the training run and no registered model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.act import (
    ActRun,
    code_change_branch,
    docs_branch,
    git,
    run_pr_workflow,
    sample_origin,
    save_main_cache,
)
from tests.integration.conftest import run_in, set_params
from tests.integration.mlflow_server import run_mlflow_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's repository: `main` reproduced and committed, plus three PR branches."""
    repo = sample_origin(tmp_path_factory.mktemp("act") / "origin")
    # Main's DVC cache as the runs on main leave it in GitHub's cache (promote.yml saves it).
    save_main_cache(repo, repo.parent / "gh-cache")
    # Each PR is what a contributor pushes: the change, reproduced, dvc.lock and metrics committed.
    code_change_branch(repo, "good")
    docs_branch(repo, "docs")
    git(repo, "checkout", "-q", "-b", "weak", "main")
    set_params(repo, train={"hyperparams": {"max_iter": 1, "max_depth": 1}})
    run_in(repo, "dvc", "repro")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a weak model: one stump")
    git(repo, "checkout", "-q", "main")
    return repo


def run_pr(
    origin: Path, branch: str, number: int, work: Path, *, main_cache: bool = True, **act: Any
) -> ActRun:
    """pr.yml on `branch`; GitHub's cache holds main's DVC objects unless `main_cache` is false.
    `act` goes to run_act (act_args)."""
    store = work / "gh-cache"
    if main_cache:
        shutil.copytree(origin.parent / "gh-cache", store)
    env = {"GITOPS_ML_TEST_CACHE": str(store)}
    return run_pr_workflow(origin, branch, number, work, env=env, **act)


@pytest.fixture(scope="module")
def good_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr(origin, "good", 41, tmp_path_factory.mktemp("good"))


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The team's experiments server (the MLFLOW_EXPERIMENTS_URI variable), not its registry."""
    with run_mlflow_server(tmp_path_factory.mktemp("experiments")) as uri:
        yield uri


@pytest.fixture(scope="module")
def weak_run(origin: Path, experiments: str, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    # No cache of main: the first pull request of a repository, or a cache GitHub evicted.
    return run_pr(
        origin, "weak", 42, tmp_path_factory.mktemp("weak"), main_cache=False,
        act_args=("--var", f"MLFLOW_EXPERIMENTS_URI={experiments}"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def docs_run(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> ActRun:
    return run_pr(origin, "docs", 43, tmp_path_factory.mktemp("docs"))


def test_good_pr_reproduces_reports_and_passes(good_run: ActRun) -> None:
    log = good_run.log
    assert good_run.returncode == 0, log[-6000:]
    for step in (
        "Install",
        "Find what the PR changes",
        "Restore main's DVC cache",
        "Check the restored DVC cache",
        "Reproduce the pipeline",
        "Report",
        "Quality gate",
    ):
        assert good_run.step_ok(step), f"step {step!r} did not succeed\n{log[-6000:]}"
    # The real install step ran, and found the fixture's .venv up to date.
    assert "make: Nothing to be done for 'install-runtime'." in log
    assert "src/gitops_ml/stages/evaluate.py: dependency of evaluate" in log
    assert "No DVC remote" in log  # no secrets: main's cached outputs, then what changed runs
    # Only the stage whose code and params changed runs; the rest is main's, from the cache.
    assert "Running stage 'evaluate'" in log
    for stage in ("ingest", "validate", "split", "train"):
        assert f"Running stage '{stage}'" not in log
    assert "Stage 'train' didn't change, skipping" in log
    report = (good_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert report.strip()
    assert (good_run.artifacts / "pr-report" / "pr-number").read_text().strip() == "41"
    gate = json.loads((good_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is True
    assert (good_run.artifacts / "pr-report" / "figures" / "roc.png").stat().st_size > 0
    assert "Quality gate" in report and "❌" not in report
    assert good_run.job_summary().strip() == report.strip()
    # No tracking URI: the runs went to the runner's sqlite store, and the report says so.
    assert "MLflow: runs are in `sqlite:///mlflow.db`" in report


def test_weak_model_fails_the_gate_but_still_uploads(weak_run: ActRun) -> None:
    log = weak_run.log
    assert weak_run.returncode != 0, log[-6000:]
    assert weak_run.step_ok("Reproduce the pipeline"), log[-6000:]
    assert "Running stage 'ingest'" in log  # no cache of main: everything runs
    assert weak_run.step_ok("Report"), log[-6000:]
    assert weak_run.step_failed("Quality gate"), log[-6000:]
    assert "FAIL threshold:roc_auc" in log
    assert "Job failed" in log
    # The upload runs after the failed gate, so the comment can say why it failed.
    assert (weak_run.artifacts / "pr-report" / "pr-number").read_text().strip() == "42"
    gate = json.loads((weak_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is False
    report = (weak_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" in report
    assert "threshold:roc_auc" in report
    assert weak_run.job_summary().strip() == report.strip()


def test_runs_go_to_the_experiments_server_never_its_registry(
    weak_run: ActRun, experiments: str, origin: Path
) -> None:
    import mlflow

    assert weak_run.step_ok("Reproduce the pipeline"), weak_run.log[-6000:]
    report = (weak_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert f"MLflow run of the challenger: {experiments}/#/experiments/" in report
    params = yaml.safe_load(git(origin, "show", "weak:params.yaml"))
    lock = yaml.safe_load(git(origin, "show", "weak:dvc.lock"))
    (model,) = [
        o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"].startswith("models/")
    ]
    client = mlflow.MlflowClient(tracking_uri=experiments, registry_uri=experiments)
    experiment = client.get_experiment_by_name(params["mlflow"]["experiment"])
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`gitops_ml.model_md5` = '{model}'"
    )
    assert run.data.tags["gitops_ml.pr_number"] == "42"
    assert client.search_registered_models() == []  # the PR path registers nothing


def test_docs_only_pr_runs_no_stage(docs_run: ActRun) -> None:
    """A README change costs no training: main's outputs come from its cache, checked."""
    log = docs_run.log
    assert docs_run.returncode == 0, log[-6000:]
    assert "No DVC dependency changed since" in log and "(1 files: README.md)" in log
    assert docs_run.step_ok("Check the restored DVC cache"), log[-6000:]
    assert "objects checked, 0 removed" in log
    assert docs_run.step_ok("Pull main's outputs"), log[-6000:]
    assert "no DVC dependency changed: the outputs are main's" in log
    assert not docs_run.step_ok("Reproduce the pipeline")
    assert "dvc repro" not in log.replace("`dvc repro`", "")  # only the message naming it
    assert "Running stage" not in log
    assert docs_run.step_ok("Quality gate") and docs_run.step_ok("Report"), log[-6000:]
    gate = json.loads((docs_run.artifacts / "pr-report" / "gate.json").read_text())
    assert gate["passed"] is True
    report = (docs_run.artifacts / "pr-report" / "pr-report.md").read_text()
    assert "Quality gate" in report and "❌" not in report
    assert (docs_run.artifacts / "pr-report" / "figures" / "roc.png").stat().st_size > 0
