"""Absolute metric limits, shared by the pull request's quality gate and the drift check's
quality alert: ``gate.thresholds`` of gitops.yaml applied to a mapping of metrics.

A limit is a minimum for higher-is-better metrics and a maximum for the lower-is-better ones
(`config.LOWER_IS_BETTER`); a metric that is missing or null fails its limit. The gate
(`gitops_ml.pr.gate`) applies them to the test split's metrics, `gitops-ml drift`
(`gitops_ml.monitor.drift`) to a labelled batch's, so both say the same thing about the same
numbers and neither depends on the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gitops_ml.config import LOWER_IS_BETTER

#: Tolerance for float comparisons: metrics are rounded to 6 decimals.
EPS = 1e-9


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome; a skipped rule counts as passed."""

    name: str
    passed: bool
    observed: Any
    limit: Any
    message: str
    skipped: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


def fmt(value: Any) -> str:
    """A float to 4 decimals, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metric_value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """The metric as a float; None when it is absent, not a number, or NaN."""
    if metrics is None:
        return None
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def threshold_rules(
    metrics: Mapping[str, Any], thresholds: Mapping[str, float]
) -> list[RuleResult]:
    """Absolute limits: a minimum, or a maximum for lower-is-better metrics."""
    results = []
    for name, limit in thresholds.items():
        lower = name in LOWER_IS_BETTER
        kind = "maximum" if lower else "minimum"
        observed = metric_value(metrics, name)
        if observed is None:
            results.append(
                RuleResult(f"threshold:{name}", False, None, limit,
                           f"{name} is missing or null in the metrics; the {kind} is {limit}")
            )  # fmt: skip
            continue
        passed = observed <= limit + EPS if lower else observed >= limit - EPS
        op = ("<=" if passed else ">") if lower else (">=" if passed else "<")
        results.append(
            RuleResult(f"threshold:{name}", passed, observed, limit,
                       f"{name} {fmt(observed)} {op} {fmt(limit)} ({kind})")
        )  # fmt: skip
    return results
