"""tests/datasets.py: each loader returns what it says, offline; the messy CSV has its problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from tests import datasets

SMALL = ["penguins", "cars", "breast_cancer"]


def test_penguins_is_multiclass_with_text_and_missing_values() -> None:
    ds = datasets.penguins()
    assert (ds.name, ds.target, ds.task) == ("penguins", "species", "multiclass")
    assert ds.frame.shape == (344, 8)
    assert ds.frame["species"].value_counts().to_dict() == {
        "Adelie": 152,
        "Gentoo": 124,
        "Chinstrap": 68,
    }
    assert ds.frame["species"].notna().all()
    assert pd.api.types.is_string_dtype(ds.frame["island"])
    assert ds.frame["sex"].isna().sum() == 11
    assert ds.frame["body_mass_g"].isna().sum() == 2
    assert ds.features == [c for c in ds.frame.columns if c != "species"]


def test_cars_is_regression_with_text_columns() -> None:
    ds = datasets.cars()
    assert (ds.target, ds.task) == ("Miles_per_Gallon", "regression")
    assert ds.frame.shape == (398, 9)
    target = ds.frame[ds.target]
    assert pd.api.types.is_float_dtype(target) and target.notna().all()
    assert target.between(9, 46.6).all()
    assert set(ds.frame["Origin"]) == {"USA", "Europe", "Japan"}
    assert ds.frame["Name"].nunique() == 304
    assert ds.frame["Horsepower"].isna().sum() == 6
    assert ds.frame["Year"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_breast_cancer_is_numeric_binary_with_a_0_1_target() -> None:
    ds = datasets.breast_cancer()
    assert (ds.target, ds.task) == ("malignant", "binary")
    assert ds.frame.shape == (569, 31)
    assert all(pd.api.types.is_numeric_dtype(t) for t in ds.frame.dtypes)
    assert ds.frame["malignant"].dtype == "int64"
    assert ds.frame["malignant"].value_counts().to_dict() == {0: 357, 1: 212}
    assert not ds.frame.isna().any().any()


def test_flights_is_big_regression_on_arr_delay() -> None:
    ds = datasets.flights()
    assert (ds.name, ds.target, ds.task) == ("flights", "arr_delay", "regression")
    assert ds.frame.shape == (327_346, 19)
    assert len(ds.frame) >= 200_000
    assert ds.frame["arr_delay"].dtype == "int64"
    assert (ds.frame["arr_delay"].min(), ds.frame["arr_delay"].max()) == (-86, 1272)
    assert ds.frame["tailnum"].nunique() == 4037
    assert ds.frame["year"].nunique() == 1


def test_flights_with_a_text_target_is_multiclass_and_keeps_missing_values() -> None:
    ds = datasets.flights("origin")
    assert (ds.name, ds.task) == ("flights_origin", "multiclass")
    assert ds.frame.shape == (336_776, 19)
    assert ds.frame["origin"].value_counts().to_dict() == {
        "EWR": 120_835,
        "JFK": 111_279,
        "LGA": 104_662,
    }
    assert ds.frame["dep_time"].isna().sum() == 8255
    assert ds.frame["tailnum"].isna().sum() == 2512
    with pytest.raises(KeyError):
        datasets.flights("no_such_column")


@pytest.mark.parametrize("name", SMALL)
def test_loaders_hand_out_a_fresh_frame(name: str) -> None:
    first = datasets.LOADERS[name]()
    del first.frame[first.target]
    assert first.target in datasets.LOADERS[name]().frame.columns


@pytest.mark.parametrize("name", SMALL)
def test_write_csv_round_trips(name: str, tmp_path: Path) -> None:
    ds = datasets.LOADERS[name]()
    path = datasets.write_csv(ds, tmp_path / "user")
    assert path == tmp_path / "user" / f"{name}.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].split(",") == list(ds.frame.columns)
    assert len(lines) == len(ds.frame) + 1
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, ds.frame, check_dtype=False)


def test_write_csv_writes_missing_values_as_empty_cells(tmp_path: Path) -> None:
    ds = datasets.penguins()
    raw = pd.read_csv(
        datasets.write_csv(ds, tmp_path), dtype=str, keep_default_na=False, na_values=[]
    )
    assert (raw["sex"] == "").sum() == 11
    assert raw.loc[0, "flipper_length_mm"] == "181"  # a whole number, not 181.0
    assert not raw.isin(["NaN", "nan", "NA", "<NA>"]).any().any()


@pytest.mark.slow
def test_write_csv_of_the_big_set(tmp_path: Path) -> None:
    ds = datasets.flights()
    path = datasets.write_csv(ds, tmp_path)
    back = pd.read_csv(path)
    assert back.shape == (327_346, 19)
    assert back["arr_delay"].dtype == "int64"


# --------------------------------------------------------------------------------------------
# The messy CSV


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return datasets.messy_csv(tmp_path_factory.mktemp("messy"))


@pytest.fixture(scope="module")
def messy_raw(messy: Path) -> pd.DataFrame:
    """Every cell as written, no value taken for missing."""
    return pd.read_csv(messy, dtype=str, keep_default_na=False, na_values=[])


def test_messy_csv_is_deterministic(messy: Path, tmp_path: Path) -> None:
    again = datasets.messy_csv(tmp_path)
    assert again.name == datasets.MESSY_FILE
    assert again.read_bytes() == messy.read_bytes()


def test_messy_csv_shape_and_columns(messy_raw: pd.DataFrame) -> None:
    assert messy_raw.shape == (datasets.MESSY_ROWS, len(datasets.MESSY_COLUMNS))
    assert tuple(messy_raw.columns) == datasets.MESSY_COLUMNS


def test_messy_csv_has_its_problems(messy_raw: pd.DataFrame) -> None:
    raw = messy_raw
    assert raw["customer_id"].is_unique
    assert raw["zip_code"].nunique() == datasets.MESSY_ZIP_LEVELS == 641
    assert raw["zip_code"].str.fullmatch(r"\d{5}-\d{4}").all()
    assert set(raw["country"]) == {"US"}
    assert set(raw["notes"]) == {""}
    assert set(raw["is_premium"]) == {"true", "false"}
    dates = raw["signup_date"]
    assert dates[dates != ""].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert (dates == "").sum() == 40
    spend = raw["monthly_spend"]
    assert set(spend[pd.to_numeric(spend, errors="coerce").isna()]) == {"n/a", "unknown"}
    tokens = {t for c in raw.columns for t in raw[c] if t in {"NA", "N/A", "?", ""}}
    assert tokens == {"NA", "N/A", "?", ""}
    assert {"NA", "?", ""} <= set(raw["age"])
    assert {"N/A", ""} <= set(raw["plan"])
    weight = pd.to_numeric(raw["weight"])
    assert weight.between(0.5, 2.0).all()
    assert raw["churned"].value_counts().to_dict() == {"no": 1546, "yes": 454}


def test_messy_csv_read_by_pandas_defaults(messy: Path) -> None:
    frame = pd.read_csv(messy)
    assert frame["is_premium"].dtype == bool
    assert frame["notes"].isna().all()
    # `?` and `unknown` are not missing to pandas: these numbers stay text
    for column in ("age", "monthly_spend", "support_calls"):
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert pd.api.types.is_float_dtype(frame["weight"])


def test_messy_csv_target_can_be_learnt(messy: Path) -> None:
    frame = pd.read_csv(messy, na_values=["?", "unknown"])
    features = pd.DataFrame(
        {
            "support_calls": frame["support_calls"],
            "tenure_months": frame["tenure_months"],
            "basic": (frame["plan"] == "basic").astype(float),
            "premium": frame["is_premium"].astype(float),
        }
    ).fillna(0.0)
    y = (frame["churned"] == "yes").to_numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        features, y, test_size=0.3, random_state=0, stratify=y
    )
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert auc > 0.75
    assert np.isfinite(auc)
