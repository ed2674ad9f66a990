"""The tune stage on this machine: its params, the search, what train does with its output,
the Dask backend's failures without a cluster, and the PR report's section.

The same search on a real Dask cluster is in tests/integration/test_tune_dask.py.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from gitops_ml import tracking
from gitops_ml.pr.tuning import TUNED_PATH, read_tuned_file, render_tuning
from gitops_ml.stages import train, tune
from tests import datasets
from tests.tune_setup import run_tune, settings, tune_args, workspace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Small fits are faster on one OpenMP thread, and a busy machine cannot stall them."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def adult_sample(adult_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return adult_split[0].head(2000)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


# -- tuning off ---------------------------------------------------------------------------------


def test_off_passes_train_hyperparams_through_without_scikit_learn(tmp_path: Path) -> None:
    raw = settings(enabled=False, hyperparams={"max_iter": 50})
    ws = workspace(tmp_path, pd.DataFrame({"x": [1]}), raw)
    (ws / "train.parquet").unlink()  # off, the stage does not read the data
    code = (
        "import sys; from gitops_ml.stages import tune; "
        f"rc = tune.main({tune_args(ws)!r}); "
        "assert 'sklearn' not in sys.modules and 'distributed' not in sys.modules; "
        "raise SystemExit(rc)"
    )
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert json.loads((ws / "tuned.json").read_text()) == {
        "hyperparams": {"max_iter": 50},
        "model": "hist_gradient_boosting",
        "search": None,
        "task": "binary",
    }
    assert seconds < 5  # interpreter start-up and yaml; no scikit-learn, no pandas work


def test_the_shipped_output_is_the_shipped_params_passed_through(tmp_path: Path) -> None:
    raw = settings(enabled=False)
    raw["train"] = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    raw["tune"] = yaml.safe_load((ROOT / "params.yaml").read_text())["tune"]
    assert raw["tune"]["enabled"] is False  # the default pipeline stays as fast as before
    ws = workspace(tmp_path, pd.DataFrame({"x": [1]}), raw)
    assert run_tune(ws) == (ROOT / TUNED_PATH).read_bytes()


def test_train_fits_the_same_bytes_with_tuning_off(tmp_path: Path, adult_sample) -> None:
    ws = workspace(tmp_path, adult_sample, settings(enabled=False, hyperparams={"max_iter": 20}))
    run_tune(ws)
    params = tune.load_params(ws / "params.yaml")
    record = tune.read_tuned(ws / "tuned.json", params.train.model, params.data.task)
    plain = train.train(adult_sample, params).pipeline
    tuned = train.train(adult_sample, params, record["hyperparams"]).pipeline
    train.save_model(plain, ws / "plain.joblib")
    train.save_model(tuned, ws / "tuned.joblib")
    assert (ws / "plain.joblib").read_bytes() == (ws / "tuned.joblib").read_bytes()


# -- bad params ---------------------------------------------------------------------------------

BAD = [
    ({"enabled": "yes"}, r"'tune\.enabled' must be true or false"),
    ({"backend": "spark"}, r"'tune\.backend' must be one of local, dask"),
    ({"search": "bayes"}, r"'tune\.search' must be one of grid, random"),
    ({"n_iter": 0}, r"'tune\.n_iter' must be >= 1"),
    ({"folds": 1}, r"'tune\.folds' must be >= 2"),
    ({"folds": 2.5}, r"'tune\.folds' must be an integer"),
    ({"metric": "rmse"}, r"'tune\.metric' must be null or one of roc_auc.*\(a binary metric\)"),
    ({"metric": "f1"}, r"'tune\.metric' must be null or one of roc_auc, accuracy, log_loss;"),
    ({"n_jobs": 0}, r"'tune\.n_jobs' must be >= 1 or -1"),
    ({"seed": -1}, r"'tune\.seed' must be >= 0"),
    ({"connect_timeout": 0}, r"'tune\.connect_timeout' must be a number of seconds > 0"),
    ({"connect_timeout": "10s"}, r"'tune\.connect_timeout' must be a number"),
    ({"space": ["learning_rate"]}, r"'tune\.space' must be a mapping of model names"),
    ({"space": {"xgboost": {"eta": [0.1]}}}, r"'tune\.space\.xgboost' is not a model"),
    (
        {"space": {"hist_gradient_boosting": {"learning_rate": []}}},
        r"'tune\.space\.hist_gradient_boosting\.learning_rate' must be a non-empty list",
    ),
    (
        {"space": {"hist_gradient_boosting": {"learning_rate": [0.1, 0.1]}}},
        r"'tune\.space\.hist_gradient_boosting\.learning_rate' lists 0\.1 twice",
    ),
    (
        {"space": {"hist_gradient_boosting": {"learning_rate": [0.1, -1.0]}}},
        r"'tune\.space\.hist_gradient_boosting\.learning_rate' value -1\.0 is not valid:.*"
        r"learning_rate",
    ),
    (
        {"space": {"hist_gradient_boosting": {"depth": [3]}}},
        r"'tune\.space\.hist_gradient_boosting\.depth' value 3 is not valid: unknown "
        r"hyperparameter",
    ),
    ({"space": {"ridge": {"alpha": [1.0]}}}, r"'tune\.space\.hist_gradient_boosting' must list"),
    ({"colour": 1}, r"unknown key 'tune\.colour'"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[str(c) for c, _ in BAD])
def test_a_bad_tune_param_is_one_line_naming_the_key(
    change: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path, pd.DataFrame({"age": [30, 40], "income": ["a", "b"]}), settings())
    (ws / "tuned.json").write_text("last good\n")
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    raw["tune"].update(change)
    (ws / "params.yaml").write_text(yaml.safe_dump(raw))
    assert tune.main(tune_args(ws)) == 2
    line = one_error_line(capsys)
    assert re.search(message, line), line
    assert (ws / "tuned.json").read_text() == "last good\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.pop("tune"), r"section 'tune' is missing"),
        (lambda raw: raw["tune"].pop("folds"), r"missing key 'tune\.folds'"),
    ],
)
def test_a_missing_tune_section_or_key_is_named(
    edit, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = settings()
    edit(raw)
    ws = workspace(tmp_path, pd.DataFrame({"x": [1]}), raw)
    assert tune.main(tune_args(ws)) == 2
    assert re.search(message, one_error_line(capsys))


def test_folds_need_every_class_in_each(tmp_path: Path, capsys) -> None:
    frame = pd.DataFrame({"age": range(20), "income": ["a"] * 18 + ["b"] * 2})
    ws = workspace(tmp_path, frame, settings(folds=3))
    assert tune.main(tune_args(ws)) == 2
    assert re.search(
        r"tune\.folds is 3, but the rarest class .* has 2 rows", one_error_line(capsys)
    )


# -- the search, locally ------------------------------------------------------------------------


def test_grid_search_on_adult_is_deterministic_and_records_every_candidate(
    tmp_path: Path, adult_sample: pd.DataFrame
) -> None:
    ws = workspace(tmp_path, adult_sample, settings(hyperparams={"max_iter": 30}))
    first = run_tune(ws)
    assert run_tune(ws, "again.json") == first
    record = json.loads(first)
    search = record["search"]
    assert search["method"] == "grid" and search["metric"] == "roc_auc" and search["folds"] == 3
    grid = [
        {"learning_rate": lr, "max_leaf_nodes": leaves} for lr in (0.05, 0.2) for leaves in (7, 15)
    ]
    assert sorted(map(json.dumps, (c["params"] for c in search["candidates"]))) == sorted(
        map(json.dumps, grid)
    )
    best = max(search["candidates"], key=lambda c: c["mean"])
    assert search["best"] == best and best["rank"] == 1
    assert all(0.5 < c["mean"] <= 1 and 0 < c["std"] < 0.1 for c in search["candidates"])
    # train.hyperparams stay, the search's choice is laid over them
    assert record["hyperparams"] == {"max_iter": 30, **best["params"]}


def test_a_different_seed_shuffles_other_folds(tmp_path: Path, adult_sample) -> None:
    small = adult_sample.head(1000)
    raw = {seed: settings(seed=seed, hyperparams={"max_iter": 20}) for seed in (1, 2)}
    one = json.loads(run_tune(workspace(tmp_path / "a", small, raw[1])))
    two = json.loads(run_tune(workspace(tmp_path / "b", small, raw[2])))
    assert [c["mean"] for c in one["search"]["candidates"]] != [
        c["mean"] for c in two["search"]["candidates"]
    ]


def test_random_search_draws_n_iter_candidates_by_seed(tmp_path: Path) -> None:
    data = datasets.breast_cancer()
    raw = settings(data, model="logistic_regression", search="random", n_iter=3)
    raw["tune"]["space"] = {"logistic_regression": {"C": [0.01, 0.1, 1.0, 10.0, 100.0]}}
    raw["train"]["hyperparams"] = {"max_iter": 2000}
    ws = workspace(tmp_path, data.frame, raw)
    record = json.loads(run_tune(ws))
    assert record["search"]["method"] == "random"
    assert len(record["search"]["candidates"]) == 3
    assert run_tune(ws, "again.json") == (ws / "tuned.json").read_bytes()
    raw["tune"]["n_iter"] = 50  # more than the grid holds: the grid
    ws = workspace(tmp_path / "all", data.frame, raw)
    assert json.loads(run_tune(ws))["search"]["method"] == "grid"


@pytest.mark.parametrize(
    ("loader", "model", "metric"),
    [
        (datasets.penguins, "random_forest", "f1_macro"),
        (datasets.cars, "ridge", "rmse"),
    ],
)
def test_search_on_data_sets_we_did_not_make(tmp_path: Path, loader, model, metric) -> None:
    data = loader()
    record = json.loads(run_tune(workspace(tmp_path, data.frame, settings(data, model=model))))
    search = record["search"]
    assert search["metric"] == metric
    means = [c["mean"] for c in search["candidates"]]
    # rmse is reported in the target's units and lower wins; f1_macro higher wins
    pick = min if metric == "rmse" else max
    assert search["best"]["mean"] == pick(means) and all(m > 0 for m in means)
    if metric == "rmse":
        assert search["best"]["mean"] < data.frame[data.target].std()  # beats the mean


# -- train reads the output ---------------------------------------------------------------------


def test_train_fits_the_tuned_values_and_logs_the_cv_score(
    tmp_path: Path, adult_sample: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = settings(hyperparams={"max_iter": 25})
    raw["mlflow"]["experiment"] = "test-tune"
    ws = workspace(tmp_path, adult_sample, raw)
    record = json.loads(run_tune(ws))
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["--train", str(ws / "train.parquet"), "--tuned", str(ws / "tuned.json")]
    args += ["--model", str(ws / "model.joblib"), "--params", str(ws / "params.yaml")]
    assert train.main(args) == 0
    est = joblib.load(ws / "model.joblib").named_steps["model"]
    best = record["search"]["best"]
    assert est.max_iter == 25
    assert {k: est.get_params()[k] for k in best["params"]} == best["params"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = mlflow.search_runs(experiment_names=["test-tune"], output_format="list")
    assert run.data.metrics["cv_roc_auc"] == best["mean"]
    assert run.data.metrics["cv_roc_auc_std"] == best["std"]
    for name, value in best["params"].items():
        assert run.data.params[f"tuned.{name}"] == json.dumps(value)
    assert run.data.params["tune.metric"] == "roc_auc"


def test_train_refuses_hyperparams_tuned_for_another_model(tmp_path: Path, capsys) -> None:
    ws = workspace(tmp_path, pd.DataFrame({"x": [1]}), settings(enabled=False))
    run_tune(ws)
    raw = yaml.safe_load((ws / "params.yaml").read_text())
    raw["train"]["model"] = "random_forest"
    (ws / "params.yaml").write_text(yaml.safe_dump(raw))
    args = ["--train", str(ws / "train.parquet"), "--tuned", str(ws / "tuned.json")]
    args += ["--model", str(ws / "model.joblib"), "--params", str(ws / "params.yaml")]
    assert train.main(args) == 2
    line = one_error_line(capsys)
    assert "tuned for hist_gradient_boosting" in line and "run the tune stage again" in line
    assert not (ws / "model.joblib").exists()


# -- the Dask backend's failures, without a cluster ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("address", [None, "unreachable"])
def test_dask_without_a_scheduler_fails_in_seconds_and_writes_nothing(
    address: str | None,
    tmp_path: Path,
    adult_sample: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = workspace(tmp_path, adult_sample, settings(backend="dask", connect_timeout=2))
    (ws / "tuned.json").write_text("last good\n")
    if address is None:
        monkeypatch.delenv(tune.SCHEDULER_ENV, raising=False)
    else:
        monkeypatch.setenv(tune.SCHEDULER_ENV, f"tcp://127.0.0.1:{free_port()}")
    start = time.perf_counter()
    assert tune.main(tune_args(ws)) == 2
    assert time.perf_counter() - start < 15
    line = one_error_line(capsys)
    expected = "is not set" if address is None else "cannot reach the Dask scheduler at tcp://"
    assert expected in line and tune.SCHEDULER_ENV in line, line
    assert (ws / "tuned.json").read_text() == "last good\n"
    assert [p.name for p in ws.iterdir() if p.name.startswith(".")] == []  # no temp file left


# -- the PR report's section --------------------------------------------------------------------


def test_the_report_shows_the_cv_score_its_spread_and_the_chosen_values(
    tmp_path: Path, adult_sample
) -> None:
    ws = workspace(tmp_path, adult_sample, settings(hyperparams={"max_iter": 30}))
    run_tune(ws)
    head = read_tuned_file(ws / "tuned.json")
    best = head["search"]["best"]
    text = "\n".join(render_tuning(head, {"search": None}, base_ref="main"))
    assert f"**Cross-validated `roc_auc`: {best['mean']:.4f} ± {best['std']:.4f}**" in text
    assert "over 3 folds; best of 4 candidates, grid search, seed 42" in text
    assert "`main` was not tuned." in text
    assert "`max_iter=30`" in text and f"`learning_rate={best['params']['learning_rate']}`" in text
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 4 and rows[0].startswith("| 1 |")
    # the base's score when it searched on the same metric
    assert f"On `main`: {best['mean']:.4f}" in "\n".join(render_tuning(head, head, base_ref="main"))


def test_the_report_says_when_tuning_is_off_and_is_silent_without_the_stage() -> None:
    off = {"model": "ridge", "task": "regression", "hyperparams": {"alpha": 2}, "search": None}
    text = "\n".join(render_tuning(off))
    assert "Tuning is off" in text and "`alpha=2`" in text and "±" not in text
    assert render_tuning(None) == []
    assert read_tuned_file(Path("/nonexistent/tuned.json")) is None


def test_the_output_path_is_the_tune_stage_output_and_a_train_dependency() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in stages["tune"]["outs"]]
    assert outs == [TUNED_PATH]
    assert (
        TUNED_PATH in stages["train"]["deps"] and f"--tuned {TUNED_PATH}" in stages["train"]["cmd"]
    )
    assert list(stages).index("tune") < list(stages).index("train")
