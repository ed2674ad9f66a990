"""The PR report's chart: each metric's change, challenger minus champion, with its 95% interval.

A Mermaid `xychart-beta` (GitHub draws Mermaid in comments), horizontal: one row per metric,
labelled on the left, so labels never crowd; the value axis runs left to right with zero on it,
and every value is oriented so that right is better (lower-is-better metrics are negated).

Mermaid has no interval mark and draws every bar from the axis's left edge, so an interval is
painted in layers, one bar series each, later ones on top, in the palette's colours:
the bar to `high` in its verdict's colour, a dark bar to just past the delta, the verdict's
colour again to just short of it (what is left is a thin marker at the delta), and a bar of the
background's colour to `low`, which hides everything left of the interval. A line at zero is drawn
last. A metric that has only a delta (no interval: the champion was not re-scored, or the metric
has no bootstrap) gets a bar from zero to its delta, coloured by its direction.

Mermaid draws no legend: the title says what the colours mean. The init directive fixes the
theme's colours, so the chart reads the same in GitHub's light and dark modes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gitops_ml.config import LOWER_IS_BETTER, TASK_METRICS

#: Verdict -> colour: Okabe-Ito blue and vermillion (told apart by colour-blind readers), grey.
COLOURS = {"better": "#0072B2", "worse": "#D55E00", "no real change": "#A0A0A0"}
NAMES = {"better": "blue", "worse": "orange", "no real change": "grey"}
MARKER = "#202020"
BACKGROUND = "#FFFFFF"
TEXT = "#303030"
ZERO_LINE = "#606060"
#: Metrics in the units of the target (a regression's rmse of 3200): charted only with each other.
TARGET_UNITS = frozenset({"rmse", "mae"})
#: Half the width of the delta's marker, as a share of the value axis.
MARKER_HALF = 0.004
#: The chart's size in pixels (Mermaid's default is 700 x 500).
WIDTH = 760
ROW_HEIGHT = 44
MIN_HEIGHT = 220

_ORDER = list(dict.fromkeys(m for metrics in TASK_METRICS.values() for m in metrics))


@dataclass(frozen=True)
class Row:
    """One metric, oriented: `delta`, `low` and `high` are improvements (right is better)."""

    label: str
    delta: float
    low: float
    high: float
    verdict: str  # a key of COLOURS
    interval: bool


def metric_deltas(
    champion: Mapping[str, Any] | None, challenger: Mapping[str, Any]
) -> dict[str, dict[str, float]]:
    """metric -> {"delta": challenger - champion} for the metrics both sides have: the chart's
    input when there are no intervals (the champion's committed metrics, not re-scored)."""
    out: dict[str, dict[str, float]] = {}
    for name in _ORDER:
        old, new = _finite((champion or {}).get(name)), _finite(challenger.get(name))
        if old is not None and new is not None:
            out[name] = {"delta": new - old}
    return out


def delta_chart(intervals: Mapping[str, Mapping[str, Any]], primary: str) -> str | None:
    """The ```mermaid block for `intervals` (metric -> {"delta", "low", "high", "real"}; entries
    with only "delta" are drawn without an interval), or None when there is nothing to draw.

    The primary metric comes first, the others in their order in `intervals`. Metrics in the
    target's units (rmse, mae) and unitless ones (scores, log loss, r2) do not share an axis:
    those of the primary's kind are charted."""
    rows = _rows(intervals, primary)
    if not rows:
        return None
    with_interval = any(r.interval for r in rows)
    bottom, top = _axis(rows)
    nudge = MARKER_HALF * (top - bottom)
    kinds = list(COLOURS)

    def only(kind: str, values: list[float]) -> list[float]:
        return [v if r.verdict == kind else bottom for r, v in zip(rows, values, strict=True)]

    highs = [r.high for r in rows]
    past = [min(r.delta + nudge, r.high) if r.high > r.low else r.delta + nudge for r in rows]
    short = [max(r.delta - nudge, r.low) for r in rows]
    series = [only(k, highs) for k in kinds] + [past] + [only(k, short) for k in kinds]
    series.append([r.low for r in rows])
    palette = [COLOURS[k] for k in kinds] + [MARKER] + [COLOURS[k] for k in kinds]
    palette += [BACKGROUND, ZERO_LINE]

    if with_interval:
        title = "Challenger - champion, 95% interval, right is better"
    else:
        title = "Challenger - champion (no interval), right is better"
    present = {r.verdict for r in rows}
    legend = ", ".join(
        f"{NAMES[k]}: {k if with_interval or k != 'no real change' else 'unchanged'}"
        for k in kinds
        if k in present
    )
    init = {
        "theme": "base",
        # Layered bars of one size: without crisp edges the lower ones show as a faint outline.
        "themeCSS": ".plot rect { shape-rendering: crispEdges; }",
        "xyChart": {"width": WIDTH, "height": max(MIN_HEIGHT, 120 + ROW_HEIGHT * len(rows))},
        "themeVariables": {
            "background": BACKGROUND,
            "xyChart": {
                "backgroundColor": BACKGROUND,
                "titleColor": TEXT,
                "xAxisLabelColor": TEXT,
                "xAxisTitleColor": TEXT,
                "xAxisTickColor": TEXT,
                "xAxisLineColor": TEXT,
                "yAxisLabelColor": TEXT,
                "yAxisTitleColor": TEXT,
                "yAxisTickColor": TEXT,
                "yAxisLineColor": TEXT,
                "plotColorPalette": ", ".join(palette),
            },
        },
    }
    labels = ", ".join(f'"{r.label}"' for r in rows)
    lines = [
        "```mermaid",
        f"%%{{init: {json.dumps(init)}}}%%",
        "xychart-beta horizontal",
        f'    title "{title}"',
        f"    x-axis [{labels}]",
        f'    y-axis "{legend}" {_num(bottom)} --> {_num(top)}',
    ]
    lines += [f"    bar [{', '.join(_num(v) for v in values)}]" for values in series]
    lines += [f"    line [{', '.join('0' for _ in rows)}]", "```"]
    return "\n".join(lines)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _rows(intervals: Mapping[str, Mapping[str, Any]], primary: str) -> list[Row]:
    """The charted metrics, oriented; entries with a non-finite number are left out."""
    in_target_units = primary in TARGET_UNITS
    names = [primary] + [m for m in intervals if m != primary]
    rows = []
    for name in names:
        entry = intervals.get(name)
        if entry is None or (name in TARGET_UNITS) != in_target_units:
            continue
        delta = _finite(entry.get("delta"))
        low, high = _finite(entry.get("low")), _finite(entry.get("high"))
        if delta is None:
            continue
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        label = f"{name} (negated)" if sign < 0 else name
        delta *= sign
        interval = low is not None and high is not None
        if interval:
            low, high = sorted((sign * low, sign * high))
            real = entry.get("real")
            real = not low <= 0 <= high if not isinstance(real, bool) else real
        else:
            low, high, real = min(0.0, delta), max(0.0, delta), delta != 0
        verdict = ("better" if delta > 0 else "worse") if real else "no real change"
        rows.append(Row(label.replace('"', "'"), delta, low, high, verdict, interval))
    if any(r.interval for r in rows):
        rows = [r if r.interval else replace(r, label=f"{r.label} (no interval)") for r in rows]
    return rows


def _axis(rows: list[Row]) -> tuple[float, float]:
    """A range with zero and every interval inside it, a margin either side, in round steps."""
    lo = min(0.0, *(r.low for r in rows))
    hi = max(0.0, *(r.high for r in rows))
    span = hi - lo
    if span == 0:  # identical models
        return -0.01, 0.01
    step = 10.0 ** (math.floor(math.log10(span)) - 1)
    bottom = math.floor(round((lo - 0.08 * span) / step, 9)) * step
    top = math.ceil(round((hi + 0.08 * span) / step, 9)) * step
    return bottom, top


def _num(value: float) -> str:
    """A plain decimal for the parser (no exponent), short enough to read."""
    text = f"{value:.8f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
