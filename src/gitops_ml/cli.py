"""The `gitops-ml` command: everything that is not a pipeline stage.

Subcommands are registered in `COMMANDS`; each module adds its own arguments and returns an
exit code, so the GitOps commands (report, gate, promote, ...) plug in the same way.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from gitops_ml import __version__
from gitops_ml.cliargs import CommandListFormatter, DeprecatedAlias, exit_codes
from gitops_ml.config import TASKS, load_params
from gitops_ml.errors import ConfigError, DataError, cli_entry, end_process
from gitops_ml.files import atomic_path
from gitops_ml.lineage.dvclock import METRICS_PATH, SLICES_PATH

log = logging.getLogger(__name__)


def _check_params(args: argparse.Namespace) -> int:
    from gitops_ml.batches import retention_config, schema_path
    from gitops_ml.config import max_model_age_days
    from gitops_ml.schema import check_params_against, load_schema

    params = load_params(args.params, check_estimator=True)
    # gitops.yaml's monitoring section, read by predict --log-dir and model-age
    retention_config(params.raw)
    max_model_age_days(params.raw)
    if "tune" in params.raw:  # the tune stage's own section, checked as that stage checks it
        from gitops_ml.stages.tune import check_space, parse_tune

        tune = parse_tune(params.raw, params.data.task)
        model = params.train.model
        check_space(model, params.data.task, tune.space.get(model, {}), params.train.hyperparams)
    try:
        schema_file = schema_path(None, args.params)
    except ConfigError:  # no dvc.yaml naming a schema beside the params: nothing to check it with
        schema_file = None
    checked = ""
    if schema_file is not None and schema_file.is_file():
        check_params_against(load_schema(schema_file), params.data, params.evaluate.slices)
        checked = f"; columns and labels match {schema_file}"
    print(
        f"{args.params}: ok (source={params.data.source}, task={params.data.task}, "
        f"model={params.train.model}){checked}"
    )
    return 0


def _schema_infer(args: argparse.Namespace) -> int:
    from gitops_ml.init import infer_task, read_table, require_column
    from gitops_ml.schema import infer_schema

    path = Path(args.input)
    df, fmt = read_table(path, delimiter=args.delimiter, header=args.header, columns=args.columns)
    require_column(df, args.target, path)
    task, why = infer_task(df[args.target], args.target, args.task)
    log.info("%s: %s; task %s", path, fmt.describe(), why)
    schema = infer_schema(df, target=args.target, task=task)
    text = yaml.safe_dump(schema, sort_keys=False, allow_unicode=True)
    if args.output == "-":
        print(text, end="")
        return 0
    out = Path(args.output)
    if out.exists() and not args.force:
        raise DataError(f"{out} exists; pass --force to overwrite it")
    with atomic_path(out) as tmp:
        tmp.write_text(
            "# Drafted by `gitops-ml schema infer`: review the limits before relying on them.\n"
            + text,
            encoding="utf-8",
        )
    log.info("wrote %s (%d columns)", out, len(schema.get("columns", {})))
    return 0


# -- comment: the sticky PR report comment (fallback when CML is not available) ----------------


def _pr_number(value: str) -> int:
    """argparse type for --pr: the number comes from an untrusted CI artifact."""
    from gitops_ml.errors import GitopsMLError
    from gitops_ml.pr.github import parse_issue_number

    try:
        return parse_issue_number(value)
    except GitopsMLError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _comment(args: argparse.Namespace) -> int:
    import sys

    from gitops_ml.errors import GitopsMLError
    from gitops_ml.pr.github import GitHubClient

    if args.body_file == "-":
        body = sys.stdin.read()
    else:
        try:
            body = Path(args.body_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GitopsMLError(f"cannot read --body-file {args.body_file}: {exc}") from None
    if not body.strip():
        raise GitopsMLError(
            f"--body-file {args.body_file} is empty; refusing to post an empty report"
        )
    client = GitHubClient.from_env()
    number = args.pr
    if number is None:
        pull = client.pull_for_commit(args.commit)
        if pull is None:
            print(f"no pull request brought in commit {args.commit[:12]}: nothing to comment on")
            return 0
        number = pull["number"]
    action, url = client.upsert_comment(number, body, args.marker)
    print(f"{action} {url}")
    return 0


# -- gate: the quality gate of a pull request --------------------------------------------------


def _gate(args: argparse.Namespace) -> int:
    from gitops_ml.files import write_json
    from gitops_ml.lineage import git
    from gitops_ml.pr.gate import run_gate, summary_lines

    params = load_params(args.params)
    root = git.repo_root(Path.cwd())

    intervals: dict | None = {} if params.gate.significant else None

    def rescore(base_sha: str) -> tuple[dict | None, str]:
        from gitops_ml.pr.report import champion_metrics

        return champion_metrics(
            root, base_sha, params, rebuild=not args.no_rebuild, intervals=intervals
        )

    new_baseline = None
    if args.base is not None:
        from gitops_ml.pr.baseline import new_baseline_reason

        base_sha = git.resolve(args.base, cwd=root)
        new_baseline = new_baseline_reason(root, base_sha, args.base, Path(args.params))
    result = run_gate(
        params.gate,
        root=root,
        metrics_path=Path(args.metrics),
        slices_path=Path(args.slices),
        base=args.base,
        check_lock=not args.no_lock_check,
        rescore=None if args.committed_metrics else rescore,
        new_baseline=new_baseline,
        intervals=(lambda: intervals or None) if intervals is not None else None,
    )
    write_json(args.json, result.to_dict())
    print("\n".join(summary_lines(result)))
    if not result.passed and not params.gate.fail_on_violation:
        print("gate.fail_on_violation is false: not failing the check")
    return 1 if not result.passed and params.gate.fail_on_violation else 0


# -- report: the markdown of the sticky PR comment ---------------------------------------------


def _report(args: argparse.Namespace) -> int:
    import sys
    import time

    from gitops_ml.pr.report import build_report

    start = time.perf_counter()
    text = build_report(
        base=args.base,
        params_path=Path(args.params),
        gate_path=Path(args.gate) if args.gate else None,
        rebuild=not args.no_rebuild,
        committed_metrics=args.committed_metrics,
    )
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with atomic_path(args.output) as tmp:
            tmp.write_text(text, encoding="utf-8")
    log.info("report written to %s in %.2f s", args.output, time.perf_counter() - start)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops-ml",
        description="GitOps commands for the gitops-ml pipeline.",
        epilog="`gitops-ml COMMAND --help` describes a command and its exit codes; "
        "2 always means bad input or usage.",
        formatter_class=CommandListFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "check-params",
        help="validate params.yaml and exit",
        description="Check params.yaml as every stage does (unknown or missing keys, value "
        "types and ranges, the model and its hyperparameters) without running anything.",
        epilog=exit_codes("the file is valid", bad="the file is invalid (one line names the key)"),
    )
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.set_defaults(func=_check_params)

    schema = sub.add_parser(
        "schema",
        help="work with data schemas (data contracts)",
        description="Data contracts: the schema YAML files the validate stage, predict and "
        "drift enforce.",
        epilog="exit codes: those of the subcommand; 2 bad usage.",
        formatter_class=CommandListFormatter,
    ).add_subparsers(dest="schema_command", required=True, metavar="SUBCOMMAND")
    p = schema.add_parser(
        "infer",
        help="draft a schema YAML from a CSV or parquet file",
        description="Draft a data contract from a data file: each column's type, range, "
        "categories and missing rate, and the target. Review the limits before relying on them.",
        epilog=exit_codes("the schema was written (or printed)"),
    )
    p.add_argument("--input", required=True, help="CSV or parquet file to describe")
    p.add_argument("--target", required=True, help="the label column")
    p.add_argument(
        "--task", choices=TASKS, default=None, help="default: inferred from the target column"
    )
    from gitops_ml import init

    init.add_reading_options(p)
    p.add_argument("--output", default="-", help="schema file to write, or - for stdout")
    p.add_argument("--force", action="store_true", help="overwrite an existing schema file")
    p.set_defaults(func=_schema_infer)

    p = sub.add_parser(
        "comment",
        help="create or update the sticky report comment on a PR",
        description="Post a markdown file as the one comment of a pull request that a hidden "
        "marker names, updating it if it exists (the fallback when CML is not available). "
        "Reads GITHUB_TOKEN and GITHUB_REPOSITORY.",
        epilog=exit_codes(
            "comment created or updated, or no pull request brought in --commit",
            bad="bad input or usage, or GitHub refused or did not answer",
        ),
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--pr", type=_pr_number, help="pull request number")
    target.add_argument(
        "--commit", help="comment on the pull request that brought in this commit (40 hex SHA)"
    )
    p.add_argument("--body-file", required=True, help="Markdown file to post, or - for stdin")
    p.add_argument(
        "--marker", default="pr-report", help="names the sticky comment (default: %(default)s)"
    )
    p.set_defaults(func=_comment)

    p = sub.add_parser(
        "gate",
        help="evaluate the quality gate (gitops.yaml gate:) on this PR",
        description="Check the rules of gitops.yaml's gate: section on the PR's metrics: "
        "absolute limits, the largest regression against the champion of --base, the weakest "
        "slice, and a stale dvc.lock. Every rule lands in the --json verdict.",
        epilog=exit_codes(
            "the gate passed (or failed with gate.fail_on_violation: false)",
            "a rule failed",
            "bad input or usage (no metrics, not a git repository, ...); no verdict is written",
        ),
    )
    p.add_argument("--base", default=None, help="the champion's ref, e.g. main (default: none)")
    p.add_argument(
        "--json",
        default="reports/gate.json",
        metavar="PATH",
        help="verdict JSON to write (default: %(default)s)",
    )
    p.add_argument("--output", dest="json", action=DeprecatedAlias, new="--json")
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.add_argument("--metrics", default=METRICS_PATH, help="the PR's metrics JSON")
    p.add_argument("--slices", default=SLICES_PATH, help="the PR's slice metrics JSON")
    p.add_argument("--no-lock-check", action="store_true", help="skip the stale dvc.lock rule")
    p.add_argument(
        "--no-rebuild",
        action="store_true",
        help="take the champion from the DVC cache or remote only, never rebuild it",
    )
    p.add_argument(
        "--committed-metrics",
        action="store_true",
        help="compare with the base's committed metrics instead of re-scoring the champion",
    )
    p.set_defaults(func=_gate)

    p = sub.add_parser(
        "report",
        help="write the PR report (markdown) against a base ref",
        description="Write the pull-request report: the gate verdict, champion against "
        "challenger on the PR's test set, metric and params diffs, slice metrics, the data "
        "validation summary and a chart.",
        epilog=exit_codes("the report was written"),
    )
    p.add_argument("--base", required=True, help="the base ref, e.g. main or origin/main")
    p.add_argument("--output", default="-", help="markdown file to write, or - for stdout")
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.add_argument(
        "--gate", default="reports/gate.json", help="gate verdict JSON to include, if it exists"
    )
    p.add_argument(
        "--no-rebuild",
        action="store_true",
        help="never rebuild the champion in a git worktree; fall back to its committed metrics",
    )
    p.add_argument(
        "--committed-metrics",
        action="store_true",
        help="compare with the base's committed metrics instead of re-scoring the champion",
    )
    p.set_defaults(func=_report)
    init.register(sub)
    from gitops_ml import summary

    summary.register(sub)
    from gitops_ml.release import serve

    serve.register(sub)
    from gitops_ml.monitor import demo, drift

    drift.register(sub)
    demo.register(sub)
    from gitops_ml.release import promote

    promote.register(sub)
    from gitops_ml.monitor import age, retrain

    retrain.register(sub)
    age.register(sub)
    from gitops_ml.lineage import cache
    from gitops_ml.pr import changes

    changes.register(sub)
    cache.register(sub)
    return parser


@cli_entry
def _run(argv: list[str] | None, ran: list[argparse.Namespace]) -> int:
    args = build_parser().parse_args(argv)
    ran.append(args)
    return args.func(args)


def main(argv: list[str] | None = None) -> int:
    """Run one `gitops-ml` command; `argv` None is this process's command line. A command that
    sets ``skip_teardown`` then ends the process at once (`errors.end_process`)."""
    ran: list[argparse.Namespace] = []
    code = _run(argv, ran)
    if argv is None and ran and getattr(ran[0], "skip_teardown", False):
        end_process(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
