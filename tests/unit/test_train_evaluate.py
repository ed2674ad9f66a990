"""The train and evaluate stages end to end, in a temp dir with a throw-away MLflow store.

One classification workspace (an Adult sample) is trained and evaluated once per module and
inspected by several tests; error paths use their own small inputs and never reach MLflow.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from gitops_ml import metrics, tracking
from gitops_ml.config import load_params
from gitops_ml.files import file_md5
from gitops_ml.lineage.dvclock import METRICS_PATH, MODEL_PATH, TEST_PATH, TRAIN_PATH
from gitops_ml.stages import evaluate, train
from tests.conftest import REGRESSION_GATE, template_settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = template_settings()
EXPERIMENT = "test-train-evaluate"
CLASSIFICATION_FIGURES = {
    "roc.png",
    "precision_recall.png",
    "confusion_matrix.png",
    "calibration.png",
    "importance.png",
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def write_params(path: Path, **sections: dict) -> Path:
    raw = copy.deepcopy(DEFAULTS)
    raw["evaluate"].update(importance_rows=300, importance_repeats=2)
    raw["mlflow"]["experiment"] = EXPERIMENT
    for section, values in sections.items():
        raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def train_args(ws: Path) -> list[str]:
    return [
        "--train",
        str(ws / TRAIN_PATH),
        "--model",
        str(ws / MODEL_PATH),
        "--params",
        str(ws / "params.yaml"),
    ]


def evaluate_args(ws: Path) -> list[str]:
    return [
        "--model",
        str(ws / MODEL_PATH),
        "--test",
        str(ws / TEST_PATH),
        "--metrics",
        str(ws / METRICS_PATH),
        "--slices",
        str(ws / "reports/slices.json"),
        "--classes",
        str(ws / "reports/classes.json"),
        "--plots",
        str(ws / "reports/plots"),
        "--figures",
        str(ws / "reports/figures"),
        "--predictions",
        str(ws / "data/predictions/test.parquet"),
        "--params",
        str(ws / "params.yaml"),
    ]


def write_splits(ws: Path, train_df: pd.DataFrame, test_df: pd.DataFrame) -> None:
    (ws / "data/processed").mkdir(parents=True, exist_ok=True)
    train_df.to_parquet(ws / TRAIN_PATH, index=False)
    test_df.to_parquet(ws / TEST_PATH, index=False)


def output_digests(ws: Path) -> dict[str, str]:
    """md5 of every file the two stages write (the MLflow store aside)."""
    files = [ws / MODEL_PATH, ws / "data/predictions/test.parquet"]
    files += sorted((ws / "reports").rglob("*"))
    return {
        str(p.relative_to(ws)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file()
    }


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Fit on one OpenMP thread: small fits are faster so, and a busy machine cannot stall them
    (OpenMP threads spin-wait; oversubscribed, a 2-thread fit of 3,000 rows took over a minute).
    Thread-count independence of the saved model is tested in tests/data/test_model_quality.py.
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating its tables takes seconds, so it is shared."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def classification_ws(
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
    tracking_uri: str,
) -> Iterator[Path]:
    """An Adult sample trained and evaluated once, in a git repo, as PR #17."""
    ws = tmp_path_factory.mktemp("binary")
    train_df, test_df = adult_split
    write_splits(ws, train_df.head(3000), test_df.head(1000))
    write_params(ws / "params.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        mp.setenv(tracking.TRACKING_URI_ENV, tracking_uri)
        mp.setenv(tracking.PR_NUMBER_ENV, "17")
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        subprocess.run(["git", "init", "-q"], check=True)
        subprocess.run(["git", "add", "params.yaml"], check=True)
        subprocess.run(["git", "commit", "-qm", "params"], check=True)
        assert train.main(train_args(ws)) == 0
        assert evaluate.main(evaluate_args(ws)) == 0
        yield ws


def _run(ws: Path):
    run = tracking.find_run_by_model_hash(file_md5(ws / MODEL_PATH), EXPERIMENT)
    assert run is not None
    return run


def test_train_logs_a_run_with_lineage_tags_and_params(classification_ws: Path) -> None:
    ws = classification_ws
    run = _run(ws)
    tags = run.data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ws, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags[tracking.TAG_GIT_SHA] == head
    assert tags[tracking.TAG_GIT_DIRTY] == "false"
    assert tags[tracking.TAG_MODEL_MD5] == file_md5(ws / MODEL_PATH)
    assert tags[tracking.TAG_TRAIN_DATA_MD5] == file_md5(ws / TRAIN_PATH)
    assert tags[tracking.TAG_PR_NUMBER] == "17"
    assert tags[tracking.TAG_MODEL_TYPE] == "hist_gradient_boosting"

    params = run.data.params
    assert params["data.target"] == "income"
    assert params["data.task"] == "binary"
    assert params["split.test_size"] == "0.2"
    assert params["train.model"] == "hist_gradient_boosting"
    assert params["train.hyperparams"] == "{}"
    assert params["train.seed"] == "42"
    assert params["estimator.learning_rate"] == "0.1"
    assert "data.positive_label" not in params  # evaluate's key: recorded as a tag there

    assert run.data.metrics["n_train"] == 3000
    assert 0.5 < run.data.metrics["train_roc_auc"] <= 1
    assert run.data.metrics["fit_seconds"] >= 0


def test_the_training_run_names_its_model_by_md5_and_logs_no_mlflow_model(
    classification_ws: Path,
) -> None:
    """The MLflow model (skops, signature, requirements) is made at promotion from checked
    bytes; the training run only points at the DVC file by its md5."""
    ws = classification_ws
    run = _run(ws)
    assert run.data.tags[tracking.TAG_MODEL_MD5] == file_md5(ws / MODEL_PATH)
    assert tracking.TAG_MODEL_URI not in run.data.tags
    client = mlflow.MlflowClient()
    assert not [a.path for a in client.list_artifacts(run.info.run_id) if a.path == "model"]
    assert client.search_logged_models(experiment_ids=[run.info.experiment_id]).to_list() == []


def test_evaluate_writes_metrics_slices_plots_figures_and_predictions(
    classification_ws: Path,
) -> None:
    ws = classification_ws
    got = json.loads((ws / METRICS_PATH).read_text())
    assert set(got) == set(metrics.BINARY_KEYS)
    assert got["n_test"] == 1000
    assert 0.8 < got["roc_auc"] <= 1

    slices = json.loads((ws / "reports/slices.json").read_text())
    assert set(slices) == {"sex", "race"}
    assert set(slices["sex"]) == {"Female", "Male"}
    assert sum(s["n"] for s in slices["race"].values()) == 1000

    plots = ws / "reports/plots"
    assert {p.stem for p in plots.iterdir()} == set(evaluate.PLOT_NAMES)
    assert json.loads((plots / "predicted_vs_actual.json").read_text()) == []
    roc = json.loads((plots / "roc.json").read_text())
    assert 2 < len(roc) <= evaluate.CURVE_POINTS
    assert set(roc[0]) == {"fpr", "tpr"}
    assert len(json.loads((plots / "confusion.json").read_text())) == 1000
    importance = json.loads((plots / "importance.json").read_text())
    assert {r["feature"] for r in importance} == set(pd.read_parquet(ws / TEST_PATH).columns) - {
        "income"
    }

    figures = ws / "reports/figures"
    assert {p.name for p in figures.iterdir()} == CLASSIFICATION_FIGURES
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in figures.iterdir())

    pred = pd.read_parquet(ws / "data/predictions/test.parquet")
    assert list(pred.columns) == ["actual", "prediction", "score"]
    assert len(pred) == 1000
    assert pd.api.types.is_float_dtype(pred["score"])
    assert ((pred["score"] >= 0.5) == (pred["prediction"] == ">50K")).all()
    accuracy = float((pred["actual"] == pred["prediction"]).mean())
    assert accuracy == pytest.approx(got["accuracy"], abs=1e-6)


