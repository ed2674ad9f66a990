"""A sensitive column kept out of the model but sliced, on real penguins data through the whole
template: `gitops-ml init`, the schema marks `sex` `sensitive: true` and `exclude: true`,
`dvc repro`, `gitops-ml predict`, `promote` (signature and model card), `gitops-ml serve` over
HTTP, and the PR report's feature flags (the CSV carries a genuine copy of a column: the
flipper length in centimetres beside millimetres).
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import replace
from pathlib import Path

import joblib
import pandas as pd
import pytest

from gitops_ml import cli
from gitops_ml.lineage.dvclock import SLICES_PATH
from gitops_ml.release import card as mc
from tests import datasets
from tests.integration.conftest import copy_template, in_repo, run_in, set_params
from tests.integration.test_card import section
from tests.integration.test_serve import _env, free_port, invoke, start_server, stop_with

pytestmark = pytest.mark.slow

SCHEMA = "data/schema/penguins.yaml"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("exclude")
    root = copy_template(tmp / "repo")
    data = datasets.penguins()
    frame = data.frame.assign(flipper_length_cm=data.frame["flipper_length_mm"] / 10)
    csv = datasets.write_csv(replace(data, frame=frame), tmp)
    run_in(root, "gitops-ml", "init", "--data", str(csv), "--target", data.target)
    text = (root / SCHEMA).read_text()
    assert text.count("\n  sex:\n") == 1, text
    text = text.replace("\n  sex:\n", "\n  sex:\n    sensitive: true\n    exclude: true\n")
    (root / SCHEMA).write_text(text)
    set_params(
        root, evaluate={"slices": ["sex", "island"], "importance_rows": 300,
                        "importance_repeats": 3}
    )  # fmt: skip
    run_in(root, "dvc", "repro")
    run_in(root, "git", "add", "-A")
    run_in(root, "git", "commit", "-q", "-m", "Penguins, sex sliced but not a model input (#9)")
    return root


def test_the_model_never_sees_the_excluded_column_but_evaluate_slices_it(repo: Path) -> None:
    model = joblib.load(repo / "models/model.joblib")
    inputs = list(model.feature_names_in_)
    assert "sex" not in inputs and {"island", "bill_length_mm", "flipper_length_cm"} <= set(inputs)
    test = pd.read_parquet(repo / "data/processed/test.parquet")
    assert "sex" in test.columns  # still in the data
    slices = json.loads((repo / SLICES_PATH).read_text())
    assert set(slices) == {"sex", "island"}
    assert {"female", "male"} <= set(slices["sex"])
    importance = json.loads((repo / mc.IMPORTANCE_PATH).read_text())
    assert sorted(r["feature"] for r in importance) == sorted(inputs)
    lock = (repo / "dvc.lock").read_text()
    assert f"--schema {SCHEMA}" in lock


def test_predict_scores_a_batch_that_carries_the_excluded_column(repo: Path) -> None:
    model = joblib.load(repo / "models/model.joblib")
    test = pd.read_parquet(repo / "data/processed/test.parquet").drop(columns=["species"])
    flipped = test.assign(sex=test["sex"].map({"male": "female", "female": "male"}))
    test.to_csv(repo / "batch.csv", index=False)
    flipped.to_csv(repo / "flipped.csv", index=False)
    model_arg = ["--model", str(repo / "models/model.joblib")]
    for name in ("batch", "flipped"):
        run_in(repo, "gitops-ml", "predict", *model_arg, "--input", f"{name}.csv",
               "--output", f"{name}.out.csv")  # fmt: skip
    out = pd.read_csv(repo / "batch.out.csv")
    assert list(out.columns) == [*test.columns, "prediction", "score"]  # `sex` kept
    assert out["prediction"].tolist() == model.predict(test).tolist()
    assert (
        pd.read_csv(repo / "flipped.out.csv")["prediction"].tolist() == out["prediction"].tolist()
    )


def test_promote_signature_card_and_serve(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow

    from gitops_ml import tracking

    in_repo(repo, monkeypatch)
    assert cli.main(["promote", "--json", str(tmp_path / "promotion.json")]) == 0
    promoted = json.loads((tmp_path / "promotion.json").read_text())
    card = (repo / mc.CARD_PATH).read_text()
    excluded = section(card, "Excluded columns")
    assert f"`exclude: true` in `{SCHEMA}`" in excluded
    assert "| `sex` | yes | yes |" in excluded  # sensitive, sliced
    assert "| `sex` | yes |" in section(card, "Sensitive columns")
    assert "`sex`" not in section(card, "Feature importance")

    tracking.configure()
    uri = f"models:/{promoted['model_name']}/{promoted['version']}"
    signature = mlflow.models.get_model_info(uri).signature
    names = [c.name for c in signature.inputs.inputs]
    model = joblib.load(repo / "models/model.joblib")
    assert names == list(model.feature_names_in_) and "sex" not in names
    # the input example holds the model's inputs only (MLflow would warn of ignored columns)
    example = mlflow.models.Model.load(uri).load_input_example(uri)
    assert list(example.columns) == names

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_tmp = tmp_path / "serve-tmp"
    serve_tmp.mkdir()
    env = _env(serve_tmp, MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}")
    cmd = [sys.executable, "-m", "gitops_ml.cli", "serve", "--model", uri, "--port", str(port),
           "--workers", "1"]  # fmt: skip
    proc, seconds = start_server(cmd, url, repo, env, tmp_path / "server.log")
    print(f"\nserve answered /ping after {seconds:.1f} s")
    try:
        test = pd.read_parquet(repo / "data/processed/test.parquet").drop(columns=["species"])
        rows = test.dropna().head(20)
        expected = model.predict(rows).tolist()
        for frame in (rows, rows.drop(columns="sex")):
            body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})
            status, answer = invoke(url, body.encode())
            assert status == 200, answer
            assert answer["predictions"] == expected
    finally:
        stop_with(proc, signal.SIGTERM, serve_tmp)


def test_the_report_flags_the_copied_column(repo: Path) -> None:
    report = run_in(repo, "gitops-ml", "report", "--base", "HEAD", "--output", "-").stdout
    flags = report[report.index("### Feature flags") : report.index("### Data validation")]
    assert "⚠️ **Near duplicates**" in flags
    assert "`flipper_length_mm` and `flipper_length_cm`: Spearman correlation +1.000" in flags
    assert "`sex`" not in flags  # no model input: neither importance nor duplicate
