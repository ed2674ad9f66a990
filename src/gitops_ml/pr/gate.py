"""The quality gate a pull request must pass: the rules of `gitops.yaml`'s `gate:` section.

Rules, each reported with its observed value, its limit and a one-line message:

- ``threshold:<metric>``: an absolute limit, a minimum for higher-is-better metrics and a maximum
  for the lower-is-better ones (`config.LOWER_IS_BETTER`).
- ``max_regression:<metric>``: the largest allowed worsening against the champion (the base
  branch's committed `reports/metrics.json`); skipped, with a note, when there is no champion yet.
  A negative limit is a required improvement (a retraining pull request must do better).
- ``worst_slice:<metric>``: the weakest slice of `reports/slices.json` with at least `min_rows`
  rows must reach `min`; smaller slices are listed but not gated.
- ``baseline:<metric>``: the model must beat, by `margin`, the simple baseline the evaluate stage
  fits on the same train split and scores on the same test split (`reports/baseline.json`,
  beside the metrics): a model no better than a linear one is not worth its complexity, and one
  worse than it points at a broken pipeline.
- ``disparity:<metric>``: within each evaluate.slices column, the gap between the best and the
  worst group (groups of at least `min_rows` rows) must stay within `max_gap`; the rule names
  the column and the two groups of the largest gap.
- ``stale_lock``: the committed `dvc.lock` must record the dependencies the workspace really has.

How the stale-lock rule knows the workspace's dependency hashes: two sources, both cheap.
(1) The committed `dvc.lock` (``git show HEAD:dvc.lock``) is compared stage by stage with the
workspace `dvc.lock`; after the `dvc repro` CI runs, the workspace file holds the hashes of the
dependencies the runner actually has. (2) `dvc status` compares the workspace files and params
with the workspace `dvc.lock`, which catches the local case where nobody ran `dvc repro` after an
edit. A changed command, param or source dependency (one no stage produces) means the lock is
stale: a failure naming the stage and the dependency. Differences in outputs, and in dependencies
that are another stage's outputs, are only warnings: the same inputs can give other bytes on
another OS or CPU, and the stage that produced them is checked through its own dependencies.
The model is the exception: merging promotes the model the committed lock names, so it must be
the one these inputs built and the gate and report evaluated (models.py makes its bytes the same
on every machine). In CI the workspace lock starts from the base's, never the PR's own claim.

Everything above the I/O section is pure and unit-tested with inline dicts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gitops_ml.config import (
    LOWER_IS_BETTER,
    BaselineRule,
    DisparityRule,
    GateConfig,
    WorstSliceRule,
)
from gitops_ml.errors import DataError
from gitops_ml.lineage import dvclock

# The threshold rules (and the rule result every rule returns) live in a module of their own,
# shared with the drift check's quality alert; gate.threshold_rules etc. stay importable here.
from gitops_ml.thresholds import EPS, RuleResult, threshold_rules
from gitops_ml.thresholds import fmt as _fmt
from gitops_ml.thresholds import metric_value as _value

log = logging.getLogger(__name__)

STALE_MESSAGE = "dvc.lock is stale: run `dvc repro` and commit dvc.lock"


@dataclass(frozen=True)
class GateResult:
    rules: list[RuleResult]
    warnings: list[str]
    fail_on_violation: bool
    base: str | None = None
    head: str | None = None
    primary: Mapping[str, Any] = field(default_factory=dict)
    champion_source: str | None = None  # what the regression rules compared with
    new_baseline: str | None = None  # why the champion is not comparable (another data contract)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": "passed" if self.passed else "failed",
            "fail_on_violation": self.fail_on_violation,
            "base": self.base,
            "head": self.head,
            "primary": dict(self.primary),
            "champion_source": self.champion_source,
            "new_baseline": self.new_baseline,
            "rules": [{**asdict(r), "details": dict(r.details)} for r in self.rules],
            "warnings": list(self.warnings),
        }


# -- metric rules ------------------------------------------------------------------------------


def worsening(name: str, champion: float, challenger: float) -> float:
    """How much worse the challenger is, in the metric's units (negative: it is better)."""
    return challenger - champion if name in LOWER_IS_BETTER else champion - challenger


