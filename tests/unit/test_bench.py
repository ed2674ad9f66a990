"""The pure parts of scripts/bench.py: sizes, stage commands from dvc.yaml, targets, the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops_ml.release import loadtest
from tests.conftest import ROOT, load_bench

bench = load_bench()


def result(name: str, *, repro: float, baseline: float, noop: list[float], rss: int):
    """A SizeResult with two stages whose numbers the tests choose."""
    return bench.SizeResult(
        size=bench.parse_size(name),
        stages={"ingest": bench.Run(1.0, rss // 2), "train": bench.Run(2.0, rss)},
        repro=bench.Run(
            repro,
            rss // 4,
            cpu_seconds=repro * 1.5,
            output=(
                (0.5, "Running stage 'ingest':"),
                (1.25, bench.COMMAND_DONE),
                (2.0, "Running stage 'train':"),
                (repro - 1.0, bench.COMMAND_DONE),
            ),
        ),
        noop_seconds=noop,
        noop_clean=True,
        baseline=bench.Run(baseline, rss // 3, cpu_seconds=baseline),
        baseline_fit_seconds=baseline / 2,
        train_rows=800,
    )


def assert_tables_are_rectangular(markdown: str) -> None:
    """Every row of each markdown table has as many cells as its header."""
    for block in markdown.split("\n\n"):
        rows = [ln for ln in block.splitlines() if ln.startswith("|")]
        assert len({ln.count("|") for ln in rows}) <= 1, block


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "source", "n_rows"),
    [("adult", "adult", None), ("100k", "synthetic", 100_000), ("1M", "synthetic", 1_000_000),
     ("2500", "synthetic", 2500)],
)  # fmt: skip
def test_parse_size(text: str, source: str, n_rows: int | None) -> None:
    size = bench.parse_size(text)
    assert (size.source, size.n_rows) == (source, n_rows)


@pytest.mark.parametrize("text", ["big", "1g", "-5", "50"])
def test_parse_size_rejects_bad_sizes(text: str) -> None:
    with pytest.raises(bench.BenchError, match="bad size"):
        bench.parse_size(text)


def test_parse_sizes_keeps_order_and_rejects_duplicates() -> None:
    assert [s.name for s in bench.parse_sizes("1m, adult")] == ["1m", "adult"]
    with pytest.raises(bench.BenchError, match="twice"):
        bench.parse_sizes("adult,adult")
    with pytest.raises(bench.BenchError, match="empty"):
        bench.parse_sizes(" , ")


def test_size_params_switches_the_source_without_mutating_the_input() -> None:
    params = {"data": {"source": "adult", "n_rows": None, "target": "income"}, "split": {"seed": 1}}
    out = bench.size_params(params, bench.parse_size("100k"))
    assert out["data"] == {"source": "synthetic", "n_rows": 100_000, "target": "income"}
    assert params["data"]["source"] == "adult"
    assert out["split"] == {"seed": 1}


# --- stage commands -------------------------------------------------------------------------


def test_stage_commands_resolve_vars_and_params_in_file_order() -> None:
    dvc_yaml = {
        "vars": [{"schema": "data/schema/x.yaml"}],
        "stages": {
            "b": {"cmd": "python -m b --schema ${schema} --n ${ data.n }"},
            "a": {"cmd": ["echo one", "echo ${data.n}"]},
        },
    }
    commands = bench.stage_commands(dvc_yaml, {"data": {"n": 3}})
    assert commands == {
        "b": "python -m b --schema data/schema/x.yaml --n 3",
        "a": "echo one && echo 3",
    }


@pytest.mark.parametrize(
    ("dvc_yaml", "message"),
    [
        ({"stages": {"a": {"cmd": "x ${missing}"}}}, r"cannot resolve '\$\{missing\}'"),
        ({"stages": {"a": {"cmd": "x ${data}"}}}, "not a scalar"),
        ({"stages": {"a": {"foreach": [1], "do": {"cmd": "x"}}}}, "foreach"),
        ({"stages": {"a": {"cmd": "x", "wdir": "sub"}}}, "wdir"),
        ({"vars": ["other.yaml"], "stages": {"a": {"cmd": "x"}}}, "inline mappings"),
        ({"stages": {"a": {"cmd": "x", "vars": ["f.yaml"]}}}, "inline mappings"),
        ({}, "no stages"),
    ],
)
def test_stage_commands_errors_name_the_problem(dvc_yaml: dict, message: str) -> None:
    with pytest.raises(bench.BenchError, match=message):
        bench.stage_commands(dvc_yaml, {"data": {"n": 1}})


def test_the_templates_dvc_yaml_resolves_and_names_the_train_split() -> None:
    commands = bench.load_stage_commands(ROOT)
    assert list(commands)[:3] == ["ingest", "validate", "split"]
    assert "${" not in " ".join(commands.values())
    train = bench.option_value(commands[bench.TRAIN_STAGE], "--train")
    split_outs = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["split"]["outs"]
    assert train in [next(iter(out)) for out in split_outs]


def test_option_value() -> None:
    assert bench.option_value("python -m x --train a.parquet --model m", "--train") == "a.parquet"
    assert bench.option_value("python -m x --train=b.parquet", "--train") == "b.parquet"
    with pytest.raises(bench.BenchError, match="no --train"):
        bench.option_value("python -m x --model m", "--train")


def test_parse_baseline_finds_its_line_among_logs() -> None:
    output = ["gitops_ml: something", 'BASELINE {"rows": 5, "fit_seconds": 1.5}', "bye"]
    assert bench.parse_baseline(output) == {"rows": 5, "fit_seconds": 1.5}
    with pytest.raises(bench.BenchError, match="no result line"):
        bench.parse_baseline(["nothing here"])


def test_repro_breakdown_splits_each_stage_at_the_shims_marker() -> None:
    done = bench.COMMAND_DONE
    output = (
        (0.8, "Running stage 'ingest':"),
        (0.8, "> python -m gitops_ml.stages.ingest"),
        (3.0, "gitops_ml.stages.ingest: wrote 10 rows"),
        (3.5, done),
        (4.0, "Running stage 'train':"),
        (5.0, done),  # a two-command stage: its last marker ends it
        (9.0, done),
        (9.5, "Updating lock file 'dvc.lock'"),
    )
    breakdown = bench.repro_breakdown(bench.Run(10.0, 1, output=output))
    assert breakdown.startup == 0.8
    assert breakdown.stages["ingest"].command == pytest.approx(2.7)
    assert breakdown.stages["ingest"].dvc == pytest.approx(0.5)
    assert breakdown.stages["train"].command == pytest.approx(5.0)
    assert breakdown.dvc_seconds == pytest.approx(0.8 + 0.5 + 1.0)


def test_repro_breakdown_without_markers_keeps_the_spans_only() -> None:
    output = ((0.5, "Running stage 'a':"), (2.0, "Running stage 'b':"))
    breakdown = bench.repro_breakdown(bench.Run(3.0, 1, output=output))
    assert breakdown.stages["a"] == bench.Span(total=1.5)
    assert breakdown.stages["a"].dvc is None and breakdown.dvc_seconds is None
    up_to_date = ((0.5, "Data and pipelines are up to date."),)
    assert bench.repro_breakdown(bench.Run(1.0, 1, output=up_to_date)) is None


def test_python_shim_runs_this_interpreter_then_prints_the_marker(tmp_path: Path) -> None:
    shim_dir = bench.python_shim(tmp_path / "shim")
    run = bench.measure(
        "python -c 'import sys; print(sys.executable); sys.exit(0)'",
        cwd=tmp_path,
        env={"PATH": f"{shim_dir}:/usr/bin:/bin"},
        log_path=tmp_path / "shim.log",
    )
    assert [line for _, line in run.output] == [sys.executable, bench.COMMAND_DONE]
    with pytest.raises(bench.CommandFailed, match="exit 4"):
        bench.measure(
            "python -c 'raise SystemExit(4)'",
            cwd=tmp_path,
            env={"PATH": f"{shim_dir}:/usr/bin:/bin"},
            log_path=tmp_path / "fail.log",
        )


# --- targets and the report -------------------------------------------------------------------


def test_evaluate_targets_pass_fail_and_skip_sizes_not_run() -> None:
    fast = result("adult", repro=10.0, baseline=1.0, noop=[1.0, 5.0, 1.5], rss=500_000_000)
    big = result("1m", repro=12.0, baseline=10.0, noop=[2.5, 2.1, 3.0], rss=4_000_000_000)
    checks = {(c.target.name, c.size): c for c in bench.evaluate_targets([fast, big])}

    ratio = checks[("`dvc repro -f` / baseline", "1m")]
    assert ratio.value == pytest.approx(1.2) and ratio.passed
    adult = checks[("`dvc repro -f` / baseline", "adult")]  # its own, looser limit
    assert adult.value == pytest.approx(10.0) and not adult.passed and adult.target.limit == 2.5
    assert checks[("no-op `dvc repro` (median)", "adult")].value == 1.5
    assert not checks[("no-op `dvc repro` (median)", "adult")].passed  # over 1 s
    assert not checks[("no-op `dvc repro` (median)", "1m")].passed
    assert not checks[("peak memory (max RSS)", "1m")].passed
    assert ("peak memory (max RSS)", "adult") not in checks
    # nothing was measured for the stage start-ups, the CLI or serving: those are skipped
    assert not [name for name, _ in checks if "fixed cost" in name or "gitops-ml" in name]
    assert [c.target.name for c in bench.evaluate_targets([fast])] == [
        "`dvc repro -f` / baseline",
        "no-op `dvc repro` (median)",
    ]


def test_fixed_cost_is_start_up_beyond_the_baselines_plus_mlflow_logging() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[0.5], rss=1)
    r.baseline_work_seconds = 1.0  # so the baseline's own start-up is 3 s
    r.startup = {"ingest": 1.0, "train": 3.5}
    r.mlflow_seconds = {"train": 2.0}
    assert r.baseline_startup == pytest.approx(3.0)
    assert r.fixed_cost("ingest") == 0.0  # imports less than the baseline needs
    assert r.fixed_cost("train") == pytest.approx(2.5)
    assert r.fixed_cost("evaluate") is None
    checks = {c.target.name: c for c in bench.evaluate_targets([r])}
    assert checks["stage `ingest` fixed cost (start-up + MLflow)"].passed
    assert not checks["stage `train` fixed cost (start-up + MLflow)"].passed


def test_serving_targets_compare_with_in_process_and_throughput_is_a_floor() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[0.5], rss=1)

    def load(plan: bench.LoadPlan, p50: float, p99: float, rate: float, errors: int = 0):
        return bench.Load(plan, errors, p50, p99, rate, 1.0)

    r.deployment = bench.Deployment(
        promotions=[bench.Promotion(2.0, "1", True, "workspace")],
        verify_seconds=2.0,
        report_seconds=1.0,
        in_process_ms={"p50": 5.0, "p99": 9.0, "batch": 40.0},
        loads=[
            load(bench.ONE_ROW, 7.0, 30.0, 140.0),
            load(bench.BATCH, 100.0, 120.0, 10_000.0),
            load(bench.CONCURRENT, 40.0, 90.0, 160.0, errors=1),
        ],
    )
    checks = {c.target.name: c for c in bench.evaluate_targets([r])}
    assert checks["`gitops-ml promote` (artifact in the workspace)"].passed
    assert not checks["`gitops-ml verify`"].passed
    assert checks["`gitops-ml report` (champion cached)"].passed
    over = checks["1 row over HTTP: p50 - in-process p50"]
    assert over.value == pytest.approx(2.0) and over.passed
    r.deployment.paired_ms = {"in_process_p50": 6.0, "http_p50": 9.5}  # measured side by side
    checks = {c.target.name: c for c in bench.evaluate_targets([r])}
    over = checks["1 row over HTTP: p50 - in-process p50"]
    assert over.value == pytest.approx(3.5) and not over.passed
    assert not checks["1 row over HTTP: p99 / p50"].passed  # 30 / 7 > 3
    assert not checks["1,000-row request: HTTP / in-process"].passed  # 2.5x
    rate = checks["10,000 1-row requests, 8 at a time: requests/s"]
    assert rate.passed and rate.bound == ">= 150/s"
    assert checks["10,000 1-row requests, 8 at a time: p99"].passed
    assert not checks["10,000 1-row requests, 8 at a time: errors"].passed


def test_peak_rss_is_the_pipelines_not_the_baselines() -> None:
    r = result("1m", repro=1.0, baseline=1.0, noop=[1.0], rss=900)
    r.baseline = bench.Run(1.0, 10_000)
    assert r.peak_rss == 900


def test_render_markdown_has_every_section_and_value() -> None:
    results = [
        result("adult", repro=10.0, baseline=4.0, noop=[1.0, 1.2, 1.1], rss=300_000_000),
        result("1m", repro=60.0, baseline=30.0, noop=[1.4, 1.3, 1.5], rss=3_500_000_000),
    ]
    text = bench.render_markdown(
        results, bench.evaluate_targets(results), {"Python": "3.11.7"}, "2025-01-01 00:00 UTC"
    )
    lines = text.splitlines()
    for heading in ("## Wall time", "## Peak memory (max RSS)", "## Targets", "## Machine"):
        assert heading in lines
    assert "| size | adult | 1m |" in lines
    label = "stage `{}`: alone / in repro: command + DVC after it"
    assert (
        f"| {label.format('ingest')} | 1.00 s / 0.75 s + 0.75 s | 1.00 s / 0.75 s + 0.75 s |"
        in lines
    )
    assert (
        f"| {label.format('train')} | 2.00 s / 7.00 s + 1.00 s | 2.00 s / 57.0 s + 1.00 s |"
        in lines
    )
    assert "| DVC startup before the first stage | 0.50 s | 0.50 s |" in lines
    assert "| DVC's own time in repro (startup + after each stage) | 2.25 s | 2.25 s |" in lines
    assert "| **`dvc repro -f`** | **10.0 s** | **60.0 s** |" in lines
    assert "| stage `train` | 300 MB | 3.50 GB |" in lines
    assert "| **repro / baseline** | **2.50x** | **2.00x** |" in lines
    cpu = "| CPU time (user + sys): repro / baseline | 15.0 s / 4.00 s = 3.75x | 90.0 s / 30.0 s = 3.00x |"
    assert cpu in lines
    assert "| **pipeline peak** | **300 MB** | **3.50 GB** |" in lines
    assert "| `dvc repro -f` / baseline | 1m | 2.00x | <= 1.50x | **FAIL** |" in lines
    assert "| no-op `dvc repro` (median) | adult | 1.10 s | <= 1.00 s | **FAIL** |" in lines
    assert "| `dvc repro -f` / baseline | adult | 2.50x | <= 2.50x | pass |" in lines
    assert "| peak memory (max RSS) | 1m | 3.50 GB | <= 1.50 GB | **FAIL** |" in lines
    assert "- Python: 3.11.7" in lines
    assert_tables_are_rectangular(text)


def test_measure_reports_time_memory_and_failures(tmp_path: Path) -> None:
    run = bench.measure(
        [sys.executable, "-c", "b = bytearray(200_000_000)"],
        cwd=tmp_path,
        env={},
        log_path=tmp_path / "ok.log",
    )
    assert run.max_rss >= 200_000_000 and run.seconds > 0
    stamped = bench.measure(
        [sys.executable, "-c", "import time; print('a', flush=True); time.sleep(0.3); print('b')"],
        cwd=tmp_path,
        env={},
        log_path=tmp_path / "stamped.log",
    )
    (t_a, a), (t_b, b) = stamped.output
    assert (a, b) == ("a", "b") and t_b - t_a >= 0.25
    assert (tmp_path / "stamped.log").read_text().split()[1::2] == ["a", "b"]
    with pytest.raises(bench.CommandFailed, match=r"exit 3: boom \(log: .*bad.log\)"):
        bench.measure(
            "echo starting; echo boom >&2; exit 3",
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            log_path=tmp_path / "bad.log",
        )


def test_fastest_keeps_the_quickest_time_and_the_largest_memory() -> None:
    runs = [bench.Run(5.0, 100, cpu_seconds=9.0), bench.Run(3.0, 80, cpu_seconds=4.0)]
    best = bench.fastest(runs)
    assert (best.seconds, best.max_rss, best.cpu_seconds) == (3.0, 100, 4.0)
    with pytest.raises(ValueError):
        bench.fastest([])


def test_bench_env_points_everything_into_the_work_dir(tmp_path: Path) -> None:
    env = bench.bench_env(tmp_path, tmp_path / "repo", threads=1)
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert env["PYTHONPATH"] == str(tmp_path / "repo" / "src")
    assert env["DVC_SITE_CACHE_DIR"].startswith(str(tmp_path))
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert {env[name] for name in bench.THREAD_VARS} == {"1"}
    assert env["DVC_NO_ANALYTICS"] == "1" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"


# --- promotion and serving ----------------------------------------------------------------


def promote_json(version: int, created: bool, source: str = "workspace") -> dict:
    """The keys of `gitops-ml promote --json` the benchmark reads, among others it ignores."""
    return {"version": str(version), "created": created, "artifact_source": source, "x": 1}


def deployment(*, second_created: bool = False, errors: int = 0, error: str | None = None):
    plans = bench.LOAD_PLANS
    measured = [
        {"errors": 0, "p50_ms": 12.345, "p99_ms": 48.0, "rows_per_s": 80.04, "seconds": 2.5},
        {"errors": errors, "p50_ms": 30.0, "p99_ms": 150.2, "rows_per_s": 121.6, "seconds": 3.3},
        {"errors": 0, "p50_ms": 95.0, "p99_ms": 210.0, "rows_per_s": 2045.7, "seconds": 4.9},
    ]
    return bench.Deployment(
        promotions=[
            bench.parse_promotion(promote_json(1, True), 6.5),
            bench.parse_promotion(promote_json(1 + second_created, second_created), 3.25),
        ],
        verify_seconds=2.0,
        server_start_seconds=11.0,
        loads=[bench.parse_load(p, m) for p, m in zip(plans, measured, strict=True)],
        error=error,
    )


def test_parse_promotion_reads_promotes_json_and_names_what_is_missing() -> None:
    p = bench.parse_promotion({**promote_json(3, False, "registry"), "version": 3}, 1.5)
    assert p == bench.Promotion(1.5, "3", False, "registry")
    for key in ("version", "created", "artifact_source"):
        data = promote_json(1, True)
        del data[key]
        with pytest.raises(bench.BenchError, match=f"no '{key}'"):
            bench.parse_promotion(data, 1.0)
    with pytest.raises(bench.BenchError, match="'created' is not true/false"):
        bench.parse_promotion({**promote_json(1, True), "created": "yes"}, 1.0)
    with pytest.raises(bench.BenchError, match="not a JSON object"):
        bench.parse_promotion([1], 1.0)


def test_parse_load_reads_measure_servings_keys() -> None:
    plan = bench.LOAD_PLANS[2]
    data = {"errors": 1, "p50_ms": 9.5, "p99_ms": 20, "rows_per_s": 1000.0, "seconds": 10.0}
    load = bench.parse_load(plan, {**data, "requests": 100, "mean_ms": 10.0})
    assert load == bench.Load(plan, 1, 9.5, 20.0, 1000.0, 10.0)
    del data["p99_ms"]
    with pytest.raises(bench.BenchError, match=r"1000-row requests.*no 'p99_ms'"):
        bench.parse_load(plan, data)


def test_load_plans_are_bounded_and_cover_latency_concurrency_and_batches() -> None:
    plans = bench.LOAD_PLANS
    assert any(p.concurrency == 1 and p.batch_rows == 1 for p in plans)  # latency alone
    assert any(p.concurrency > 1 and p.batch_rows == 1 for p in plans)
    assert any(p.batch_rows > 1 for p in plans)
    for p in plans:  # the report's labels describe the plans' numbers
        assert f"{p.batch_rows}-row" in p.label and f"{p.concurrency} at a time" in p.label
        assert 1 <= p.n_requests <= 10_000 and p.concurrency <= loadtest.MAX_CONCURRENCY


def test_serving_size_is_the_first_adult_unless_disabled() -> None:
    sizes = bench.parse_sizes("100k,adult")
    assert bench.serving_size(sizes) == (sizes[1], None)
    assert bench.serving_size(sizes, enabled=False) == (None, "skipped (--no-serving)")
    size, note = bench.serving_size(bench.parse_sizes("100k,1m"))
    assert size is None and "`adult` is not among" in note


def test_deployment_problems_flag_a_rerun_that_registers_and_failed_requests() -> None:
    assert bench.deployment_problems(deployment()) == []
    assert deployment().rerun_was_no_op is True
    assert bench.Deployment().rerun_was_no_op is None
    assert bench.deployment_problems(bench.Deployment()) == []
    problems = bench.deployment_problems(deployment(second_created=True, errors=3, error="boom"))
    assert problems[0] == "boom"
    assert "not a no-op: version 2 (created), the first made version 1" in problems[1]
    assert problems[2] == "1-row requests, 8 at a time: 3 of 10000 requests failed"


def test_render_markdown_has_the_promotion_and_serving_section() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[1.0], rss=300_000_000)
    r.deployment = deployment()
    lines = bench.render_markdown([r], [], {}, "now").splitlines()
    assert "## Promotion and serving (`adult`)" in lines
    assert lines.index("## Targets") < lines.index("## Promotion and serving (`adult`)")
    assert (
        "| first `gitops-ml promote` | 6.50 s | version 1 created (artifact: workspace) |" in lines
    )
    assert (
        "| second `gitops-ml promote` (no-op) | 3.25 s "
        "| pass: version 1 already registered (artifact: workspace) |" in lines
    )
    assert "| `gitops-ml verify` | 2.00 s | pass: @champion is dvc.lock's model |" in lines
    assert "| `gitops-ml serve` start, until `GET /ping` answers 200 | 11.0 s |  |" in lines
    assert "| 1-row requests, 1 at a time | 500 | 12.3 ms | 48.0 ms | 80 | 0 |" in lines
    assert "| 1000-row requests, 1 at a time | 20 | 95.0 ms | 210 ms | 2,046 | 0 |" in lines
    assert not any(line.startswith("**Failed:**") for line in lines)


def test_render_deployment_marks_failures_and_keeps_what_was_measured() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    bad = deployment(second_created=True, errors=2, error="gitops-ml serve exited 2: no model")
    bad.loads = bad.loads[:2]
    r.deployment = bad
    lines = bench.render_deployment([r])
    second = next(line for line in lines if "second `gitops-ml promote`" in line)
    assert "| **FAIL**: version 2 created" in second
    assert "| 1-row requests, 8 at a time | 10000 | 30.0 ms | 150 ms | 122 | **2** |" in lines
    assert not any("1000-row" in line for line in lines)
    assert "**Failed:** gitops-ml serve exited 2: no model" in lines
    assert_tables_are_rectangular("\n".join(lines))


def test_render_deployment_says_why_nothing_was_measured() -> None:
    r = result("1m", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    lines = bench.render_deployment([r], "skipped (--no-serving)")
    assert lines[:3] == [
        "## Promotion and serving (`adult`)",
        "",
        "Not measured: skipped (--no-serving).",
    ]


def test_no_serving_flag_parses() -> None:
    assert bench._parse_args(["--no-serving"]).no_serving
    assert not bench._parse_args([]).no_serving


def test_import_floors_sit_beside_the_targets_they_bound() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[1.4, 1.5, 1.6], rss=300_000_000)
    r.deployment = deployment()
    r.deployment.report_seconds = 1.5
    floors = {f: 0.5 + i for i, f in enumerate(bench.FLOORS)}
    lines = bench.render_markdown(
        [r], bench.evaluate_targets([r]), {}, "now", floors=floors
    ).splitlines()
    assert (
        lines.index("## Targets")
        < lines.index("## Import floors")
        < lines.index("## Promotion and serving (`adult`)")
    )
    report, parent, child, dvc = bench.FLOORS
    assert f"| {report.target} | {report.what} | 0.50 s | 1.50 s | <= 2.00 s |" in lines
    assert f"| {parent.target} | {parent.what} | 1.50 s | 6.50 s | <= 3.00 s |" in lines
    assert f"| {child.target} | {child.what} | 2.50 s | 6.50 s | <= 3.00 s |" in lines
    assert f"| {dvc.target} | {dvc.what} | 3.50 s | 1.50 s | <= 1.00 s |" in lines
    assert_tables_are_rectangular("\n".join(lines))
    # every floor names a target that exists, so it lands beside a measured number
    assert {f.target for f in bench.FLOORS} <= {t.name for t in bench.TARGETS}
    assert "## Import floors" not in bench.render_markdown([r], [], {}, "now")


def test_an_import_floor_is_the_fastest_run_and_a_failing_import_is_an_error() -> None:
    assert 0 < bench.import_floor("import json", repeats=2) < 30
    with pytest.raises(bench.BenchError, match="No module named 'no_such_module_here'"):
        bench.import_floor("import no_such_module_here", repeats=1)


# --- a fresh clone and a pull request's CI ------------------------------------------------


def setup(*, pr: float | None = 70.0, error: str | None = None, notes=()):
    return bench.Setup(
        install=bench.Run(14.0, 1),
        repro=bench.Run(38.5, 1),
        pr_ci_seconds=pr,
        gate_passed=True if pr is not None else None,
        notes=list(notes),
        error=error,
    )


def test_setup_env_is_a_newcomers_shell_with_its_own_gitops_ml_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", f"{here}:/usr/bin:/bin")
    for name, value in [("VIRTUAL_ENV", here), ("PYTHONPATH", "/x/src"), ("MAKELEVEL", "1"),
                        ("MAKEFLAGS", "-j2"), ("MLFLOW_TRACKING_URI", "sqlite:///x.db"),
                        ("UV_CACHE_DIR", "/warm/uv")]:  # fmt: skip
        monkeypatch.setenv(name, value)
    env = bench.setup_env(tmp_path, threads=1)
    assert env["PATH"] == "/usr/bin:/bin"  # the bench's own venv is not on it
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "MAKELEVEL", "MAKEFLAGS", "MLFLOW_TRACKING_URI"):
        assert name not in env
    assert env["UV_CACHE_DIR"] == "/warm/uv"  # the package cache as the machine has it
    assert env["GITOPS_ML_CACHE_DIR"].startswith(str(tmp_path))  # the machine's first store
    assert {env[name] for name in bench.THREAD_VARS} == {"1"}
    assert Path(bench.base_python()).exists()


def test_setup_totals_add_the_warm_install_and_need_both_parts() -> None:
    s = setup()
    assert s.fresh_clone_seconds == 14.0 + 38.5
    assert s.pr_ci_with_install == 70.0 + 14.0
    assert setup(pr=None).pr_ci_with_install is None
    assert bench.Setup(install=bench.Run(14.0, 1)).fresh_clone_seconds is None
    assert bench.Setup().pr_ci_with_install is None


def test_setup_targets_are_checked_at_the_setup_size_only() -> None:
    adult = result("adult", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    adult.setup = setup(pr=80.0)
    other = result("1m", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    checks = {c.target.name: c for c in bench.evaluate_targets([adult, other])}
    install = checks["`make install-runtime` in a fresh clone (package cache warm)"]
    assert (install.size, install.value, install.passed) == ("adult", 14.0, True)
    fresh = checks["`make repro` on a fresh clone, install included"]
    assert (fresh.value, fresh.bound, fresh.passed) == (52.5, "<= 60.0 s", True)
    ci = checks["pr.yml under act, checkout to report, + the warm install"]
    assert (ci.value, ci.passed) == (94.0, False)  # 80 + 14 > 90
    adult.setup = setup(pr=None)
    names = {c.target.name for c in bench.evaluate_targets([adult])}
    assert "pr.yml under act, checkout to report, + the warm install" not in names
    assert "`make repro` on a fresh clone, install included" in names


def test_render_markdown_has_the_setup_section() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    r.setup = setup(notes=["the working tree's uncommitted changes are not in the clone"])
    markdown = bench.render_markdown([r], [], {}, "now")
    lines = markdown.splitlines()
    heading = "## A fresh clone and a pull request's CI (`adult`)"
    assert lines.index("## Targets") < lines.index(heading) < lines.index("## Machine")
    assert "| `make install-runtime` | 14.0 s |" in lines
    assert "| `make repro`, after it | 38.5 s |" in lines
    assert "| pr.yml under act, checkout to report (the gate passed) | 70.0 s |" in lines
    assert "Note: the working tree's uncommitted changes are not in the clone." in lines
    assert not any(line.startswith("**Failed:**") for line in lines)
    assert_tables_are_rectangular(markdown)


def test_render_setup_keeps_what_was_measured_and_says_why_not() -> None:
    r = result("adult", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    r.setup = bench.Setup(install=bench.Run(14.0, 1), error="make repro failed, exit 2: boom")
    lines = bench.render_setup([r])
    assert "| `make install-runtime` | 14.0 s |" in lines
    assert not any("pr.yml" in line and "|" in line for line in lines)
    assert "**Failed:** make repro failed, exit 2: boom" in lines
    other = result("1m", repro=10.0, baseline=4.0, noop=[1.0], rss=1)
    assert bench.render_setup([other], "skipped (--no-setup)")[2] == (
        "Not measured: skipped (--no-setup)."
    )


def test_setup_size_and_flag() -> None:
    sizes = bench.parse_sizes("1m,adult")
    assert bench.setup_size(sizes) == (sizes[1], None)
    assert bench.setup_size(sizes, enabled=False) == (None, "skipped (--no-setup)")
    assert bench._parse_args(["--no-setup"]).no_setup
    assert not bench._parse_args([]).no_setup


def test_uncommitted_sees_tracked_changes_only(tmp_path: Path) -> None:
    env = {**bench.GIT_IDENTITY, "GIT_CONFIG_GLOBAL": "/dev/null", "PATH": "/usr/bin:/bin"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    assert not bench.uncommitted(tmp_path)
    (tmp_path / "new.txt").write_text("untracked\n")  # a clone would not have it either way
    assert not bench.uncommitted(tmp_path)
    (tmp_path / "a.txt").write_text("b\n")
    assert bench.uncommitted(tmp_path)
