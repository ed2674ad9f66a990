"""Fixtures shared by the test tiers. Everything here is offline and built from shipped files."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from gitops_ml.sources import ADULT_COLUMNS, ADULT_NUMERIC
from tests.fake_github import FakeGitHub, serve_fake_github

ROOT = Path(__file__).resolve().parents[1]


def template_settings() -> dict:
    """The template's params.yaml and gitops.yaml as one mapping (a fresh copy to change).

    Written back as a single params.yaml, it is the older one-file layout, which loads too."""
    from gitops_ml.config import read_settings

    return copy.deepcopy(read_settings(ROOT / "params.yaml"))


@pytest.fixture(scope="session", autouse=True)
def own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """What gitops-ml remembers about models goes to a folder of the session, not the user's
    cache (subprocesses inherit the variable)."""
    from gitops_ml.files import CACHE_ENV

    path = tmp_path_factory.mktemp("gitops-ml-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(path))
        yield path


# --------------------------------------------------------------------------------------------
# Model tests: the shipped Adult training file, read directly (independent of the ingest stage)

ADULT_FILE = ROOT / "data" / "source" / "adult" / "adult.data.gz"


def load_bench() -> ModuleType:
    """scripts/bench.py as a module (scripts/ is not a package); it also knows the template's files."""
    if "bench" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench"] = module  # dataclasses resolve annotations through sys.modules
        spec.loader.exec_module(module)
    return sys.modules["bench"]


@pytest.fixture(scope="session")
def adult_frame() -> pd.DataFrame:
    """adult.data.gz (32,561 rows) as the split stage hands it on: text columns are `str` with
    NaN for `?`, numbers int64, the target `income` holds `<=50K` / `>50K`. Do not mutate."""
    return pd.read_csv(
        ADULT_FILE,
        header=None,
        names=list(ADULT_COLUMNS),
        sep=",",
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        dtype={c: "int64" if c in ADULT_NUMERIC else "str" for c in ADULT_COLUMNS},
    )


@pytest.fixture(scope="session")
def adult_split(adult_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified 80/20 train/test split of `adult_frame` (seed 42), indexes reset."""
    train, test = train_test_split(
        adult_frame, test_size=0.2, random_state=42, stratify=adult_frame["income"]
    )
    return train.reset_index(drop=True), test.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# A gate section for regression data: the shipped params.yaml gates a classifier.

REGRESSION_GATE = {
    "primary": "rmse",
    "thresholds": {"r2": 0.1},
    "max_regression": {"rmse": 1.0},
    "worst_slice": None,
}


# --------------------------------------------------------------------------------------------
# GitHub: the few REST endpoints the project calls, served on loopback (tests/fake_github.py)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with serve_fake_github() as gh:
        yield gh
