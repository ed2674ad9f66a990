"""The report's chart as a reviewer sees it: drawn by the real Mermaid library in headless Chromium.

A page loads node_modules/mermaid (file://, no network) and scripts/mermaid-browser-check.js,
renders every chart of tests/chart_cases.py, and writes what the browser laid out (text boxes,
overlapping texts, series colours) into the DOM, which `chromium --dump-dom` returns; a second
run takes a screenshot of the same page, whose pixels are read back: each metric's row must show
its interval in its verdict's colour, where the axis puts it, and the delta's marker.

Chromium is needed: CI installs it (.ci/run) and fails without it; elsewhere the test is skipped.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops_ml.config import LOWER_IS_BETTER
from gitops_ml.pr import chart as c
from tests.chart_cases import CASES, CHALLENGER, CHAMPION
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: The chart the report drew before: eight long labels under vertical bars of one colour.
OLD_CHART = """xychart-beta
    title "Champion vs challenger on the PR's test set"
    x-axis ["roc_auc champion", "roc_auc PR", "average_precision champion", \
"average_precision PR", "accuracy champion", "accuracy PR", "f1 champion", "f1 PR"]
    y-axis "score" 0.6 --> 1
    bar [0.9303, 0.9277, 0.8342, 0.8291, 0.8767, 0.8710, 0.7206, 0.7313]"""
WIDTH = 820


def _chromium() -> str:
    """The browser; missing, it fails the test in CI (CI=true) and skips it elsewhere."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    why = "chromium is not installed (apt-get install chromium); the chart's browser test needs it"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


def _source(block: str) -> str:
    return re.fullmatch(r"```mermaid\n(.*)\n```", block, re.DOTALL).group(1)


