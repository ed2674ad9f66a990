"""`gitops-ml promote` and `verify` on a real git + DVC repository and real MLflow registries.

One module-scoped repository on 1,500 synthetic rows, reproduced once: `main` at its first
model. Tests run in order, like the life of `main`: first promotion, a no-op rerun, a second
model, its `git revert`, a hand-moved alias, injected crashes, a model only a rebuild can
produce, a stale lock, and last a real `mlflow server` on loopback (started before the pipeline
so it boots while the model trains).

The registry is the repository's SQLite file. Tests that need a registered model with no
version yet get a params file of their own naming another model and experiment (a new SQLite
file would cost seconds of schema migrations per test, in each process that opens it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from gitops_ml import cli, tracking
from gitops_ml.config import read_settings
from gitops_ml.files import file_md5
from gitops_ml.lineage.artifacts import ArtifactError
from gitops_ml.lineage.dvclock import METRICS_PATH, MODEL_PATH, TEST_PATH, TRAIN_PATH
from gitops_ml.release import promote as pm
from tests.integration.conftest import copy_template, in_repo, run_in, set_params
from tests.integration.mlflow_server import MlflowServer, free_port

pytestmark = pytest.mark.slow

NAME = "adult-income"
EXPERIMENT = "gitops-ml"
MODEL = MODEL_PATH
TEST = TEST_PATH
HYPER = {"max_iter": 20}


def git(repo: Path, *args: str) -> str:
    return run_in(repo, "git", *args).stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())


def declared_md5(repo: Path) -> str:
    return next(o["md5"] for o in lock(repo)["stages"]["train"]["outs"] if o["path"] == MODEL)


def cache_object(repo: Path, md5: str) -> Path:
    return repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]


def client():
    import mlflow

    tracking.configure()
    return mlflow.MlflowClient()


def versions(name: str = NAME) -> list:
    found = client().search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


def numbers(name: str = NAME) -> list[str]:
    return [str(v.version) for v in versions(name)]


def aliases(name: str = NAME) -> dict[str, str]:
    return pm.aliases_of(client(), name) or {}


def promotion_runs(md5: str, experiment: str = EXPERIMENT) -> list:
    c = client()
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return c.search_runs(
        [exp.experiment_id],
        f"tags.`{pm.TAG_PROMOTION}` = 'true' and tags.`gitops_ml.model_md5` = '{md5}'",
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A real `mlflow server`, started now and waited for only by the test that uses it."""
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, server: MlflowServer) -> Path:
    """`main` with its first model: the template on synthetic data, reproduced and committed."""
    root = copy_template(tmp_path_factory.mktemp("promote") / "repo")
    set_params(
        root,
        data={"source": "synthetic", "n_rows": 1500},
        train={"hyperparams": HYPER},
        evaluate={"importance_rows": 0},
    )
    commit_all(root, "template on synthetic data")
    run_in(root, "dvc", "repro")
    commit_all(root, "first model")
    return root


@pytest.fixture
def at_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """In-process calls: in the repository, against its own SQLite registry, no PR number."""
    return in_repo(repo, monkeypatch)


