"""kill -9 at many points of `dvc repro`, `gitops-ml promote` and `gitops-ml retrain`; after each,
one re-run of the same command converges to the state of an uninterrupted run.

Each command first runs uninterrupted in a copy of one trained sample repository (copying is
cheap, training is not): its state is the reference (tests/integration/faults.py `State`) and its
duration places the timer points. Then, for each point, a fresh copy runs the command, the whole
process group is killed with SIGKILL when the point's event happens (a line of output, a
temporary file of an atomic write, dvc.lock or mlflow.db changing, a git ref moving, or a delay),
the same command runs once more, and the state must equal the reference: dvc.lock's output hashes,
`dvc status` clean, the workspace as git sees it, no leftover temporary file or folder, no MLflow
run left RUNNING, the registry (one version per model md5, the aliases on the same md5s, one
finished promotion run per md5, `gitops-ml verify` exit 0) and, for retrain, the checkout,
origin's branches, the DVC remote and the pull requests.

Only kills that landed count (the command was still running and died of the signal); each test
prints its count and asserts a minimum, so the suite cannot silently inject nothing; the module
prints a summary line at its end (with -s, or -rA under xdist). A re-run that stops on a file DVC
rewrites in place and the kill cut short gets the documented step and one more run: `rm
.dvc/tmp/rwlock` for DVC's rwlock, `git checkout dvc.lock` for dvc.lock (counted, printed; see
docs/RUNBOOK.md). Two former defects of the MLflow store are tests of their own: a promotion run killed while
RUNNING is closed as FAILED by the re-run, and a kill while MLflow migrates a new SQLite store
leaves no half-built store (it is built in a temporary file); elsewhere runs left RUNNING are
counted.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_ml.files import CACHE_ENV
from tests.fake_github import OWNER, REPO, TOKEN, FakeGitHub, serve_fake_github
from tests.integration.act import git
from tests.integration.conftest import run_in, sample_repo, set_params, template_env
from tests.integration.faults import (
    Landing,
    State,
    Trigger,
    after,
    either,
    kill_at,
    on_line,
    on_migration,
    on_partial,
    on_path,
    on_running_run,
)

pytestmark = pytest.mark.slow

ROWS = 1500
BRANCH = "retrain/drift"
PROMOTE = (
    "gitops-ml",
    "promote",
    "--summary",
    "reports/promotion.md",
    "--json",
    "reports/promotion.json",
)  # fmt: skip  (as promote.yml runs it)
#: Landed kills per command; re-runs that needed `rm .dvc/tmp/rwlock` first; re-runs that
#: needed `git checkout dvc.lock` first (DVC writes both files in place: a kill can cut them).
#: MLflow runs a killed command left RUNNING after the re-run (asserted by the tests marked
#: with the defect; counted everywhere).
INJECTED: dict[str, int] = {}
RWLOCK: dict[str, int] = {}
CUT_LOCK: dict[str, int] = {}
RUNNING: dict[str, int] = {}


@dataclass(frozen=True)
class Point:
    name: str
    trigger: Callable[[], Trigger]  # a fresh trigger for each run


def timers(seconds: float, fractions: Sequence[float]) -> list[Point]:
    return [Point(f"{f:.0%} of {seconds:.1f} s", lambda f=f: after(f * seconds)) for f in fractions]


# -- the trained repository and its copies ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `repo` (main: the pipeline on a sample, reproduced, committed, pushed),
    `dvc-remote` (its DVC remote) and `origin.git` (its git remote)."""
    base = tmp_path_factory.mktemp("faults") / "base"
    repo = sample_repo(base / "repo", ROWS, remote=base / "dvc-remote")
    git(base, "init", "-q", "--bare", "origin.git")
    git(repo, "remote", "add", "origin", str(base / "origin.git"))
    git(repo, "push", "-q", "origin", "main")
    return base


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield

    def counts(found: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in found.items() if v) or "none"

    line = f"injected kill -9 points: {counts(INJECTED)}"
    line += f"; re-runs after `rm .dvc/tmp/rwlock`: {counts(RWLOCK)}"
    line += f"; re-runs after `git checkout dvc.lock`: {counts(CUT_LOCK)}"
    line += f"; MLflow runs left RUNNING: {counts(RUNNING)}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # not under xdist (a worker has no terminal): shown without -s
        reporter.write_line(f"\n{line}")
    else:
        print(f"\n{line}")


