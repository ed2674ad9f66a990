"""gitops_ml.release.skops_model: the MLflow model written from a prepared skops archive is the
one `mlflow.sklearn.save_model` writes, file for file, and MLflow loads and serves it alike."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml import tracking
from gitops_ml.config import parse_params
from gitops_ml.lineage import formats
from gitops_ml.release import skops_model
from gitops_ml.stages import train
from tests.conftest import template_settings
from tests.datasets import penguins
from tests.tune_setup import MULTICLASS_GATE

TARGET = "species"


@pytest.fixture(scope="module")
def fitted() -> tuple[object, pd.DataFrame]:
    """A penguin model of the template's pipeline that leaves `sex` out, and raw test rows."""
    frame = penguins().frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    raw = template_settings()
    raw["data"].update(source="csv", path="data/source/penguins.csv", target=TARGET,
                       task="multiclass", positive_label=None)  # fmt: skip
    raw["gate"].update(MULTICLASS_GATE)
    model = train.train(frame.iloc[:260], parse_params(raw), exclude=("sex",)).pipeline
    return model, frame.iloc[260:].drop(columns=[TARGET]).reset_index(drop=True)


def _both(fitted, tmp_path: Path) -> tuple[Path, Path, skops_model.Prepared]:
    """The same model saved by MLflow (`theirs`) and from the prepared archive (`ours`)."""
    import mlflow
    from mlflow.models import Model

    model, rows = fitted
    prepared = skops_model.prepare(model, "penguins", lambda: rows)
    sample = prepared.sample
    exact = tmp_path / "model.joblib"
    exact.write_bytes(b"the DVC file's bytes")
    common = {
        "signature": tracking.signature_of(sample, prepared.predictions),
        "input_example": sample.head(skops_model.EXAMPLE_ROWS),
        "pip_requirements": tracking.pip_requirements(),
        "skops_trusted_types": prepared.trusted,
        "extra_files": [str(exact)],
    }
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    mlflow.sklearn.save_model(model, str(theirs), serialization_format="skops", **common)
    skops_model.save_model(prepared, str(ours), Model(), **common)
    return theirs, ours, prepared


def test_the_directory_is_the_one_mlflow_writes(fitted, tmp_path: Path) -> None:
    theirs, ours, prepared = _both(fitted, tmp_path)
    files = sorted(p.relative_to(theirs).as_posix() for p in theirs.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ours).as_posix() for p in ours.rglob("*") if p.is_file())
    for name in files:
        if name == "MLmodel":
            a, b = (yaml.safe_load((d / name).read_text()) for d in (theirs, ours))
            for key in ("utc_time_created", "model_uuid", "model_size_bytes"):
                a.pop(key), b.pop(key)
            assert a == b
        elif name == "model.skops":  # skops names arrays by address: the content is compared
            held = (ours / name).read_bytes()
            assert held == prepared.archive
            assert formats.content_digest(held, "ours") == formats.content_digest(
                (theirs / name).read_bytes(), "theirs"
            )
        else:
            assert (theirs / name).read_bytes() == (ours / name).read_bytes(), name
    mlmodel = yaml.safe_load((ours / "MLmodel").read_text())
    assert mlmodel["model_size_bytes"] > len(prepared.archive)
    assert "sex" not in mlmodel["signature"]["inputs"]  # only the model's inputs


def test_mlflow_loads_and_predicts_it(fitted, tmp_path: Path) -> None:
    import mlflow

    model, rows = fitted
    _, ours, _ = _both(fitted, tmp_path)
    loaded = mlflow.pyfunc.load_model(str(ours))
    inputs = rows.loc[:, list(model.feature_names_in_)]
    assert loaded.predict(inputs).tolist() == model.predict(inputs).tolist()


def test_prepare_keeps_the_model_inputs_and_its_predictions(fitted) -> None:
    model, rows = fitted
    prepared = skops_model.prepare(model, "penguins", lambda: rows.head(20))
    assert list(prepared.sample.columns) == list(model.feature_names_in_)
    assert prepared.predictions.tolist() == model.predict(prepared.sample).tolist()
    assert set(prepared.trusted) <= set(formats.TRUSTED_TYPES)
    assert prepared.digest == formats.content_digest(formats.dumps(model), "again")
    assert skops_model.prepare(model, "penguins", lambda: None).sample is None
