"""The report's delta chart (`gitops_ml.pr.chart`) as Mermaid source: what each row asks for.

How Mermaid draws it is checked in test_report_mermaid.py (jsdom) and test_chart_browser.py."""

from __future__ import annotations

import json
import math
import re

from gitops_ml.pr import chart as c
from tests.chart_cases import BINARY, CHALLENGER, CHAMPION, REGRESSION, interval


def _parts(block: str) -> dict:
    init = json.loads(re.search(r"^%%\{init: (.*)\}%%$", block, re.MULTILINE).group(1))
    bottom, top = re.search(r'y-axis "([^"]*)" (\S+) --> (\S+)', block).groups()[1:]
    return {
        "init": init,
        "title": re.search(r'title "([^"]*)"', block).group(1),
        "legend": re.search(r'y-axis "([^"]*)"', block).group(1),
        "labels": re.findall(r'"([^"]*)"', re.search(r"x-axis \[(.*)\]", block).group(1)),
        "axis": (float(bottom), float(top)),
        "bars": [[float(v) for v in b.split(", ")] for b in re.findall(r"bar \[(.*)\]", block)],
        "line": re.search(r"line \[(.*)\]", block).group(1),
    }


def test_rows_are_oriented_so_that_right_is_better() -> None:
    p = _parts(c.delta_chart(BINARY, "roc_auc"))
    assert p["labels"] == [
        "roc_auc", "accuracy", "precision", "recall", "f1", "log_loss (negated)", "brier (negated)",
    ]  # fmt: skip
    highs_blue, highs_orange, highs_grey, _, _, _, _, lows = p["bars"]
    bottom, top = p["axis"]
    # log_loss rose by 0.0084 [0.0037, 0.0131]: worse, drawn left of zero as [-0.0131, -0.0037].
    assert highs_orange[5] == -0.0037 and lows[5] == -0.0131
    assert highs_blue[3] == 0.0502 and lows[3] == 0.0281  # recall: better
    assert highs_grey[4] == 0.0221 and lows[4] == -0.0012  # f1: the interval holds zero
    # A series' bar of another verdict sits on the axis's left end: nothing to draw.
    assert highs_blue[5] == highs_grey[5] == bottom
    assert bottom < min(lows) and top > max(highs_blue) and bottom < 0 < top
    assert p["line"] == ", ".join(["0"] * 7)
    assert p["legend"] == "blue: better, orange: worse, grey: no real change"
    assert p["title"] == "Challenger - champion, 95% interval, right is better"
    palette = p["init"]["themeVariables"]["xyChart"]["plotColorPalette"].split(", ")
    assert palette[:3] == list(c.COLOURS.values()) and palette[7] == c.BACKGROUND


def test_the_verdict_follows_the_real_flag() -> None:
    doubtful = {"roc_auc": {"delta": 0.01, "low": 0.002, "high": 0.02, "real": False}}
    p = _parts(c.delta_chart(doubtful, "roc_auc"))
    assert p["bars"][2] == [0.02] and p["bars"][0] == [p["axis"][0]]
    assert p["legend"] == "grey: no real change"


def test_primary_first_and_one_unit_per_axis() -> None:
    assert _parts(c.delta_chart(BINARY, "log_loss"))["labels"][0] == "log_loss (negated)"
    assert _parts(c.delta_chart(REGRESSION, "rmse"))["labels"] == [
        "rmse (negated)",
        "mae (negated)",
    ]
    assert _parts(c.delta_chart(REGRESSION, "r2"))["labels"] == ["r2"]


def test_a_delta_without_interval_is_a_bar_from_zero() -> None:
    mixed = {"average_precision": {"delta": -0.005}, **BINARY}
    p = _parts(c.delta_chart(mixed, "average_precision"))
    assert p["labels"][0] == "average_precision (no interval)"
    assert p["bars"][1][0] == 0 and p["bars"][7][0] == -0.005

    deltas = c.metric_deltas(CHAMPION, CHALLENGER)
    assert "n_test" not in deltas and math.isclose(deltas["f1"]["delta"], 0.010676)
    p = _parts(c.delta_chart(deltas, "roc_auc"))
    assert p["title"] == "Challenger - champion (no interval), right is better"
    assert p["labels"][:2] == ["roc_auc", "average_precision"]
    assert "(no interval)" not in " ".join(p["labels"])
    assert p["legend"] == "blue: better, orange: worse"


def test_nothing_to_draw() -> None:
    assert c.metric_deltas(None, CHALLENGER) == {}
    assert c.delta_chart({}, "roc_auc") is None
    assert c.delta_chart({"rmse": interval(-1.0, -2.0, -0.5)}, "roc_auc") is None
    # Non-finite numbers are left out, not handed to the parser.
    odd = {"roc_auc": {"delta": math.nan}, "f1": interval(0.01, -math.inf, 0.02)}
    block = c.delta_chart({**odd, "accuracy": interval(0.01, 0.005, 0.02)}, "roc_auc")
    assert _parts(block)["labels"] == ["f1 (no interval)", "accuracy"]
    assert "nan" not in block.lower() and "inf" not in block.lower()


def test_identical_models_get_a_readable_axis() -> None:
    p = _parts(c.delta_chart({"roc_auc": interval(0.0, 0.0, 0.0)}, "roc_auc"))
    bottom, top = p["axis"]
    assert (bottom, top) == (-0.01, 0.01)
    assert p["legend"] == "grey: no real change"
