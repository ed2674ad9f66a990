"""The report's Mermaid chart, parsed and rendered by the real `mermaid` library (npm).

scripts/mermaid-check.mjs parses each chart with mermaid and renders it to SVG in jsdom; the
tests compare what the library drew (bars, labels, axis) with the values that went in.
`make test` installs the pinned packages of package-lock.json with `npm ci`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gitops_ml.pr import report as r
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "mermaid-check.mjs"

# Realistic metrics of the Adult classifier (reports/metrics.json) and of a regression model.
CHAMPION = {
    "accuracy": 0.876651, "average_precision": 0.834206, "brier": 0.086898, "f1": 0.720612,
    "log_loss": 0.273298, "n_test": 9769, "precision": 0.786835, "recall": 0.664671,
    "roc_auc": 0.9303,
}  # fmt: skip
CHALLENGER = {
    "accuracy": 0.871002, "average_precision": 0.829113, "brier": 0.089512, "f1": 0.731288,
    "log_loss": 0.281733, "n_test": 9769, "precision": 0.761044, "recall": 0.703705,
    "roc_auc": 0.927731,
}  # fmt: skip

#: name -> (champion, challenger, primary)
CASES: dict[str, tuple[Mapping[str, Any] | None, Mapping[str, Any], str]] = {
    "classification": (CHAMPION, CHALLENGER, "roc_auc"),
    "first_pr": (None, CHALLENGER, "roc_auc"),
    "primary_average_precision": (CHAMPION, CHALLENGER, "average_precision"),
    "primary_log_loss": (CHAMPION, CHALLENGER, "log_loss"),
    # A degenerate champion that predicts no positive: zeros on the axis's floor.
    "zeros": ({**CHAMPION, "f1": 0.0, "average_precision": 0.0}, CHALLENGER, "roc_auc"),
    "non_finite": (
        {**CHAMPION, "roc_auc": float("inf")},
        {**CHALLENGER, "f1": float("nan")},
        "roc_auc",
    ),
    "regression_rmse": (
        {"rmse": 3210.5, "mae": 2011.2, "r2": 0.81},
        {"rmse": 3150.25, "mae": 1990.0, "r2": 0.82},
        "rmse",
    ),
    "regression_rmse_first_pr": (None, {"rmse": 0.73, "mae": 0.52, "r2": 0.6}, "rmse"),
    "regression_rmse_near_one": ({"rmse": 0.93, "r2": 0.2}, {"rmse": 1.08, "r2": 0.1}, "rmse"),
    "regression_r2_negative": ({"rmse": 9.1, "r2": -0.1234}, {"rmse": 4.2, "r2": 0.3141}, "r2"),
    "regression_r2_all_negative": ({"r2": -0.5}, {"r2": -0.3}, "r2"),
}


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
    """What a chart asks for: its labels, bar values and y-axis range."""
    labels = re.search(r"x-axis \[(.*)\]", chart).group(1)
    bottom, top = re.search(r'y-axis "score" (\S+) --> (\S+)', chart).groups()
    return {
        "labels": re.findall(r'"([^"]*)"', labels),
        "values": [float(v) for v in re.search(r"bar \[(.*)\]", chart).group(1).split(", ")],
        "bottom": float(bottom),
        "top": float(top),
    }


@pytest.fixture(scope="module")
def charts() -> dict[str, str]:
    out = {name: r.mermaid_chart(*case) for name, case in CASES.items()}
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
        (tmp / f"{name}.md").write_text(r.render_markdown(data), encoding="utf-8")
    files = sorted(tmp.glob("*.md"))
    code, results, stderr = _check(*files)
    assert code == 0, stderr
    assert len(results) == len(files)
    return {Path(res["source"]).stem: res for res in results}


@pytest.mark.parametrize("name", list(CASES))
def test_mermaid_draws_every_bar_to_scale(
    name: str, charts: dict[str, str], rendered: dict[str, dict]
) -> None:
    res, want = rendered[name], _source(charts[name])
    assert res["ok"] and res["type"] == "xychart", res
    assert res["title"].endswith("on the PR's test set")
    assert res["xLabels"] == want["labels"]
    bars = res["bars"]
    assert len(bars) == len(want["values"]) == len(want["labels"])
    assert {b["series"] for b in bars} == {"bar-plot-0"}
    xs = [b["x"] for b in bars]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), "bars overlap"
    # Each bar rises from the axis's bottom, in proportion to its value.
    lifts = [v - want["bottom"] for v in want["values"]]
    assert min(lifts) >= 0 and max(want["values"]) <= want["top"]
    scale = max(b["height"] for b in bars) / max(lifts)
    assert max(b["height"] for b in bars) > 100
    for bar, lift in zip(bars, lifts, strict=True):
        assert bar["height"] == pytest.approx(scale * lift, rel=1e-6, abs=1e-6)
        if lift > 0:
            assert bar["height"] > 5, f"{name}: a bar too short to see: {bar}"
    ticks = [float(t) for t in res["yTicks"]]
    assert min(ticks) >= want["bottom"] - 1e-9 and max(ticks) <= want["top"] + 1e-9


def test_chart_contents(rendered: dict[str, dict]) -> None:
    metrics = ["roc_auc", "average_precision", "accuracy", "f1"]
    assert rendered["classification"]["xLabels"] == [
        f"{m} {side}" for m in metrics for side in ("champion", "PR")
    ]
    assert rendered["first_pr"]["xLabels"] == metrics
    assert rendered["first_pr"]["title"] == "Challenger on the PR's test set"
    assert rendered["primary_log_loss"]["xLabels"][:2] == ["log_loss champion", "log_loss PR"]
    # Non-finite values are left out, not handed to the parser.
    assert rendered["non_finite"]["xLabels"] == [
        "roc_auc PR", "average_precision champion", "average_precision PR",
        "accuracy champion", "accuracy PR",
    ]  # fmt: skip
    # An rmse in the thousands is charted alone, from zero: the lower (better) bar still shows.
    rmse = rendered["regression_rmse"]
    assert rmse["xLabels"] == ["rmse champion", "rmse PR"]
    champion_bar, pr_bar = rmse["bars"]
    assert champion_bar["height"] > pr_bar["height"] > 100
    assert rendered["regression_rmse_first_pr"]["xLabels"] == ["rmse", "r2"]
    assert any(float(t) < 0 for t in rendered["regression_r2_negative"]["yTicks"])


def test_whole_report_charts(rendered: dict[str, dict]) -> None:
    report, first = rendered["report"], rendered["report_first_pr"]
    assert report["ok"] and report["type"] == "xychart"
    assert report["xLabels"] == rendered["classification"]["xLabels"]
    assert [b["height"] for b in report["bars"]] == [
        b["height"] for b in rendered["classification"]["bars"]
    ]
    assert first["ok"] and first["xLabels"] == rendered["first_pr"]["xLabels"]


def test_a_broken_chart_is_rejected(charts: dict[str, str], tmp_path: Path) -> None:
    good = charts["classification"]
    broken = good.replace("bar [0.9303", "bar [0.93o3")
    assert broken != good
    # Bars and labels that do not pair up parse, but render to NaN geometry.
    unpaired = tmp_path / "unpaired.md"
    unpaired.write_text(re.sub(r"bar \[[^,]*, ", "bar [", good), encoding="utf-8")
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
    assert by_source["<stdin>"]["error"].startswith("parse error: Parse error on line 5:")
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
