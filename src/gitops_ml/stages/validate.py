"""Validate stage: check the ingested data against the reviewed schema before anything trains.

The report is always written, pass or fail (a failure report replaces a stale pass, so the split
stage cannot run on data that no longer validates). It records the MD5 of the data it judged, and
the split stage refuses data whose MD5 differs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from gitops_ml.config import load_params
from gitops_ml.errors import DataError, GitopsMLError, cli_entry
from gitops_ml.files import file_md5, read_parquet, write_json
from gitops_ml.schema import ValidationReport, load_schema, validate

log = logging.getLogger(__name__)


def report_dict(
    report: ValidationReport, *, schema: Path, data: Path, data_md5: str
) -> dict[str, Any]:
    """The JSON written to reports/validation.json."""
    return {**report.to_dict(), "schema": str(schema), "data": str(data), "data_md5": data_md5}


def _error_report(message: str, *, schema: Path, data: Path) -> dict[str, Any]:
    return {
        "passed": False,
        "error": message,
        "schema": str(schema),
        "data": str(data),
        "data_md5": None,
        "n_rows": None,
        "n_columns": None,
        "summary": {"checks": 0, "passed": 0, "failed": 0},
        "failures": [],
        "checks": [],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_ml.stages.validate", description=__doc__
    )
    parser.add_argument("--input", required=True, type=Path, help="ingested parquet file")
    parser.add_argument(
        "--schema", required=True, type=Path, help="schema YAML (the data contract)"
    )
    parser.add_argument(
        "--report", required=True, type=Path, help="validation report JSON to write"
    )
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        data_cfg = load_params(args.params).data
        schema = load_schema(args.schema)
        df = read_parquet(args.input)
        digest = file_md5(args.input)
        report = validate(df, schema, target=data_cfg.target, task=data_cfg.task)
    except GitopsMLError as exc:
        write_json(args.report, _error_report(str(exc), schema=args.schema, data=args.input))
        raise
    write_json(
        args.report, report_dict(report, schema=args.schema, data=args.input, data_md5=digest)
    )
    if not report.passed:
        raise DataError(f"validation failed: {report.summary_line()}; see {args.report}")
    log.info(
        "%s: %s (%d rows) -> %s", args.input, report.summary_line(), report.n_rows, args.report
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