def regression_rules(
    metrics: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    max_regression: Mapping[str, float],
    *,
    no_champion_reason: str = "the base has no reports/metrics.json",
) -> list[RuleResult]:
    """Largest allowed worsening against the champion; skipped when there is none yet."""
    results = []
    for name, limit in max_regression.items():
        rule = f"max_regression:{name}"
        if champion is None:
            why = (
                no_champion_reason
                if no_champion_reason.startswith("new baseline")
                else f"no champion yet ({no_champion_reason})"
            )
            results.append(
                RuleResult(rule, True, None, limit, f"{why}: {name} regression not checked",
                           skipped=True)
            )  # fmt: skip
            continue
        old, new = _value(champion, name), _value(metrics, name)
        if new is None:
            results.append(
                RuleResult(rule, False, None, limit, f"{name} is missing or null in the metrics")
            )
            continue
        if old is None:
            results.append(
                RuleResult(rule, True, None, limit,
                           f"the champion has no {name}: regression not checked", skipped=True)
            )  # fmt: skip
            continue
        worse = round(worsening(name, old, new), 6)
        passed = worse <= limit + EPS
        if limit < 0:  # a required improvement
            how = f"{_change(worse)} (must improve by at least {_fmt(-limit)})"
        elif worse > 0:
            how = f"worse by {_fmt(worse)} (allowed {_fmt(limit)})"
        else:
            how = f"{_change(worse)} (allowed worsening {_fmt(limit)})"
        results.append(
            RuleResult(rule, passed, worse, limit,
                       f"{name} {_fmt(new)} vs champion {_fmt(old)}: {how}",
                       details={"champion": old, "challenger": new})
        )  # fmt: skip
    return results


def _change(worse: float) -> str:
    """'better by x', 'worse by x' or 'unchanged', from a worsening (see `worsening`)."""
    if worse > 0:
        return f"worse by {_fmt(worse)}"
    return f"better by {_fmt(-worse)}" if worse < 0 else "unchanged"


def worst_slice_rule(slices: Mapping[str, Any] | None, rule: WorstSliceRule) -> RuleResult:
    """The weakest slice with at least `min_rows` rows must reach `rule.min`."""
    name = f"worst_slice:{rule.metric}"
    gated: list[tuple[float, str, int]] = []
    small: list[str] = []
    for column, values in (slices or {}).items():
        for value, stats in values.items():
            n = int(stats.get("n", 0))
            observed = _value(stats, rule.metric)
            label = f"{column}={value}"
            if n < rule.min_rows or observed is None:
                shown = "n/a" if observed is None else _fmt(observed)
                small.append(f"{label} (n={n}, {rule.metric} {shown})")
            else:
                gated.append((observed, label, n))
    note = ""
    if small:
        note = f"; not gated (under {rule.min_rows} rows or no {rule.metric}): " + ", ".join(small)
    details = {"not_gated": small}
    if not gated:
        return RuleResult(
            name, True, None, rule.min,
            f"no slice with at least {rule.min_rows} rows to gate{note}",
            skipped=True, details=details,
        )  # fmt: skip
    observed, label, n = min(gated)
    passed = observed >= rule.min - EPS
    op = ">=" if passed else "<"
    return RuleResult(
        name, passed, observed, rule.min,
        f"worst slice {label} (n={n}): {rule.metric} {_fmt(observed)} {op} {_fmt(rule.min)}{note}",
        details={**details, "slice": label, "n": n},
    )  # fmt: skip


def baseline_rule(
    metrics: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    rule: BaselineRule,
    *,
    missing_reason: str = "no baseline results",
) -> RuleResult:
    """The model must beat the simple baseline (`baseline`: reports/baseline.json, with its
    `model` and its `metrics` on the same test split) by at least `rule.margin`.

    Observed is the model's advantage in the metric's units (negative: the baseline is better).
    """
    name, metric = f"baseline:{rule.metric}", rule.metric
    need = f"must be better by at least {_fmt(rule.margin)}"
    if baseline is None:
        return RuleResult(name, False, None, rule.margin,
                          f"{missing_reason}: cannot compare {metric} with the baseline")  # fmt: skip
    model = str(baseline.get("model") or "baseline")
    scores = baseline.get("metrics")
    old = _value(scores if isinstance(scores, Mapping) else None, metric)
    new = _value(metrics, metric)
    if new is None or old is None:
        which = "the metrics" if new is None else f"the baseline's ({model}) metrics"
        return RuleResult(name, False, None, rule.margin,
                          f"{metric} is missing or null in {which}")  # fmt: skip
    advantage = round(-worsening(metric, old, new), 6)
    passed = advantage >= rule.margin - EPS
    return RuleResult(
        name, passed, advantage, rule.margin,
        f"{metric} {_fmt(new)} vs baseline {model} {_fmt(old)}: {_change(-advantage)} ({need})",
        details={"baseline": old, "challenger": new, "baseline_model": model},
    )  # fmt: skip


