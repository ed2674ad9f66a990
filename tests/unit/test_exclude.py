"""Columns the schema keeps out of the model (`exclude: true`), on real penguins data: train and
tune leave them out, evaluate still slices them, the served model and its signature ignore them,
and a bad exclusion is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from gitops_ml import tracking
from gitops_ml.config import parse_params
from gitops_ml.errors import ConfigError
from gitops_ml.models import check_excluded, model_features
from gitops_ml.release import server
from gitops_ml.schema import infer_schema, load_schema, parse_schema
from gitops_ml.stages import evaluate, train, tune
from tests.conftest import ROOT, template_settings
from tests.datasets import penguins
from tests.tune_setup import MULTICLASS_GATE

TARGET = "species"


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = penguins().frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    return frame.iloc[:260].reset_index(drop=True), frame.iloc[260:].reset_index(drop=True)


def penguin_settings() -> dict:
    raw = template_settings()
    raw["data"].update(source="csv", path="data/source/penguins.csv", target=TARGET,
                       task="multiclass", positive_label=None)  # fmt: skip
    raw["evaluate"].update(slices=["sex", "island"], importance_rows=200, importance_repeats=3)
    raw["gate"].update(MULTICLASS_GATE)
    raw["mlflow"]["experiment"] = "exclude"
    return raw


def penguin_params():
    return parse_params(penguin_settings())


def schema_file(tmp_path: Path, frame: pd.DataFrame, **flags: dict) -> Path:
    """The schema `infer_schema` drafts for `frame`, with `flags` per column (sex={...})."""
    raw = infer_schema(frame, target=TARGET, task="multiclass")
    for column, values in flags.items():
        raw["columns"][column].update(values)
    path = tmp_path / "penguins.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


# -- the schema --------------------------------------------------------------------------------


def test_the_schema_knows_excluded_columns(tmp_path: Path, data) -> None:
    path = schema_file(tmp_path, data[0], sex={"sensitive": True, "exclude": True})
    schema = load_schema(path)
    assert schema.excluded == ("sex",)
    assert [c.name for c in schema.columns if c.sensitive] == ["sex"]
    raw = yaml.safe_load(path.read_text())
    raw["columns"]["island"]["exclude"] = "yes"
    with pytest.raises(ConfigError, match=r"'columns.island.exclude' must be true or false"):
        parse_schema(raw, "s.yaml")


def test_the_adult_contract_excludes_nothing_by_default() -> None:
    schema = load_schema(ROOT / "data/schema/adult.yaml")
    assert schema.excluded == ()
    assert sorted(c.name for c in schema.columns if c.sensitive) == ["race", "sex"]


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        (("species",), "column 'species' is excluded (exclude: true) but it is the target"),
        (("wingspan",), "column 'wingspan' is excluded (exclude: true) but is not in the training"),
        (
            ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
             "sex", "year"),
            "every feature is excluded",
        ),
    ],
)  # fmt: skip
def test_a_bad_exclusion_is_a_config_error(data, exclude, message) -> None:
    with pytest.raises(ConfigError, match=r"^s\.yaml: ") as err:
        check_excluded(data[0].columns, TARGET, exclude, source="s.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


# -- train, evaluate, tune ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted(data):
    return train.train(data[0], penguin_params(), exclude=("sex",))


def test_train_leaves_the_excluded_column_out_of_the_features(fitted, data) -> None:
    model = fitted.pipeline
    assert "sex" not in list(model.feature_names_in_)
    assert list(model.feature_names_in_) == model_features(data[0], TARGET, ("sex",))
    assert fitted.metrics["n_features"] == len(data[0].columns) - 2
    # a frame that still carries it is scored, and its values change nothing
    test = data[1].drop(columns=[TARGET])
    flipped = test.assign(sex=test["sex"].map({"male": "female", "female": "male"}))
    assert np.array_equal(model.predict_proba(test), model.predict_proba(flipped))
    assert np.array_equal(model.predict_proba(test), model.predict_proba(test.drop(columns="sex")))


def test_no_exclusion_fits_the_same_bytes_as_before(data, tmp_path: Path) -> None:
    params = penguin_params()
    a, b = tmp_path / "a.joblib", tmp_path / "b.joblib"
    train.save_model(train.train(data[0], params).pipeline, a)
    train.save_model(train.train(data[0], params, exclude=()).pipeline, b)
    assert a.read_bytes() == b.read_bytes()


def test_evaluate_slices_the_excluded_column_and_leaves_it_out_of_importance(fitted, data) -> None:
    result = evaluate.evaluate(fitted.pipeline, data[1], penguin_params())
    assert set(result.slices) == {"sex", "island"}
    assert {"male", "female"} <= set(result.slices["sex"])
    features = [row["feature"] for row in result.plots["importance"]]
    assert "sex" not in features and "island" in features
    baseline = evaluate.baseline_results(
        data[0], data[1], penguin_params(), list(fitted.pipeline.feature_names_in_)
    )
    assert baseline["metrics"]["accuracy"] > 0.8


def test_the_train_stage_reads_exclusions_from_the_schema(tmp_path: Path, data, capsys) -> None:
    raw = penguin_settings()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    data[0].to_parquet(tmp_path / "train.parquet", index=False)
    schema = schema_file(tmp_path, data[0], sex={"exclude": True})
    args = ["--train", str(tmp_path / "train.parquet"), "--params", str(tmp_path / "params.yaml")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{tmp_path / 'mlflow.db'}")
        model = tmp_path / "model.joblib"
        assert train.main([*args, "--schema", str(schema), "--model", str(model)]) == 0
        assert "sex" not in list(joblib.load(model).feature_names_in_)
        # the split lost the column the schema excludes: one line, exit 2, no model written
        data[0].drop(columns="sex").to_parquet(tmp_path / "train.parquet", index=False)
        other = tmp_path / "other.joblib"
        capsys.readouterr()
        assert train.main([*args, "--schema", str(schema), "--model", str(other)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [
        f"error: {schema}: column 'sex' is excluded (exclude: true) but is not in the training "
        "data (columns: species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, "
        "body_mass_g, year)"
    ]
    assert not other.exists()


def test_tune_searches_without_the_excluded_column(tmp_path: Path, data) -> None:
    raw = penguin_settings()
    raw["tune"].update(enabled=True, space={"hist_gradient_boosting": {"max_leaf_nodes": [7, 15]}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    # `sex` replaced by a copy of the label: a leak that scores every candidate perfectly
    leaky = data[0].assign(sex=data[0][TARGET])
    leaky.to_parquet(tmp_path / "train.parquet", index=False)
    schema = schema_file(tmp_path, data[0], sex={"exclude": True})
    args = ["--train", str(tmp_path / "train.parquet"), "--params", str(tmp_path / "params.yaml")]
    assert tune.main([*args, "--output", str(tmp_path / "leak.json")]) == 0
    leak = json.loads((tmp_path / "leak.json").read_text())["search"]["candidates"]
    assert all(c["mean"] == 1.0 for c in leak)
    assert tune.main([*args, "--schema", str(schema), "--output", str(tmp_path / "t.json")]) == 0
    fair = json.loads((tmp_path / "t.json").read_text())["search"]["candidates"]
    assert all(0.9 < c["mean"] < 1.0 for c in fair), fair


# -- the signature and the server --------------------------------------------------------------


def test_the_signature_lists_only_the_model_inputs(fitted, data) -> None:
    sample = data[1].drop(columns=[TARGET]).head(5)
    signature = tracking.model_signature(fitted.pipeline, sample)
    names = [c.name for c in signature.inputs.inputs]
    assert names == list(fitted.pipeline.feature_names_in_) and "sex" not in names


def test_the_server_ignores_the_excluded_column(fitted, data) -> None:
    model = fitted.pipeline
    test = data[1].drop(columns=[TARGET]).head(20)
    expected = model.predict(test).tolist()
    types = {"island": "string", "sex": "string", "year": "long"}
    # an old signature that still names `sex` (required) and the one promote now logs
    old = [server.Column(str(c), types.get(str(c), "double")) for c in test.columns]
    new = [c for c in old if c.name != "sex"]
    for columns in (old, new):
        scorer = server.Scorer(model, columns)
        for frame in (test, test.drop(columns="sex")):
            body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})
            rows = scorer.parse(body.encode(), "application/json")
            assert isinstance(rows, server.Rows), rows
            answer = scorer.score([rows])[0]
            assert answer.status == 200, answer.body
            assert json.loads(answer.body)["predictions"] == expected


def test_the_server_contract_does_not_judge_an_excluded_column(tmp_path: Path, data) -> None:
    schema = load_schema(schema_file(tmp_path, data[0], sex={"exclude": True}))
    contract = server.Contract.from_schema(schema, 100, 10_000)
    assert "sex" not in {rule.name for rule in contract.rules}
    assert "island" in {rule.name for rule in contract.rules}
    frame = data[1].drop(columns=[TARGET]).head(3).assign(sex="unknown")
    scorer = server.Scorer(train.train(data[0], penguin_params(), exclude=("sex",)).pipeline,
                           None, contract)  # fmt: skip
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))})
    assert isinstance(scorer.parse(body.encode(), "application/json"), server.Rows)
    body = json.dumps(
        {"dataframe_split": json.loads(frame.assign(island="Mars").to_json(orient="split"))}
    )
    answer = scorer.parse(body.encode(), "application/json")
    assert isinstance(answer, server.Answer) and answer.status == 400
    assert b"Column 'island' breaks the data contract" in answer.body


# -- the model card ----------------------------------------------------------------------------


def test_the_card_lists_excluded_columns_from_the_schema_train_read(tmp_path: Path, data) -> None:
    from gitops_ml.files import file_md5
    from gitops_ml.lineage.dvclock import Declared
    from gitops_ml.release import card as mc

    path = schema_file(tmp_path, data[0], sex={"sensitive": True, "exclude": True})
    rel = path.name
    params = penguin_params()

    def excluded(deps: dict) -> str:
        declared = Declared("train", "models/model.joblib", "m", "l", {"deps": deps}, {})
        reader = mc._Reader(tmp_path, {})
        lines = mc._excluded_section(reader, params, {"schema": rel}, declared)
        return "\n".join([*lines, *reader.notes])

    read = [{"path": rel, "md5": file_md5(path)}]
    shown = excluded(read)
    assert "| column | sensitive | sliced |" in shown and "| `sex` | yes | yes |" in shown
    assert "read no schema" in excluded([])
    path.write_text(path.read_text().replace("exclude: true", "exclude: false"))
    stale = excluded(read)
    assert "`sex`" not in stale
    assert f"{rel} differs from the one the train stage read: not shown" in stale
    assert "None: every column" in excluded([{"path": rel, "md5": file_md5(path)}])
