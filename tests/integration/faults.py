"""kill -9 at chosen moments of a command, and what a converged repository looks like.

`kill_at` starts a command in its own session and, when its trigger fires, sends SIGKILL to the
whole process group (the command and every stage, git or dvc process it started). Triggers are
events, not only timers, so the kill lands in the window that matters on a loaded machine too:
a line of output, a path appearing (a temporary file of an atomic write), a file changing
(dvc.lock, mlflow.db), or a delay after another trigger. A kill counts as injected only when it
landed: the command was still running and died of the signal.

`State` is what a run leaves behind, compared between an uninterrupted run and a killed run
followed by one re-run: dvc.lock's output hashes, the workspace as git sees it (tracked and
untracked files, as one tree hash), the set of files git ignores (outputs, reports, the
registry's files), temporary leftovers anywhere, MLflow runs left RUNNING, and the registry.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import lock_hashes

#: Polling period of the triggers (a kill lands within about this long of its event).
POLL_SECONDS = 0.002
#: Temporary names an interrupted write may leave: files.py's ``.<name>.<pid>.*.tmp`` and its
#: ``.<name>.old``, DVC's ``<name>.<uuid>.tmp``, SQLite's journals.
LEFTOVER = re.compile(r"(\.tmp$|^\..+\.old$|-journal$|-wal$)")
#: Not part of a workspace's state: git's and DVC's own working files, the DVC cache (its
#: objects are content-addressed; only its temporary files matter) and MLflow's artifact
#: folders (named after random run ids).
NOT_STATE = (".git", ".dvc/tmp", ".dvc/cache", "mlruns")
#: MLflow writes a store with these run statuses.
RUNNING = "RUNNING"


# -- triggers -------------------------------------------------------------------------------


@dataclass
class Run:
    """A command being watched: its repository, output lines so far and start time."""

    repo: Path
    start: float
    lines: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


Trigger = Callable[[Run], bool]


def on_line(text: str) -> Trigger:
    """A line of the command's output (stdout and stderr) contains `text`."""
    return lambda run: any(text in line for line in list(run.lines))


def on_path(*patterns: str) -> Trigger:
    """A path matching one of the glob patterns (relative to the repository) exists; keep the
    patterns to one folder each, they are tried every few milliseconds."""

    def fired(run: Run) -> bool:
        for pattern in patterns:
            folder, _, name = pattern.rpartition("/")
            try:
                with os.scandir(run.repo / folder) as entries:
                    if any(fnmatch.fnmatchcase(e.name, name) for e in entries):
                        return True
            except FileNotFoundError:
                continue
        return False

    return fired


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def on_change(rel: str, times: int = 1) -> Trigger:
    """The file `rel` changed (written, created or removed) `times` times since the start, as
    seen by polling (writes closer together than the polling period count once)."""
    state: dict[str, object] = {}

    def fired(run: Run) -> bool:
        now = _stamp(run.repo / rel)
        if "last" not in state:
            state.update(last=now, seen=0)
            return False
        if now != state["last"]:
            state.update(last=now, seen=int(state["seen"]) + 1)
        return int(state["seen"]) >= times

    return fired


def on_partial(rel: str, key: str) -> Trigger:
    """The YAML (or JSON) file `rel` changed and is not whole (empty, cut short, no top-level
    `key`): a write in progress, caught by polling when it lasts long enough."""
    import yaml

    state: dict[str, object] = {}

    def fired(run: Run) -> bool:
        now = _stamp(run.repo / rel)
        if "first" not in state:
            state["first"] = now
        if now is None or now == state["first"]:
            return False
        try:
            text = (run.repo / rel).read_text(encoding="utf-8")
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, ValueError, yaml.YAMLError):
            return True
        return not isinstance(data, dict) or key not in data

    return fired


def on_migration(times: int = 1, db: str = "mlflow.db") -> Trigger:
    """MLflow is migrating a new SQLite store and the schema has moved ahead of its recorded
    version (``alembic_version``) for the `times`-th time: a migration's statements are in,
    its version not yet (read-only reads, between the writer's transactions). The store is
    `db`, or a temporary ``.<db>.*.tmp`` beside it while one is being built there."""
    state: dict[str, object] = {"seen": 0, "ahead": False}

    def fired(run: Run) -> bool:
        building = sorted(run.repo.glob(f".{db}.*.tmp"))
        path = building[0] if building else run.repo / db
        if not path.is_file():
            return False
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
            try:
                schema = conn.execute("select count(*), total(length(sql)) from sqlite_master")
                shape = schema.fetchone()
                version = conn.execute("select version_num from alembic_version").fetchall()
            finally:
                conn.close()
        except sqlite3.Error:  # no version table yet, or the writer holds the file
            return False
        if state.get("version") != version:
            state.update(version=version, shape=shape, ahead=False)
        elif shape != state["shape"] and not state["ahead"]:
            state.update(ahead=True, seen=int(state["seen"]) + 1)
        return int(state["seen"]) >= times

    return fired