def disparity_rule(slices: Mapping[str, Any] | None, rule: DisparityRule) -> RuleResult:
    """Within each slice column, the best and the worst group of at least `min_rows` rows may
    differ by at most `rule.max_gap`; the column with the largest gap decides."""
    name, metric = f"disparity:{rule.metric}", rule.metric
    lower = metric in LOWER_IS_BETTER
    gaps: list[tuple[float, str, tuple[str, float, int], tuple[str, float, int]]] = []
    small: list[str] = []
    for column, values in (slices or {}).items():
        groups = []
        for value, stats in values.items():
            n = int(stats.get("n", 0))
            observed = _value(stats, metric)
            if n < rule.min_rows or observed is None:
                shown = "n/a" if observed is None else _fmt(observed)
                small.append(f"{column}={value} (n={n}, {metric} {shown})")
            else:
                groups.append((str(value), observed, n))
        if len(groups) >= 2:
            # best first: the highest value, or the lowest for lower-is-better metrics
            ranked = sorted(groups, key=lambda g: (g[1], g[0]), reverse=not lower)
            best, worst = ranked[0], ranked[-1]
            gaps.append((round(abs(best[1] - worst[1]), 6), str(column), best, worst))
    note = ""
    if small:
        note = f"; not compared (under {rule.min_rows} rows or no {metric}): " + ", ".join(small)
    per_column = {column: gap for gap, column, _, _ in gaps}
    if not gaps:
        return RuleResult(
            name, True, None, rule.max_gap,
            f"no slice column has two groups of at least {rule.min_rows} rows to compare{note}",
            skipped=True, details={"not_compared": small},
        )  # fmt: skip
    gap, column, best, worst = max(gaps, key=lambda g: (g[0], g[1]))
    passed = gap <= rule.max_gap + EPS
    op = "<=" if passed else ">"
    return RuleResult(
        name, passed, gap, rule.max_gap,
        f"largest gap in {column}: {column}={best[0]} (n={best[2]}) {metric} {_fmt(best[1])} vs "
        f"{column}={worst[0]} (n={worst[2]}) {_fmt(worst[1])}: gap {_fmt(gap)} {op} "
        f"{_fmt(rule.max_gap)}{note}",
        details={"column": column, "groups": [best[0], worst[0]], "gaps": per_column,
                 "not_compared": small},
    )  # fmt: skip


# -- the stale-lock rule ------------------------------------------------------------------------


def _produced(*locks: Mapping[str, Any] | None) -> set[str]:
    """Every path some stage writes: as a dependency it is checked through its producer."""
    return {
        path
        for lock in locks
        for stage in dvclock.stages(lock).values()
        for path in dvclock.stage_outs(stage)
    }


