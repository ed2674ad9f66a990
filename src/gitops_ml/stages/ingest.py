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

from gitops_ml.config import DataConfig, load_params
from gitops_ml.errors import cli_entry
from gitops_ml.files import write_parquet
from gitops_ml.sources import BATCHES_DIR, batch_files, load_dataset

log = logging.getLogger(__name__)


def untracked_csv(cfg: DataConfig, source_dir: Path) -> bool:
    """True when `data.path` lies outside the DVC-tracked source directory."""
    if cfg.source != "csv" or cfg.path is None:
        return False
    return not Path(cfg.path).resolve().is_relative_to(Path(source_dir).resolve())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gitops_ml.stages.ingest", description=__doc__)
    parser.add_argument("--source-dir", required=True, type=Path, help="tracked source data")
    parser.add_argument("--output", required=True, type=Path, help="parquet file to write")
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = load_params(args.params).data
    if untracked_csv(cfg, args.source_dir):
        log.warning(
            "data.path %s is outside %s: DVC does not track it, so editing it will not re-run "
            "the pipeline; move it under %s",
            cfg.path,
            args.source_dir,
            args.source_dir,
        )
    df = load_dataset(cfg, args.source_dir)
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
