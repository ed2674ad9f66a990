"""The MLflow model a promotion logs, made in two halves that run side by side.

What `mlflow.sklearn.log_model(serialization_format="skops")` does needs scikit-learn and skops
(the model loaded, its archive written and loaded back) and MLflow (the logged model, its
MLmodel file, its environment files). Each half costs seconds of imports, so `promote` does them
in two processes (`gitops_ml.forked`):

- `prepare`, without MLflow, given the model (loaded once its md5 is checked): its skops
  archive, the types to trust (`gitops_ml.lineage.formats`), the archive loaded back with them,
  and the signature sample with the model's predictions on it;
- `log_model`, without scikit-learn or skops: the same MLflow model `mlflow.sklearn.log_model`
  writes (``model.skops``, MLmodel with the sklearn and python_function flavors, signature, input
  example, conda/pip/python environment files, extra files), written from that archive.

The result loads with `mlflow.pyfunc.load_model`, `mlflow models serve` and `verify` as MLflow's
own does; a test compares the two directories file by file, so an MLflow upgrade that changes
the format shows there. Two checks of MLflow's move to `prepare`: the archive is loaded back
with the trusted types (an error), and the loaded model predicts the input example (a warning).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml import tracking
from gitops_ml.errors import GitopsMLError
from gitops_ml.lineage import formats
from gitops_ml.lineage.artifacts import SKOPS_FILE

if TYPE_CHECKING:
    from mlflow.models import Model
    from mlflow.models.model import ModelInfo

log = logging.getLogger(__name__)

#: Rows of the signature sample that make the input example.
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Prepared:
    """What the MLflow model needs from scikit-learn and skops."""

    archive: bytes  # the skops archive, written as model.skops
    trusted: list[str]  # its types beyond skops' defaults, all on formats.TRUSTED_TYPES
    digest: str  # formats.content_digest of the archive
    sample: Any  # the signature rows (a DataFrame of the model's inputs), or None
    predictions: Any  # the model's predictions on them
    sklearn_version: str
    predicts: bool  # the model has predict(): the python_function flavor is added


def prepare(model: Any, what: str, read_sample: Callable[[], Any]) -> Prepared:
    """The scikit-learn half, for a model loaded from checked bytes; `read_sample` gives the
    signature rows (raw features) or None."""
    import sklearn
    import skops.io

    archive = formats.dumps(model)
    trusted = formats.trusted_types(archive, what)
    sample = read_sample()
    inputs = set(getattr(model, "feature_names_in_", ()))
    if sample is not None and inputs:  # a column the schema excludes is no input of the model
        sample = sample.loc[:, [c for c in sample.columns if c in inputs]]
    predictions = model.predict(sample) if sample is not None else None
    try:  # MLflow's own check of a skops model it saves
        loaded = skops.io.loads(archive, trusted=trusted)
    except Exception as exc:
        raise GitopsMLError(
            f"{what}: its skops archive does not load back: {type(exc).__name__}: {exc}"
        ) from None
    if sample is not None:
        try:  # MLflow's check of the input example, a warning too
            loaded.predict(sample.head(EXAMPLE_ROWS))
        except Exception as exc:
            log.warning("the model does not predict its input example: %s", exc)
    return Prepared(
        archive=archive,
        trusted=trusted,
        digest=formats.content_digest(archive, what),
        sample=sample,
        predictions=predictions,
        sklearn_version=sklearn.__version__,
        predicts=hasattr(model, "predict"),
    )


def log_model(
    prepared: Prepared, *, extra_files: Sequence[str], pip_requirements: Sequence[str]
) -> ModelInfo:
    """The MLflow half: log the prepared model in the active run, as `mlflow.sklearn.log_model`
    would (``runs:/<run>/model``, a logged model of flavor ``mlflow.sklearn``)."""
    from mlflow.models import Model

    sample = prepared.sample
    signature = None
    if sample is not None:
        signature = tracking.signature_of(sample, prepared.predictions)
    return Model.log(
        artifact_path=None,
        name=tracking.MODEL_NAME_IN_RUN,
        flavor=_SkopsFlavor(prepared),
        serialization_format="skops",
        signature=signature,
        input_example=sample.head(EXAMPLE_ROWS) if sample is not None else None,
        pip_requirements=list(pip_requirements),
        skops_trusted_types=prepared.trusted,
        extra_files=list(extra_files),
        validate_serving_input=False,  # prepare() did, with the model loaded back
    )


class _SkopsFlavor:
    """The ``flavor`` `Model.log` saves with: `mlflow.sklearn.save_model` for an archive that is
    already written."""

    __name__ = "mlflow.sklearn"  # what the logged model records as its flavor

    def __init__(self, prepared: Prepared) -> None:
        self.prepared = prepared

    def save_model(self, path: str, mlflow_model: Model, **kwargs: Any) -> None:
        save_model(self.prepared, path, mlflow_model, **kwargs)


def save_model(
    prepared: Prepared,
    path: str,
    mlflow_model: Model,
    *,
    signature: Any,
    input_example: Any,
    pip_requirements: list[str],
    skops_trusted_types: list[str],
    extra_files: list[str],
    **_: Any,
) -> None:
    """Write the MLflow model directory `path` as `mlflow.sklearn.save_model` does for the skops
    format, step for step, from the prepared archive. Other keywords `Model.log` passes on to a
    flavor (the serialization format, the validation switch) are already settled here."""
    import yaml
    from mlflow import pyfunc
    from mlflow.models.model import MLMODEL_FILE_NAME
    from mlflow.models.utils import _save_example
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME,
        _CONSTRAINTS_FILE_NAME,
        _PYTHON_ENV_FILE_NAME,
        _REQUIREMENTS_FILE_NAME,
        _process_pip_requirements,
        _PythonEnv,
    )
    from mlflow.utils.file_utils import get_total_file_size, write_to
    from mlflow.utils.model_utils import _copy_extra_files, _validate_and_prepare_target_save_path

    _validate_and_prepare_target_save_path(path)
    _save_example(mlflow_model, input_example, path)
    if signature is not None:
        mlflow_model.signature = signature
    Path(path, SKOPS_FILE).write_bytes(prepared.archive)
    extra_files_config = _copy_extra_files(extra_files, path)
    if prepared.predicts:
        pyfunc.add_to_model(
            mlflow_model,
            loader_module="mlflow.sklearn",
            model_path=SKOPS_FILE,
            conda_env=_CONDA_ENV_FILE_NAME,
            python_env=_PYTHON_ENV_FILE_NAME,
            code=None,
            predict_fn="predict",
        )
    mlflow_model.add_flavor(
        "sklearn",
        pickled_model=SKOPS_FILE,
        sklearn_version=prepared.sklearn_version,
        serialization_format="skops",
        code=None,
        skops_trusted_types=skops_trusted_types,
        **extra_files_config,
    )
    if size := get_total_file_size(path):
        mlflow_model.model_size_bytes = size
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))
    with _pinned_requirements_trusted():
        conda_env, requirements, constraints = _process_pip_requirements(None, pip_requirements)
    with open(os.path.join(path, _CONDA_ENV_FILE_NAME), "w") as f:
        yaml.safe_dump(conda_env, stream=f, default_flow_style=False)
    if constraints:
        write_to(os.path.join(path, _CONSTRAINTS_FILE_NAME), "\n".join(constraints))
    write_to(os.path.join(path, _REQUIREMENTS_FILE_NAME), "\n".join(requirements))
    _PythonEnv.current().to_yaml(os.path.join(path, _PYTHON_ENV_FILE_NAME))


@contextmanager
def _pinned_requirements_trusted() -> Iterator[None]:
    """Without MLflow's check that the installed packages satisfy the requirements: they are
    the installed versions (`tracking.pip_requirements`), and the check maps every installed
    distribution to its modules first (over half a second)."""
    from mlflow.utils import environment

    check = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if check is None:
        yield
        return
    environment.warn_dependency_requirement_mismatches = lambda requirements: None
    try:
        yield
    finally:
        environment.warn_dependency_requirement_mismatches = check