def _run(browser: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--mute-audio",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def charts() -> dict[str, str]:
    cases = {**CASES, "committed_metrics": (c.metric_deltas(CHAMPION, CHALLENGER), "roc_auc")}
    return {name: c.delta_chart(*case) for name, case in cases.items()}


@pytest.fixture(scope="module")
def browser_run(
    charts: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """(what the browser measured per chart, the screenshot of the page)."""
    browser = _chromium()
    for path in ("node_modules/mermaid/dist/mermaid.min.js", "scripts/mermaid-browser-check.js"):
        if not (ROOT / path).is_file():
            pytest.fail(f"{path} is missing: run `make test` (or `npm ci`) first")
    tmp = tmp_path_factory.mktemp("chart-browser")
    pages = [{"name": name, "source": _source(block)} for name, block in charts.items()]
    # GitHub draws Mermaid with its dark theme for dark-mode readers: the chart fixes its colours.
    pages.append({"name": "binary_dark", "source": _source(charts["binary"]), "theme": "dark"})
    pages.append({"name": "old", "source": OLD_CHART})
    page = tmp / "charts.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>\n"
        "<style>body { margin: 0; background: #fff; } .chart { width: 780px; padding: 10px; }"
        " #result { display: none; }</style>\n"
        f"<script src='{(ROOT / 'node_modules/mermaid/dist/mermaid.min.js').as_uri()}'></script>\n"
        f"<script src='{(ROOT / 'scripts/mermaid-browser-check.js').as_uri()}'></script>\n"
        "</head><body><pre id='result'></pre>\n"
        f"<script>checkCharts({json.dumps(pages)});</script>\n</body></html>\n",
        encoding="utf-8",
    )
    dom = _run(browser, page, tmp / "profile", "--dump-dom")
    found = re.search(r"<pre id=\"result\">(.+?)</pre>", dom.stdout, re.DOTALL)
    assert found, f"the page wrote no result (exit {dom.returncode}): {dom.stderr[-2000:]}"
    results = json.loads(html.unescape(found.group(1)))
    height = max(r["svg"]["y"] + r["svg"]["height"] for r in results.values() if r["ok"]) + 20
    shot = tmp / "charts.png"
    run = _run(
        browser, page, tmp / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{height}"
    )
    assert shot.is_file(), f"no screenshot (exit {run.returncode}): {run.stderr[-2000:]}"
    return results, shot


def _expected_rows(intervals: dict[str, dict[str, Any]], primary: str) -> dict[str, dict]:
    """label -> what its row must show (improvement: right is better), worked out from the input."""
    target_units = {"rmse", "mae"}
    any_interval = any("low" in e for e in intervals.values())
    rows = {}
    for name, e in intervals.items():
        if (name in target_units) != (primary in target_units):
            continue
        sign = -1 if name in LOWER_IS_BETTER else 1
        label = f"{name} (negated)" if sign < 0 else name
        delta = sign * e["delta"]
        if "low" in e:
            low, high = sorted((sign * e["low"], sign * e["high"]))
            real = e["real"]
        else:
            low, high, real = min(0, delta), max(0, delta), delta != 0
            label += " (no interval)" if any_interval else ""
        verdict = ("better" if delta > 0 else "worse") if real else "no real change"
        rows[label] = {"delta": delta, "low": low, "high": high, "colour": c.COLOURS[verdict]}
    return rows


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def test_no_text_overlaps_and_every_label_is_drawn(
    browser_run: tuple[dict[str, Any], Path], charts: dict[str, str]
) -> None:
    results, _ = browser_run
    for name in [*charts, "binary_dark"]:
        res = results[name]
        assert res["ok"], (name, res.get("error"))
        assert res["overlaps"] == [], name
        svg = res["svg"]
        for t in res["texts"]:  # nothing cut off at the chart's edges
            assert svg["x"] - 1 <= t["x"] and t["x"] + t["width"] <= svg["x"] + svg["width"] + 1
            assert svg["y"] - 1 <= t["y"] and t["y"] + t["height"] <= svg["y"] + svg["height"] + 1
        labels = [
            t["text"] for t in res["texts"] if t["axis"] == "left-axis" and t["group"] == "label"
        ]
        wanted = re.search(r"x-axis \[(.*)\]", charts[name.removesuffix("_dark")]).group(1)
        assert labels == re.findall(r'"([^"]*)"', wanted), name
        # Mermaid leaves out an axis title it has no room for: the colours' key must be there.
        assert any(re.match(r"(blue|orange|grey): ", t["text"]) for t in res["texts"]), name


def test_the_old_chart_fails_the_same_checks(browser_run: tuple[dict[str, Any], Path]) -> None:
    old = browser_run[0]["old"]
    assert old["ok"]
    assert ("average_precision champion", "average_precision PR") in {
        (a, b) for a, b, _ in old["overlaps"]
    }
    assert len({s["fill"] for s in old["series"]}) == 1


def test_colours_are_distinct_and_the_same_in_the_dark_theme(
    browser_run: tuple[dict[str, Any], Path],
) -> None:
    results, _ = browser_run
    fills = [s["fill"] for s in results["binary"]["series"][:3]]
    assert fills == [f"rgb{_rgb(c.COLOURS[k])}".replace(" ", "") for k in c.COLOURS] or fills == [
        "rgb({}, {}, {})".format(*_rgb(c.COLOURS[k])) for k in c.COLOURS
    ]
    assert len(set(fills)) == 3
    for key in ("series", "background"):
        assert results["binary_dark"][key] == results["binary"][key]
    assert results["binary"]["background"] == "rgb(255, 255, 255)"


@pytest.mark.parametrize("name", [*CASES, "committed_metrics", "binary_dark"])
def test_each_row_shows_its_interval_where_the_axis_puts_it(
    name: str, browser_run: tuple[dict[str, Any], Path]
) -> None:
    """Read from the screenshot's pixels: the row's colour spans [low, high] on the value axis,
    nothing of it shows left of `low` (the background bar hides it), the marker is at the delta."""
    from PIL import Image

    results, shot = browser_run
    res = results[name]
    case = name.removesuffix("_dark")
    intervals, primary = (
        CASES[case] if case in CASES else (c.metric_deltas(CHAMPION, CHALLENGER), "roc_auc")
    )
    expected = _expected_rows(intervals, primary)
    labels = {
        t["text"]: t for t in res["texts"] if t["axis"] == "left-axis" and t["group"] == "label"
    }
    assert set(labels) == set(expected)
    ticks = [
        (float(t["text"]), t["x"] + t["width"] / 2)
        for t in res["texts"]
        if t["axis"] == "top-axis" and t["group"] == "label"
    ]
    (v0, x0), (v1, x1) = ticks[0], ticks[-1]
    assert v1 > v0

    def px(value: float) -> float:
        return x0 + (value - v0) * (x1 - x0) / (v1 - v0)

    image = Image.open(shot).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 16) or ()) > 10, "a blank screenshot"
    left, right = int(res["svg"]["x"]), int(res["svg"]["x"] + res["svg"]["width"])
    marker = _rgb(c.MARKER)
    for label, want in expected.items():
        y = round(labels[label]["y"] + labels[label]["height"] / 2)
        row = [image.getpixel((x, y)) for x in range(left, right)]
        colour = _rgb(want["colour"])
        painted = [left + i for i, p in enumerate(row) if p in (colour, marker)]
        if px(want["high"]) - px(want["low"]) > 8:
            assert colour in row, f"{name}: {label} has no {want['colour']} pixels"
            assert abs(painted[0] - px(want["low"])) <= 2.5, (label, painted[0], px(want["low"]))
            assert abs(painted[-1] + 1 - px(want["high"])) <= 2.5, (label, painted[-1])
        marks = [left + i for i, p in enumerate(row) if p == marker]
        assert marks, f"{name}: {label} has no marker"
        assert abs((marks[0] + marks[-1] + 1) / 2 - px(want["delta"])) <= 4, (label, marks)
        assert marks[-1] - marks[0] < 10
