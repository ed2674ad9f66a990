"""How a model is written for MLflow: skops, with an explicit list of trusted types.

The DVC output ``models/model.joblib`` stays a joblib pickle: DVC names it by its md5, so it must
come out byte for byte the same whenever the same inputs are trained, and skops does not (its
archive names arrays by memory address). Every load of that pickle is preceded by an md5 check
against the dvc.lock of a reviewed commit (`gitops_ml.lineage.artifacts`).

What MLflow holds is written with skops, which rebuilds only the types it is told to trust, so
loading a registry model cannot run code even outside gitops-ml. The trusted types are the ones
the template's estimators need beyond skops' defaults (`TRUSTED_TYPES`), never read from the
artifact. `content_digest` fingerprints a skops archive without loading it, so two archives of
the same model compare equal although their bytes differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from gitops_ml.errors import GitopsMLError

#: Types skops does not trust by default that the estimators of `gitops_ml.models` need.
TRUSTED_TYPES = (
    "functools.partial",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.utils.validation.check_array",
)


def dumps(model: Any) -> bytes:
    """The skops archive of `model`."""
    import skops.io

    return skops.io.dumps(model)


def trusted_types(data: bytes, what: str) -> list[str]:
    """The types of skops archive `data` to trust on load; anything outside `TRUSTED_TYPES`
    is refused, naming the types."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=data)
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise GitopsMLError(
            f"{what}: holds types that are not on the trusted list of "
            f"gitops_ml.lineage.formats: {', '.join(unknown)}"
        )
    return list(untrusted)


def content_digest(data: bytes, what: str) -> str:
    """An md5 of what skops archive `data` holds, the same for every archive of equal models.

    skops names each array file and object by its memory address at dump time; the digest reads
    the schema without loading anything, numbers the objects in order of appearance and names
    each array file by the md5 of its bytes."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = set(archive.namelist())
        schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise GitopsMLError(f"{what}: not a skops archive ({exc})") from None
    ids: dict[Any, int] = {}

    def canonical(node: Any) -> Any:
        if isinstance(node, dict):
            cached = node.get("__loader__") == "CachedNode"
            return {
                key: ids.setdefault(value, len(ids))
                if key == "__id__" or (cached and key == "content")
                else canonical(value)
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [canonical(value) for value in node]
        if isinstance(node, str) and node in members:
            return "md5:" + hashlib.md5(archive.read(node)).hexdigest()
        return node

    text = json.dumps(canonical(schema), sort_keys=True)
    return hashlib.md5(text.encode("utf-8")).hexdigest()
