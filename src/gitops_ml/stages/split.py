"""Split stage: hold out a test set that depends on each row's content, never on its position.

A row goes to the test split when a hash of its values (and `split.seed`) falls below
`split.test_size`. Appending a batch (a retraining pull request) therefore never moves an existing
row between train and test: the champion is never scored on rows it was trained on. Identical
rows land on the same side, and a column's dtype does not matter (39 and 39.0 hash alike). For
classification every label must have rows on both sides; the proportions follow `test_size`
per label up to sampling noise (on 1,000 rows of a label, about 1 point either way).

It runs only on data the validate stage passed: the report must say `passed` and carry the MD5 of
this very input, so a stale report cannot wave through changed data.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gitops_ml.config import SplitConfig, is_classification, load_params
from gitops_ml.errors import DataError, cli_entry
from gitops_ml.files import file_md5, read_parquet, write_parquet
from gitops_ml.lineage.rows import row_hashes

log = logging.getLogger(__name__)


def is_test_row(df: pd.DataFrame, cfg: SplitConfig) -> np.ndarray:
    """Which rows the split puts in the test set: those whose hash falls below test_size."""
    return row_hashes(df, cfg.seed) < np.uint64(int(cfg.test_size * 2.0**64))


def split(
    df: pd.DataFrame, cfg: SplitConfig, target: str, task: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames (new objects, fresh index), by row content (see the module)."""
    if target not in df.columns:
        raise DataError(f"no target column '{target}' (data.target) to split on")
    y = df[target]
    if is_classification(task):
        if y.isna().any():
            raise DataError(f"target column '{target}' has missing labels; cannot split")
        counts = y.value_counts()
        rare = counts[counts < 2]
        if len(rare):
            raise DataError(
                f"target column '{target}': label {rare.index[0]!r} has {rare.iloc[0]} row; "
                "each label needs rows in both the train and the test split"
            )
    test_mask = is_test_row(df, cfg)
    train, test = df[~test_mask], df[test_mask]
    if train.empty or test.empty:
        raise DataError(
            f"cannot split {len(df)} rows with split.test_size={cfg.test_size}: the "
            f"{'train' if train.empty else 'test'} split is empty"
        )
    if is_classification(task):
        for side, part in (("test", test), ("train", train)):
            missing = sorted(set(y.unique()) - set(part[target].unique()), key=str)
            if missing:
                raise DataError(
                    f"target column '{target}': no row of label {missing[0]!r} "
                    f"({int(counts[missing[0]])} rows) fell in the {side} split; add rows of "
                    "that label or change split.test_size"
                )
    return train.reset_index(drop=True), test.reset_index(drop=True)


def check_validation(report_path: Path, data_path: Path) -> None:
    """Refuse data the validate stage did not pass, or a report about different data."""
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{report_path}: validation report not found; run the validate stage"
        ) from None
    except (OSError, ValueError):
        raise DataError(f"{report_path}: not a readable validation report") from None
    if not isinstance(report, dict) or report.get("passed") is not True:
        raise DataError(
            f"{report_path}: the data did not pass validation; fix the data or the schema first"
        )
    if report.get("data_md5") != file_md5(data_path):
        raise DataError(
            f"{report_path} describes other data than {data_path}; run the validate stage again"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gitops_ml.stages.split", description=__doc__)
    parser.add_argument("--input", required=True, type=Path, help="validated parquet file")
    parser.add_argument("--validation", required=True, type=Path, help="validation report JSON")
    parser.add_argument("--train", required=True, type=Path, help="train parquet to write")
    parser.add_argument("--test", required=True, type=Path, help="test parquet to write")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = load_params(args.params)
    df = read_parquet(args.input)
    check_validation(args.validation, args.input)
    train, test = split(df, params.split, params.data.target, params.data.task)
    write_parquet(args.train, train)
    write_parquet(args.test, test)
    log.info(
        "split %d rows into %d train (%s) and %d test (%s)",
        len(df),
        len(train),
        args.train,
        len(test),
        args.test,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
