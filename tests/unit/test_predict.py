"""`gitops-ml predict` against a real MLflow registry: a small Adult model registered @champion.

One model is fitted, logged and registered once per module in a throw-away SQLite store; each
test scores a batch through the CLI and compares with the joblib file of the same model.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from gitops_ml import batches, tracking
from gitops_ml.cli import main as cli_main
from gitops_ml.config import load_params
from gitops_ml.errors import DataError, GitopsMLError
from gitops_ml.files import file_md5
from gitops_ml.lineage import artifacts
from gitops_ml.lineage.dvclock import MODEL_PATH
from gitops_ml.release import loadtest, promote, serve, server
from gitops_ml.stages import train
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "test-champion"
EXPERIMENT = "test-predict"
TRAIN_ROWS = 3000
TARGET = "income"
POSITIVE = ">50K"
LOG_NAME = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{8}\.parquet$")


@dataclass(frozen=True)
class Champion:
    """A workspace whose registry holds one model version aliased @champion."""

    ws: Path
    model_file: Path
    md5: str
    version: str

    @property
    def uri(self) -> str:
        return artifacts.champion_uri(MODEL_NAME)


def build_champion(
    ws: Path, train_df: pd.DataFrame, test_df: pd.DataFrame | None = None
) -> Champion:
    """Copy params.yaml, dvc.yaml and the schema into `ws`, fit a small model on `train_df`,
    log it with `tracking.log_training_run` and register it as `MODEL_NAME@champion`; with
    `test_df` as the test split, the registered model has a signature (as after `dvc repro`).

    The caller points MLFLOW_TRACKING_URI at a store of its own and runs this inside `ws`.
    """
    raw = template_settings()
    raw["mlflow"].update(model_name=MODEL_NAME, experiment=EXPERIMENT)
    (ws / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    shutil.copy(ROOT / "dvc.yaml", ws / "dvc.yaml")
    (ws / "data/schema").mkdir(parents=True)
    shutil.copy(ROOT / "data/schema/adult.yaml", ws / "data/schema/adult.yaml")
    params = load_params(ws / "params.yaml")

    with threadpool_limits(limits=1, user_api="openmp"):
        result = train.train(train_df, params)
    model_file = ws / MODEL_PATH
    model_file.parent.mkdir()
    train.save_model(result.pipeline, model_file)
    md5 = file_md5(model_file)
    lock = {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "python -m gitops_ml.stages.train",
                "outs": [{"path": MODEL_PATH, "hash": "md5", "md5": md5}],
            }
        },
    }
    (ws / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
    if test_df is not None:
        (ws / "data/processed").mkdir(parents=True, exist_ok=True)
        test_df.to_parquet(ws / "data/processed/test.parquet", index=False)
    promoted = promote.promote(ws, params_path=ws / "params.yaml", lock_path=ws / "dvc.lock")
    version = promoted
    return Champion(ws=ws, model_file=model_file, md5=md5, version=str(version.version))


@pytest.fixture(scope="module")
def champion(
    adult_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Champion]:
    ws = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ws)
        mp.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{ws / 'mlflow.db'}")
        yield build_champion(ws, adult_split[0].head(TRAIN_ROWS), adult_split[1].head(100))


@pytest.fixture(scope="module")
def batch(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    """200 test rows, target included. Do not mutate."""
    return adult_split[1].head(200).copy()


def expected(champion: Champion, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The joblib model's own labels and probability of the positive class."""
    model = joblib.load(champion.model_file)
    X = frame.drop(columns=[TARGET], errors="ignore")
    proba = model.predict_proba(X)
    return model.predict(X), proba[:, list(model.classes_).index(POSITIVE)]


def predict(*args: str | Path) -> int:
    return cli_main(["predict", *map(str, args)])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    return errors[0]


# --------------------------------------------------------------------------------------------
# scoring


