"""The pull-request report: one markdown document for the sticky PR comment.

It compares the PR (the workspace, after `dvc repro`) with a base ref (usually `main`):
commits, the quality gate rule by rule, the champion (the model the base's dvc.lock declares)
against the challenger (the PR's model) scored on the same test set, the committed metrics and
params of both sides, slice metrics, the data validation summary, a Mermaid chart and lineage.

Where the champion model comes from, cheapest first:
1. the local DVC cache (``.dvc/cache/files/md5/<2>/<30>``), by the md5 in the base's dvc.lock;
2. `dvc.api.open(..., rev=base)`, which fetches it from the configured DVC remote;
3. a rebuild of the base in a temporary `git worktree` with `dvc repro`, sharing this
   repository's DVC cache (so the next report finds it in step 1); `--no-rebuild` skips this;
4. otherwise the base's committed metrics, with a plain note that its test data may differ.

The pure pieces (metric deltas, params diff, slice rows, markdown) take plain dicts and are
unit-tested; heavy imports (pandas, scikit-learn, dvc, mlflow) happen inside functions. The
models are scored in a child forked when the report starts (`_score_models`): it imports
scikit-learn, most of a report's time, on the other core while this process reads git, the test
split and the feature flags, and then scores the champion while its own child scores the
challenger, each drawing its half of the paired bootstrap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gitops_ml import forked
from gitops_ml.config import LOWER_IS_BETTER, TASK_METRICS
from gitops_ml.errors import GitopsMLError
from gitops_ml.files import load_yaml
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.artifacts import _from_remote, champion_file, load_model_file
from gitops_ml.lineage.dvclock import (
    FIGURES_DIR,
    LOCK_PATH,
    METRICS_PATH,
    MODEL_PATH,
    PARAMS_PATH,
    PLOTS_DIR,
    SLICES_PATH,
    TEST_PATH,
    TRAIN_PATH,
    VALIDATION_PATH,
    cache_path,
    out_md5,
    read_lock,
)
from gitops_ml.pr.chart import delta_chart, metric_deltas
from gitops_ml.pr.tuning import TUNED_PATH, read_tuned_file, render_tuning

log = logging.getLogger(__name__)

#: Deltas smaller than this are "unchanged" (metrics are rounded to 6 decimals).
EPS = 5e-7
#: evaluate's permutation importance (a file of its `reports/plots` output).
IMPORTANCE_PATH = f"{PLOTS_DIR}/importance.json"
MISSING = object()


# -- pure pieces ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRow:
    name: str
    base: float | None
    head: float | None
    delta: float | None
    direction: str  # better | worse | unchanged | changed | new | removed


def direction_of(name: str, delta: float) -> str:
    """better / worse / unchanged, by the metric's direction; `changed` for counts like n_test."""
    if abs(delta) < EPS:
        return "unchanged"
    known = {m for metrics in TASK_METRICS.values() for m in metrics}
    if name not in known:
        return "changed"
    better = delta < 0 if name in LOWER_IS_BETTER else delta > 0
    return "better" if better else "worse"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return value  # counts (n_test) stay integers
    return None if math.isnan(value) else float(value)


def compare_metrics(base: Mapping[str, Any] | None, head: Mapping[str, Any]) -> list[MetricRow]:
    """One row per metric of either side, in the head's order, then the base-only ones."""
    base = base or {}
    names = list(head) + [k for k in base if k not in head]
    rows = []
    for name in names:
        old, new = _num(base.get(name)), _num(head.get(name))
        if old is None and new is None:
            direction, delta = "unchanged", None
        elif old is None:
            direction, delta = "new", None
        elif new is None:
            direction, delta = "removed", None
        else:
            delta = round(new - old, 6)
            direction = direction_of(name, delta)
        rows.append(MetricRow(name, old, new, delta, direction))
    return rows


