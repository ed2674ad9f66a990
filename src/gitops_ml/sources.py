"""Data sources: one pure loader per `data.source`, each returning a clean, normalised frame.

Loaders only read and normalise (column names, whitespace, missing markers, label spelling); they
do not judge the data. Whether the data is fit to train on is the schema's job (validate stage),
so a bad CSV is reported here only when it cannot be read as a table at all.

New data arrives as batches: every parquet or CSV file in `BATCHES_DIR` of the source directory
is appended to the source's rows in file-name order (`load_dataset`). The batches directory is
DVC-tracked (`dvc add data/source/batches`, as `gitops-ml retrain` does), so batches go to the
DVC remote, not into git; without batch files the ingested data is exactly the source's.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from gitops_ml import lazy
from gitops_ml.config import DataConfig
from gitops_ml.errors import DataError

np = lazy.module("numpy")
pd = lazy.module("pandas")
pa = lazy.module("pyarrow")

ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
ADULT_NUMERIC = (
    "age",
    "fnlwgt",
    "education_num",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
)
ADULT_LABELS = ("<=50K", ">50K")
ADULT_FILES = ("adult.data.gz", "adult.test.gz")

#: Markers read as missing in text cells (the UCI files use "?").
MISSING_MARKERS = ("", "?", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null")

_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
#: Leading bytes of files people pass as "csv" by mistake.
_MAGIC = {
    b"PAR1": ("a parquet file", ""),
    b"\x1f\x8b": ("gzip-compressed data", "; name it .csv.gz to have it decompressed"),
    b"PK\x03\x04": ("a zip archive or Excel workbook", "; export it as CSV"),
    b"BZh": ("bzip2-compressed data", "; name it .csv.bz2 to have it decompressed"),
    b"\xfd7zXZ": ("xz-compressed data", "; name it .csv.xz to have it decompressed"),
    b"\xd0\xcf\x11\xe0": ("an Excel/Office file", "; export it as CSV"),
    b"%PDF": ("a PDF document", ""),
}
_HEAD_BYTES = 1 << 16

#: The folder of the source directory whose files are appended to the source (`load_dataset`).
BATCHES_DIR = "batches"
#: The file names read as batches; any other visible file in the folder is an error.
BATCH_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".csv.bz2", ".csv.xz")


# --------------------------------------------------------------------------------------------
# adult


def load_adult(source_dir: Path) -> pd.DataFrame:
    """The UCI Adult training and test files, concatenated (48,842 rows) and normalised.

    The test file starts with a `|1x3 Cross validator` line and spells its labels `<=50K.`;
    both quirks are removed here so the two files share one label set.
    """
    frames = []
    for name in ADULT_FILES:
        path = Path(source_dir) / name
        if not path.is_file():
            raise DataError(
                f"{path}: file not found (the shipped Adult data lives in data/source/adult)"
            )
        try:
            frame = pd.read_csv(
                path,
                header=None,
                names=list(ADULT_COLUMNS),
                sep=",",
                skipinitialspace=True,
                skiprows=1 if name == "adult.test.gz" else 0,
                na_values=["?"],
                keep_default_na=False,
                dtype={col: ("int64" if col in ADULT_NUMERIC else "str") for col in ADULT_COLUMNS},
                engine="c",
            )
        except (ValueError, OSError, EOFError, pd.errors.ParserError) as exc:
            raise DataError(f"{path}: cannot read the Adult file: {_first_line(exc)}") from None
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    df = _normalise_text(df)
    df["income"] = df["income"].str.removesuffix(".")
    return df


# --------------------------------------------------------------------------------------------
# csv


def read_csv(
    path: str | os.PathLike[str],
    *,
    delimiter: str = ",",
    header: bool = True,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a user's delimited text file into a normalised frame, or fail naming the file.

    Every cell is read as text first, then a column becomes numeric only if all its non-missing
    values parse as numbers; so one stray word in `age` keeps the column text, and the schema's
    dtype rule reports it instead of the value silently turning into NaN. A file without a
    header row (`header` false) gets its column names from `columns`.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a CSV file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty")
    first = _check_text_header(p, delimiter)
    if header:
        _check_names(p, first)
        n_fields = len(first)
    else:
        if not columns:
            raise DataError(f"{p}: a file without a header needs its column names (data.columns)")
        _check_names(p, list(columns))
        n_fields = len(columns)
        if len(first) != n_fields:
            raise DataError(
                f"{p}: the first line has {len(first)} fields but data.columns names {n_fields}"
            )
    try:
        df = pd.read_csv(
            p,
            engine="pyarrow",
            dtype="str",
            sep=delimiter,
            header=0 if header else None,
            names=None if header else list(columns or ()),
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: file is empty") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError, OSError, EOFError) as exc:
        where = _locate_bad_row(p, n_fields, delimiter)
        raise DataError(f"{p}: malformed CSV: {where or _first_line(exc)}") from None
    if len(df) == 0:
        raise DataError(f"{p}: no data rows (only a header)")
    df.columns = [str(c).strip() for c in df.columns]
    df = _normalise_text(df)
    for col in df.columns:
        df[col] = _maybe_numeric(df[col])
    return df


def read_parquet_source(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A user's parquet file, normalised like a CSV (names stripped, missing markers)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        df = pd.read_parquet(p)
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: cannot read it as parquet: {_first_line(exc)}") from None
    df.columns = [str(c).strip() for c in df.columns]
    _check_names(p, list(df.columns))
    if len(df) == 0:
        raise DataError(f"{p}: no data rows")
    return _normalise_text(df)


def load_file(cfg: DataConfig) -> pd.DataFrame:
    """The CSV or parquet file named by `data.path` (relative to the repo root)."""
    if cfg.path is None:  # config.py already refuses this; kept for callers building configs
        raise DataError(f"data.path must name the file when data.source is {cfg.source}")
    if cfg.source == "parquet":
        df = read_parquet_source(cfg.path)
    else:
        df = read_csv(cfg.path, delimiter=cfg.delimiter, header=cfg.header, columns=cfg.columns)
    _require_target(df, cfg, where=cfg.path)
    target = df[cfg.target]
    if cfg.task == "regression" and not pd.api.types.is_numeric_dtype(target):
        bad = target[pd.to_numeric(target, errors="coerce").isna() & target.notna()]
        example = f" (e.g. {bad.iloc[0]!r})" if len(bad) else ""
        raise DataError(
            f"{cfg.path}: target column '{cfg.target}' must be numeric for task regression{example}"
        )
    return df


def _check_names(path: Path, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if not str(name).strip():
            raise DataError(f"{path}: a column has an empty name")
        if name in seen:
            raise DataError(f"{path}: duplicate column '{name}' in the header")
        seen.add(name)


def _open_maybe_compressed(path: Path) -> IO[bytes]:
    opener = _COMPRESSED.get(path.suffix.lower())
    return opener(path, "rb") if opener else open(path, "rb")


def _check_text_header(path: Path, delimiter: str = ",") -> list[str]:
    """Refuse binary files with a message saying what they look like; return the first line's
    fields."""
    try:
        with _open_maybe_compressed(path) as fh:
            head = fh.read(_HEAD_BYTES)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{path}: cannot decompress: {_first_line(exc)}") from None
    for magic, (what, hint) in _MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{path}: not a CSV text file (looks like {what}){hint}")
    if b"\x00" in head:
        raise DataError(f"{path}: not a CSV text file (binary content)")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8 CSV") from None
    if not text.strip():
        raise DataError(f"{path}: file is empty")
    first = text.lstrip("\r\n").splitlines()[0]
    names = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
    if len(names) == 1:
        for sep, label in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")):
            if sep != delimiter and sep in first:
                raise DataError(
                    f"{path}: looks {label}-separated, but data.delimiter is {delimiter!r}; "
                    f"set 'data.delimiter: {sep!r}'"
                )
    return names


def _locate_bad_row(path: Path, n_fields: int, delimiter: str = ",") -> str | None:
    """Find the first row the parser choked on (only runs on the error path)."""
    try:
        with _open_maybe_compressed(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, strict=True, delimiter=delimiter)
            start = 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return None
                except csv.Error as exc:
                    if "end of data" in str(exc) or "EOF" in str(exc):
                        return f"unterminated quote in the record starting at line {start}"
                    return f"line {reader.line_num}: {exc}"
                if row and len(row) != n_fields:
                    return f"line {reader.line_num} has {len(row)} fields, expected {n_fields}"
                start = reader.line_num + 1
    except UnicodeDecodeError:
        return "not UTF-8 text; save the file as UTF-8 CSV"
    except (OSError, EOFError, lzma.LZMAError):
        return None


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """Convert a text column to numbers when every non-missing value is a number."""
    if pd.api.types.is_numeric_dtype(series) or series.notna().sum() == 0:
        return series
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().sum() != series.notna().sum():
        return series
    return numbers


# --------------------------------------------------------------------------------------------
# synthetic

#: The known signal of the synthetic label: log-odds contributions (see `synthetic_logit`).
SYNTHETIC_SIGNAL = {
    "intercept": -2.95,
    "age": 0.045,  # per year above 38, with a quadratic fall-off below
    "age_squared": -0.0009,
    "education_num": 0.33,  # per grade above 10
    "hours_per_week": 0.03,  # per hour above 40
    "capital_gain_over_5000": 2.5,
    "married": 2.0,  # Married-civ-spouse or Married-AF-spouse
    "male": 0.35,
    "noise_sd": 0.5,
}
_SYNTHETIC_SEED = 20_240_601

_CATEGORIES: dict[str, dict[str, float]] = {
    "workclass": {
        "Private": 0.7364,
        "Self-emp-not-inc": 0.0839,
        "Local-gov": 0.0681,
        "State-gov": 0.043,
        "Self-emp-inc": 0.0368,
        "Federal-gov": 0.0311,
        "Without-pay": 0.0005,
        "Never-worked": 0.0002,
    },
    "education": {
        "HS-grad": 0.3232,
        "Some-college": 0.2227,
        "Bachelors": 0.1643,
        "Masters": 0.0544,
        "Assoc-voc": 0.0422,
        "11th": 0.0371,
        "Assoc-acdm": 0.0328,
        "10th": 0.0284,
        "7th-8th": 0.0196,
        "Prof-school": 0.0171,
        "9th": 0.0155,
        "12th": 0.0135,
        "Doctorate": 0.0122,
        "5th-6th": 0.0104,
        "1st-4th": 0.0051,
        "Preschool": 0.0017,
    },
    "marital_status": {
        "Married-civ-spouse": 0.4582,
        "Never-married": 0.33,
        "Divorced": 0.1358,
        "Separated": 0.0313,
        "Widowed": 0.0311,
        "Married-spouse-absent": 0.0129,
        "Married-AF-spouse": 0.0008,
    },
    "occupation": {
        "Prof-specialty": 0.1341,
        "Craft-repair": 0.1328,
        "Exec-managerial": 0.1322,
        "Adm-clerical": 0.1219,
        "Sales": 0.1196,
        "Other-service": 0.1069,
        "Machine-op-inspct": 0.0656,
        "Transport-moving": 0.0512,
        "Handlers-cleaners": 0.045,
        "Farming-fishing": 0.0324,
        "Tech-support": 0.0314,
        "Protective-serv": 0.0214,
        "Priv-house-serv": 0.0053,
        "Armed-Forces": 0.0003,
    },
    "unmarried_relationship": {
        "Not-in-family": 0.45,
        "Own-child": 0.27,
        "Unmarried": 0.21,
        "Other-relative": 0.07,
    },
    "race": {
        "White": 0.855,
        "Black": 0.0959,
        "Asian-Pac-Islander": 0.0311,
        "Amer-Indian-Eskimo": 0.0096,
        "Other": 0.0083,
    },
    "native_country": {
        "United-States": 0.9135,
        "Mexico": 0.0198,
        "Philippines": 0.0061,
        "Germany": 0.0043,
        "Puerto-Rico": 0.0038,
        "Canada": 0.0038,
        "El-Salvador": 0.0032,
        "India": 0.0031,
        "Cuba": 0.0029,
        "England": 0.0026,
        "China": 0.0025,
        "South": 0.0024,
        "Jamaica": 0.0022,
        "Italy": 0.0022,
        "Dominican-Republic": 0.0021,
        "Japan": 0.0019,
        "Guatemala": 0.0018,
        "Poland": 0.0018,
        "Vietnam": 0.0018,
        "Columbia": 0.0018,
        "Haiti": 0.0016,
        "Portugal": 0.0014,
        "Taiwan": 0.0014,
        "Iran": 0.0012,
        "Greece": 0.001,
        "Nicaragua": 0.001,
        "Peru": 0.001,
        "Ecuador": 0.0009,
        "France": 0.0008,
        "Ireland": 0.0008,
        "Thailand": 0.0006,
        "Hong": 0.0006,
        "Cambodia": 0.0006,
        "Trinadad&Tobago": 0.0006,
        "Laos": 0.0005,
        "Yugoslavia": 0.0005,
        "Outlying-US(Guam-USVI-etc)": 0.0005,
        "Scotland": 0.0004,
        "Honduras": 0.0004,
        "Hungary": 0.0004,
        "Holand-Netherlands": 0.00002,
    },
}
_EDUCATION_NUM = {
    "Preschool": 1,
    "1st-4th": 2,
    "5th-6th": 3,
    "7th-8th": 4,
    "9th": 5,
    "10th": 6,
    "11th": 7,
    "12th": 8,
    "HS-grad": 9,
    "Some-college": 10,
    "Assoc-voc": 11,
    "Assoc-acdm": 12,
    "Bachelors": 13,
    "Masters": 14,
    "Prof-school": 15,
    "Doctorate": 16,
}
_MARRIED = ("Married-civ-spouse", "Married-AF-spouse")


def _draw(
    rng: np.random.Generator, table: dict[str, float], n: int
) -> tuple[np.ndarray, list[str]]:
    names = list(table)
    weights = np.array([table[k] for k in names], dtype=float)
    codes = rng.choice(len(names), size=n, p=weights / weights.sum()).astype(np.int32)
    return codes, names


def _text(codes: np.ndarray, names: list[str]) -> pd.Series:
    """Category codes (-1 for missing) to a text column, the dtype the CSV loaders produce."""
    indices = pa.array(codes, type=pa.int32(), mask=codes < 0)
    values = pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.large_string()))
    return pd.Series(pd.array(values.cast(pa.large_string()), dtype="str"))


def synthetic_logit(df: pd.DataFrame) -> np.ndarray:
    """The noise-free log-odds of `>50K` that generated the synthetic labels."""
    s = SYNTHETIC_SIGNAL
    age = df["age"].to_numpy(dtype=float) - 38
    return (
        s["intercept"]
        + s["age"] * age
        + s["age_squared"] * np.minimum(age, 0) ** 2
        + s["education_num"] * (df["education_num"].to_numpy(dtype=float) - 10)
        + s["hours_per_week"] * (df["hours_per_week"].to_numpy(dtype=float) - 40)
        + s["capital_gain_over_5000"] * (df["capital_gain"].to_numpy() > 5000)
        + s["married"] * df["marital_status"].isin(_MARRIED).to_numpy()
        + s["male"] * (df["sex"] == "Male").to_numpy()
    )


def make_synthetic(n_rows: int) -> pd.DataFrame:
    """`n_rows` Adult-like rows whose label follows `SYNTHETIC_SIGNAL` plus logistic noise.

    Same columns, category sets and value ranges as Adult, so the Adult schema and model apply
    unchanged; the fixed seed makes the data a pure function of `n_rows` (for benchmarks and for
    tests that need to know what a model should find).
    """
    if n_rows < 1:
        raise DataError(f"data.n_rows must be positive, got {n_rows}")
    n = int(n_rows)
    rng = np.random.default_rng(_SYNTHETIC_SEED)

    age = np.clip(np.rint(17 + rng.gamma(3.0, 7.3, n)), 17, 90).astype(np.int64)
    edu_codes, edu_names = _draw(rng, _CATEGORIES["education"], n)
    edu_num = np.array([_EDUCATION_NUM[k] for k in edu_names], dtype=np.int64)[edu_codes]

    marital_codes, marital_names = _draw(rng, _CATEGORIES["marital_status"], n)
    young = (age < 25) & (rng.random(n) < 0.8)
    marital_codes[young] = marital_names.index("Never-married")
    married = np.isin(marital_codes, [marital_names.index(m) for m in _MARRIED])
    male = rng.random(n) < 0.6685

    # Married people are Husband/Wife by sex, as in the census; the rest are drawn.
    rel_codes, rel_names = _draw(rng, _CATEGORIES["unmarried_relationship"], n)
    rel_names = [*rel_names, "Husband", "Wife"]
    rel_codes[married & male] = rel_names.index("Husband")
    rel_codes[married & ~male] = rel_names.index("Wife")

    work_codes, work_names = _draw(rng, _CATEGORIES["workclass"], n)
    occ_codes, occ_names = _draw(rng, _CATEGORIES["occupation"], n)
    no_job = rng.random(n) < 0.057  # Adult: workclass and occupation are missing together
    work_codes[no_job] = -1
    occ_codes[no_job] = -1
    race_codes, race_names = _draw(rng, _CATEGORIES["race"], n)
    country_codes, country_names = _draw(rng, _CATEGORIES["native_country"], n)
    country_codes[rng.random(n) < 0.0175] = -1

    hours = np.where(rng.random(n) < 0.45, 40, np.rint(rng.normal(40, 12, n)))
    hours = np.clip(hours, 1, 99).astype(np.int64)
    fnlwgt = np.clip(np.rint(rng.lognormal(np.log(178_000), 0.5, n)), 12_285, 1_490_400)
    has_gain = rng.random(n) < 0.0826
    gain = np.where(
        has_gain, np.clip(np.rint(rng.lognormal(np.log(7_000), 0.9, n)), 114, 99_999), 0
    )
    has_loss = (rng.random(n) < 0.0467) & ~has_gain
    loss = np.where(has_loss, np.clip(np.rint(rng.normal(1_870, 350, n)), 155, 4_356), 0)

    df = pd.DataFrame(
        {
            "age": age,
            "workclass": _text(work_codes, work_names),
            "fnlwgt": fnlwgt.astype(np.int64),
            "education": _text(edu_codes, edu_names),
            "education_num": edu_num,
            "marital_status": _text(marital_codes, marital_names),
            "occupation": _text(occ_codes, occ_names),
            "relationship": _text(rel_codes, rel_names),
            "race": _text(race_codes, race_names),
            "sex": _text(male.astype(np.int32), ["Female", "Male"]),
            "capital_gain": gain.astype(np.int64),
            "capital_loss": loss.astype(np.int64),
            "hours_per_week": hours,
            "native_country": _text(country_codes, country_names),
        }
    )
    logit = synthetic_logit(df) + rng.normal(0, SYNTHETIC_SIGNAL["noise_sd"], n)
    positive = rng.random(n) < 1 / (1 + np.exp(-logit))
    df["income"] = _text(positive.astype(np.int32), list(ADULT_LABELS))
    return df


# --------------------------------------------------------------------------------------------
# dispatch


def load_source(cfg: DataConfig, source_dir: Path) -> pd.DataFrame:
    """Load the data set `data.source` names; the target column must be present."""
    if cfg.source == "adult":
        df = load_adult(Path(source_dir) / "adult")
        where = "the adult data"
    elif cfg.source in ("csv", "parquet"):
        return load_file(cfg)
    elif cfg.source == "synthetic":
        if cfg.n_rows is None:
            raise DataError("data.n_rows must be set when data.source is synthetic")
        df = make_synthetic(cfg.n_rows)
        where = "the synthetic data"
    else:
        raise DataError(f"unknown data.source '{cfg.source}'")
    _require_target(df, cfg, where=where)
    return df


def load_dataset(cfg: DataConfig, source_dir: Path) -> pd.DataFrame:
    """The configured source with every batch of `source_dir/BATCHES_DIR` appended, in order.

    Without batch files this is `load_source` itself, so the ingested data is byte-identical
    to the data before batches existed.
    """
    df = load_source(cfg, source_dir)
    files = batch_files(Path(source_dir) / BATCHES_DIR)
    if not files:
        return df
    return append_batches(df, [read_batch(path, df) for path in files])


# --------------------------------------------------------------------------------------------
# batches


def batch_files(batch_dir: Path) -> list[Path]:
    """The batch files of `batch_dir` in sorted file-name order (none when it does not exist).

    Hidden files are skipped; any other file that is not a batch is an error, so a stray file
    never silently changes what the model is trained on.
    """
    d = Path(batch_dir)
    if not d.exists():
        return []
    if not d.is_dir():
        raise DataError(f"{d}: is a file; batches go into a directory of parquet or CSV files")
    files = []
    for path in sorted(d.iterdir(), key=lambda p: p.name):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            raise DataError(f"{path}: is a directory; put the batch files directly in {d}")
        if not path.name.lower().endswith(BATCH_SUFFIXES):
            raise DataError(
                f"{path}: not a batch file; batches are {', '.join(BATCH_SUFFIXES)} files"
            )
        files.append(path)
    return files


def read_batch(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    """One batch file with the columns of `like` (the source), in its order and kinds.

    A batch must have exactly the source's columns. A column that is numeric in the source
    must hold numbers in the batch too; text columns of the source are read as text.
    """
    p = Path(path)
    if p.name.lower().endswith(".parquet"):
        try:
            df = pd.read_parquet(p)
        except (OSError, ValueError) as exc:
            raise DataError(f"{p}: cannot read the batch as parquet: {_first_line(exc)}") from None
        df.columns = [str(c).strip() for c in df.columns]
        df = _normalise_text(df)
    else:
        df = read_csv(p)
    columns = [str(c) for c in like.columns]
    missing = [c for c in columns if c not in df.columns]
    extra = [c for c in df.columns if c not in columns]
    if missing or extra:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unexpected {', '.join(extra)}"] if extra else []
        raise DataError(f"{p}: batch columns differ from the source's: {'; '.join(parts)}")
    if len(df) == 0:
        raise DataError(f"{p}: the batch has no rows")
    out = df.loc[:, columns].reset_index(drop=True)
    for col in columns:
        out[col] = _as_kind_of(out[col], like[col], p)
    return out


def append_batches(df: pd.DataFrame, batches: list[pd.DataFrame]) -> pd.DataFrame:
    """`df` with the rows of each batch appended in order (a new frame; inputs untouched)."""
    if not batches:
        return df
    return pd.concat([df, *batches], ignore_index=True)


def _as_kind_of(values: pd.Series, source: pd.Series, path: Path) -> pd.Series:
    """A batch column as numbers when the source's is numeric, as text when the source's is."""
    numeric = pd.api.types.is_numeric_dtype(source) and not pd.api.types.is_bool_dtype(source)
    if numeric:
        if pd.api.types.is_numeric_dtype(values):
            return values
        numbers = pd.to_numeric(values.astype(object), errors="coerce")
        wrong = values[numbers.isna() & values.notna()]
        if len(wrong):
            raise DataError(
                f"{path}: column '{values.name}' is numeric in the source but holds text "
                f"(e.g. {wrong.iloc[0]!r})"
            )
        return numbers.astype("float64") if numbers.isna().any() else numbers
    if pd.api.types.is_string_dtype(source) and not pd.api.types.is_string_dtype(values):
        missing = values.isna()
        if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")  # 7.0 (a whole number beside a missing one) -> "7"
        return values.astype("str").mask(missing)
    return values


def _require_target(df: pd.DataFrame, cfg: DataConfig, where: str) -> None:
    if cfg.target not in df.columns:
        cols = ", ".join(map(str, df.columns[:20]))
        more = ", ..." if len(df.columns) > 20 else ""
        raise DataError(
            f"{where}: no target column '{cfg.target}' (data.target); columns are: {cols}{more}"
        )


def _normalise_text(df: pd.DataFrame) -> pd.DataFrame:
    """Strip whitespace in text cells and turn the missing markers into real missing values."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]) and not pd.api.types.is_numeric_dtype(out[col]):
            stripped = out[col].astype("str").str.strip()
            out[col] = stripped.mask(stripped.isin(MISSING_MARKERS))
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
