"""Users' own data on the first try, multiclass: Palmer penguins through `gitops-ml init` ->
`dvc repro` -> a param-change PR -> gate/report against the template's Adult `main` (a new
baseline) and against the team's own first `main` (the normal path); see own_data.py. The other
data sets are in test_own_data_more.py and test_own_data_large.py.

It also shows that evaluation and serving agree: the accuracy in
reports/metrics.json is the saved model's argmax accuracy, and `gitops-ml predict`, a real
`gitops-ml serve` (MLflow's scoring protocol) and the evaluate stage give the same labels for the same rows.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import joblib
import numpy as np
import pandas as pd
import pytest

from gitops_ml.lineage.dvclock import METRICS_PATH, MODEL_PATH, TEST_PATH
from gitops_ml.release import loadtest
from tests import datasets
from tests.integration.conftest import run_in, template_env
from tests.integration.own_data import OwnData, first_day

pytestmark = pytest.mark.slow

START_TIMEOUT = 120


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> OwnData:
    return first_day(tmp_path_factory.mktemp("penguins") / "repo", datasets.penguins())


def test_multiclass_metrics_are_the_saved_models_argmax(penguins: OwnData) -> None:
    repo = penguins.repo
    metrics = json.loads((repo / METRICS_PATH).read_text())
    model = joblib.load(repo / MODEL_PATH)
    test = pd.read_parquet(repo / TEST_PATH)
    X, y = test.drop(columns="species"), test["species"]
    argmax = model.classes_[np.argmax(model.predict_proba(X), axis=1)]
    assert metrics["accuracy"] == round(float(np.mean(argmax == y.to_numpy())), 6)
    assert {"balanced_accuracy", "f1_macro", "roc_auc_ovr", "log_loss"} <= set(metrics)
    classes = json.loads((repo / "reports/classes.json").read_text())
    assert set(classes) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(c["support"] for c in classes.values()) == len(test)
    confusion = json.loads((repo / "reports/plots/confusion.json").read_text())
    assert {r["actual"] for r in confusion} == {"Adelie", "Chinstrap", "Gentoo"}
    assert (repo / "reports/figures/confusion_matrix.png").stat().st_size > 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_predict_serve_and_evaluate_give_the_same_labels(penguins: OwnData) -> None:
    repo = penguins.repo
    evaluated = pd.read_parquet(repo / "data/predictions/test.parquet")
    rows = pd.read_parquet(repo / TEST_PATH).drop(columns="species")
    rows.to_parquet(repo.parent / "rows.parquet", index=False)
    run_in(repo, "gitops-ml", "promote")
    run_in(
        repo, "gitops-ml", "predict", "--input", str(repo.parent / "rows.parquet"),
        "--output", str(repo.parent / "scored.parquet"),
    )  # fmt: skip
    predicted = pd.read_parquet(repo.parent / "scored.parquet")
    assert predicted["prediction"].tolist() == evaluated["prediction"].tolist()
    assert np.allclose(predicted["score"], evaluated["score"])

    port = _free_port()
    log = (repo.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        ["gitops-ml", "serve", "--port", str(port)], cwd=repo, env=template_env(repo),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        start = time.perf_counter()
        while True:
            assert proc.poll() is None, (repo.parent / "serve.log").read_text()
            assert time.perf_counter() - start < START_TIMEOUT, "no /ping answer"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                time.sleep(0.25)
        status, raw = loadtest.post_json(
            f"{url}/invocations", loadtest.dataframe_split_payload(rows)
        )
        assert status == 200, raw
        assert json.loads(raw)["predictions"] == evaluated["prediction"].tolist()
    finally:
        loadtest.stop_server(proc)
        log.close()
