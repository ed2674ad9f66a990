"""Two `gitops-ml promote` at once leave one version per model md5 and sane aliases.

Each round starts two promotions of the same dvc.lock at the same moment, against the local
SQLite registry and, for rounds 1 and 2, a real `mlflow server`. Round 1 promotes model A, round
2 model B (other hyperparameters), round 3 model A again (a rollback by revert): after each, every
md5 has exactly one version, `@champion` holds the round's model and `@previous` the one before,
never a copy of the champion. The local rounds start from no store at all: the first two
promotions create it at the same moment (`tracking.ensure_store`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from gitops_ml import tracking
from tests.integration.conftest import lock_hashes, run_in, sample_repo, set_params, template_env
from tests.integration.mlflow_server import run_mlflow_server

pytestmark = pytest.mark.slow

MODEL = "train:models/model.joblib"
AT_ONCE = 2


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_repo(tmp_path_factory.mktemp("concurrent") / "repo", 1500)


def _promote_at_once(repo: Path, uri: str) -> list[subprocess.CompletedProcess[str]]:
    env = {**template_env(repo), tracking.TRACKING_URI_ENV: uri}
    procs = [
        subprocess.Popen(["gitops-ml", "promote", "--summary", "", "--card", ""], cwd=repo,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(AT_ONCE)
    ]  # fmt: skip
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _registry(uri: str, name: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(md5 -> its versions, alias -> the md5 of its version)."""
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    by_md5: dict[str, list[str]] = {}
    for version in client.search_model_versions(f"name = '{name}'"):
        by_md5.setdefault(version.tags[tracking.TAG_MODEL_MD5], []).append(str(version.version))
    md5_of = {v: md5 for md5, versions in by_md5.items() for v in versions}
    aliases = client.get_registered_model(name).aliases or {}
    return by_md5, {alias: md5_of[str(v)] for alias, v in aliases.items()}


def _rounds(repo: Path, uri: str, steps: tuple[str, ...] = ("A", "B", "A again")) -> None:
    name = yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["model_name"]
    params = (repo / "params.yaml").read_bytes()
    order = []
    for step in steps:
        if step == "B":
            set_params(repo, train={"hyperparams": {"max_iter": 20}})
            run_in(repo, "dvc", "repro")
        elif step == "A again":
            (repo / "params.yaml").write_bytes(params)
            run_in(repo, "dvc", "repro")
        md5 = lock_hashes(repo)[MODEL]
        order.append(md5)
        for proc in _promote_at_once(repo, uri):
            assert proc.returncode == 0, proc.stderr
        by_md5, aliases = _registry(uri, name)
        assert all(len(v) == 1 for v in by_md5.values()), (step, by_md5)
        assert aliases["champion"] == md5, step
        if len(set(order)) > 1:
            assert aliases["previous"] == order[-2] != md5, (step, aliases)
    assert len(by_md5) == len(set(order))  # each model once, whatever the rounds
    (repo / "params.yaml").write_bytes(params)


def test_concurrent_promotions_in_the_local_registry(repo: Path) -> None:
    uri = f"sqlite:///{repo / 'concurrent.db'}"
    assert not (repo / "concurrent.db").exists()  # created by the first promotions, at once
    _rounds(repo, uri)


def test_concurrent_promotions_against_a_server(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with run_mlflow_server(tmp_path_factory.mktemp("server")) as uri:
        _rounds(repo, uri, steps=("A", "B"))  # the same code path as the local rounds