def lock_differences(
    committed: Mapping[str, Any], workspace: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """(stale items, warnings) from the committed vs the workspace dvc.lock, stage by stage."""
    stale: list[str] = []
    warnings: list[str] = []
    produced = _produced(committed, workspace)
    old_stages, new_stages = dvclock.stages(committed), dvclock.stages(workspace)
    for name in sorted(set(old_stages) | set(new_stages)):
        if name not in old_stages:
            stale.append(f"stage '{name}' is not in the committed dvc.lock")
            continue
        if name not in new_stages:
            stale.append(f"stage '{name}' is in the committed dvc.lock but not in the workspace's")
            continue
        old, new = old_stages[name], new_stages[name]
        if old.get("cmd") != new.get("cmd"):
            stale.append(f"stage '{name}': command changed")
        old_deps, new_deps = dvclock.stage_deps(old), dvclock.stage_deps(new)
        for path in sorted(set(old_deps) | set(new_deps)):
            if old_deps.get(path) == new_deps.get(path):
                continue
            if path not in new_deps or path not in old_deps:
                change = "added" if path not in old_deps else "removed"
                stale.append(f"stage '{name}': dependency {path} {change}")
            elif path in produced:
                warnings.append(
                    f"stage '{name}': input {path} (another stage's output) has another hash "
                    "than in the committed dvc.lock"
                )
            else:
                stale.append(
                    f"stage '{name}': dependency {path} changed "
                    f"({dvclock.short(old_deps[path])} -> {dvclock.short(new_deps[path])})"
                )
        old_params, new_params = dvclock.stage_params(old), dvclock.stage_params(new)
        for key in sorted(set(old_params) | set(new_params)):
            if key not in old_params or key not in new_params:
                stale.append(f"stage '{name}': param {key} added or removed")
            elif old_params[key] != new_params[key]:
                stale.append(
                    f"stage '{name}': param {key} changed "
                    f"({dvclock.short(old_params[key])} -> {dvclock.short(new_params[key])})"
                )
        old_outs, new_outs = dvclock.stage_outs(old), dvclock.stage_outs(new)
        for path in sorted(set(old_outs) & set(new_outs)):
            if old_outs[path] == new_outs[path]:
                continue
            if (name, path) == (dvclock.TRAIN_STAGE, dvclock.MODEL_PATH):
                stale.append(
                    f"stage '{name}': the committed dvc.lock names model "
                    f"{dvclock.short(old_outs[path])}, these inputs built "
                    f"{dvclock.short(new_outs[path])}: merging would promote a model nobody "
                    "evaluated (commit the dvc.lock this run wrote: in CI, pr-report's dvc.lock)"
                )
            else:
                warnings.append(
                    f"stage '{name}': output {path} has another hash than in the committed "
                    "dvc.lock (same inputs, other bytes: another OS or CPU, or a hand-edited "
                    "result); the numbers here are the ones computed from the inputs"
                )
    return stale, warnings


def status_differences(
    status: Mapping[str, Any], produced: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """(stale items, warnings) from `dvc status --json`: the workspace vs its dvc.lock."""
    produced = set(produced)
    stale: list[str] = []
    warnings: list[str] = []
    for name, entries in sorted(status.items()):
        name = name.rsplit(":", 1)[-1]  # "dvc.yaml:train" for pipelines in other files
        for entry in entries:
            if isinstance(entry, str):
                if entry != "always changed":
                    stale.append(f"stage '{name}': {entry}")
                continue
            for kind, changes in entry.items():
                if kind == "changed deps":
                    for path, state in changes.items():
                        if isinstance(state, Mapping):  # params: {key: "modified"}
                            stale.extend(
                                f"stage '{name}': param {key} {how} in {path}"
                                for key, how in state.items()
                            )
                        elif path in produced:
                            warnings.append(
                                f"stage '{name}': input {path} (another stage's output) is "
                                f"{state} in the workspace"
                            )
                        else:
                            stale.append(f"stage '{name}': dependency {path} {state}")
                elif kind == "changed outs":
                    paths = ", ".join(f"{p} ({s})" for p, s in changes.items())
                    warnings.append(f"stage '{name}': outputs differ from dvc.lock: {paths}")
                else:
                    stale.append(f"stage '{name}': {kind}")
    return stale, warnings


def stale_lock_rule(
    committed: Mapping[str, Any] | None,
    workspace: Mapping[str, Any] | None,
    status: Mapping[str, Any] | None,
) -> tuple[RuleResult, list[str]]:
    """The committed dvc.lock against the workspace's dependencies; output changes only warn."""
    limit = "the committed dvc.lock records the workspace's dependencies"
    if committed is None:
        return (
            RuleResult("stale_lock", False, "no dvc.lock committed", limit,
                       "dvc.lock is not committed: run `dvc repro` and commit dvc.lock"),
            [],
        )  # fmt: skip
    stale: list[str] = []
    warnings: list[str] = []
    if workspace is not None:
        stale, warnings = lock_differences(committed, workspace)
    if status:
        more, more_warnings = status_differences(status, _produced(committed, workspace))
        stale += [s for s in more if s not in stale]
        warnings += more_warnings
    if stale:
        return (
            RuleResult("stale_lock", False, stale, limit, f"{STALE_MESSAGE} ({'; '.join(stale)})"),
            warnings,
        )
    return (
        RuleResult("stale_lock", True, [], limit, "dvc.lock records the workspace's dependencies"),
        warnings,
    )


def evaluate_gate(
    cfg: GateConfig,
    metrics: Mapping[str, Any],
    *,
    champion: Mapping[str, Any] | None,
    slices: Mapping[str, Any] | None,
    baseline: Mapping[str, Any] | None = None,
    lock_rule: tuple[RuleResult, list[str]] | None = None,
    no_champion_reason: str = "the base has no reports/metrics.json",
    no_baseline_reason: str = "no baseline results",
    base: str | None = None,
    head: str | None = None,
    intervals: Mapping[str, Mapping[str, Any]] | None = None,
) -> GateResult:
    """Every rule of `cfg` on the PR's metrics, in a fixed order."""
    rules = threshold_rules(metrics, cfg.thresholds)
    rules += regression_rules(
        metrics, champion, cfg.max_regression, no_champion_reason=no_champion_reason
    )
    if cfg.worst_slice is not None:
        rules.append(worst_slice_rule(slices, cfg.worst_slice))
    if cfg.baseline is not None:
        rules.append(
            baseline_rule(metrics, baseline, cfg.baseline, missing_reason=no_baseline_reason)
        )
    if cfg.disparity is not None:
        rules.append(disparity_rule(slices, cfg.disparity))
    if cfg.significant:
        why = (
            no_champion_reason
            if champion is None
            else ("the champion was not re-scored on the PR's test rows")
        )
        rules += significance_rules(intervals, cfg.significant, missing_reason=why)
    warnings: list[str] = []
    if lock_rule is not None:
        rules.append(lock_rule[0])
        warnings += lock_rule[1]
    primary = {
        "metric": cfg.primary,
        "value": _value(metrics, cfg.primary),
        "champion": _value(champion, cfg.primary),
    }
    return GateResult(rules, warnings, cfg.fail_on_violation, base, head, primary)


def significance_rules(
    intervals: Mapping[str, Mapping[str, Any]] | None,
    metrics: Sequence[str],
    *,
    missing_reason: str = "the champion was not re-scored on the PR's test rows",
) -> list[RuleResult]:
    """``significant:<metric>``: the challenger's improvement must be real, the whole paired
    bootstrap interval of the delta on the better side of zero (above it, or below it for
    lower-is-better metrics). A delta whose interval holds zero is noise, not an improvement."""
    rules = []
    for name in metrics:
        interval = (intervals or {}).get(name)
        limit = "the 95% interval of the delta clears zero"
        if interval is None:
            rules.append(RuleResult(f"significant:{name}", True, None, limit,
                                    f"no interval: {missing_reason}", skipped=True))  # fmt: skip
            continue
        low, high, delta = interval["low"], interval["high"], interval["delta"]
        lower = name in LOWER_IS_BETTER
        passed = high < 0 if lower else low > 0
        bounds = f"{delta:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}]"
        if passed:
            message = f"{name} {bounds}: a real improvement on the PR's test rows"
        elif low <= 0 <= high:
            message = f"{name} {bounds}: the interval holds zero, no real change"
        else:
            message = f"{name} {bounds}: worse than the champion"
        rules.append(RuleResult(f"significant:{name}", passed, delta, limit, message,
                                details=dict(interval)))  # fmt: skip
    return rules


def summary_lines(result: GateResult) -> list[str]:
    """One line per rule, then the warnings and the verdict: what the CLI prints."""
    lines = [f"champion: {result.champion_source}"] if result.champion_source else []
    if result.new_baseline:
        lines.append(f"new baseline: {result.new_baseline}")
    for rule in result.rules:
        tag = "SKIP" if rule.skipped else ("PASS" if rule.passed else "FAIL")
        lines.append(f"{tag} {rule.name}: {rule.message}")
    lines += [f"warning: {w}" for w in result.warnings]
    failed = sum(not r.passed for r in result.rules)
    verdict = "passed" if result.passed else "failed"
    lines.append(f"gate {verdict}: {len(result.rules)} rules, {failed} failed")
    return lines


# -- I/O ----------------------------------------------------------------------------------------


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found (run `dvc repro` first)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: {what} is not valid JSON ({exc})") from None


def parse_json_text(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DataError(f"{what} is not valid JSON ({exc})") from None


#: The simple baseline's results, written by the evaluate stage beside reports/metrics.json.
BASELINE_FILE = "baseline.json"


def read_baseline(path: Path, *, wanted: bool = True) -> tuple[Mapping[str, Any] | None, str]:
    """reports/baseline.json and, when it cannot be had, why (the baseline rule's message)."""
    if not wanted:
        return None, ""
    if not path.exists():
        return None, (
            f"{path} not found (the evaluate stage writes it when dvc.yaml gives it --train and "
            "--baseline; run `dvc repro`)"
        )
    baseline = read_json(path, "baseline results")
    if not isinstance(baseline, Mapping) or not isinstance(baseline.get("metrics"), Mapping):
        raise DataError(f"{path}: baseline results must be a JSON object with a 'metrics' object")
    return baseline, ""


def run_gate(
    cfg: GateConfig,
    *,
    root: Path,
    metrics_path: Path,
    slices_path: Path,
    base: str | None,
    head: str = "HEAD",
    check_lock: bool = True,
    rescore: Callable[[str], tuple[Mapping[str, Any] | None, str]] | None = None,
    new_baseline: str | None = None,
    baseline_path: Path | None = None,
    intervals: Callable[[], Mapping[str, Mapping[str, Any]] | None] | None = None,
) -> GateResult:
    """Gather the inputs from the workspace and git, then evaluate every rule.

    `rescore(base_sha)` gives the champion's metrics on the PR's own test split (and where the
    model came from); without it, or when it finds no model, the regression rules compare with
    the base's committed metrics, which were measured on the base's test split.
    `baseline_path` (default: `BASELINE_FILE` beside the metrics, where the evaluate stage
    writes it) is read only when `cfg.baseline` is set. `intervals()`, asked after `rescore`,
    gives the deltas' bootstrap intervals that rescoring computed (None when it did not).
    """
    from gitops_ml.lineage import git
    from gitops_ml.pr.baseline import NewBaseline

    metrics = read_json(metrics_path, "metrics")
    if not isinstance(metrics, Mapping):
        raise DataError(f"{metrics_path}: metrics must be a JSON object")
    slices = read_json(slices_path, "slice metrics") if slices_path.exists() else None
    baseline, no_baseline = read_baseline(
        baseline_path or metrics_path.with_name(BASELINE_FILE), wanted=cfg.baseline is not None
    )
    rel = _relative(metrics_path, root)
    champion = None
    reason = "no --base given"
    base_sha = None
    champion_source = None
    if base is not None:
        base_sha = git.resolve(base, cwd=root)
        reason = f"{base} has no {rel}"
        if new_baseline is None:
            committed = parse_json_text(git.show(base_sha, rel, cwd=root), f"{base}:{rel}")
            try:
                rescored, why = rescore(base_sha) if rescore is not None else (None, "")
            except NewBaseline as exc:
                new_baseline, rescored, committed = str(exc), None, None
            if rescored is not None:
                champion, champion_source = rescored, why
            elif committed is not None:
                champion = committed
                champion_source = (
                    f"{base}'s committed {rel} (its test split may differ from the PR's)"
                )
                if why:
                    champion_source += f"; {why}"
        if new_baseline is not None:
            reason = f"new baseline: {new_baseline}"
    head_sha = git.resolve(head, cwd=root)
    lock_rule = None
    if check_lock:
        committed = dvclock.lock_at(head_sha, root)
        ws_path = root / dvclock.LOCK_PATH
        workspace = dvclock.read_lock(ws_path) if ws_path.exists() else None
        status = dvclock.dvc_status(root) if committed is not None else None
        lock_rule = stale_lock_rule(committed, workspace, status)
    result = evaluate_gate(
        cfg,
        metrics,
        champion=champion,
        slices=slices,
        baseline=baseline,
        lock_rule=lock_rule,
        no_champion_reason=reason,
        no_baseline_reason=no_baseline,
        base=base_sha,
        head=head_sha,
        intervals=intervals() if intervals is not None and champion_source else None,
    )
    return replace(result, champion_source=champion_source, new_baseline=new_baseline)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise DataError(f"{path} is not inside the repository {root}") from None
