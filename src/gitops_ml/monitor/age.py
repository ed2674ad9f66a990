"""`gitops-ml model-age`: the scheduled check that production is not a model nobody retrained.

It is `gitops-ml verify --max-age-days N` with N read from gitops.yaml's
``monitoring.max_model_age_days`` (`gitops_ml.config.max_model_age_days`): ``@champion`` must
hold the model main's dvc.lock declares (its bytes checked, as `verify` checks them) and its
version must have been registered at most N days ago. monitor.yml runs it daily with the
registry's read-only credentials; it writes nothing to the registry.

A model registered long ago is not wrong by itself, but the world it learned from moves on and
drift on the features (`gitops-ml drift`) misses changes in the relation between the features and
the label that no labelled batch has shown yet. The age limit is the backstop: retrain at least
this often.

``max_model_age_days: null`` (or a gitops.yaml without the key) turns the check off: exit 0 and
a summary that says so. ``--summary PATH`` writes the verdict as markdown (the job summary),
``--json PATH`` `verify`'s verdict with the limit.

Exit codes, as `verify`'s: 0 the champion is main's model and young enough (or the check is
off), 1 it is another model or there is no champion, 2 bad input or the registry is unreachable
(one ``error:`` line, nothing written), 3 it is main's model, registered more than N days ago.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from gitops_ml.cliargs import exit_codes
from gitops_ml.config import MAX_MODEL_AGE_KEY, load_params, max_model_age_days
from gitops_ml.files import atomic_path, write_json
from gitops_ml.lineage.dvclock import LOCK_PATH

#: Where the limit lives, as the summary and the messages name it.
SETTING = f"gitops.yaml monitoring.{MAX_MODEL_AGE_KEY}"


def summary_markdown(result: Any, limit: int | None) -> str:
    """The verdict for the job summary: a heading, `verify`'s message, and what to do."""
    if limit is None:
        return f"## Model age: not checked\n\n{SETTING} is null: no age limit.\n"
    if result.too_old:
        head = "**stale champion**"
        todo = (
            "Retrain it: merge a retraining pull request (monitor.yml opens one on drift or a "
            "quality alert, or run `gitops-ml retrain` on a new batch), or raise the limit."
        )
    elif not result.ok:
        head = "**@champion is not main's model**"
        todo = (
            "The registry no longer follows git: run promote.yml (Run workflow) to promote the "
            "model main's dvc.lock declares."
        )
    else:
        head = "ok"
        todo = ""
    limit_line = f"the limit is {limit} days ({SETTING})."
    if result.age_days is not None and not result.too_old:  # a stale one's message says it
        limit_line = (
            f"Registered {result.age_days:.1f} days ago ({result.registered_at}); {limit_line}"
        )
    else:
        limit_line = limit_line[0].upper() + limit_line[1:]
    lines = [f"## Model age: {head}", "", result.message, "", limit_line]
    if todo:
        lines += ["", todo]
    return "\n".join(lines) + "\n"


def _write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _model_age_cmd(args: argparse.Namespace) -> int:
    from gitops_ml.release.promote import TOO_OLD_EXIT, verify

    limit = max_model_age_days(load_params(args.params).raw)
    if limit is None:
        print(f"model age not checked: {SETTING} is null (no age limit)")
        if args.summary:
            _write_text(args.summary, summary_markdown(None, None))
        if args.json:
            write_json(args.json, {"checked": False, "max_model_age_days": None})
        return 0
    result = verify(params_path=args.params, lock_path=args.lock, max_age_days=limit)
    if args.json:
        write_json(args.json, {"checked": True, "max_model_age_days": limit, **asdict(result)})
    if args.summary:
        _write_text(args.summary, summary_markdown(result, limit))
    print(result.message)
    if result.too_old:
        return TOO_OLD_EXIT
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    """Add the `model-age` subcommand to the `gitops-ml` parser."""
    from gitops_ml.release.promote import TOO_OLD_EXIT

    p = sub.add_parser(
        "model-age",
        help="verify @champion and its age (gitops.yaml monitoring)",
        description="`gitops-ml verify --max-age-days N` with N from gitops.yaml's "
        f"monitoring.{MAX_MODEL_AGE_KEY} (null: no check): @champion must be the model "
        "dvc.lock declares, registered at most N days ago.",
        epilog=exit_codes(
            "@champion is the declared model and young enough, or the check is off",
            "it is another model, or there is no @champion",
            "bad settings, no dvc.lock, the registry is unreachable, or bad usage",
        ).removesuffix(".")
        + f"; {TOO_OLD_EXIT} it is the declared model, registered more than N days ago.",
    )
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.add_argument(
        "--lock", default=LOCK_PATH, help="the dvc.lock to follow (default: %(default)s)"
    )
    p.add_argument("--summary", default=None, metavar="PATH", help="markdown verdict to write")
    p.add_argument("--json", default=None, metavar="PATH", help="JSON verdict to write")
    p.set_defaults(func=_model_age_cmd)
