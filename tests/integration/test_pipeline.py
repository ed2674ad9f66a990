"""The real `dvc repro` on a small sample of Adult, in a throw-away copy of the template."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gitops_ml.lineage.dvclock import METRICS_PATH, MODEL_PATH, TEST_PATH, TRAIN_PATH
from tests.integration.conftest import (
    SAMPLE,
    adult_sample,
    copy_template,
    lock_hashes,
    run_in,
    set_params,
)

pytestmark = pytest.mark.slow

OUTPUTS = (MODEL_PATH, METRICS_PATH, TRAIN_PATH)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template on a 4,000-row CSV sample, reproduced once."""
    root = copy_template(tmp_path_factory.mktemp("pipeline") / "repo")
    adult_sample(4000).to_csv(root / SAMPLE, index=False)
    set_params(
        root,
        data={"source": "csv", "path": SAMPLE},
        evaluate={"importance_rows": 300, "importance_repeats": 2},
    )
    run_in(root, "dvc", "repro")
    return root


def test_repro_writes_every_output(repo: Path) -> None:
    metrics = json.loads((repo / METRICS_PATH).read_text())
    assert set(metrics) >= {"roc_auc", "accuracy", "f1", "log_loss", "brier", "n_test"}
    test_rows = len(pd.read_parquet(repo / TEST_PATH))
    assert metrics["n_test"] == test_rows and 700 <= test_rows <= 900  # 20% of 4,000, by hash
    assert 0.8 < metrics["roc_auc"] <= 1.0
    slices = json.loads((repo / "reports/slices.json").read_text())
    assert "sex" in json.dumps(slices)
    assert json.loads((repo / "reports/validation.json").read_text())["passed"] is True
    figures = sorted(p.name for p in (repo / "reports/figures").glob("*.png"))
    assert "roc.png" in figures and len(figures) >= 4
    preds = pd.read_parquet(repo / "data/predictions/test.parquet")
    assert len(preds) == test_rows
    for out in OUTPUTS:
        assert (repo / out).stat().st_size > 0


def test_second_repro_runs_nothing(repo: Path) -> None:
    proc = run_in(repo, "dvc", "repro")
    assert "Running stage" not in proc.stdout
    assert "up to date" in proc.stdout.lower()
    status = run_in(repo, "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}


def test_dvc_plots_render(repo: Path) -> None:
    proc = run_in(repo, "dvc", "plots", "show", "--json")
    shown = json.loads(proc.stdout)
    assert not shown.get("errors")
    assert {"ROC", "Confusion matrix", "Calibration"} <= set(shown["data"])


def test_forced_repro_is_byte_identical_on_one_thread(repo: Path) -> None:
    """Same inputs, other thread count: every output hash in dvc.lock is unchanged."""
    before = lock_hashes(repo)
    run_in(repo, "dvc", "repro", "-f", extra_env={"OMP_NUM_THREADS": "1"})
    assert lock_hashes(repo) == before


def test_bad_input_fails_cleanly_and_keeps_outputs(repo: Path) -> None:
    kept = {out: (repo / out).read_bytes() for out in OUTPUTS}
    sample = repo / SAMPLE
    good = sample.read_bytes()
    try:
        sample.write_bytes(good[: len(good) // 2].rsplit(b",", 1)[0] + b',"unterminated\n')
        proc = run_in(repo, "dvc", "repro", check=False)
        assert proc.returncode != 0
        assert "adult_sample.csv" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert {out: (repo / out).read_bytes() for out in OUTPUTS} == kept
    finally:
        sample.write_bytes(good)


#: The results kept in git (`cache: false`): DVC must not delete them before a stage runs.
IN_GIT = (
    "reports/validation.json", "reports/tuned.json", "reports/metrics.json",
    "reports/slices.json", "reports/classes.json", "reports/baseline.json",
)  # fmt: skip


@pytest.mark.parametrize("fault", ["slice typo", "schema missing", "killed in evaluate"])
def test_a_failed_stage_keeps_the_results_that_are_in_git(repo: Path, fault: str) -> None:
    """A typo in `evaluate.slices`, a missing schema file or a kill -9 while evaluate writes:
    the stage fails and every git-tracked report is still there, byte for byte."""
    import signal
    import subprocess
    import time

    from tests.integration.conftest import template_env

    kept = {out: (repo / out).read_bytes() for out in IN_GIT}
    params = (repo / "params.yaml").read_bytes()
    schema = repo / "data/schema/adult.yaml"
    schema_text = schema.read_bytes()
    try:
        if fault == "slice typo":
            set_params(repo, evaluate={"slices": ["sex", "rase"]})
            proc = run_in(repo, "dvc", "repro", check=False)
            assert proc.returncode != 0 and "rase" in proc.stderr + proc.stdout
        elif fault == "schema missing":
            schema.unlink()
            proc = run_in(repo, "dvc", "repro", "-f", "-s", "validate", check=False)
            assert proc.returncode != 0
            # validate's report is its verdict: it says why, in place of the last one
            report = json.loads((repo / "reports/validation.json").read_text())
            assert report["passed"] is False and "adult.yaml" in json.dumps(report["error"])
            kept.pop("reports/validation.json")
        else:
            run = subprocess.Popen(
                ["dvc", "repro", "-f", "-s", "evaluate"], cwd=repo, env=template_env(repo),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            assert run.stdout is not None
            for line in run.stdout:  # kill the whole process group once evaluate runs
                if b"Running stage 'evaluate'" in line:
                    time.sleep(2.0)
                    break
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
        assert {out: (repo / out).read_bytes() for out in kept} == kept
    finally:
        (repo / "params.yaml").write_bytes(params)
        schema.write_bytes(schema_text)
        run_in(repo, "dvc", "repro")  # the next run repairs what the failure left
    status = run_in(repo, "dvc", "status", "--json")
    assert json.loads(status.stdout) == {}
    assert {out: (repo / out).read_bytes() for out in kept} == kept


def test_regression_on_own_csv(tmp_path: Path) -> None:
    """A team's regression data (scikit-learn's diabetes) with a drafted schema, end to end."""
    from sklearn.datasets import load_diabetes

    root = copy_template(tmp_path / "repo")
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(root / "data/source/diabetes.csv", index=False)
    run_in(
        root, "gitops-ml", "schema", "infer", "--input", "data/source/diabetes.csv",
        "--target", "target", "--task", "regression", "--output", "data/schema/diabetes.yaml",
    )  # fmt: skip
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace("data/schema/adult.yaml", "data/schema/diabetes.yaml")
    )
    set_params(
        root,
        data={"source": "csv", "path": "data/source/diabetes.csv", "target": "target",
              "task": "regression", "positive_label": None},
        gate={"primary": "rmse", "thresholds": {}, "max_regression": {"rmse": 1.0}, "worst_slice": None},
        evaluate={"slices": ["sex"], "importance_rows": 100, "importance_repeats": 2},
    )  # fmt: skip
    run_in(root, "dvc", "repro")
    metrics = json.loads((root / METRICS_PATH).read_text())
    assert set(metrics) == {"rmse", "mae", "r2", "n_test"}
    assert metrics["r2"] > 0.1