def params_diff(
    base: Mapping[str, Any] | None, head: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(key, base value, head value) for each flattened key that differs; MISSING where absent."""
    from gitops_ml.tracking import flatten_params

    old = flatten_params(base or {})
    new = flatten_params(head)
    return [
        (key, old.get(key, MISSING), new.get(key, MISSING))
        for key in sorted(set(old) | set(new))
        if old.get(key, MISSING) != new.get(key, MISSING)
    ]


def slice_rows(
    base: Mapping[str, Any] | None, head: Mapping[str, Any] | None, metric: str
) -> list[tuple[str, int | None, float | None, float | None, float | None]]:
    """(column=value, n, base, head, delta) for every slice of either side."""
    base, head = base or {}, head or {}
    rows = []
    for column in sorted(set(base) | set(head)):
        b, h = base.get(column) or {}, head.get(column) or {}
        # The head's order (evaluate sorts values, numeric bins by their edges), then the rest.
        for value in list(h) + [v for v in b if v not in h]:
            old = _num((b.get(value) or {}).get(metric))
            new = _num((h.get(value) or {}).get(metric))
            n = (h.get(value) or b.get(value) or {}).get("n")
            delta = None if old is None or new is None else round(new - old, 6)
            rows.append((f"{column}={value}", n, old, new, delta))
    return rows


def fmt(value: Any) -> str:
    if value is None or value is MISSING:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def fmt_delta(name: str, delta: float | None, direction: str | None = None) -> str:
    if delta is None:
        return "—"
    direction = direction or direction_of(name, delta)
    mark = {"better": " 🟢 better", "worse": " 🔴 worse", "unchanged": ""}.get(direction, "")
    return f"{delta:+.4f}{mark}"


def _cell(value: Any) -> str:
    text = fmt(value)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`" if value is not MISSING else text


@dataclass
class ReportData:
    """Everything the markdown shows; built by `collect`, rendered by `render_markdown`."""

    base_ref: str
    base_sha: str
    head_sha: str
    merge_base: str
    primary: str
    head_metrics: Mapping[str, Any]
    base_metrics: Mapping[str, Any] | None = None
    head_params: Mapping[str, Any] = field(default_factory=dict)
    base_params: Mapping[str, Any] | None = None
    champion: Mapping[str, Any] | None = None  # scored on the PR's test set
    challenger: Mapping[str, Any] | None = None
    champion_source: str = ""
    slice_metric: str | None = None
    head_slices: Mapping[str, Any] | None = None
    base_slices: Mapping[str, Any] | None = None
    slices_source: str = ""
    validation: Mapping[str, Any] | None = None
    gate: Mapping[str, Any] | None = None
    gate_note: str = ""
    figures: Sequence[str] = ()
    workflow_url: str | None = None  # the GitHub Actions run that holds the artifact
    run_url: str | None = None
    lineage: Sequence[str] = ()
    notes: Sequence[str] = ()
    new_baseline: str | None = None  # why the champion is not comparable (another data contract)
    #: metric -> {delta, low, high, real}: the paired bootstrap of champion vs challenger
    intervals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tuned: Mapping[str, Any] | None = None  # the PR's reports/tuned.json (the tune stage)
    base_tuned: Mapping[str, Any] | None = None
    #: the "Feature flags" section (`gitops_ml.pr.flags`); empty: not shown
    flags: Sequence[str] = ()


def _short(sha: str) -> str:
    return sha[:8]


def _metric_table(
    rows: Sequence[MetricRow],
    left: str,
    right: str,
    primary: str | None = None,
    intervals: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """The metrics side by side; with `intervals`, each delta's 95% interval, and a delta whose
    interval contains zero reads "no real change" whatever its sign."""
    if intervals:
        out = [f"| metric | {left} | {right} | Δ | 95% interval of Δ |", "|---|---:|---:|---|---|"]
    else:
        out = [f"| metric | {left} | {right} | Δ |", "|---|---:|---:|---|"]
    for r in rows:
        delta = fmt_delta(r.name, r.delta, r.direction) if r.delta is not None else r.direction
        name = f"**`{r.name}`** (primary)" if r.name == primary else f"`{r.name}`"
        line = f"| {name} | {fmt(r.base)} | {fmt(r.head)} | "
        interval = (intervals or {}).get(r.name)
        if interval is not None and r.delta is not None and not interval["real"]:
            delta = f"{r.delta:+.4f} ⚪ no real change"
        if intervals:
            bounds = (
                f"[{interval['low']:+.4f}, {interval['high']:+.4f}]"
                if interval is not None
                else "—"
            )
            out.append(f"{line}{delta} | {bounds} |")
        else:
            out.append(f"{line}{delta} |")
    return out


def render_gate(gate: Mapping[str, Any]) -> list[str]:
    passed = bool(gate.get("passed"))
    head = "✅ passed" if passed else "❌ failed"
    if not passed and not gate.get("fail_on_violation", True):
        head += " (not enforced: `gate.fail_on_violation` is false)"
    out = [f"### Quality gate: {head}", "", "| rule | result | observed | limit | |", "|---|---|---|---|---|"]  # fmt: skip
    for rule in gate.get("rules", []):
        result = "⏭️ skipped" if rule.get("skipped") else ("✅" if rule.get("passed") else "❌")
        observed = rule.get("observed")
        if isinstance(observed, list):
            observed = f"{len(observed)} item(s)" if observed else "—"
        limit = rule.get("limit")
        if isinstance(limit, str) and len(limit) > 30:
            limit = "—"
        message = str(rule.get("message", "")).replace("|", "\\|").replace("\n", " ")
        out.append(
            f"| `{rule.get('name')}` | {result} | {fmt(observed)} | {fmt(limit)} | {message} |"
        )
    if gate.get("champion_source"):
        source = str(gate["champion_source"]).rstrip(".")
        out += ["", f"Regression rules compare with the champion: {source}."]
    for warning in gate.get("warnings", []):
        out.append(f"\n> ⚠️ {warning}")
    return out


def render_markdown(d: ReportData) -> str:
    """The whole report; sections with nothing to show say so in one line."""
    out = [
        f"## Model report: `{_short(d.head_sha)}` vs `{d.base_ref}` (`{_short(d.base_sha)}`)",
        "",
    ]
    out += [
        "| | commit |",
        "|---|---|",
        f"| head (this PR) | `{d.head_sha}` |",
        f"| base (`{d.base_ref}`) | `{d.base_sha}` |",
        f"| merge base | `{d.merge_base}` |",
        "",
    ]
    out += [f"> {note}" for note in d.notes]
    if d.notes:
        out.append("")

    # The gate first: it is what a reviewer needs to know.
    if d.gate is not None:
        out += render_gate(d.gate)
        if d.gate_note:
            out += ["", f"_{d.gate_note}_"]
    else:
        out += ["### Quality gate", "", d.gate_note or "The gate was not run."]
    out.append("")

    # Champion vs challenger on the same test set.
    out += ["### Champion vs challenger", ""]
    challenger = d.challenger or d.head_metrics
    base_metrics = None if d.new_baseline else d.base_metrics
    if d.new_baseline:
        out += [
            f"🆕 **New baseline**: {d.new_baseline}. The champion is not compared and the "
            "regression rules are skipped; the absolute thresholds still apply. Once merged, "
            "this PR's model is the champion that later PRs are compared with.",
            "",
        ]
        rows = [r for r in compare_metrics(None, challenger) if r.name != "n_test"]
        rows.sort(key=lambda r: r.name != d.primary)
        out += ["| metric | PR |", "|---|---:|"]
        out += [
            f"| {f'**`{r.name}`** (primary)' if r.name == d.primary else f'`{r.name}`'} "
            f"| {fmt(r.head)} |"
            for r in rows
        ]
    elif d.champion is None and d.base_metrics is None:
        out += [f"No champion yet: `{d.base_ref}` has no model or metrics. {d.champion_source}"]
    else:
        out += [d.champion_source, ""]
        champion = d.champion if d.champion is not None else d.base_metrics
        rows = [r for r in compare_metrics(champion, challenger) if r.name != "n_test"]
        rows.sort(key=lambda r: r.name != d.primary)  # the primary metric first
        out += _metric_table(rows, "champion", "challenger (PR)", d.primary, d.intervals)
        if d.intervals:
            from gitops_ml.pr.significance import REPLICATES

            out += [
                "",
                f"The interval is a paired bootstrap of the shared test rows ({REPLICATES:,} "
                "draws, seeded): where it contains zero, this test set cannot tell the two models "
                "apart.",
            ]
    champion = d.champion if d.champion is not None else base_metrics
    chart = None
    if not d.new_baseline and champion is not None:
        chart = delta_chart({**metric_deltas(champion, challenger), **d.intervals}, d.primary)
    if chart:
        out += ["", chart]
    out.append("")

    # Committed metrics, base vs PR; the unchanged ones folded away.
    out += [f"### Metrics: `{d.base_ref}` vs PR (committed `{METRICS_PATH}`)", ""]
    if d.new_baseline:
        out += [f"`{d.base_ref}`'s metrics measure another data contract: the PR's metrics:", ""]
    elif d.base_metrics is None:
        out += [f"`{d.base_ref}` has no `{METRICS_PATH}` (first model?): the PR's metrics:", ""]
    rows = compare_metrics(base_metrics, d.head_metrics)
    changed = [r for r in rows if r.direction != "unchanged"]
    same = [r for r in rows if r.direction == "unchanged"]
    if changed:
        out += _metric_table(changed, d.base_ref, "PR", d.primary)
    else:
        out.append("No metric changed.")
    if same:
        out += ["", f"<details><summary>{len(same)} unchanged metric(s)</summary>", ""]
        out += _metric_table(same, d.base_ref, "PR", d.primary)
        out += ["", "</details>"]
    out.append("")

    # Params.
    out += ["### Parameters", ""]
    if d.base_params is None:
        out.append(f"`{d.base_ref}` has no `{PARAMS_PATH}`.")
    else:
        diff = params_diff(d.base_params, d.head_params)
        if diff:
            out += [f"| param | {d.base_ref} | PR |", "|---|---|---|"]
            out += [f"| `{k}` | {_cell(a)} | {_cell(b)} |" for k, a, b in diff]
        else:
            out.append("No parameter changed.")
    out.append("")
    tuning = render_tuning(d.tuned, d.base_tuned, base_ref=d.base_ref)
    if tuning:
        out += [*tuning, ""]

    # Slices.
    if d.new_baseline:
        d = replace(d, base_slices=None)
    if d.slice_metric and (d.head_slices or d.base_slices):
        out += [f"### Slices: `{d.slice_metric}`", ""]
        if d.slices_source:
            out += [d.slices_source, ""]
        rows_s = slice_rows(d.base_slices, d.head_slices, d.slice_metric)
        out += ["| slice | n | champion | challenger | Δ |", "|---|---:|---:|---:|---|"]
        out += [
            f"| {name} | {fmt(n)} | {fmt(old)} | {fmt(new)} | {fmt_delta(d.slice_metric, delta)} |"
            for name, n, old, new, delta in rows_s
        ]
        out.append("")

    # Features the model barely uses or that repeat another: warnings only.
    out += list(d.flags)

    # Data validation.
    out += ["### Data validation", ""]
    v = d.validation
    if v is None:
        out.append(f"No `{VALIDATION_PATH}` in the workspace.")
    else:
        s = v.get("summary") or {}
        verdict = "✅ passed" if v.get("passed") else "❌ failed"
        out.append(
            f"{verdict}: {s.get('passed', '?')} of {s.get('checks', '?')} checks passed on "
            f"{fmt(v.get('n_rows'))} rows (schema `{v.get('schema', '?')}`)."
        )
        for failure in (v.get("failures") or [])[:10]:
            text = failure.get("message", failure) if isinstance(failure, Mapping) else failure
            out.append(f"- ❌ {text}")
    out.append("")

    # Figures and lineage.
    out += ["### Figures and lineage", ""]
    if d.figures:
        names = ", ".join(f"`{Path(f).name}`" for f in d.figures)
        where = f"[this workflow run]({d.workflow_url})" if d.workflow_url else "this workflow run"
        out.append(f"Figures ({names}) are in the artifact of {where} (`{FIGURES_DIR}/`).")
    else:
        out.append(f"No figures in `{FIGURES_DIR}/` (the evaluate stage did not produce any).")
    if d.run_url:
        out.append(f"MLflow run of the challenger: {d.run_url}")
    out += [f"- {line}" for line in d.lineage]
    out.append("")
    return "\n".join(out)


# -- I/O: git, the champion model, scoring --------------------------------------------------------


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise GitopsMLError(f"{path}: not valid JSON ({exc})") from None


def _json_at(rev: str, path: str, root: Path) -> Any:
    from gitops_ml.lineage import git

    text = git.show(rev, path, cwd=root)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        log.warning("%s:%s is not valid JSON; ignored", rev[:12], path)
        return None


def _yaml_at(rev: str, path: str, root: Path) -> Any:
    from gitops_ml.lineage import git

    text = git.show(rev, path, cwd=root)
    if text is None:
        return None
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        log.warning("%s:%s is not valid YAML; ignored", rev[:12], path)
        return None


def measured(model: Any, test: Any, params: Any) -> Any:
    """`model`'s answers on `test` and what they score, measured as the evaluate stage does."""
    from gitops_ml.scoring import measure

    target = params.data.target
    if target not in test.columns:
        raise GitopsMLError(f"{TEST_PATH}: no target column '{target}'")
    return measure(
        model,
        test.drop(columns=[target]),
        test[target],
        params.data.task,
        slices=params.evaluate.slices,
        positive_label=params.data.positive_label,
        threshold=params.evaluate.threshold,
    )


def _actual(test: Any, params: Any) -> Any:
    """The test rows' target as `significance` reads it."""
    actual = test[params.data.target]
    if params.data.task == "regression":
        return actual.to_numpy(dtype="float64")
    return actual.to_numpy()


def _answers(m: Any) -> Any:
    from gitops_ml.pr import significance

    s = m.scored
    return significance.Answers(s.labels, s.score, s.proba, s.classes)


def _draws(m: Any, test: Any, params: Any) -> Any:
    """`m`'s half of the paired bootstrap (`significance.draws`), with its own positive class."""
    from gitops_ml.pr import significance

    task = params.data.task
    return significance.draws(task, _actual(test, params), _answers(m), significance.SUPPORTED[task],
                              positive=m.scored.positive)  # fmt: skip


def delta_intervals(
    champion: Any, challenger: Any, actual: Any, task: str, draws: tuple[Any, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Each metric's challenger-minus-champion delta with its paired bootstrap interval, from the
    two models' answers on the same rows (`significance`). `draws`: both models' halves of it,
    already computed (`_draws`); the champion's is drawn again here if its positive class is not
    the challenger's."""
    from gitops_ml.pr import significance

    values = actual.to_numpy(dtype="float64") if task == "regression" else actual.to_numpy()
    positive = challenger.scored.positive
    if draws is None:
        intervals = significance.paired_intervals(
            task, values, _answers(champion), _answers(challenger), significance.SUPPORTED[task],
            positive=positive,
        )  # fmt: skip
    else:
        old, new = draws
        if old.positive != positive:
            old = significance.draws(task, values, _answers(champion),
                                     significance.SUPPORTED[task], positive=positive)  # fmt: skip
        intervals = significance.intervals(old, new)
    return {name: i.to_dict() for name, i in intervals.items()}


def _mlflow_lineage(md5: str | None, experiment: str) -> tuple[str | None, list[str]]:
    """A link to the challenger's MLflow run when the tracking store is a server."""
    from gitops_ml import tracking

    uri = tracking.tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None, [f"MLflow: runs are in `{uri}` (local to the runner; `make ui` to browse)."]
    if md5 is None:
        return None, ["MLflow: no model md5 in the PR's dvc.lock, so no run to link."]
    try:
        run = tracking.find_run_by_model_hash(md5, experiment)
    except GitopsMLError as exc:
        return None, [f"MLflow: {exc}"]
    if run is None:
        return None, [f"MLflow: no run in `{experiment}` is tagged with model md5 `{md5}`."]
    url = f"{uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    return url, [f"MLflow run id `{run.info.run_id}`, model md5 `{md5}`."]


def champion_metrics(
    root: Path,
    base_sha: str,
    params: Any,
    *,
    rebuild: bool = True,
    intervals: dict[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, str]:
    """The base's model scored on the PR's test split, and where it came from.

    (None, why) when the champion model or the test split is not to be had; the gate then
    falls back to the base's committed metrics. A rebuilt champion lands in the shared DVC cache,
    so the report that follows finds it there instead of rebuilding it again. With `intervals`
    (a dict), the challenger in the workspace is scored too and each delta's bootstrap interval
    is put in it (`delta_intervals`).
    """
    base_lock = dvclock.lock_at(base_sha, root)
    test_file = root / TEST_PATH
    with tempfile.TemporaryDirectory(prefix="gitops-ml-gate-") as tmp:
        champion, source = champion_file(root, base_sha, base_lock, rebuild, Path(tmp))
        if champion is None:
            return None, source
        if not test_file.exists():
            return None, f"{source}, but `{TEST_PATH}` is not in the workspace"
        import pandas as pd

        test = pd.read_parquet(test_file)
        seen = seen_in_training(root, base_sha, base_lock, test)
        if seen is not None and seen.any():  # the PR's committed metrics cover rows it saw
            return None, f"{source}. {_seen_sentence(seen, len(test))}."
        scored = measured(_fitting(champion.load(base_sha), test, params), test, params)
        metrics = scored.metrics
        if intervals is not None and (root / MODEL_PATH).exists():
            challenger = measured(load_challenger(root), test, params)
            intervals.update(
                delta_intervals(scored, challenger, test[params.data.target], params.data.task)
            )
    seen_note = _seen_sentence(seen, len(test))
    return metrics, f"{source}, scored on the PR's `{TEST_PATH}`. {seen_note}."


def seen_in_training(
    root: Path, base_sha: str, base_lock: Mapping[str, Any] | None, test: Any
) -> Any:
    """Which rows of the PR's test split were in the champion's training split (a boolean
    array), by row content on the columns both share; None when the base's train split is not
    in the DVC cache or remote. The split keeps this all False unless the base split otherwise
    (another seed, test_size or schema, or a split from before rows were assigned by content)."""
    import numpy as np
    import pandas as pd

    from gitops_ml.lineage.artifacts import check_md5
    from gitops_ml.lineage.rows import row_hashes

    md5 = out_md5(base_lock, TRAIN_PATH)
    if md5 is None:
        return None
    path = cache_path(root, md5)
    with tempfile.TemporaryDirectory(prefix="gitops-ml-seen-") as tmp:
        if not path.is_file():
            path = Path(tmp) / "train.parquet"
            if not _from_remote(root, base_sha, path, TRAIN_PATH):
                return None
        check_md5(path, md5, f"the champion's {TRAIN_PATH}", f"the dvc.lock of {base_sha[:12]}")
        base_train = pd.read_parquet(path)
    shared = sorted(set(base_train.columns) & set(test.columns), key=str)
    if not shared:
        return np.zeros(len(test), dtype=bool)
    return np.isin(row_hashes(test[shared]), row_hashes(base_train[shared]))


def _seen_sentence(seen: Any, rows: int) -> str:
    """How many of the PR's `rows` test rows the champion trained on (`seen`: a mask, or None)."""
    if seen is None:
        return (
            f"Test rows the champion saw in training: unknown (`{TRAIN_PATH}` of the base is "
            "not in the DVC cache or remote)"
        )
    return f"Test rows the champion saw in training: {int(seen.sum())} of {rows}"


def _unseen(
    root: Path, base_sha: str, base_lock: Mapping[str, Any] | None, test: Any
) -> tuple[Any, str]:
    """The PR's test rows the champion never trained on, and a sentence that says how many."""
    seen = seen_in_training(root, base_sha, base_lock, test)
    note = _seen_sentence(seen, len(test))
    if seen is None or not seen.any():
        return test, f"{note}."
    unseen = test[~seen].reset_index(drop=True)
    return unseen, (
        f"{note} (the base split its data otherwise): both models are scored on the "
        f"{len(unseen)} rows neither trained on."
    )


def load_challenger(root: Path) -> Any:
    """The PR's model in the workspace, once its md5 is the one the workspace's dvc.lock declares."""
    md5 = out_md5(read_lock(root / LOCK_PATH), MODEL_PATH)
    if md5 is None:
        raise GitopsMLError(f"{LOCK_PATH} declares no {MODEL_PATH} (run `dvc repro` first)")
    return load_model_file(root / MODEL_PATH, md5, f"{MODEL_PATH} in the workspace", LOCK_PATH)


def _fitting(model: Any, test: Any, params: Any) -> Any:
    """`model` if it can be scored on `test`; else NewBaseline says why not."""
    from gitops_ml.pr.baseline import NewBaseline, model_fit

    why = model_fit(model, test, params.data.target, params.data.task)
    if why is not None:
        raise NewBaseline(why)
    return model


def build_report(
    *,
    base: str,
    params_path: Path,
    gate_path: Path | None,
    rebuild: bool = True,
    committed_metrics: bool = False,
) -> str:
    """Collect everything from git and the workspace and render the markdown.

    `committed_metrics`: compare with the base's committed metrics instead of re-scoring the
    champion on the PR's test split (as `gitops-ml gate --committed-metrics`).
    """
    with contextlib.ExitStack() as stack:
        # The models are scored in a child forked first thing: it imports scikit-learn on the
        # other core while this process reads git, the test split and the feature flags. Both
        # use pandas: imported before the fork, it is imported once.
        worker = None
        if not committed_metrics:
            import pandas  # noqa: F401

            worker = stack.enter_context(forked.Worker(_score_models, preload=SCORING_MODULES))
        return _collect(stack, worker, base, params_path, gate_path, rebuild, committed_metrics)


def _collect(
    stack: contextlib.ExitStack,
    worker: forked.Worker | None,
    base: str,
    params_path: Path,
    gate_path: Path | None,
    rebuild: bool,
    committed_metrics: bool,
) -> str:
    """`build_report`'s work; `worker` scores the models (None with `committed_metrics`)."""
    from gitops_ml.lineage import git
    from gitops_ml.pr.baseline import NewBaseline, new_baseline_reason

    root = git.repo_root(Path.cwd())
    head_sha = git.resolve("HEAD", cwd=root)
    base_sha = git.resolve(base, cwd=root)
    merge = git.merge_base(base_sha, head_sha, cwd=root)
    notes = []
    if base_sha == head_sha:
        notes.append(f"`{base}` and HEAD are the same commit: every difference below is zero.")

    head_metrics = _read_json_file(root / METRICS_PATH)
    if not isinstance(head_metrics, Mapping):
        raise GitopsMLError(f"{METRICS_PATH}: not found in the workspace (run `dvc repro` first)")
    from gitops_ml.config import GITOPS_FILE, load_params, merge_settings, read_settings

    params = load_params(params_path)
    # Both files' settings: a changed gate threshold is a change reviewers must see.
    head_params_raw = read_settings(params_path)
    base_metrics = _json_at(base_sha, METRICS_PATH, root)
    base_params = _yaml_at(base_sha, PARAMS_PATH, root)
    try:
        base_params = merge_settings(base_params, _yaml_at(base_sha, GITOPS_FILE, root))
    except GitopsMLError as exc:
        notes.append(f"`{base}`'s settings are not comparable: {exc}")
    base_lock = dvclock.lock_at(base_sha, root)
    base_slices = _json_at(base_sha, SLICES_PATH, root)
    head_slices = _read_json_file(root / SLICES_PATH)

    data = ReportData(
        base_ref=base,
        base_sha=base_sha,
        head_sha=head_sha,
        merge_base=merge,
        primary=params.gate.primary,
        head_metrics=head_metrics,
        base_metrics=base_metrics if isinstance(base_metrics, Mapping) else None,
        head_params=head_params_raw,
        base_params=base_params if isinstance(base_params, Mapping) else None,
        head_slices=head_slices,
        base_slices=base_slices,
        slice_metric=_slice_metric(params),
        slices_source=f"Champion: `{base}`'s committed `{SLICES_PATH}`.",
        validation=_read_json_file(root / VALIDATION_PATH),
        notes=notes,
        tuned=read_tuned_file(root / TUNED_PATH),
        base_tuned=_json_at(base_sha, TUNED_PATH, root),
    )

    # Champion vs challenger on the PR's test set.
    data.new_baseline = new_baseline_reason(root, base_sha, base, params_path)
    finish = None
    if worker is not None and data.new_baseline is None:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitops-ml-report-")))
        finish = _start_scoring(
            data, worker, root, base_sha, base_lock, params, params_path, rebuild, tmp
        )
    elif worker is not None:
        worker.cancel()
    data.flags = feature_flag_lines(root, params, params_path)  # while the models are scored
    if finish is not None:
        try:
            finish()
        except NewBaseline as exc:
            data.new_baseline = str(exc)
            data.champion = data.challenger = None
    if data.new_baseline is not None:
        data.champion_source = ""
        data.base_slices = None
        data.slices_source = ""
    elif data.champion is None and data.base_metrics is not None:
        why = "`--committed-metrics` given." if committed_metrics else data.champion_source
        data.champion_source = (
            f"{why} Showing `{base}`'s committed metrics instead: **its test data may "
            "differ from the PR's** (a changed split or data set makes them incomparable)."
        )

    data.gate, data.gate_note = _gate(
        gate_path,
        params,
        root,
        base_sha,
        head_sha,
        (data.champion, data.champion_source),
        data.new_baseline,
    )
    figures = root / FIGURES_DIR
    data.figures = sorted(p.name for p in figures.glob("*.png")) if figures.is_dir() else []
    data.workflow_url = _workflow_url(os.environ)
    head_lock = _read_yaml_file(root / LOCK_PATH)
    data.run_url, data.lineage = _mlflow_lineage(
        out_md5(head_lock, MODEL_PATH), params.mlflow.experiment
    )
    return render_markdown(data)


#: What the scoring child imports as soon as it is forked, while this process reads git and the
#: data: the modules `_score_models` runs (scikit-learn's import is most of a report's time).
SCORING_MODULES = ("joblib", "gitops_ml.scoring", "gitops_ml.metrics", "gitops_ml.pr.baseline")


def _start_scoring(
    data: ReportData,
    worker: forked.Worker,
    root: Path,
    base_sha: str,
    base_lock: Mapping[str, Any] | None,
    params: Any,
    params_path: Path,
    rebuild: bool,
    tmp: Path,
) -> Callable[[], None] | None:
    """Hand the champion and the PR's test split to `worker` (`_score_models`) to score; the
    function returned waits for it and puts both models' scores into `data`. None: nothing to
    score (`data.champion_source` says why), and the worker is stopped."""
    found, source = champion_file(root, base_sha, base_lock, rebuild, tmp)
    data.champion_source = source
    test_file, model_file = root / TEST_PATH, root / MODEL_PATH
    if found is None or not test_file.exists():
        worker.cancel()
        if found is not None:
            data.champion_source = f"{source}, but `{TEST_PATH}` is not in the workspace."
        return None
    # The child loads both models while this process reads the test split.
    with_challenger = model_file.exists()
    worker.send((root, base_sha, params_path, found, with_challenger))
    import pandas as pd

    test, seen_note = _unseen(root, base_sha, base_lock, pd.read_parquet(test_file))
    worker.send(test)

    def finish() -> None:
        (champion, champion_draws), scored = worker.join()
        data.champion, data.base_slices = champion.metrics, champion.slices
        if scored is not None:
            challenger, challenger_draws = scored
            data.challenger, data.head_slices = challenger.metrics, challenger.slices
            data.intervals = delta_intervals(
                champion, challenger, test[params.data.target], params.data.task,
                draws=(champion_draws, challenger_draws),
            )  # fmt: skip
        data.slices_source = "Both models scored on the PR's test set."
        data.champion_source = (
            f"{source}; champion and challenger scored on the PR's `{TEST_PATH}` "
            f"({len(test)} rows) with the pipeline's metric functions. {seen_note}"
        )

    return finish


def _score_models(receive: Callable[[], Any]) -> tuple[Any, Any]:
    """In the scoring child (`_start_scoring`): ((champion's scores, its draws), the same for
    the challenger or None). The challenger is scored in a child of its own, on the other core.

    Errors are raised where scoring one model after the other would meet them: the champion's
    first; a challenger that does not load only once the champion is scored."""
    from gitops_ml.config import load_params

    root, base_sha, params_path, found, with_challenger = receive()
    params = load_params(params_path)  # as the parent read it (its Params do not pickle)
    champion_model = found.load(base_sha)
    challenger_model, challenger_error = None, None
    if with_challenger:
        try:
            challenger_model = load_challenger(root)
        except Exception as exc:
            challenger_error = exc
    test = receive()
    champion_model = _fitting(champion_model, test, params)
    if not with_challenger:
        return _score_one(champion_model, None, test, params, False), None
    # Both models are scored at once: each on its share of the cores, or the OpenMP and BLAS
    # threads of the two spin against each other (a report 5.4 s -> 4.8 s on two cores).
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, forked.usable_cores() // 2)):
        job = forked.call(_score_one, challenger_model, challenger_error, test, params, True)
        champion = _score_one(champion_model, None, test, params, True)
    return champion, job()


def _score_one(model: Any, error: Exception | None, test: Any, params: Any, draw: bool) -> Any:
    """(`model`'s scores on `test`, its bootstrap draws if `draw`), or `error` raised."""
    if error is not None:
        raise error
    scored = measured(model, test, params)
    return scored, _draws(scored, test, params) if draw else None


def feature_flag_lines(root: Path, params: Any, params_path: Path) -> list[str]:
    """The "Feature flags" section: evaluate's permutation importance as written (not
    recomputed) and the near duplicates among the model's inputs on the train split, that is its
    columns less the target and those the schema marks `exclude: true`."""
    from gitops_ml.pr import flags

    try:
        importance = json.loads((root / IMPORTANCE_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        importance = None
    if not isinstance(importance, list) or not importance:
        importance = None
    train = None
    features: list[str] = []
    if (root / TRAIN_PATH).is_file():
        import pandas as pd

        try:
            train = pd.read_parquet(root / TRAIN_PATH)
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): no duplicate check", TRAIN_PATH, exc)
    if train is not None:
        excluded = set(_excluded(params_path))
        features = [str(c) for c in train.columns if c != params.data.target and c not in excluded]
    found, seconds = flags.feature_flags(importance, train, features, seed=params.train.seed)
    log.info("feature flags: %d in %.0f ms", len(found), seconds * 1000)
    return flags.render_flags(
        found, importance_known=importance is not None, duplicates_known=train is not None
    )


def _excluded(params_path: Path) -> tuple[str, ...]:
    """The columns the workspace's schema marks `exclude: true` (none when it is unreadable)."""
    from gitops_ml.batches import schema_path
    from gitops_ml.schema import load_schema

    try:
        return load_schema(schema_path(None, params_path)).excluded
    except GitopsMLError:
        return ()


def _workflow_url(env: Mapping[str, str]) -> str | None:
    """The GitHub Actions run page (its artifacts hold the figures), from the runner's env."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(env.get(k) for k in keys):
        return None
    server, repo, run = (env[k] for k in keys)
    return f"{server.rstrip('/')}/{repo}/actions/runs/{run}"


def _slice_metric(params: Any) -> str:
    if params.gate.worst_slice is not None:
        return params.gate.worst_slice.metric
    if params.gate.disparity is not None:
        return params.gate.disparity.metric
    return {"binary": "roc_auc", "multiclass": "accuracy"}.get(params.data.task, "rmse")


def _read_yaml_file(path: Path) -> Any:
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, yaml.YAMLError):
        return None


def _gate(
    gate_path: Path | None,
    params: Any,
    root: Path,
    base_sha: str,
    head_sha: str,
    champion: tuple[Mapping[str, Any] | None, str] = (None, ""),
    new_baseline: str | None = None,
) -> tuple[Mapping[str, Any] | None, str]:
    """The gate verdict from gate.json when it was computed for this head against this base;
    otherwise the metric rules evaluated here (against `champion`, the champion's metrics on the
    PR's test split, when there are some)."""
    stale = ""
    if gate_path is not None and gate_path.exists():
        gate = _read_json_file(gate_path)
        if isinstance(gate, Mapping) and gate.get("base") == base_sha:
            note = ""
            if gate.get("head") not in (None, head_sha):
                note = f"`{gate_path}` was written for commit `{str(gate['head'])[:8]}`, not HEAD."
            return gate, note
        written_for = gate.get("base") if isinstance(gate, Mapping) else None
        stale = (
            f"`{gate_path}` was computed against "
            f"{'no base' if not written_for else f'`{str(written_for)[:8]}`'}, not this base: "
            "ignored. "
        )
    from gitops_ml.pr.gate import run_gate

    result = run_gate(
        params.gate,
        root=root,
        metrics_path=root / METRICS_PATH,
        slices_path=root / SLICES_PATH,
        base=base_sha,
        check_lock=False,
        rescore=lambda _sha: champion,
        new_baseline=new_baseline,
    )
    return result.to_dict(), (
        f"{stale}The metric rules were evaluated by the report; the stale dvc.lock rule "
        "runs in `gitops-ml gate`."
    )
