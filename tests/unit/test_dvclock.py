"""The pipeline facts the GitOps commands share live in one place and match dvc.yaml."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from gitops_ml.lineage import dvclock
from tests.conftest import ROOT

PATHS = (
    "MODEL_PATH",
    "TRAIN_PATH",
    "TEST_PATH",
    "METRICS_PATH",
    "SLICES_PATH",
    "VALIDATION_PATH",
    "FIGURES_DIR",
    "PLOTS_DIR",
    "PREDICTIONS_PATH",
)


def dvc_yaml_outputs() -> set[str]:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    outs = set()
    for stage in pipeline["stages"].values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                outs.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return outs


@pytest.mark.parametrize("name", PATHS)
def test_every_shared_path_is_an_output_of_dvc_yaml(name: str) -> None:
    assert getattr(dvclock, name) in dvc_yaml_outputs()


def test_the_train_stage_declares_the_model() -> None:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    outs = pipeline["stages"][dvclock.TRAIN_STAGE]["outs"]
    assert dvclock.MODEL_PATH in [next(iter(o)) if isinstance(o, dict) else o for o in outs]


def test_error_line_prefers_the_first_error_over_the_last_line() -> None:
    proc = subprocess.CompletedProcess(
        ["dvc"], 1, stdout="progress\n", stderr="ERROR: failed to pull data\nhint: check it\n"
    )
    assert dvclock.error_line(proc) == "ERROR: failed to pull data"
    quiet = subprocess.CompletedProcess(["dvc"], 3, stdout="", stderr="")
    assert dvclock.error_line(quiet) == "exit code 3"


def test_run_dvc_reports_a_failure_in_one_line(tmp_path) -> None:
    proc = dvclock.run_dvc(tmp_path, "status")  # not a DVC repository
    assert proc.returncode != 0
    line = dvclock.error_line(proc)
    assert line.startswith("ERROR") and "\n" not in line


def test_lock_at_a_revision_without_one_is_none_and_bad_yaml_is_one_line(tmp_path) -> None:
    from gitops_ml.errors import DataError

    assert dvclock.parse_lock_text(None, "x") is None
    with pytest.raises(DataError, match=r"^HEAD:dvc\.lock is not valid YAML$"):
        dvclock.parse_lock_text("a: [", "HEAD:dvc.lock")
    with pytest.raises(DataError, match=r"is not a dvc\.lock mapping"):
        dvclock.parse_lock_text("- 1\n", "HEAD:dvc.lock")