def on_running_run(db: str = "mlflow.db") -> Trigger:
    """An MLflow run in the SQLite store `db` is RUNNING (a read-only query each time)."""

    def fired(run: Run) -> bool:
        rows = _query(run.repo / db, f"select count(*) from runs where status = '{RUNNING}'", 0.05)
        return bool(rows and rows[0][0])

    return fired


def either(*triggers: Trigger) -> Trigger:
    """Whichever of `triggers` fires first (each is tried every time)."""
    return lambda run: any([trigger(run) for trigger in triggers])


def after(seconds: float, first: Trigger | None = None) -> Trigger:
    """`seconds` after the start, or after `first` fired."""
    state: dict[str, float] = {}

    def fired(run: Run) -> bool:
        if first is None:
            return run.elapsed() >= seconds
        if "at" not in state:
            if not first(run):
                return False
            state["at"] = time.monotonic()
        return time.monotonic() - state["at"] >= seconds

    return fired


# -- the kill -------------------------------------------------------------------------------


@dataclass
class Landing:
    """Where a kill fell: `landed` when the command was still running and died of SIGKILL."""

    point: str
    landed: bool
    seconds: float
    returncode: int
    output: str


def _group_gone(pgid: int, timeout: float = 15.0) -> None:
    """Wait until no process of the group is left (killed children are reaped by init, which
    may take a moment): a re-run must not see a killed process as alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def killed_tmp(repo: Path) -> Path:
    """The TMPDIR of commands a test kills in `repo`: a folder beside it, in the test's own."""
    tmp = repo.parent / f".{repo.name}-killed-tmp"
    tmp.mkdir(exist_ok=True)
    return tmp