def relocate_store(db: Path, old: str, new: str) -> None:
    """Point the MLflow store's absolute artifact paths at the copy."""
    if not db.is_file():
        return
    conn = sqlite3.connect(db)
    with conn:
        for (table,) in conn.execute("select name from sqlite_master where type = 'table'"):
            for column in conn.execute(f"pragma table_info('{table}')"):
                name, kind = column[1], column[2].upper()
                if kind == "" or "CHAR" in kind or "TEXT" in kind:
                    conn.execute(
                        f'update "{table}" set "{name}" = replace("{name}", ?, ?) '
                        f'where "{name}" like ?',
                        (old, new, f"%{old}%"),
                    )
    conn.close()


def copy_of(trained: Path, dest: Path, *, store: bool = True) -> Path:
    """A copy of the trained folder whose repository uses the copy's remotes and store."""
    shutil.copytree(trained, dest, symlinks=True)
    repo = dest / "repo"
    if store:
        relocate_store(repo / "mlflow.db", str(trained / "repo"), str(repo))
    else:
        (repo / "mlflow.db").unlink()
        shutil.rmtree(repo / "mlruns", ignore_errors=True)
    (repo / ".dvc" / "config.local").write_text(
        f"['remote \"storage\"']\n    url = {dest / 'dvc-remote'}\n"
    )
    git(repo, "remote", "set-url", "origin", str(dest / "origin.git"))
    return repo


# -- one point: kill, re-run, compare -------------------------------------------------------


def rerun(command: str, repo: Path, cmd: Sequence[str], env: Mapping[str, str]):
    """The same command once more. When DVC stops on a file it writes in place and a kill cut
    short, the documented step first and one more run: `rm .dvc/tmp/rwlock` for its lock of
    running stages, `git checkout dvc.lock` for dvc.lock (both counted and printed)."""
    proc = subprocess.run(list(cmd), cwd=repo, env=dict(env), capture_output=True, text=True)
    said = (proc.stdout + proc.stderr).lower()
    if proc.returncode != 0 and "rwlock" in said:
        RWLOCK[command] += 1
        (repo / ".dvc" / "tmp" / "rwlock").unlink(missing_ok=True)
    elif proc.returncode != 0 and "dvc.lock' validation failed" in said:
        CUT_LOCK[command] += 1
        git(repo, "checkout", "dvc.lock")
    else:
        return proc
    return subprocess.run(list(cmd), cwd=repo, env=dict(env), capture_output=True, text=True)


def dvc_status_clean(repo: Path) -> list[str]:
    status = run_in(repo, "dvc", "status", "--json", check=False)
    if status.returncode != 0 or json.loads(status.stdout or "null") != {}:
        return [f"dvc status: {status.stdout.strip()[:300]} {status.stderr.strip()[-300:]}"]
    return []


