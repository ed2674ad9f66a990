"""Ingest stage: read the configured data source into one normalised parquet file.

Only reading and normalising happen here (see gitops_ml.sources); whether the data is fit to train
on is decided by the validate stage, so every source is judged by the same reviewed schema.
The batches in `<source-dir>/batches/` (new data, see `gitops-ml retrain`) are appended to the
source's rows in file-name order.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from gitops_ml.config import DataConfig, load_params
from gitops_ml.errors import ConfigError, cli_entry
from gitops_ml.files import write_parquet
from gitops_ml.sources import BATCHES_DIR, batch_files, load_dataset

log = logging.getLogger(__name__)


def untracked_csv(cfg: DataConfig, source_dir: Path) -> bool:
    """True when `data.path` lies outside the DVC-tracked source directory."""
    if cfg.source not in ("csv", "parquet") or cfg.path is None:
        return False
    return not Path(cfg.path).resolve().is_relative_to(Path(source_dir).resolve())


def _listing(values: list[str]) -> str:
    shown = ", ".join(values[:30])
    return shown + (f", ... ({len(values)} in all)" if len(values) > 30 else "")


def select_columns(df: pd.DataFrame, cfg: DataConfig, slices: tuple[str, ...]) -> pd.DataFrame:
    """Drop `data.drop_columns`, and check the params that name columns or labels against the
    data before anything trains: the dropped columns and `evaluate.slices` must exist, and a
    binary `data.positive_label` must be one of the target's labels."""
    columns = [str(c) for c in df.columns]
    for col in cfg.drop_columns:
        if col not in columns:
            raise ConfigError(
                f"params: 'data.drop_columns' names '{col}', which is not a column of the data "
                f"(columns: {_listing(columns)})"
            )
    kept = [c for c in columns if c not in cfg.drop_columns]
    for col in slices:
        if col not in kept:
            valid = [c for c in kept if c != cfg.target]
            raise ConfigError(
                f"params: 'evaluate.slices' names '{col}', which is not a column of the data "
                f"(valid: {_listing(valid)})"
            )
    if cfg.task == "binary" and cfg.positive_label is not None:
        labels = sorted({str(v) for v in df[cfg.target].dropna().unique()})
        if len(labels) > 1 and cfg.positive_label not in labels:  # one label: validate says so
            raise ConfigError(
                f"params: 'data.positive_label' {cfg.positive_label!r} is not a label of "
                f"'{cfg.target}' (labels: {_listing(labels)})"
            )
    return df.drop(columns=list(cfg.drop_columns)) if cfg.drop_columns else df


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gitops_ml.stages.ingest", description=__doc__)
    parser.add_argument("--source-dir", required=True, type=Path, help="tracked source data")
    parser.add_argument("--output", required=True, type=Path, help="parquet file to write")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    params = load_params(args.params)
    cfg = params.data
    if untracked_csv(cfg, args.source_dir):
        log.warning(
            "data.path %s is outside %s: DVC does not track it, so editing it will not re-run "
            "the pipeline; move it under %s",
            cfg.path,
            args.source_dir,
            args.source_dir,
        )
    df = select_columns(load_dataset(cfg, args.source_dir), cfg, params.evaluate.slices)
    batches = batch_files(args.source_dir / BATCHES_DIR)
    write_parquet(args.output, df)
    log.info(
        "ingested %d rows x %d columns from %s%s into %s",
        len(df),
        len(df.columns),
        cfg.source,
        f" and {len(batches)} batch file(s) of {args.source_dir / BATCHES_DIR}" if batches else "",
        args.output,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
