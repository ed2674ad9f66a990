"""Nothing unverified is loaded: a model file whose md5 is not the one dvc.lock declares is
refused with one line naming both hashes, before anything unpickles it.

The planted file is a pickle that creates a marker file when it is loaded, the way a malicious
model would run a shell command: the marker must never appear. Each source a pull request could
have written is tampered with in turn: an object in the DVC cache (the champion of gate and
report), an object in the DVC remote, and the model in the workspace (predict, drift, report).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml

from gitops_ml.cli import main
from gitops_ml.files import file_md5
from gitops_ml.lineage.artifacts import IntegrityError, load_model_file
from gitops_ml.lineage.dvclock import MODEL_PATH, TEST_PATH, cache_path
from gitops_ml.pr import report
from tests.conftest import ROOT
from tests.integration.act import git

HONEST = b"the model main's dvc.lock declares"
HONEST_MD5 = hashlib.md5(HONEST).hexdigest()


class Payload:
    """Unpickling this opens (creates) `marker`: code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def plant(path: Path, marker: Path) -> str:
    """Write the malicious pickle at `path`; its md5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(Payload(marker), path)
    return file_md5(path)


def lock_declaring(md5: str) -> dict:
    return {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "python -m gitops_ml.stages.train",
                "outs": [{"path": MODEL_PATH, "hash": "md5", "md5": md5, "size": len(HONEST)}],
            }
        },
    }


def one_line_refusal(text: str, actual: str) -> None:
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 1, text
    assert HONEST_MD5 in lines[0] and actual in lines[0] and "refusing to load it" in lines[0]


def test_the_loader_refuses_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    actual = plant(tmp_path / "model.joblib", marker)
    with pytest.raises(IntegrityError) as exc:
        load_model_file(tmp_path / "model.joblib", HONEST_MD5, "the champion", "dvc.lock")
    one_line_refusal(str(exc.value), actual)
    assert not marker.exists()
    # The check is what stops it: the same file, declared with its own md5, does run.
    load_model_file(tmp_path / "model.joblib", actual, "the champion", "dvc.lock")
    assert marker.exists()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DVC repository whose `main` declares the honest model; the workspace holds a test split."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, env=env)
    (repo / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"train": {"cmd": "true", "outs": [MODEL_PATH]}}})
    )
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock_declaring(HONEST_MD5)))
    (repo / ".gitignore").write_text("/models\n/data\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    (repo / TEST_PATH).parent.mkdir(parents=True)
    pd.DataFrame({"x": [1, 2], "income": [">50K", "<=50K"]}).to_parquet(repo / TEST_PATH)
    monkeypatch.chdir(repo)
    return repo


def test_a_tampered_object_in_the_dvc_cache_is_never_loaded(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    actual = plant(cache_path(repo, HONEST_MD5), marker)  # the champion's name, other bytes
    with pytest.raises(IntegrityError) as exc:
        report.champion_metrics(repo, git(repo, "rev-parse", "HEAD"), params=None, rebuild=False)
    one_line_refusal(str(exc.value), actual)
    assert "from the DVC cache" in str(exc.value)
    assert not marker.exists()


def test_a_tampered_object_in_the_dvc_remote_is_never_loaded(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    git(repo, "config", "user.name", "x")  # dvc remote add edits .dvc/config only
    subprocess.run(
        [sys.executable, "-m", "dvc", "remote", "add", "-q", "-d", "storage", str(remote)],
        cwd=repo, check=True,
    )  # fmt: skip
    git(repo, "commit", "-q", "-am", "a remote")
    marker = tmp_path / "ran"
    actual = plant(remote / "files" / "md5" / HONEST_MD5[:2] / HONEST_MD5[2:], marker)
    shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)  # only the remote has it
    with pytest.raises(IntegrityError) as exc:
        report.champion_metrics(repo, git(repo, "rev-parse", "HEAD"), params=None, rebuild=False)
    one_line_refusal(str(exc.value), actual)
    assert "from the DVC remote" in str(exc.value)
    assert not marker.exists()


def test_a_tampered_model_in_the_workspace_is_never_loaded(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], adult_frame: pd.DataFrame
) -> None:
    marker = tmp_path / "ran"
    actual = plant(repo / MODEL_PATH, marker)
    with pytest.raises(IntegrityError) as exc:
        report.load_challenger(repo)
    one_line_refusal(str(exc.value), actual)

    for rel in ("params.yaml", "gitops.yaml", "data/schema"):  # what predict reads first
        src, dest = ROOT / rel, repo / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
    batch = tmp_path / "batch.csv"
    adult_frame.head(5).to_csv(batch, index=False)
    out = tmp_path / "scored.parquet"
    schema = "data/schema/adult.yaml"
    code = main(
        [
            "predict",
            "--model",
            MODEL_PATH,
            "--schema",
            schema,
            "--input",
            str(batch),
            "--output",
            str(out),
        ]
    )
    assert code == 2
    one_line_refusal(capsys.readouterr().err, actual)
    assert not out.exists()
    assert not marker.exists()