class Injection:
    """The points of one command: counts the landed kills, collects what did not converge."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.landed = 0
        self.missed: list[str] = []
        self.failures: list[str] = []
        self.running = 0
        for counter in (INJECTED, RWLOCK, CUT_LOCK, RUNNING):
            counter.setdefault(command, 0)

    def point(
        self,
        repo: Path,
        cmd: Sequence[str],
        env: Mapping[str, str],
        point: Point,
        reference: State | Sequence[State],
        checks: Callable[[Path], list[str]] = lambda repo: [],
    ) -> Landing:
        """Kill `cmd` at `point`, re-run it once, compare with `reference` (or with any of
        several states an uninterrupted history may end in)."""
        began = time.monotonic()
        landing = kill_at(repo, cmd, env, point.trigger(), point.name)
        if not landing.landed:
            self.missed.append(f"{point.name} (exit {landing.returncode} first)")
            print(f"{self.command}: {point.name}: not injected, the command had finished")
            return landing
        self.landed += 1
        INJECTED[self.command] += 1
        proc = rerun(self.command, repo, cmd, env)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            self.failures.append(f"{point.name}: the re-run exited {proc.returncode}: {last}")
            print(f"{self.command}: {point.name}: killed at {landing.seconds:.2f} s, re-run failed")
            return landing
        state = State.of(repo)
        references = [reference] if isinstance(reference, State) else reference
        found = min((state.differences(ref) for ref in references), key=len) + checks(repo)
        if state.running:
            self.running += state.running
            RUNNING[self.command] += state.running
            print(f"{self.command}: {point.name}: {state.running} MLflow run(s) left RUNNING")
        if found:
            self.failures.append(f"{point.name} (killed at {landing.seconds:.2f} s): {found}")
        print(
            f"{self.command}: {point.name}: killed at {landing.seconds:.2f} s, "
            f"{'not converged' if found else 'converged'} ({time.monotonic() - began:.0f} s)"
        )
        return landing

    def verdict(self, minimum: int) -> None:
        counts = f"{self.command}: {self.landed} injected kill -9 points"
        if self.missed:
            counts += f" ({len(self.missed)} fell after the end: {self.missed})"
        print(counts)
        assert not self.failures, counts + "; not converged:\n" + "\n".join(self.failures)
        assert self.landed >= minimum, counts + f", expected at least {minimum}"


def timed(repo: Path, cmd: Sequence[str], env: Mapping[str, str]) -> float:
    """Run `cmd` uninterrupted; its duration."""
    start = time.monotonic()
    proc = subprocess.run(list(cmd), cwd=repo, env=dict(env), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seconds = time.monotonic() - start
    print(f"{' '.join(cmd[:2])}: uninterrupted in {seconds:.1f} s")
    return seconds


# -- dvc repro ----------------------------------------------------------------------------------

#: A change that re-runs train and evaluate (the stages with the model and the folder outputs).
NEW_HYPERPARAMS = {"max_iter": 60, "learning_rate": 0.2}

#: DVC rewrites its rwlock and dvc.lock in place (truncate, then write): the kill falls while
#: one is cut short when polling catches that, else at the next stage's start.
REPRO_POINTS = [
    Point(
        "DVC writes its rwlock",
        lambda: either(on_partial(".dvc/tmp/rwlock", "write"), on_line("Running stage 'evaluate'")),
    ),
    Point("train writes the model", lambda: on_path("models/.model.joblib.*.tmp")),
    Point(
        "DVC writes dvc.lock",
        lambda: either(on_partial("dvc.lock", "stages"), on_line("Running stage 'evaluate'")),
    ),
    Point("evaluate writes the figures", lambda: on_path("reports/.figures.*.tmp")),
]


def test_dvc_repro_converges_after_kill_9(trained: Path, tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        repo = copy_of(trained, tmp_path / name)
        set_params(repo, train={"hyperparams": NEW_HYPERPARAMS})
        return repo

    cmd = ("dvc", "repro")
    ref = fresh("reference")
    env = template_env(ref)
    seconds = timed(ref, cmd, env)
    reference = State.of(ref)
    assert reference.running == 0 and not reference.leftovers and not dvc_status_clean(ref)
    faults = Injection("dvc repro")
    for i, point in enumerate([*REPRO_POINTS, *timers(seconds, (0.5,))]):
        repo = fresh(f"p{i}")
        faults.point(repo, cmd, template_env(repo), point, reference, dvc_status_clean)
    faults.verdict(minimum=4)


# -- gitops-ml promote ---------------------------------------------------------------------


def promote_checks(repo: Path) -> list[str]:
    proc = run_in(repo, "gitops-ml", "verify", check=False)
    return [] if proc.returncode == 0 else [f"verify exit {proc.returncode}: {proc.stdout}"]


@dataclass(frozen=True)
class Promoted:
    """An uninterrupted promotion: its state and duration, from an existing or a new store."""

    state: State
    seconds: float
    store: bool


def _promoted(trained: Path, dest: Path, *, store: bool) -> Promoted:
    ref = copy_of(trained, dest, store=store)
    seconds = timed(ref, PROMOTE, template_env(ref))
    state = State.of(ref)
    assert not promote_checks(ref) and state.running == 0 and not state.leftovers
    assert len(state.versions) == 1 and len(state.aliases) == 1, (state.versions, state.aliases)
    return Promoted(state, seconds, store)


@pytest.fixture(scope="module")
def promoted(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Promoted:
    """Into the store `dvc repro` created (the train stage's runs are in it)."""
    return _promoted(trained, tmp_path_factory.mktemp("promoted") / "base", store=True)


@pytest.fixture(scope="module")
def promoted_new(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Promoted:
    """Into no store: promote creates mlflow.db, MLflow's tables first."""
    return _promoted(trained, tmp_path_factory.mktemp("promoted-new") / "base", store=False)


def _promote_points(
    command: str,
    trained: Path,
    tmp_path: Path,
    ref: Promoted,
    points: Sequence[Point],
    *,
    empty_cache: bool = False,
) -> Injection:
    """`empty_cache`: each point in a cache folder of its own, so that no template store is
    kept there and a new store is built by MLflow's migrations (`tracking._build_store`)."""
    faults = Injection(command)
    for i, point in enumerate(points):
        repo = copy_of(trained, tmp_path / f"p{i}", store=ref.store)
        env = template_env(repo)
        if empty_cache:
            env[CACHE_ENV] = str(tmp_path / f"cache{i}")
        faults.point(repo, PROMOTE, env, point, ref.state, promote_checks)
    return faults


#: The promotion's steps, by what promote logs (stderr) after each.
REGISTERED = Point("the version registered, no alias yet", lambda: on_line("registered '"))
ALIASED = Point("the champion alias set", lambda: on_line("alias champion"))
#: A run RUNNING in the store (the promotion run, created before its model is logged); should
#: runs never be RUNNING, the kill falls once the version is registered.
RUN_CREATED = Point(
    "the promotion run created", lambda: either(on_running_run(), on_line("registered '"))
)


def test_promote_into_an_existing_store_converges_after_kill_9(
    trained: Path, promoted: Promoted, tmp_path: Path
) -> None:
    # Setting the champion alias is the last step: the process may be gone before that kill.
    points = [REGISTERED, ALIASED, *timers(promoted.seconds, (0.3, 0.6))]
    _promote_points("promote", trained, tmp_path, promoted, points).verdict(minimum=3)


def test_promote_killed_after_creating_its_run_leaves_no_run_running(
    trained: Path, promoted: Promoted, tmp_path: Path
) -> None:
    """The first write of promote to an existing store creates its MLflow run; killed then,
    the re-run converges and closes the killed run as FAILED."""
    faults = _promote_points("promote", trained, tmp_path, promoted, [RUN_CREATED])
    faults.verdict(minimum=1)
    assert faults.running == 0, f"{faults.running} MLflow run(s) left RUNNING"


def test_promote_into_a_new_store_converges_after_kill_9(
    trained: Path, promoted_new: Promoted, tmp_path: Path
) -> None:
    """The kills fall before and after MLflow creates and migrates its tables."""
    points = [
        Point("mlflow.db created", lambda: on_path("mlflow.db")),
        Point("the experiment created", lambda: on_line("Creating a new experiment")),
        REGISTERED,
    ]
    _promote_points("promote (new store)", trained, tmp_path, promoted_new, points).verdict(3)


def test_promote_killed_while_mlflow_migrates_a_new_store_converges(
    trained: Path, promoted_new: Promoted, tmp_path: Path
) -> None:
    points = [
        Point(f"MLflow's migration #{n} half applied", lambda n=n: on_migration(n))
        for n in (1, 2, 5, 10)
    ]
    faults = _promote_points(
        "promote (store migration)", trained, tmp_path, promoted_new, points, empty_cache=True
    )
    faults.verdict(minimum=3)


# -- gitops-ml retrain --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drifted(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a drifted batch and `gitops-ml drift`'s reports on it."""
    out = tmp_path_factory.mktemp("batch")
    repo = trained / "repo"
    run_in(repo, "gitops-ml", "demo-batch", "--output", str(out / "batch.parquet"),
           "--rows", "500", "--seed", "3", "--shift", "missing")  # fmt: skip
    proc = run_in(repo, "gitops-ml", "drift", "--current", str(out / "batch.parquet"),
                  "--json", str(out / "drift.json"), "--markdown", str(out / "drift.md"),
                  check=False)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr  # drift
    return out


def retrain_cmd(out: Path) -> tuple[str, ...]:
    return ("gitops-ml", "retrain", "--batch", str(out / "batch.parquet"),
            "--drift-json", str(out / "drift.json"), "--drift-markdown", str(out / "drift.md"))  # fmt: skip


@contextmanager
def github_env(repo: Path) -> Iterator[tuple[FakeGitHub, dict[str, str]]]:
    with serve_fake_github() as gh:
        env = {**template_env(repo), "GITHUB_TOKEN": TOKEN,
               "GITHUB_REPOSITORY": f"{OWNER}/{REPO}", "GITHUB_API_URL": gh.url}  # fmt: skip
        yield gh, env


def retrain_state(repo: Path, gh: FakeGitHub) -> dict[str, object]:
    """Origin, the DVC remote and the pull requests: what a retrain leaves for CI and review."""
    origin = repo.parent / "origin.git"
    remote = repo.parent / "dvc-remote"
    refs = git(origin, "for-each-ref", "--format=%(objectname) %(refname)").splitlines()
    return {
        "origin": {
            ref: (
                git(origin, "rev-parse", f"{sha}^{{tree}}"),
                git(origin, "rev-parse", f"{sha}~1") if ref.endswith(BRANCH) else None,
            )
            for sha, ref in (line.split() for line in refs)
        },
        "dvc remote": sorted(
            p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file()
        ),
        "pulls": [(p["head"]["ref"], p["base"]["ref"], p["title"]) for p in gh.pulls],
    }


def checkout(repo: Path) -> tuple[str, str]:
    return git(repo, "rev-parse", "--abbrev-ref", "HEAD"), git(repo, "rev-parse", "HEAD^{tree}")


RETRAIN_POINTS = [
    Point("branched, the batch copied", lambda: on_line("added the batch")),
    Point("data pushed, not committed", lambda: on_line("pushed the data to the DVC remote")),
    # the ref appears on origin while `git push` runs, before the pull request is asked for
    Point(
        "branch on origin, no pull request", lambda: on_path(f"../origin.git/refs/heads/{BRANCH}")
    ),
]


def test_retrain_converges_after_kill_9(trained: Path, drifted: Path, tmp_path: Path) -> None:
    """The re-run ends with origin, the DVC remote and the pull request as an uninterrupted run
    leaves them; the checkout is on the retrain branch as after that run, or on main when the
    kill fell after the push (the re-run opens the pull request from the pushed branch, as
    after any failure to open it)."""
    cmd = retrain_cmd(drifted)
    main = copy_of(trained, tmp_path / "main")
    on_main = (State.of(main), checkout(main))
    ref = copy_of(trained, tmp_path / "reference")
    with github_env(ref) as (gh, env):
        timed(ref, cmd, env)
        expected = retrain_state(ref, gh)
    reference = (State.of(ref), checkout(ref))
    assert reference[1][0] == BRANCH and len(expected["pulls"]) == 1
    assert not dvc_status_clean(ref) and not reference[0].leftovers

    faults = Injection("retrain")
    for i, point in enumerate(RETRAIN_POINTS):
        repo = copy_of(trained, tmp_path / f"p{i}")
        with github_env(repo) as (gh, env):

            def checks(repo: Path, gh: FakeGitHub = gh) -> list[str]:
                found = dvc_status_clean(repo)
                if checkout(repo) not in (reference[1], on_main[1]):
                    found.append(
                        f"checkout {checkout(repo)}, expected {reference[1]} or {on_main[1]}"
                    )
                state = retrain_state(repo, gh)
                found += [f"{key}: {state[key]!r}, expected {expected[key]!r}"
                          for key in expected if state[key] != expected[key]]  # fmt: skip
                return found

            faults.point(repo, cmd, env, point, (reference[0], on_main[0]), checks)
    faults.verdict(minimum=3)