def kill_at(
    repo: Path,
    cmd: Sequence[str],
    env: Mapping[str, str],
    trigger: Trigger,
    point: str,
    timeout: float = 600.0,
) -> Landing:
    """Run `cmd` in `repo` and kill its whole process group with SIGKILL when `trigger` fires.

    The command's temporary folders go beside `repo` (`killed_tmp`), not into the machine's
    temporary folder: a process killed with SIGKILL cannot remove them."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=repo,
        env={**env, "PYTHONUNBUFFERED": "1", "TMPDIR": str(killed_tmp(repo))},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    run = Run(repo, time.monotonic())
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: run.lines.extend(proc.stdout), daemon=True)
    reader.start()
    fired_at = None
    while proc.poll() is None:
        if trigger(run) or run.elapsed() > timeout:
            fired_at = run.elapsed()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(POLL_SECONDS)
    proc.wait()
    reader.join(timeout=30)
    _group_gone(proc.pid)
    if fired_at is not None and fired_at > timeout:
        raise AssertionError(f"{point}: {' '.join(cmd)} still running after {timeout} s")
    landed = proc.returncode == -signal.SIGKILL
    return Landing(point, landed, fired_at or run.elapsed(), proc.returncode, "".join(run.lines))


# -- state ----------------------------------------------------------------------------------


def _skipped(rel: str) -> bool:
    return any(rel == top or rel.startswith(top + "/") for top in NOT_STATE)


def leftovers(repo: Path) -> list[str]:
    """Temporary files and folders anywhere in the repository but git's and DVC's own tmp."""
    found = []
    for folder, dirs, files in os.walk(repo):
        rel = Path(folder).relative_to(repo).as_posix()
        if rel in (".git", ".dvc/tmp"):
            dirs[:] = []
            continue
        for name in (*dirs, *files):
            if LEFTOVER.search(name):
                found.append(f"{rel}/{name}" if rel != "." else name)
    return sorted(found)


def ignored_files(repo: Path) -> set[str]:
    """Every file of the workspace outside git's and DVC's own folders (outputs included)."""
    found = set()
    for folder, dirs, files in os.walk(repo):
        rel = Path(folder).relative_to(repo).as_posix()
        if rel != "." and _skipped(rel):
            dirs[:] = []
            continue
        for name in files:
            found.add(f"{rel}/{name}" if rel != "." else name)
    return found


def workspace_tree(repo: Path) -> str:
    """The tree hash of the workspace as `git add -A` would stage it, without touching the
    repository's own index: tracked changes and untracked files in one comparable value."""
    index = repo / ".git" / "faults-index"
    index.write_bytes((repo / ".git" / "index").read_bytes())
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    try:
        subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True, capture_output=True)
        out = subprocess.run(
            ["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True, text=True
        )
    finally:
        index.unlink(missing_ok=True)
    return out.stdout.strip()


def _query(db: Path, sql: str, timeout: float = 30.0) -> list[tuple]:
    """Rows of a read-only query; none when the store or its tables do not exist (yet), or
    (with a short `timeout`) while a writer holds the file."""
    if not db.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def running_runs(repo: Path) -> int:
    rows = _query(repo / "mlflow.db", f"select count(*) from runs where status = '{RUNNING}'")
    return rows[0][0] if rows else 0


def registry(repo: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(model md5 -> its READY versions, alias -> the md5 of its version) of every model."""
    rows = _query(
        repo / "mlflow.db",
        "select v.name, v.version, v.status, t.value from model_versions v left join "
        "model_version_tags t on t.name = v.name and t.version = v.version "
        "and t.key = 'gitops_ml.model_md5'",
    )
    versions: dict[str, list[str]] = {}
    md5_of: dict[tuple[str, str], str] = {}
    for name, version, status, md5 in rows:
        key = f"{name}:{md5}" if status == "READY" else f"{name}:{md5}:{status}"
        versions.setdefault(key, []).append(str(version))
        md5_of[(name, str(version))] = str(md5)
    aliases = {
        f"{name}@{alias}": md5_of.get((name, str(version)), "?")
        for name, alias, version in _query(
            repo / "mlflow.db", "select name, alias, version from registered_model_aliases"
        )
    }
    return versions, aliases


def finished_promotion_runs(repo: Path) -> dict[str, int]:
    """Model md5 -> how many FINISHED promotion runs record it."""
    rows = _query(
        repo / "mlflow.db",
        "select m.value, count(*) from runs r join tags p on p.run_uuid = r.run_uuid and "
        "p.key = 'gitops_ml.promotion' join tags m on m.run_uuid = r.run_uuid and "
        "m.key = 'gitops_ml.model_md5' where r.status = 'FINISHED' group by m.value",
    )
    return dict(rows)


@dataclass(frozen=True)
class State:
    lock: dict[str, str]
    tree: str
    files: frozenset[str]
    leftovers: tuple[str, ...]
    running: int
    versions: dict[str, list[str]]
    aliases: dict[str, str]
    promotions: dict[str, int]

    @classmethod
    def of(cls, repo: Path) -> State:
        versions, aliases = registry(repo)
        return cls(
            lock=lock_hashes(repo),
            tree=workspace_tree(repo),
            files=frozenset(ignored_files(repo)),
            leftovers=tuple(leftovers(repo)),
            running=running_runs(repo),
            versions=versions,
            aliases=aliases,
            promotions=finished_promotion_runs(repo),
        )

    def differences(self, reference: State) -> list[str]:
        """What differs from the uninterrupted run's state, one line per finding (runs left
        RUNNING are counted apart: see `running`)."""
        found = []
        if self.lock != reference.lock:
            changed = sorted(k for k in {*self.lock, *reference.lock}
                             if self.lock.get(k) != reference.lock.get(k))  # fmt: skip
            found.append(f"dvc.lock outs differ: {changed}")
        if self.tree != reference.tree:
            found.append("the workspace differs from the uninterrupted run's (git tree)")
        if self.files != reference.files:
            extra, missing = (
                sorted(self.files - reference.files),
                sorted(reference.files - self.files),
            )
            found.append(f"files: extra {extra}, missing {missing}")
        if self.leftovers:
            found.append(f"leftovers: {list(self.leftovers)}")
        if self.versions != reference.versions:
            found.append(f"registry versions {self.versions}, expected {reference.versions}")
        if self.aliases != reference.aliases:
            found.append(f"aliases {self.aliases}, expected {reference.aliases}")
        if self.promotions != reference.promotions:
            found.append(
                f"finished promotion runs {self.promotions}, expected {reference.promotions}"
            )
        return found
