"""The report's Mermaid chart, parsed and rendered by the real `mermaid` library (npm).

scripts/mermaid-check.mjs parses each chart with mermaid and renders it to SVG in jsdom; the
tests compare what the library drew (rows, bars, the zero line, labels) with the values that went
in. tests/unit/test_chart_browser.py looks at the same charts in a real browser.
`make test` installs the pinned packages of package-lock.json with `npm ci`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops_ml.pr import chart as c
from gitops_ml.pr import report as r
from tests.chart_cases import CASES, CHALLENGER, CHAMPION
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "mermaid-check.mjs"


def _node() -> str:
    """Node.js and the pinned packages; missing ones fail: CI installs them with `make test`."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the chart check needs Node.js (20.19+); see `make test`"
        )
    for package in ("mermaid", "jsdom"):
        if not (ROOT / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"node_modules/{package} is missing: run `make test` (or `npm ci`) first")
    return node


def _check(*args: str | Path, stdin: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [_node(), str(SCRIPT), "--json", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert proc.stdout, f"mermaid-check printed nothing (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _source(chart: str) -> dict[str, Any]:
    """What a chart asks for: its labels, the value axis's range, each series' values."""
    labels = re.search(r"x-axis \[(.*)\]", chart).group(1)
    bottom, top = re.search(r'y-axis "[^"]*" (\S+) --> (\S+)', chart).groups()
    return {
        "labels": re.findall(r'"([^"]*)"', labels),
        "bottom": float(bottom),
        "top": float(top),
        "bars": [
            [float(v) for v in values.split(", ")]
            for values in re.findall(r"^    bar \[(.*)\]$", chart, re.MULTILINE)
        ],
    }


@pytest.fixture(scope="module")
def charts() -> dict[str, str]:
    cases = {**CASES, "committed_metrics": (c.metric_deltas(CHAMPION, CHALLENGER), "roc_auc")}
    out = {name: c.delta_chart(*case) for name, case in cases.items()}
    assert all(out.values())
    return out


@pytest.fixture(scope="module")
def rendered(charts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every chart, and two whole reports, checked in one run of the script."""
    tmp = tmp_path_factory.mktemp("charts")
    for name, chart in charts.items():
        (tmp / f"{name}.md").write_text(chart, encoding="utf-8")
    common: dict[str, Any] = dict(
        base_ref="main", base_sha="b" * 40, head_sha="a" * 40, merge_base="b" * 40,
        primary="roc_auc", head_metrics=CHALLENGER, head_params={}, figures=[],
    )  # fmt: skip
    reports = {
        "report": r.ReportData(**common, base_metrics=CHAMPION, champion=CHAMPION,
                               challenger=CHALLENGER, base_params={}),
        "report_first_pr": r.ReportData(**common),
    }  # fmt: skip
    for name, data in reports.items():
        text = r.render_markdown(data)
        if "```mermaid" in text:
            (tmp / f"{name}.md").write_text(text, encoding="utf-8")
    files = sorted(tmp.glob("*.md"))
    code, results, stderr = _check(*files)
    assert code == 0, stderr
    assert len(results) == len(files)
    return {Path(res["source"]).stem: res for res in results}


@pytest.mark.parametrize("name", [*CASES, "committed_metrics"])
def test_mermaid_draws_every_series_to_scale(
    name: str, charts: dict[str, str], rendered: dict[str, dict]
) -> None:
    res, want = rendered[name], _source(charts[name])
    assert res["ok"] and res["type"] == "xychart", res
    assert res["title"].startswith("Challenger - champion")
    # Horizontal: one row per metric, labelled on the left; the values along the top.
    assert res["labels"]["left"] == want["labels"]
    assert res["labels"]["bottom"] == []
    ticks = [float(t) for t in res["labels"]["top"]]
    assert want["bottom"] - 1e-9 <= min(ticks) <= 0 <= max(ticks) <= want["top"] + 1e-9
    assert res["axisTitles"]["top"] and re.match(
        r"(blue|orange|grey): ", res["axisTitles"]["top"][0]
    )
    # Every series has a bar per metric, in its palette colour, from the axis's left end.
    n = len(want["labels"])
    bars = res["bars"]
    assert len(bars) == n * len(want["bars"]) == n * 8
    palette = [*c.COLOURS.values(), c.MARKER, *c.COLOURS.values(), c.BACKGROUND]
    left = bars[0]["x"]
    scale = None
    for k, values in enumerate(want["bars"]):
        series = bars[k * n : (k + 1) * n]
        assert {b["series"] for b in series} == {f"bar-plot-{k}"}
        assert {b["fill"] for b in series} == {palette[k]}
        ys = [b["y"] for b in series]
        assert ys == sorted(ys) and len(set(ys)) == n, "rows overlap"
        for bar, value in zip(series, values, strict=True):
            assert bar["x"] == left
            if value > want["bottom"]:
                scale = scale or bar["width"] / (value - want["bottom"])
                assert bar["width"] == pytest.approx(scale * (value - want["bottom"]), rel=1e-6)
            else:
                assert bar["width"] == 0
    assert scale and scale * (want["top"] - want["bottom"]) > 400
    # The zero line runs down the rows, where the axis puts zero.
    (line,) = res["lines"]
    assert line["stroke"] == c.ZERO_LINE
    xs = {float(x) for x in re.findall(r"[ML]([-\d.]+),", line["d"])}
    assert len(xs) == 1
    assert xs.pop() == pytest.approx(left + scale * -want["bottom"], abs=0.01)


def test_whole_report_charts(rendered: dict[str, dict]) -> None:
    """The report's chart is the delta chart, and renders; a first PR's report has none."""
    assert rendered["report"]["ok"] and rendered["report"]["type"] == "xychart"
    assert rendered["report"]["labels"]["left"] == rendered["committed_metrics"]["labels"]["left"]
    assert "report_first_pr" not in rendered


def test_a_broken_chart_is_rejected(charts: dict[str, str], tmp_path: Path) -> None:
    good = charts["binary"]
    broken = good.replace("line [0,", "line [O,")
    assert broken != good
    # Bars and labels that do not pair up parse, but render to NaN geometry.
    unpaired = tmp_path / "unpaired.md"
    unpaired.write_text(re.sub(r"bar \[[^,]*, ", "bar [", good, count=1), encoding="utf-8")
    # A report with no chart at all is not a pass either.
    empty = tmp_path / "empty.md"
    empty.write_text("## Model report\n\nNo chart.\n", encoding="utf-8")
    # Nor is a chart whose fence is never closed; the error names the fence's line.
    unclosed = tmp_path / "unclosed.md"
    unclosed.write_text(f"## Model report\n\n{good.removesuffix('```')}", encoding="utf-8")
    code, results, stderr = _check("-", unpaired, empty, unclosed, stdin=broken)
    assert code == 1
    by_source = {res["source"]: res for res in results}
    assert not any(res["ok"] for res in results) and len(results) == 4
    assert by_source["<stdin>"]["error"].startswith("parse error: Parse error on line")
    assert "got 'ALPHA'" in by_source["<stdin>"]["error"]
    assert "NaN" in by_source[str(unpaired)]["error"]
    assert "no ```mermaid block" in by_source[str(empty)]["error"]
    assert by_source[str(unclosed)]["line"] == 3
    assert by_source[str(unclosed)]["error"] == "the ```mermaid block is not closed"
    assert f"error: {unclosed}:3: the ```mermaid block is not closed" in stderr
    assert "error: <stdin>:1: parse error: Parse error on line" in stderr


def test_missing_packages_say_what_to_run(tmp_path: Path) -> None:
    lone = tmp_path / "mermaid-check.mjs"
    shutil.copyfile(SCRIPT, lone)
    proc = subprocess.run(
        [_node(), str(lone)], input="pie\n", capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "run `npm ci`" in proc.stderr