@pytest.fixture
def own_model(at_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """(params file, model name): params.yaml naming a model and experiment of this test."""
    name = request.node.name.removeprefix("test_").replace("_", "-")
    params = read_settings(at_repo / "params.yaml")  # one file: the older layout loads too
    params["mlflow"] = {"experiment": name, "model_name": name}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path, name


def test_first_promote_registers_version_1_with_lineage(
    at_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    repo = at_repo
    md5 = declared_md5(repo)
    monkeypatch.setenv(tracking.PR_NUMBER_ENV, "3")
    summary, out = tmp_path / "summary.md", tmp_path / "result.json"
    assert cli.main(["promote", "--summary", str(summary), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{NAME} version 1 (created; artifact from the workspace file)" in printed
    assert "champion (none) -> 1" in printed

    result = json.loads(out.read_text())
    assert result["version"] == "1" and result["created"] is True
    assert result["alias_moves"] == [{"alias": "champion", "from": None, "to": "1"}]
    assert result["model_uri"] == f"models:/{NAME}@champion"
    assert result["dry_run"] is True and result["registry_url"] is None
    text = summary.read_text()
    assert f"`{NAME}` version 1 is `@champion`" in text
    assert "dry run: local sqlite registry" in text
    assert "| pull request | #3 |" in text

    (v1,) = versions()
    train = lock(repo)["stages"]["train"]
    metrics = json.loads((repo / METRICS_PATH).read_text())
    assert v1.tags["gitops_ml.model_md5"] == md5
    assert v1.tags["gitops_ml.dvc_lock_md5"] == file_md5(repo / "dvc.lock")
    assert v1.tags["gitops_ml.git_sha"] == git(repo, "rev-parse", "HEAD")
    assert v1.tags["gitops_ml.train_data_md5"] == next(
        d["md5"] for d in train["deps"] if d["path"] == TRAIN_PATH
    )
    assert v1.tags["gitops_ml.pr_number"] == "3"
    assert "gitops_ml.model_md5_built" not in v1.tags
    assert float(v1.tags["metric.roc_auc"]) == metrics["roc_auc"]
    assert json.loads(v1.tags["param.train.hyperparams"]) == HYPER
    train_run = client().get_run(v1.tags["gitops_ml.train_run_id"])
    assert train_run.data.tags["gitops_ml.model_md5"] == md5  # the run `dvc repro` logged
    assert aliases() == {"champion": "1"}

    # The registered model is a skops archive with the exact DVC bytes beside it.
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path)))
    assert file_md5(local / "extra_files/model.joblib") == md5
    assert (local / "model.skops").is_file() and not (local / "model.pkl").exists()
    assert pm.verify().ok


def test_promote_again_changes_nothing(at_repo: Path) -> None:
    result = pm.promote(at_repo)
    assert (result.version, result.created, result.alias_moves) == ("1", False, [])
    assert result.artifact_source == "registry"
    assert numbers() == ["1"]
    assert len(promotion_runs(declared_md5(at_repo))) == 1
    assert aliases() == {"champion": "1"}


def test_champion_predicts_exactly_like_the_dvc_model(at_repo: Path) -> None:
    import mlflow

    tracking.configure()
    X = pd.read_parquet(at_repo / TEST).drop(columns=["income"])
    dvc_model = joblib.load(at_repo / MODEL)
    champion = mlflow.sklearn.load_model(f"models:/{NAME}@champion")
    assert np.array_equal(champion.predict_proba(X), dvc_model.predict_proba(X))
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert np.array_equal(np.asarray(served.predict(X)), dvc_model.predict(X))


def test_second_model_then_git_revert_rolls_back(at_repo: Path) -> None:
    repo = at_repo
    first = declared_md5(repo)
    set_params(repo, train={"hyperparams": {**HYPER, "learning_rate": 0.3}})
    run_in(repo, "dvc", "repro")
    commit_all(repo, "Faster learning rate (#7)")
    second = declared_md5(repo)
    assert second != first

    result = pm.promote(repo)
    assert (result.version, result.created, result.pr_number) == ("2", True, "7")
    assert [(m.alias, m.old, m.new) for m in result.alias_moves] == [
        ("previous", None, "1"),
        ("champion", "1", "2"),
    ]
    assert aliases() == {"champion": "2", "previous": "1"}
    assert versions()[1].tags["gitops_ml.model_md5"] == second
    assert pm.verify().ok

    git(repo, "revert", "--no-edit", "HEAD")
    assert declared_md5(repo) == first
    result = pm.promote(repo)
    assert (result.version, result.created) == ("1", False)
    assert [(m.alias, m.old, m.new) for m in result.alias_moves] == [
        ("previous", "1", "2"),
        ("champion", "2", "1"),
    ]
    assert aliases() == {"champion": "1", "previous": "2"}
    assert numbers() == ["1", "2"]
    assert pm.verify().ok


def test_verify_fails_when_the_alias_is_moved_by_hand(
    at_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = declared_md5(at_repo)
    second = versions()[1].tags["gitops_ml.model_md5"]
    client().set_registered_model_alias(NAME, "champion", "2")
    try:
        assert cli.main(["verify"]) == 1
        printed = capsys.readouterr().out
        assert (
            f"mismatch: {NAME}@champion (version 2): md5 {second}, but dvc.lock declares {first}"
            in printed
        )
    finally:
        result = pm.promote(at_repo)
    assert result.alias_moves == [pm.AliasMove("champion", "2", "1")]
    assert aliases() == {"champion": "1", "previous": "2"}
    assert cli.main(["verify"]) == 0
    assert f"ok: {NAME}@champion (version 1) holds model md5 {first}" in capsys.readouterr().out


def test_crashes_at_each_step_converge_on_rerun(
    at_repo: Path, own_model: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash after the run, then after registering; each rerun resumes, nothing is duplicated.

    The model comes from a DVC remote: it is in neither the workspace nor the cache.
    """
    repo, (params, name) = at_repo, own_model
    md5 = declared_md5(repo)
    run_in(repo, "dvc", "remote", "add", "--local", "-f", "-d", "store", str(tmp_path / "remote"))
    run_in(repo, "dvc", "push", MODEL)
    cache_object(repo, md5).unlink()
    assert file_md5(repo / MODEL) != md5  # the workspace holds the reverted model
    try:
        monkeypatch.setenv(pm.CRASH_ENV, "run")
        with pytest.raises(pm.InjectedCrash):
            pm.promote(repo, params_path=params)
        assert numbers(name) == [] and len(promotion_runs(md5, name)) == 1

        monkeypatch.setenv(pm.CRASH_ENV, "register")
        with pytest.raises(pm.InjectedCrash):
            pm.promote(repo, params_path=params)
        assert numbers(name) == ["1"] and aliases(name) == {}
        verdict = pm.verify(params_path=params)
        assert not verdict.ok and verdict.message.startswith("no champion alias")

        monkeypatch.delenv(pm.CRASH_ENV)
        result = pm.promote(repo, params_path=params)
    finally:
        run_in(repo, "dvc", "remote", "remove", "--local", "store")
    assert (result.version, result.created, result.artifact_source) == ("1", False, "registry")
    assert result.alias_moves == [pm.AliasMove("champion", None, "1")]
    assert aliases(name) == {"champion": "1"}
    (v1,) = versions(name)
    assert v1.tags["gitops_ml.artifact_source"] == "remote"
    assert len(promotion_runs(md5, name)) == 1
    assert pm.verify(params_path=params).ok


def test_crash_between_aliases_is_completed_by_a_rerun(
    at_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`previous` moved, `champion` not yet: the rerun moves `champion` and nothing else."""
    client().set_registered_model_alias(NAME, "champion", "2")
    client().set_registered_model_alias(NAME, "previous", "1")
    monkeypatch.setenv(pm.CRASH_ENV, "previous")
    with pytest.raises(pm.InjectedCrash):
        pm.promote(at_repo)
    assert aliases() == {"champion": "2", "previous": "2"}
    assert not pm.verify().ok
    monkeypatch.delenv(pm.CRASH_ENV)
    result = pm.promote(at_repo)
    assert result.alias_moves == [pm.AliasMove("champion", "2", "1")]
    assert aliases() == {"champion": "1", "previous": "2"}
    assert numbers() == ["1", "2"]


def test_lock_from_another_machine_is_refused_after_the_rebuild(
    at_repo: Path, own_model: tuple[Path, str]
) -> None:
    """No cache, no remote; dvc.lock records other model bytes for the same inputs: the rebuild
    is not what dvc.lock declares, so nothing is registered."""
    repo, (params, name) = at_repo, own_model
    real = declared_md5(repo)
    cache_object(repo, real).unlink(missing_ok=True)
    other = "0123456789abcdef0123456789abcdef"
    text = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(text.replace(real, other))
    commit_all(repo, "dvc.lock recorded on another machine")
    committed = (repo / "dvc.lock").read_bytes()
    try:
        with pytest.raises(ArtifactError, match="rebuilding is disabled"):
            pm.promote(repo, params_path=params, rebuild=False)
        with pytest.raises(ArtifactError) as err:
            pm.promote(repo, params_path=params)
        assert (repo / "dvc.lock").read_bytes() == committed
    finally:
        git(repo, "reset", "-q", "--hard", "HEAD~1")
    assert str(err.value).startswith(
        f"the rebuilt {MODEL} has md5 {real}, but dvc.lock declares {other}"
    )
    assert numbers(name) == []
    assert file_md5(repo / MODEL) == real  # the rebuild is the same model as on `main`


def test_stale_lock_is_refused_and_left_as_committed(
    at_repo: Path, own_model: tuple[Path, str], tmp_path: Path
) -> None:
    """The split changed and was committed without `dvc repro`: the train stage's params and
    code still match dvc.lock, but the rebuild trains on other data, so it is refused."""
    repo, (params, name) = at_repo, own_model
    cached = cache_object(repo, declared_md5(repo))
    kept = cached.rename(tmp_path / "kept")  # put back afterwards for the next test
    (repo / MODEL).unlink()
    set_params(repo, split={"test_size": 0.25})
    commit_all(repo, "split changed without dvc repro")
    committed = (repo / "dvc.lock").read_bytes()
    try:
        with pytest.raises(ArtifactError) as err:
            pm.promote(repo, params_path=params)
        assert (repo / "dvc.lock").read_bytes() == committed
    finally:
        git(repo, "reset", "-q", "--hard", "HEAD~1")
        kept.rename(cached)
        run_in(repo, "dvc", "checkout", "--force")  # main's splits and model again
    message = str(err.value)
    assert message.startswith("refusing to promote a rebuild that does not match dvc.lock")
    assert "dependency data/processed/train.parquet differs" in message
    assert numbers(name) == []


def test_promote_and_verify_against_a_real_mlflow_server(
    at_repo: Path,
    server: MlflowServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repo = at_repo
    uri = server.wait_ready()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out, summary = tmp_path / "result.json", tmp_path / "summary.md"
    assert cli.main(["promote", "--json", str(out), "--summary", str(summary)]) == 0
    first = json.loads(out.read_text())
    assert (first["version"], first["created"], first["dry_run"]) == ("1", True, False)
    assert first["registry_url"] == f"{uri}/#/models/{NAME}/versions/1"
    text = summary.read_text()
    assert first["registry_url"] in text and "dry run" not in text
    assert any((server.tmp / "artifacts").rglob("model.joblib"))  # uploaded through the server
    # The model card: uploaded through the server too, linked to its page in the server's UI.
    run_id = first["run_id"]
    assert first["card_uri"] == f"runs:/{run_id}/card/model-card.md"
    assert first["card_url"].startswith(f"{uri}/#/experiments/")
    assert first["card_url"].endswith(f"/runs/{run_id}/artifactPath/card/model-card.md")
    assert f"[model-card.md]({first['card_url']})" in text
    assert any((server.tmp / "artifacts").rglob("card/model-card.md"))
    card = client().download_artifacts(run_id, "card/model-card.md", str(tmp_path))
    assert Path(card).read_text() == (repo / first["card_path"]).read_text()

    import mlflow

    X = pd.read_parquet(repo / TEST).drop(columns=["income"])
    served = mlflow.sklearn.load_model(f"models:/{NAME}@champion")  # downloaded via the server
    assert np.array_equal(served.predict_proba(X), joblib.load(repo / MODEL).predict_proba(X))

    again = pm.promote(repo)
    assert (again.version, again.created, again.alias_moves) == ("1", False, [])
    assert cli.main(["verify"]) == 0
    assert f"ok: {NAME}@champion (version 1) holds model md5 {declared_md5(repo)}" in (
        capsys.readouterr().out
    )
    assert cli.main(["verify", "--max-age-days", "0"]) == pm.TOO_OLD_EXIT  # read from the server
    assert capsys.readouterr().out.startswith(f"too old: {NAME}@champion (version 1) was ")
    assert cli.main(["verify", "--max-age-days", "1"]) == 0


@pytest.mark.parametrize(("command", "action"), [("verify", "reading"), ("promote", "searching")])
def test_unreachable_registry_is_exit_2(
    at_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    action: str,
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: mlflow ({uri}): {action} ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