def test_champion_csv_scores_equal_the_joblib_model(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    batch.to_csv(tmp_path / "in.csv", index=False)
    assert predict("--input", tmp_path / "in.csv", "--output", tmp_path / "out.csv") == 0
    out = pd.read_csv(tmp_path / "out.csv")
    labels, score = expected(champion, batch)
    assert list(out.columns) == [*batch.columns, "prediction", "score"]
    assert len(out) == len(batch)
    assert out["prediction"].tolist() == labels.tolist()
    assert np.array_equal(out["score"].to_numpy(), score)
    assert out[TARGET].tolist() == batch[TARGET].tolist()  # kept, not used
    assert out["age"].tolist() == batch["age"].tolist()


def test_parquet_in_and_out_and_a_local_joblib_model_agree(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    features = batch.drop(columns=[TARGET])  # the target may be absent
    features.to_parquet(tmp_path / "in.parquet", index=False)
    assert predict("--input", tmp_path / "in.parquet", "--output", tmp_path / "a.parquet") == 0
    args = ["--model", champion.model_file, "--output", tmp_path / "b.parquet"]
    assert predict("--input", tmp_path / "in.parquet", *args) == 0
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    labels, score = expected(champion, features)
    assert list(a.columns) == [*features.columns, "prediction", "score"]
    assert a["prediction"].tolist() == labels.tolist()
    assert np.array_equal(a["score"].to_numpy(), score)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a.drop(columns=["prediction", "score"]), features)


def test_prediction_cuts_the_score_at_the_evaluate_threshold(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    raw = yaml.safe_load((champion.ws / "params.yaml").read_text(encoding="utf-8"))
    raw["evaluate"]["threshold"] = 0.2
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    batch.to_parquet(tmp_path / "in.parquet", index=False)
    args = ["--params", params, "--schema", champion.ws / "data/schema/adult.yaml"]
    assert (
        predict("--input", tmp_path / "in.parquet", "--output", tmp_path / "o.parquet", *args) == 0
    )
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert ((out["score"] >= 0.2) == (out["prediction"] == POSITIVE)).all()
    assert (out["prediction"] == POSITIVE).sum() > (expected(champion, batch)[0] == POSITIVE).sum()


# --------------------------------------------------------------------------------------------
# the data contract


def test_missing_column_is_refused_without_output(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch.drop(columns=["age", "sex"]).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.csv"
    log_dir = tmp_path / "log"
    assert predict("--input", tmp_path / "in.csv", "--output", out, "--log-dir", log_dir) == 2
    line = one_error_line(capsys)
    assert "column(s) age, sex break the data contract" in line
    assert "'age': missing" in line
    assert not out.exists() and not log_dir.exists()


def test_text_in_a_numeric_column_is_refused(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = batch.astype({"hours_per_week": "str"})
    bad.loc[3, "hours_per_week"] = "forty"
    bad.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "out.parquet"
    assert predict("--input", tmp_path / "in.csv", "--output", out) == 2
    line = one_error_line(capsys)
    assert "column(s) hours_per_week break" in line
    assert "expected int, got str" in line and "'forty'" in line
    assert not out.exists()


def test_out_of_range_value_is_refused(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = batch.copy()
    bad.loc[0, "age"] = 150
    bad.to_parquet(tmp_path / "in.parquet", index=False)
    assert predict("--input", tmp_path / "in.parquet", "--output", tmp_path / "o.csv") == 2
    line = one_error_line(capsys)
    assert "column(s) age break" in line and "values above 90" in line
    assert not (tmp_path / "o.csv").exists()


def test_unknown_categories_follow_the_schema_rate(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in the validate stage: within max_unknown_rate (workclass: 1%) a warning, above it
    an error."""
    few = batch.copy()
    few.loc[0, "workclass"] = "Space-force"  # 1 of ~190 known values
    few.to_parquet(tmp_path / "few.parquet", index=False)
    assert predict("--input", tmp_path / "few.parquet", "--output", tmp_path / "few.csv") == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "column 'workclass', rule max_unknown_rate" in err
    assert "'Space-force'" in err
    assert (tmp_path / "few.csv").exists()

    many = few.head(20)  # 1 of 20: 5%
    many.to_parquet(tmp_path / "many.parquet", index=False)
    assert predict("--input", tmp_path / "many.parquet", "--output", tmp_path / "many.csv") == 2
    assert "column(s) workclass break" in one_error_line(capsys)
    assert not (tmp_path / "many.csv").exists()


def test_extra_columns_are_ignored_with_a_note(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = batch.assign(customer_id=[f"c{i}" for i in range(len(batch))])
    extra.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "out.parquet"
    assert predict("--input", tmp_path / "in.parquet", "--output", out) == 0
    err = capsys.readouterr().err
    assert "ignoring 1 column(s) not in the schema: customer_id" in err
    assert "error" not in err
    scored = pd.read_parquet(out)
    assert scored["customer_id"].tolist() == extra["customer_id"].tolist()
    assert np.array_equal(scored["score"].to_numpy(), expected(champion, batch)[1])


def test_a_column_with_no_values_is_scored_as_missing(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    """A small CSV batch can lack every value of a numeric column; the Pipeline imputes it."""
    rows = batch.head(3).astype({"capital_gain": "float64"})
    rows["capital_gain"] = np.nan
    rows.to_csv(tmp_path / "in.csv", index=False)
    assert predict("--input", tmp_path / "in.csv", "--output", tmp_path / "out.parquet") == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["capital_gain"].isna().all()
    assert np.array_equal(out["score"].to_numpy(), expected(champion, rows)[1])


def test_bad_model_and_output_format_fail_in_one_line(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch.to_parquet(tmp_path / "in.parquet", index=False)
    args = ["--input", tmp_path / "in.parquet", "--output", tmp_path / "o.csv"]
    assert predict(*args, "--model", "models:/no-such-model@champion") == 2
    assert "no model is registered as models:/no-such-model@champion" in one_error_line(capsys)
    assert predict(*args, "--model", tmp_path / "missing.joblib") == 2
    assert "missing.joblib: model file not found" in one_error_line(capsys)
    assert not (tmp_path / "o.csv").exists()
    assert predict("--input", tmp_path / "in.parquet", "--output", tmp_path / "o.xlsx") == 2
    assert "unknown output format" in one_error_line(capsys)


# --------------------------------------------------------------------------------------------
# the prediction log


def test_each_call_appends_one_log_file(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    first, second = batch.head(30), batch.iloc[30:80].assign(customer_id="x")
    first.to_parquet(tmp_path / "a.parquet", index=False)
    second.to_csv(tmp_path / "b.csv", index=False)
    assert (
        predict(
            "--input", tmp_path / "a.parquet", "--output", tmp_path / "a.csv", "--log-dir", log_dir
        )
        == 0
    )
    assert len(list(log_dir.iterdir())) == 1
    assert (
        predict(
            "--input", tmp_path / "b.csv", "--output", tmp_path / "b.out.csv", "--log-dir", log_dir
        )
        == 0
    )
    files = sorted(p.name for p in log_dir.iterdir())
    assert len(files) == 2 and all(LOG_NAME.match(name) for name in files), files

    log = batches.read_prediction_log(log_dir)
    features = [c for c in batch.columns if c != TARGET]
    assert list(log.columns) == [
        *features,
        "prediction",
        "score",
        "scored_at",
        "model_uri",
        "model_version",
        "model_md5",
    ]
    assert len(log) == 80
    assert set(log["model_uri"]) == {champion.uri}
    assert set(log["model_version"]) == {champion.version}
    assert set(log["model_md5"]) == {champion.md5}
    assert str(log["scored_at"].dt.tz) == "UTC"
    assert log["scored_at"].iloc[0] <= log["scored_at"].iloc[-1]
    labels, score = expected(champion, batch.head(80))
    assert log["prediction"].tolist() == labels.tolist()
    assert np.array_equal(log["score"].to_numpy(), score)
    pd.testing.assert_frame_equal(log[features], batch.head(80)[features], check_dtype=False)


def test_bare_log_dir_means_monitoring_predictions(
    champion: Champion,
    batch: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    batch.head(5).to_parquet("in.parquet", index=False)
    args = ["--params", champion.ws / "params.yaml", "--model", champion.model_file]
    assert predict("--input", "in.parquet", "--output", "out.parquet", *args, "--log-dir") == 0
    (logged,) = (tmp_path / batches.DEFAULT_LOG_DIR).iterdir()
    frame = batches.read_prediction_log(batches.DEFAULT_LOG_DIR)
    assert len(frame) == 5 and frame["model_version"].isna().all()
    assert set(frame["model_md5"]) == {champion.md5}
    assert logged.suffix == ".parquet"


def test_read_prediction_log_needs_logged_batches(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no prediction log directory"):
        batches.read_prediction_log(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no logged predictions"):
        batches.read_prediction_log(tmp_path / "empty")


# --------------------------------------------------------------------------------------------
# serve and the load client: what is refused before any process or request


def test_serve_refuses_remote_hosts_joblib_files_and_unknown_aliases(
    champion: Champion, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["serve", "--host", "0.0.0.0"]) == 2
    assert "pass --allow-remote" in one_error_line(capsys)
    assert cli_main(["serve", "--model", str(champion.model_file)]) == 2
    assert "not a joblib file" in one_error_line(capsys)
    assert cli_main(["serve", "--model", "models:/no-such-model@champion"]) == 2
    assert "no model is registered as models:/no-such-model@champion" in one_error_line(capsys)


def _params_naming(model_name: str, ws: Path, dest: Path) -> Path:
    raw = yaml.safe_load((ws / "params.yaml").read_text(encoding="utf-8"))
    raw["mlflow"]["model_name"] = model_name
    dest.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return dest


def test_serve_and_predict_before_any_promotion_say_what_to_run(
    champion: Champion,
    batch: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No @champion yet (no registered model, or one without the alias): one line naming the
    URI and the store, `gitops-ml promote` as the fix, exit 2 and nothing written."""
    store = f"sqlite:///{champion.ws / 'mlflow.db'}"
    params = _params_naming("not-promoted", champion.ws, tmp_path / "params.yaml")
    schema = str(champion.ws / "data/schema/adult.yaml")
    assert cli_main(["serve", "--params", str(params), "--schema", schema]) == 2
    assert one_error_line(capsys) == (
        f"error: no model is registered as models:/not-promoted@champion in {store}: "
        "run `gitops-ml promote` first (or pass --model)"
    )
    batch.head(5).to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "out.csv"
    args = ["--input", tmp_path / "in.parquet", "--output", out, "--params", params]
    assert predict(*args, "--schema", champion.ws / "data/schema/adult.yaml") == 2
    assert "models:/not-promoted@champion in " in one_error_line(capsys)
    assert not out.exists()

    mlflow.MlflowClient().create_registered_model("registered-never-promoted")
    assert cli_main(["serve", "--model", "models:/registered-never-promoted@champion"]) == 2
    assert "run `gitops-ml promote` first" in one_error_line(capsys)
    assert cli_main(["serve", "--model", f"models:/{MODEL_NAME}@staging"]) == 2
    assert "check the model name and alias" in one_error_line(capsys)


def test_serve_without_a_tracking_store_says_to_repro_and_promote(
    champion: Champion,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{tmp_path / 'absent.db'}")
    assert cli_main(["serve"]) == 2
    line = one_error_line(capsys)
    assert f"models:/{MODEL_NAME}@champion in sqlite:///{tmp_path / 'absent.db'}" in line
    assert line.endswith(
        "does not exist yet): run `make repro`, then `gitops-ml promote` (or pass --model)"
    )
    assert not (tmp_path / "absent.db").exists()  # MLflow would have created an empty store


def test_only_not_found_errors_become_the_promote_hint() -> None:
    """The SQL store says INVALID_PARAMETER_VALUE for a missing alias, a server may say
    RESOURCE_DOES_NOT_EXIST; other failures keep their own message."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    assert artifacts._is_not_found(
        MlflowException("Registered model alias champion not found.", INVALID_PARAMETER_VALUE)
    )
    assert artifacts._is_not_found(
        MlflowException("Registered Model with name=m not found", RESOURCE_DOES_NOT_EXIST)
    )
    assert not artifacts._is_not_found(
        MlflowException("alias name is invalid", INVALID_PARAMETER_VALUE)
    )
    assert not artifacts._is_not_found(MlflowException("database is locked"))


def test_serve_refuses_a_pickled_mlflow_model_directory(
    champion: Champion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local MLflow model saved as a pickle is never loaded, and nothing starts."""
    (tmp_path / "MLmodel").write_text("flavors: {}\n", encoding="utf-8")
    (tmp_path / "model.pkl").write_bytes(b"not loaded")
    assert cli_main(["serve", "--model", str(tmp_path), "--port", "9"]) == 2
    assert "never a pickle" in one_error_line(capsys)


def test_loopback_hosts_and_pinned_uris() -> None:
    assert artifacts.pinned_uri("models:/m@champion", "3") == "models:/m/3"
    assert artifacts.pinned_uri("runs:/abc/model", None) == "runs:/abc/model"
    assert serve.is_loopback("127.0.0.2") and serve.is_loopback("::1")
    assert serve.is_loopback("localhost") and serve.is_loopback("[::1]")
    assert not serve.is_loopback("0.0.0.0") and not serve.is_loopback("example.com")


def test_workers_and_their_threads_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_cpus", lambda: 8)
    assert server.default_workers() == server.MAX_DEFAULT_WORKERS
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    limits = server.thread_limits(4)
    assert limits["OMP_NUM_THREADS"] == "2" and "OPENBLAS_NUM_THREADS" not in limits
    monkeypatch.setattr(server, "_cpus", lambda: 1)
    assert server.default_workers() == 1 and server.thread_limits(2)["OMP_NUM_THREADS"] == "1"


def test_serve_copies_only_the_checked_model_and_its_input_columns(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    """What the server loads: a fresh skops archive of the checked model and an MLmodel file
    with the signature's inputs only; the download is gone."""
    directory, version = serve._verified_copy(champion.uri, champion.ws / "dvc.lock", tmp_path)
    assert version == champion.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert sorted(p.name for p in directory.iterdir()) == ["MLmodel", "model.skops"]
    mlmodel = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8"))
    assert list(mlmodel) == ["signature"] and list(mlmodel["signature"]) == ["inputs"]
    columns = server.read_signature(directory)
    features = batch.drop(columns=[TARGET])
    assert columns is not None and [c.name for c in columns] == list(features.columns)
    assert {c.name: c.type for c in columns}["age"] == "long"
    assert {c.name: c.type for c in columns}["workclass"] == "string"
    loaded = server.load_model_dir(directory)
    assert (loaded.predict(features) == joblib.load(champion.model_file).predict(features)).all()


def _scorer(model: object, rows: pd.DataFrame, directory: Path) -> server.Scorer:
    """A Scorer with the signature promote would log for `model` (read back from an MLmodel)."""
    signature = tracking.model_signature(model, rows.head(5))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "MLmodel").write_text(
        yaml.safe_dump({"signature": signature.to_dict()}), encoding="utf-8"
    )
    return server.Scorer(model, server.read_signature(directory))


def _answer(scorer: server.Scorer, payload: object, content_type: str = "application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    answer = scorer.invocations(body, content_type)
    return answer.status, json.loads(answer.body) if answer.status != 415 else answer.body


def test_scorer_speaks_mlflow_payloads_and_errors(
    champion: Champion, batch: pd.DataFrame, tmp_path: Path
) -> None:
    """Every payload MLflow's server takes gives the model's own labels; malformed ones get
    MLflow's 400 body, other content types 415. (tests/integration/test_serve.py does the same
    over HTTP.)"""
    model = joblib.load(champion.model_file)
    rows = batch.drop(columns=[TARGET]).head(25)
    scorer = _scorer(model, rows, tmp_path)
    want = model.predict(rows).tolist()
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    columns = {c: [r[c] for r in records] for c in rows.columns}
    payloads = {
        "split": {"dataframe_split": split},
        "split, reordered, extra column, params": {
            "dataframe_split": {
                "columns": [*split["columns"][::-1], "extra"],
                "data": [[*row[::-1], 1] for row in split["data"]],
            },
            "params": {"ignored": True},
        },
        "records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs (columns)": {"inputs": columns},
        "inputs (records)": {"inputs": records},
    }
    for name, payload in payloads.items():
        assert _answer(scorer, payload) == (200, {"predictions": want}), name
    assert _answer(scorer, rows.to_csv(index=False).encode(), "text/csv") == (
        200,
        {"predictions": want},
    )
    buffer = io.BytesIO()
    rows.to_parquet(buffer, index=False)
    assert _answer(scorer, buffer.getvalue(), "application/vnd.apache.parquet")[1] == {
        "predictions": want
    }
    one = {k: v[0] for k, v in columns.items()}
    assert _answer(scorer, {"inputs": one}) == (200, {"predictions": want[:1]})
    # MLflow's casts: whole floats and numeric text in an integer column, null text
    cast = dict(one, age=float(one["age"]), fnlwgt=str(one["fnlwgt"]), workclass=None)
    assert _answer(scorer, {"dataframe_records": [cast]})[0] == 200

    no_age = {"dataframe_split": {**split, "columns": ["x", *split["columns"][1:]]}}
    bad = {
        "missing column": (no_age, "INVALID_PARAMETER_VALUE", "['age']"),
        "null integer": ({"dataframe_records": [dict(one, age=None)]}, "BAD_REQUEST", "age"),
        "text integer": ({"dataframe_records": [dict(one, age="old")]}, "BAD_REQUEST", "age"),
        "two formats": ({"inputs": columns, "instances": records}, "BAD_REQUEST", "exactly one"),
        "no format": ({"data": split["data"]}, "BAD_REQUEST", "exactly one"),
        "a list": ([1, 2], "BAD_REQUEST", "Received a list"),
        "short row": (
            {"dataframe_split": {**split, "data": [split["data"][0][:-1]]}},
            "BAD_REQUEST",
            "14 columns passed, passed data had 13",
        ),
        "no rows": ({"dataframe_split": {**split, "data": []}}, "BAD_REQUEST", "evaluating"),
        "not JSON": (b"age=39,workclass=Private", "BAD_REQUEST", "valid JSON"),
        "ragged columns": ({"inputs": dict(columns, age=[1])}, "BAD_REQUEST", "length"),
    }
    for name, (payload, code, text) in bad.items():
        status, body = _answer(scorer, payload)
        assert status == 400 and body["error_code"] == code and text in body["message"], name
        assert set(body) == {"error_code", "message"}, name
    for content_type in ("text/plain", "application/json; charset=latin-1", None):
        answer = scorer.invocations(json.dumps(payloads["split"]).encode(), content_type)
        assert answer.status == 415 and answer.content_type == "text/plain", content_type


@pytest.mark.parametrize(
    ("model", "task", "target"),
    [
        ("logistic_regression", "classification", TARGET),
        ("ridge", "regression", "hours_per_week"),
    ],
)
def test_batched_requests_get_their_own_rows_predictions(
    model: str, task: str, target: str, batch: pd.DataFrame, tmp_path: Path
) -> None:
    """Concurrent requests are scored in one predict call: each answer is its rows' own
    predictions (one-hot encoding and a linear model here; the champion is HGB), and a request
    that fails takes its error alone."""
    from gitops_ml import models

    frame = batch.drop(columns=[c for c in (TARGET, target) if c != target])
    X, y = frame.drop(columns=[target]), frame[target]
    numeric, categorical = models.feature_columns(frame, target)
    pipeline = models.build_pipeline(model, task, {}, 42, numeric, categorical)
    with threadpool_limits(limits=1):
        pipeline.fit(X, y)
    scorer = _scorer(pipeline, X, tmp_path)
    want = pipeline.predict(X)
    requests = [
        scorer.parse(loadtest.dataframe_split_payload(X.iloc[i : i + n]), "application/json")
        for i, n in ((0, 1), (1, 3), (4, 1), (5, 50), (55, 145))
    ]
    empty = scorer.parse(
        loadtest.dataframe_split_payload(X.iloc[:0]), "application/json"
    )  # MLflow answers no rows with a 400
    assert all(isinstance(r, server.Rows) for r in [*requests, empty])
    answers = scorer.score([*requests[:2], empty, *requests[2:]])
    assert [a.status for a in answers] == [200, 200, 400, 200, 200, 200]
    got = [p for a in answers if a.status == 200 for p in json.loads(a.body)["predictions"]]
    alone = [p for r in requests for p in json.loads(scorer.score([r])[0].body)["predictions"]]
    if task == "classification":
        assert got == alone == want.tolist()
    else:  # a linear model's float may differ in its last bit with the rows beside it
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
        np.testing.assert_allclose(alone, want, rtol=1e-12, atol=0)


def test_measure_serving_only_targets_loopback(batch: pd.DataFrame) -> None:
    with pytest.raises(GitopsMLError, match="only a server on loopback"):
        loadtest.measure_serving("http://example.invalid:5001", batch, 1, 1)
    with pytest.raises(GitopsMLError, match="n_requests"):
        loadtest.measure_serving("http://127.0.0.1:9", batch, loadtest.MAX_REQUESTS + 1, 1)
    assert loadtest.invocations_url("http://localhost:5001") == "http://localhost:5001/invocations"


def test_the_served_contract_is_the_schemas_and_survives_the_trip_to_a_spawned_worker(
    tmp_path: Path,
) -> None:
    """The contract a worker receives (as JSON, where workers are spawned) is the one `serve`
    built from the schema; a chunked body past the limit is read to its end but not kept."""
    import asyncio

    from gitops_ml.schema import load_schema

    schema = load_schema(ROOT / "data/schema/adult.yaml")
    contract = server.Contract.from_schema(schema, 100, 1000)
    assert server.Contract.from_json(contract.to_json()) == contract
    age = {r.name: r for r in contract.rules}["age"]
    assert (age.low, age.high, age.categories) == (17, 90, None)
    workclass = {r.name: r for r in contract.rules}["workclass"]
    assert "Private" in workclass.categories and workclass.max_unknown_rate == 0.01
    with pytest.raises(server.RequestError, match="Column 'age' breaks the data contract"):
        contract.check(["age"], lambda name: [30, 91], 2)
    contract.check(["age", "workclass"], {"age": [30], "workclass": [None]}.__getitem__, 1)

    def chunks(*parts: bytes):
        messages = iter([{"body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)])

        async def receive() -> dict:
            return next(messages)

        return receive

    read = asyncio.run(server._read_body(chunks(b"a" * 600, b"b" * 600, b"c"), 1000))
    assert read == (b"", 1201)  # all of it read, none of it kept
    assert asyncio.run(server._read_body(chunks(b"ab", b"c"), 1000)) == (b"abc", 3)
    assert asyncio.run(server._read_body(chunks(b"ab", b"c"), None)) == (b"abc", 3)