def test_plot_data_is_read_by_dvc(classification_ws: Path) -> None:
    """`dvc plots show --json` on the dvc.yaml `plots:` section loads every file without error."""
    ws = classification_ws
    dvc = Path(sys.executable).parent / "dvc"  # this environment's dvc
    if not dvc.exists():
        pytest.skip("dvc executable not found beside this interpreter")
    repo = ws / "dvc-plots"
    (repo / "reports").mkdir(parents=True)
    (repo / "reports/plots").symlink_to(ws / "reports/plots")
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": spec["plots"]}), encoding="utf-8")
    env = {"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin", **GIT_ENV}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run([str(dvc), "init", "-q"], cwd=repo, check=True, env=env)
    proc = subprocess.run(
        [str(dvc), "plots", "show", "--json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    shown = json.loads(proc.stdout)
    assert not shown.get("errors")
    assert {name for name, entries in shown["data"].items() if entries} == {
        "ROC",
        "Precision-recall",
        "Confusion matrix",
        "Calibration",
        "Permutation importance",
    }


def test_evaluate_logs_into_the_run_that_trained_the_model(classification_ws: Path) -> None:
    ws = classification_ws
    run = _run(ws)
    got = json.loads((ws / METRICS_PATH).read_text())
    assert run.data.metrics["test_roc_auc"] == pytest.approx(got["roc_auc"])
    assert run.data.metrics["test_n_test"] == 1000
    assert run.data.tags[tracking.TAG_TEST_DATA_MD5] == file_md5(ws / TEST_PATH)
    assert run.data.tags[tracking.TAG_POSITIVE_LABEL] == ">50K"
    client = mlflow.MlflowClient()
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert figures == {f"figures/{name}" for name in CLASSIFICATION_FIGURES}
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {METRICS_PATH, "reports/slices.json", "reports/classes.json"}
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert len([r for r in runs if r.data.tags.get(tracking.TAG_PR_NUMBER) == "17"]) == 1


def test_rerun_gives_byte_identical_outputs(classification_ws: Path) -> None:
    """Runs last of the workspace tests: it re-runs both stages in the module's workspace."""
    ws = classification_ws
    before = output_digests(ws)
    assert train.main(train_args(ws)) == 0
    assert evaluate.main(evaluate_args(ws)) == 0
    assert output_digests(ws) == before


# --------------------------------------------------------------------------------------------
# regression, end to end


def test_regression_train_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str
) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    write_splits(tmp_path, frame.iloc[:350], frame.iloc[350:])
    write_params(
        tmp_path / "params.yaml",
        data={
            "source": "csv",
            "path": "data/source/diabetes.csv",
            "target": "target",
            "task": "regression",
            "positive_label": None,
        },
        train={"model": "ridge"},
        evaluate={"slices": ["sex"], "importance_rows": 50},
        gate=REGRESSION_GATE,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, tracking_uri)
    monkeypatch.delenv(tracking.PR_NUMBER_ENV, raising=False)
    assert train.main(train_args(tmp_path)) == 0
    assert evaluate.main(evaluate_args(tmp_path)) == 0

    got = json.loads((tmp_path / METRICS_PATH).read_text())
    assert set(got) == set(metrics.REGRESSION_KEYS)
    assert got["n_test"] == len(frame) - 350
    assert got["r2"] > 0.3
    slices = json.loads((tmp_path / "reports/slices.json").read_text())
    assert len(slices["sex"]) == 2
    plots = tmp_path / "reports/plots"
    assert json.loads((plots / "roc.json").read_text()) == []
    assert len(json.loads((plots / "predicted_vs_actual.json").read_text())) == got["n_test"]
    figures = {p.name for p in (tmp_path / "reports/figures").iterdir()}
    assert figures == {"predicted_vs_actual.png", "importance.png"}
    pred = pd.read_parquet(tmp_path / "data/predictions/test.parquet")
    assert list(pred.columns) == ["actual", "prediction"]

    run = _run(tmp_path)
    assert tracking.TAG_PR_NUMBER not in run.data.tags
    assert run.data.params["data.task"] == "regression"
    assert run.data.metrics["test_r2"] == pytest.approx(got["r2"])
    assert "train_r2" in run.data.metrics


def test_multiclass_penguins_run_as_mlflow_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking_uri: str
) -> None:
    """Penguins (three classes, missing values in numbers and text) through both stages: the run
    written without MLflow's client holds every test metric and figure, as MLflow reads it."""
    import mlflow

    from tests.datasets import penguins

    data = penguins()
    frame = data.frame.dropna(subset=[data.target]).sample(frac=1.0, random_state=0)
    write_splits(tmp_path, frame.iloc[:250], frame.iloc[250:])
    write_params(
        tmp_path / "params.yaml",
        data={
            "source": "csv",
            "path": "data/source/penguins.csv",
            "target": data.target,
            "task": data.task,
            "positive_label": None,
        },
        evaluate={"slices": ["island"], "importance_rows": 60},
        gate={
            "primary": "accuracy",
            "thresholds": {"accuracy": 0.5},
            "max_regression": {"accuracy": 0.05},
            "worst_slice": None,
        },
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, tracking_uri)
    assert train.main(train_args(tmp_path)) == 0
    assert evaluate.main(evaluate_args(tmp_path)) == 0

    got = json.loads((tmp_path / METRICS_PATH).read_text())
    run = _run(tmp_path)
    assert run.data.params["data.task"] == "multiclass"
    logged = {
        k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")
    }
    assert logged == {k: pytest.approx(v) for k, v in got.items() if v is not None}
    figures = {p.name for p in (tmp_path / "reports/figures").iterdir()}
    client = mlflow.MlflowClient()
    assert {
        f.path.removeprefix("figures/") for f in client.list_artifacts(run.info.run_id, "figures")
    } == figures
    reports = {f.path for f in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {"reports/metrics.json", "reports/slices.json", "reports/classes.json"}


# --------------------------------------------------------------------------------------------
# error paths: one line on stderr, exit 2, nothing written


def _small_adult(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, ...]:
    train_df, test_df = adult_split
    return train_df.head(600), test_df.head(200)


def test_train_without_the_target_column_names_it(
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_df, test_df = _small_adult(adult_split)
    write_splits(tmp_path, train_df.drop(columns="income"), test_df)
    write_params(tmp_path / "params.yaml")
    assert train.main(train_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "error: target column 'income'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "models").exists()


def test_train_with_a_single_class_names_it(
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    capsys: pytest.CaptureFixture[str],
) -> None:
    train_df, test_df = _small_adult(adult_split)
    one_class = train_df[train_df["income"] == "<=50K"]
    write_splits(tmp_path, one_class, test_df)
    write_params(tmp_path / "params.yaml")
    assert train.main(train_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "error: target column 'income' has a single class '<=50K'" in err
    assert not (tmp_path / "models").exists()


def test_train_with_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_params(tmp_path / "params.yaml")
    assert train.main(train_args(tmp_path)) == 2
    assert "train.parquet: file not found" in capsys.readouterr().err


def test_evaluate_with_a_missing_slice_column_writes_nothing_then_warns_without_a_run(
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    tracking_uri: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    train_df, test_df = _small_adult(adult_split)
    write_splits(tmp_path, train_df, test_df)
    params = load_params(write_params(tmp_path / "params.yaml"))
    model = train.train(train_df, params).pipeline  # trained without MLflow: no run to find
    (tmp_path / "models").mkdir()
    train.save_model(model, tmp_path / MODEL_PATH)

    write_params(tmp_path / "params.yaml", evaluate={"slices": ["sex", "zodiac"]})
    assert evaluate.main(evaluate_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "error: slice column 'zodiac'" in err
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "data/predictions").exists()

    write_params(tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, tracking_uri)
    with caplog.at_level(logging.WARNING, logger="gitops_ml.stages.evaluate"):
        assert evaluate.main(evaluate_args(tmp_path)) == 0
    assert "no MLflow run" in caplog.text
    assert (tmp_path / METRICS_PATH).exists()


def trained_ridge(ws: Path) -> None:
    """A ridge regression on diabetes trained into `ws` (splits, params.yaml, the model)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    write_splits(ws, frame.iloc[:100], frame.iloc[100:150])
    params = load_params(
        write_params(
            ws / "params.yaml",
            data={"source": "csv", "path": "x.csv", "target": "target", "task": "regression"},
            train={"model": "ridge"},
            evaluate={"slices": []},
            gate=REGRESSION_GATE,
        )
    )
    (ws / "models").mkdir()
    train.save_model(train.train(frame.iloc[:100], params).pipeline, ws / MODEL_PATH)


def test_evaluate_with_a_model_for_the_other_task(
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    capsys: pytest.CaptureFixture[str],
) -> None:
    trained_ridge(tmp_path)
    write_params(tmp_path / "params.yaml", data={"target": "target"}, evaluate={"slices": []})
    assert evaluate.main(evaluate_args(tmp_path)) == 2
    assert "the model is a regressor but data.task is binary" in capsys.readouterr().err


def test_evaluate_refuses_a_model_that_is_not_the_one_dvc_lock_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The train stage's output is checked against dvc.lock before it is unpickled."""
    monkeypatch.chdir(tmp_path)
    trained_ridge(tmp_path)
    recorded = "0" * 32
    lock = {"schema": "2.0", "stages": {"train": {"outs": [{"path": MODEL_PATH, "md5": recorded}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    assert evaluate.main(evaluate_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert recorded in err and file_md5(tmp_path / MODEL_PATH) in err
    assert not (tmp_path / METRICS_PATH).exists()
