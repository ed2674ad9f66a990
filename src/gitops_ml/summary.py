"""`gitops-ml summary`: where `dvc repro` put its outputs, printed after it by `make repro`.

DVC ends a reproduction with "Use `dvc push` to send your updates to remote storage." (there is
no flag or config to silence it) and says nothing of where metrics, plots and figures are. This
names them, with the headline metrics, the MLflow runs and what the DVC remote situation means.
It only reads files and configuration: missing outputs are named, never an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_ml import tracking
from gitops_ml.cliargs import exit_codes
from gitops_ml.lineage.dvclock import FIGURES_DIR, METRICS_PATH, PLOTS_DIR, SLICES_PATH

log = logging.getLogger(__name__)

#: The README section that explains DVC remotes.
REMOTE_SECTION = "Team-scale storage: a DVC remote"
#: Where `dvc plots show` writes its HTML page (DVC's default).
PLOTS_HTML = "dvc_plots/index.html"
#: Where `make ui` serves the MLflow UI.
UI_URL = "http://127.0.0.1:5000"
#: Headline metrics shown, the primary one first; `dvc metrics show` has them all.
MAX_METRICS = 4


@dataclass(frozen=True)
class Remotes:
    """The DVC remotes of a repository: name -> URL, and the default one's name."""

    urls: Mapping[str, str]
    default: str | None = None


def dvc_remotes(root: str | os.PathLike[str]) -> Remotes | None:
    """What `dvc remote list` shows (project, local and global config); None if `root` is not
    a DVC repository or its config cannot be read."""
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            config = repo.config
            urls = {str(name): str(cfg.get("url", "")) for name, cfg in config["remote"].items()}
            return Remotes(urls, config["core"].get("remote"))
    except Exception as exc:  # not a DVC repository, or an unreadable config: say so, no more
        log.debug("reading the DVC config of %s failed: %s", root, exc)
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _params(path: Path) -> Mapping[str, Any]:
    """params.yaml with the gitops.yaml beside it, read leniently (the stages have validated
    them): {} if unreadable."""
    from gitops_ml.config import read_settings
    from gitops_ml.errors import GitopsMLError

    try:
        raw = read_settings(path)
    except GitopsMLError:
        return {}
    return raw if isinstance(raw, Mapping) else {}


def _section(params: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = params.get(name)
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def headline(metrics: Mapping[str, Any], primary: str | None = None) -> str:
    """``roc_auc 0.9303, accuracy 0.8767, ...``: the primary metric first, then the others in
    file order, at most `MAX_METRICS` in all; non-numbers are left out."""
    numbers = {
        str(k): v
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    order = ([primary] if primary in numbers else []) + [k for k in numbers if k != primary]
    shown = [f"{k} {_number(numbers[k])}" for k in order[:MAX_METRICS]]
    more = len(order) - len(shown)
    return ", ".join(shown) + (f" (+{more} more: `dvc metrics show`)" if more > 0 else "")


def summary_lines(
    root: str | os.PathLike[str],
    *,
    remotes: Remotes | None,
    metrics: str = METRICS_PATH,
    slices: str = SLICES_PATH,
    plots: str = PLOTS_DIR,
    figures: str = FIGURES_DIR,
    params: str = "params.yaml",
    tracking_uri: str | None = None,
) -> list[str]:
    """The summary, one line per output; paths are relative to `root`.

    `remotes` is what `dvc_remotes` found (None: not a DVC repository); `tracking_uri`
    defaults to the one in effect (``MLFLOW_TRACKING_URI`` or the local sqlite store).
    """
    from gitops_ml.tracking import redact

    base = Path(root)
    raw_params = _params(base / params)
    primary = _section(raw_params, "gate").get("primary")
    missing = "not there yet (run `make repro`)"
    lines = ["Outputs of the pipeline:"]

    values = _read_json(base / metrics)
    if isinstance(values, Mapping):
        text = headline(values, primary if isinstance(primary, str) else None)
        lines.append(f"  metrics  {metrics}: {text}")
    else:
        lines.append(f"  metrics  {metrics}: {missing}")

    per_slice = _read_json(base / slices)
    if isinstance(per_slice, Mapping):
        columns = ", ".join(str(c) for c in per_slice) or "no evaluate.slices columns"
        lines.append(f"  slices   {slices}: metrics per value of {columns}")
    else:
        lines.append(f"  slices   {slices}: {missing}")

    plot_dir = base / plots
    if plot_dir.is_dir() and any(plot_dir.glob("*.json")):
        lines.append(f"  plots    {plots}/: `dvc plots show` renders them into {PLOTS_HTML}")
    else:
        lines.append(f"  plots    {plots}/: {missing}")

    pngs = sorted(p.stem for p in (base / figures).glob("*.png"))
    if pngs:
        lines.append(f"  figures  {figures}/*.png: {', '.join(pngs)}")
    else:
        lines.append(f"  figures  {figures}/: {missing}")

    uri = tracking_uri or tracking.tracking_uri()
    experiment = _section(raw_params, "mlflow").get("experiment")
    where = redact(uri) + (f", experiment '{experiment}'" if isinstance(experiment, str) else "")
    if uri.startswith(("http://", "https://")):
        lines.append(f"  MLflow   {where}")
    else:
        lines.append(f"  MLflow   {where}: `make ui` opens it on {UI_URL}")

    if remotes is None:
        lines.append("  remote   not a DVC repository (or its config is unreadable)")
    elif not remotes.urls:
        lines.append(
            "  remote   no DVC remote configured, nothing to push: outputs stay in this "
            f"clone's cache (see README '{REMOTE_SECTION}')"
        )
    else:
        name = remotes.default if remotes.default in remotes.urls else None
        if name is None:
            names = ", ".join(sorted(remotes.urls))
            lines.append(
                f"  remote   DVC remote(s) {names} but no default: `dvc push -r NAME` sends "
                "the data and model outputs there"
            )
        else:
            lines.append(
                f"  remote   DVC remote '{name}' ({redact(remotes.urls[name])}): `dvc push` "
                "sends the data and model outputs there"
            )
    return lines


def _summary_cmd(args: argparse.Namespace) -> int:
    root = Path.cwd()
    lines = summary_lines(
        root,
        remotes=dvc_remotes(root),
        metrics=args.metrics,
        slices=args.slices,
        plots=args.plots,
        figures=args.figures,
        params=args.params,
    )
    print("\n".join(lines))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `summary` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "summary",
        help="say where dvc repro put metrics, plots, figures and runs",
        description="Print where the pipeline's outputs are (metrics with their headline "
        "values, slices, plots, figures, the MLflow runs) and whether a DVC remote is "
        "configured. `make repro` runs it after `dvc repro`.",
        epilog=exit_codes("the summary was printed (missing outputs are named, not failed)"),
    )
    p.add_argument("--metrics", default=METRICS_PATH, help="metrics JSON (default: %(default)s)")
    p.add_argument("--slices", default=SLICES_PATH, help="slice metrics (default: %(default)s)")
    p.add_argument("--plots", default=PLOTS_DIR, help="plot data (default: %(default)s)")
    p.add_argument("--figures", default=FIGURES_DIR, help="rendered figures (default: %(default)s)")
    p.add_argument("--params", default="params.yaml", help="the params file (default: %(default)s)")
    p.set_defaults(func=_summary_cmd)
