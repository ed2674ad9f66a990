"""Split stage: hold out a deterministic, stratified test set from validated data.

It runs only on data the validate stage passed: the report must say `passed` and carry the MD5 of
this very input, so a stale report cannot wave through changed data.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from gitops_ml.config import SplitConfig, is_classification, load_params
from gitops_ml.errors import DataError, cli_entry
from gitops_ml.files import file_md5, read_parquet, write_parquet

log = logging.getLogger(__name__)


def split(
    df: pd.DataFrame, cfg: SplitConfig, target: str, task: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test frames (new objects, fresh index); stratified on the label if classifying."""
    if target not in df.columns:
        raise DataError(f"no target column '{target}' (data.target) to split on")
    y = df[target]
    stratify = None
    if is_classification(task):
        if y.isna().any():
            raise DataError(f"target column '{target}' has missing labels; cannot stratify")
        counts = y.value_counts()
        rare = counts[counts < 2]
        if len(rare):
            raise DataError(
                f"target column '{target}': label {rare.index[0]!r} has {rare.iloc[0]} row; "
                "stratified splitting needs at least 2 rows per label"
            )
        stratify = y
    try:
        train, test = train_test_split(
            df, test_size=cfg.test_size, random_state=cfg.seed, shuffle=True, stratify=stratify
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split {len(df)} rows with split.test_size={cfg.test_size}: {exc}"
        ) from None
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
