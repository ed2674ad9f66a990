"""Monitoring that watches quality, in a real repository: the template reproduced on a 3,000-row
Adult sample, `gitops-ml drift` on labelled batches with the model and the reference data the
pipeline made, and `gitops-ml predict --log-dir` pruning its log to gitops.yaml's retention."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.lineage.dvclock import MODEL_PATH
from tests.integration.conftest import run_in, sample_repo

pytestmark = pytest.mark.slow

BATCH_ROWS = "500"  # of the 600 held-out rows; drift.min_rows is 500


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_repo(tmp_path_factory.mktemp("quality") / "repo", 3000)


def _drift(repo: Path, batch: Path, out: Path) -> tuple[int, dict, str]:
    proc = run_in(repo, "gitops-ml", "drift", "--current", str(batch),
                  "--json", str(out / "drift.json"), "--markdown", str(out / "drift.md"),
                  check=False)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.returncode, json.loads((out / "drift.json").read_text()), proc.stdout


def test_flipped_labels_alert_and_clean_labels_do_not(repo: Path, tmp_path: Path) -> None:
    batch = tmp_path / "batch.parquet"
    run_in(repo, "gitops-ml", "demo-batch", "--output", str(batch), "--rows", BATCH_ROWS,
           "--seed", "5", "--shift", "none")  # fmt: skip
    (tmp_path / "clean").mkdir()
    code, report, out = _drift(repo, batch, tmp_path / "clean")
    assert code == 0, out
    quality = report["quality"]
    assert quality["measured"] and not quality["alert"] and quality["labelled_rows"] == 500
    assert {r["metric"] for r in quality["rules"]} == {"roc_auc", "log_loss"}  # gitops.yaml's

    frame = pd.read_parquet(batch)
    frame["income"] = frame["income"].map({">50K": "<=50K", "<=50K": ">50K"})
    flipped = tmp_path / "flipped.csv"
    frame.to_csv(flipped, index=False)
    (tmp_path / "flipped").mkdir()
    code, report, out = _drift(repo, flipped, tmp_path / "flipped")
    assert code == 1, out
    assert report["drift"] is False and report["alert"] is True
    assert report["quality"]["alert"] and report["quality"]["reasons"]
    assert "QUALITY ALERT on 500 labelled rows" in out
    assert "model quality: **below the gate**" in (tmp_path / "flipped" / "drift.md").read_text()


def test_predict_keeps_the_log_within_retention_rows(repo: Path, tmp_path: Path) -> None:
    gitops = yaml.safe_load((repo / "gitops.yaml").read_text())
    assert gitops["monitoring"] == {
        "retention_days": None, "retention_rows": None, "max_model_age_days": 90,
    }  # fmt: skip
    gitops["monitoring"]["retention_rows"] = 150
    (repo / "gitops.yaml").write_text(yaml.safe_dump(gitops, sort_keys=False))
    try:
        pd.read_parquet(repo / "data/processed/test.parquet").head(100).to_csv(
            tmp_path / "in.csv", index=False
        )
        log = tmp_path / "log"
        outside = tmp_path / "20200101T000000-deadbeef.parquet"  # a log file's name, outside
        outside.write_bytes((repo / "data/processed/test.parquet").read_bytes())
        for _ in range(3):
            run_in(repo, "gitops-ml", "predict", "--input", str(tmp_path / "in.csv"),
                   "--output", str(tmp_path / "out.csv"), "--model", MODEL_PATH,
                   "--log-dir", str(log))  # fmt: skip
        files = sorted(log.iterdir())
        assert len(files) == 1  # 100 rows each: two would be 200 > 150
        assert outside.is_file()
    finally:
        run_in(repo, "git", "checkout", "--", "gitops.yaml")
