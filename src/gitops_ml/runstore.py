"""MLflow runs written without importing MLflow: the train and evaluate stages' fast path.

Importing MLflow and opening its store costs about 4 s per process, more than the rest of a
stage's fixed cost, and the stages only create a run, log params, metrics and tags, and copy a
few files. This module does exactly that, in milliseconds, for the two stores the template uses:

- a SQLite store (the default ``sqlite:///mlflow.db``) that MLflow has created, when the run
  tables have exactly the columns written here. Each call is one transaction, so a killed stage
  leaves its run wholly written (FINISHED) or not at all, never RUNNING forever;
- an MLflow tracking server, through its REST API (``/api/2.0/mlflow/...``), with artifacts
  through the server's proxy (``mlflow-artifacts:``).

`champion_files` reads what an alias of a local SQLite registry points to, for `verify`'s fast
path; it only reads. `store_health` tells a complete SQLite store (its schema at the revision the
installed MLflow expects) from a half-built one, and whether it holds anything worth keeping.

Runs the MLflow client starts are RUNNING until their process ends them; a process killed before
that leaves them RUNNING. Such runs carry `process_tags` (host, pid, start time), and
`fail_runs_of_gone_processes` closes as FAILED those of a process of this host that is gone.

Anything else raises `Unsupported` before writing, and tracking.py does the same work with the
MLflow client: a store not created yet, a schema this module does not know, an experiment that
is missing or deleted in a SQLite store, artifact storage that is neither local nor proxied,
credentials other than a token or a user and password, workspaces, a non-finite metric, a name or
value longer than MLflow accepts. `StoreError` means the store itself refused or did not answer.
"""

from __future__ import annotations

import ast
import base64
import functools
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: MLflow's own limits (mlflow/utils/validation.py); longer values go to the MLflow client,
#: which refuses them with its own message.
MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
#: MLflow's log-batch limits per request.
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000

#: Seconds a write waits for another writer's lock on the SQLite file.
SQLITE_BUSY_SECONDS = 30.0
#: Seconds for one HTTP request when MLflow's own MLFLOW_HTTP_REQUEST_TIMEOUT is not set.
HTTP_TIMEOUT_SECONDS = 30.0
#: Retries of a request the server answered with one of these (it may recover).
RETRY_STATUSES = (429, 502, 503, 504)
HTTP_RETRIES = 2

#: The columns of the tables written here, as MLflow 3 creates them. Another set of columns
#: means another schema: the MLflow client writes instead.
SQLITE_TABLES: dict[str, frozenset[str]] = {
    "runs": frozenset(
        [
            "run_uuid",
            "name",
            "source_type",
            "source_name",
            "entry_point_name",
            "user_id",
            "status",
            "start_time",
            "end_time",
            "source_version",
            "lifecycle_stage",
            "artifact_uri",
            "experiment_id",
            "deleted_time",
        ]
    ),
    "tags": frozenset({"key", "value", "run_uuid"}),
    "params": frozenset({"key", "value", "run_uuid"}),
    "metrics": frozenset({"key", "value", "timestamp", "run_uuid", "step", "is_nan"}),
    "latest_metrics": frozenset({"key", "value", "timestamp", "step", "is_nan", "run_uuid"}),
}
#: Columns of `experiments` read here (the table may have more, e.g. ``workspace``).
EXPERIMENT_COLUMNS = frozenset({"experiment_id", "name", "artifact_location", "lifecycle_stage"})
DEFAULT_WORKSPACE = "default"


class Unsupported(Exception):
    """This store or request needs the MLflow client; the message says why. Nothing was written."""


class MissingExperiment(Unsupported):
    """The experiment does not exist yet: the MLflow client creates it, then this module writes."""


class StoreError(Exception):
    """The store refused a request or did not answer; the message is one line."""


# --- the process that owns a RUNNING run ---------------------------------------------------------

TAG_HOST = "gitops_ml.host"
TAG_PID = "gitops_ml.pid"
#: When that process started (seconds since the epoch): a pid reused by a new process is not it.
TAG_PID_STARTED = "gitops_ml.pid_started"
#: Linux's pid namespace: containers sharing a host name number their processes apart.
TAG_PID_NAMESPACE = "gitops_ml.pid_namespace"
PROCESS_TAGS = (TAG_HOST, TAG_PID, TAG_PID_STARTED, TAG_PID_NAMESPACE)
#: Two start times of one process never differ by this much (seconds).
START_TOLERANCE = 1.0


def _started(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil missing, the process gone or not readable
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_tags() -> dict[str, str]:
    """Tags naming this process, for a run it starts RUNNING (see `process_gone`)."""
    tags = {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}
    started = _started(os.getpid())
    if started is not None:
        tags[TAG_PID_STARTED] = f"{started:.2f}"
    namespace = _pid_namespace()
    if namespace:
        tags[TAG_PID_NAMESPACE] = namespace
    return tags


def process_gone(tags: Mapping[str, str]) -> bool:
    """True when `tags` (`process_tags` of a run) name a process of this host that has ended:
    its pid is free, or holds a process started at another time. A process of another host,
    another pid namespace, or one that cannot be told apart is never gone."""
    if tags.get(TAG_HOST) != socket.gethostname():
        return False
    if tags.get(TAG_PID_NAMESPACE, "") != (_pid_namespace() or "") and TAG_PID_NAMESPACE in tags:
        return False
    pid_text = tags.get(TAG_PID, "")
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        pass
    except OSError:
        return False
    try:
        recorded = float(tags.get(TAG_PID_STARTED, ""))
    except ValueError:
        return False
    started = _started(pid)
    return started is not None and abs(started - recorded) > START_TOLERANCE


#: A file or directory to add to a run: (folder inside the run's artifacts, local path).
Artifact = tuple[str, "str | os.PathLike[str]"]


class RunStore(Protocol):
    def log_run(
        self,
        experiment: str,
        run_name: str,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> str:
        """Create one FINISHED run with these params, metrics (step 0) and tags; its id."""
        ...

    def add_to_newest_run(
        self,
        experiment: str,
        tag: tuple[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Sequence[Artifact],
    ) -> str | None:
        """Add metrics, tags and artifacts to the newest FINISHED active run of `experiment`
        carrying `tag` (key, value); its id, or None when there is no such run."""
        ...

    def fail_runs_of_gone_processes(self, experiment: str) -> list[str]:
        """Mark FAILED (with an end time) the RUNNING runs of `experiment` whose process, on
        this host, is gone (`process_gone`); their ids."""
        ...


def open_store(uri: str) -> RunStore:
    """The fast writer for tracking URI `uri`; `Unsupported` when only the MLflow client can."""
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true") or os.environ.get(
        "MLFLOW_WORKSPACE"
    ):
        raise Unsupported("MLflow workspaces are enabled")
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme == "sqlite":
        return SqliteRuns(sqlite_path(uri))
    if scheme in ("http", "https"):
        return RestRuns(uri)
    raise Unsupported(f"tracking URI scheme '{scheme or 'file'}'")


def _check_entries(
    params: Mapping[str, str], metrics: Mapping[str, float], tags: Mapping[str, str]
) -> None:
    for key, value in params.items():
        if len(key) > MAX_KEY_LENGTH or len(value) > MAX_PARAM_LENGTH:
            raise Unsupported(f"param '{key[:40]}' is longer than MLflow accepts")
    for key, value in tags.items():
        if len(key) > MAX_KEY_LENGTH or len(value) > MAX_TAG_LENGTH:
            raise Unsupported(f"tag '{key[:40]}' is longer than MLflow accepts")
    for key, value in metrics.items():
        if len(key) > MAX_KEY_LENGTH or not math.isfinite(value):
            raise Unsupported(f"metric '{key[:40]}' is not a finite number")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _artifact_files(artifacts: Sequence[Artifact]) -> list[tuple[str, Path]]:
    """Every file to upload as (path inside the run's artifacts, local file), as MLflow's
    log_artifact (a file into the folder) and log_artifacts (a directory's contents) lay out."""
    files = []
    for folder, local in artifacts:
        path = Path(local)
        if path.is_dir():
            for item in sorted(p for p in path.rglob("*") if p.is_file()):
                files.append((f"{folder}/{item.relative_to(path).as_posix()}", item))
        elif path.is_file():
            files.append((f"{folder}/{path.name}", path))
        else:
            raise StoreError(f"artifact {local} not found")
    return files


# --- SQLite ------------------------------------------------------------------------------------


def sqlite_path(uri: str) -> Path:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URI."""
    rest = uri[len("sqlite://") :]
    if not rest.startswith("/") or "?" in rest or rest in ("/", "/:memory:"):
        raise Unsupported(f"SQLite URI form '{uri}'")
    return Path(rest[1:])


def _local_dir(artifact_uri: str) -> Path:
    """The directory of a local artifact URI (a path or ``file://``); Unsupported otherwise."""
    parts = urllib.parse.urlsplit(artifact_uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parts.path))
    if parts.scheme == "":
        return Path(artifact_uri)
    raise Unsupported(f"artifact storage '{parts.scheme}:'")


def _append(location: str, *parts: str) -> str:
    """`location` (a path or a URI) with path parts appended, as MLflow's append_to_uri_path."""
    split = urllib.parse.urlsplit(location)
    if not split.scheme:
        return "/".join([location.rstrip("/"), *parts])
    return urllib.parse.urlunsplit(split._replace(path="/".join([split.path.rstrip("/"), *parts])))


_REVISION_RE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)


@functools.cache
def schema_head() -> str | None:
    """The schema revision the installed MLflow creates and expects (the head of its alembic
    migrations), read from its migration files without importing it; None when they cannot be
    read or do not name one head."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "store/db_migrations/versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for file in folder.glob("*.py"):
            found = dict(_REVISION_RE.findall(file.read_text(encoding="utf-8")))
            if "revision" not in found:
                continue
            revisions.add(str(ast.literal_eval(found["revision"])))
            down = ast.literal_eval(found.get("down_revision", "None"))
            parents.update(down if isinstance(down, tuple | list) else [down] if down else [])
    except (OSError, ValueError, SyntaxError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _revision(db: sqlite3.Connection) -> str | None:
    try:
        rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.OperationalError:  # no such table: MLflow had not started its migrations
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


#: Tables whose rows MLflow itself puts in a new store, or that hold nothing a user made.
_BOOKKEEPING = frozenset({"alembic_version", "experiments", "experiment_tags", "workspaces"})


def _tables(db: sqlite3.Connection) -> list[str]:
    """The store's tables, less SQLite's own and alembic's temporary ones."""
    return [
        row[0]
        for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not row[0].startswith(("sqlite_", "_alembic_tmp_"))
    ]


@dataclass(frozen=True)
class StoreHealth:
    """What a local SQLite tracking store holds: `revision` (None: no migration recorded),
    `head` (what the installed MLflow expects; None: unknown) and whether any table holds
    runs, models, traces or anything else a user made (`valuable`)."""

    revision: str | None
    head: str | None
    valuable: bool
    tables: int

    @property
    def complete(self) -> bool:
        return self.head is not None and self.revision == self.head


def store_health(path: Path) -> StoreHealth:
    """`StoreHealth` of the SQLite file `path`; `StoreError` when it is not a database SQLite
    can read. It writes nothing, but opens the file for writing: a transaction a kill left
    half-done (a hot ``-journal``) is rolled back by SQLite on that open, as on any other."""
    try:
        db = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode=rw", uri=True, timeout=SQLITE_BUSY_SECONDS
        )
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
    try:
        revision = _revision(db)
        head = schema_head()
        tables = _tables(db)
        valuable = False
        if revision is None or revision != head:
            valuable = any(
                db.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() is not None
                for name in tables
                if name not in _BOOKKEEPING
            )
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from None
    finally:
        db.close()
    return StoreHealth(revision, head, valuable, len(tables))


def holds_nothing(path: Path, head: str) -> bool:
    """Whether the SQLite file `path` is a store at revision `head` that holds nothing but
    MLflow's bookkeeping: its revision and at most one workspace; no experiment, not even the
    default one (what `tracking` keeps as the template of new stores)."""
    try:
        db = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        if _revision(db) != head:
            return False
        most = {"alembic_version": 1, "workspaces": 1}
        return all(
            db.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] <= most.get(name, 0)
            for name in _tables(db)
        )
    except sqlite3.Error:
        return False
    finally:
        db.close()


class SqliteRuns:
    """Runs written straight into an existing MLflow SQLite store, one transaction per call."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise Unsupported(f"{path} does not exist yet (MLflow creates it)")
        self.path = path

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(
                f"file:{urllib.parse.quote(str(self.path))}?mode=rw",
                uri=True,
                timeout=SQLITE_BUSY_SECONDS,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        try:
            try:
                db.execute("BEGIN IMMEDIATE")
                self._check_schema(db)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None
        finally:
            db.close()

    @staticmethod
    def _columns(db: sqlite3.Connection, table: str) -> set[str]:
        return {row[1] for row in db.execute(f'PRAGMA table_info("{table}")')}

    def _check_schema(self, db: sqlite3.Connection) -> None:
        head = schema_head()
        if head is None or _revision(db) != head:
            raise Unsupported(f"{self.path} is not at the schema revision MLflow expects")
        for table, expected in SQLITE_TABLES.items():
            if self._columns(db, table) != expected:
                raise Unsupported(f"table '{table}' of {self.path} is not the schema known here")
        if not self._columns(db, "experiments") >= EXPERIMENT_COLUMNS:
            raise Unsupported(f"table 'experiments' of {self.path} is not the schema known here")

    def _experiment(self, db: sqlite3.Connection, name: str) -> tuple[int, str] | None:
        """(id, artifact location) of the active experiment `name`; None if there is none."""
        query = "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments"
        args: tuple[Any, ...] = (name,)
        if "workspace" in self._columns(db, "experiments"):
            query += " WHERE name = ? AND workspace = ?"
            args = (name, DEFAULT_WORKSPACE)
        else:
            query += " WHERE name = ?"
        row = db.execute(query, args).fetchone()
        if row is None:
            return None
        if row[2] != "active" or not row[1]:
            raise Unsupported(f"experiment '{name}' is deleted or has no artifact location")
        return int(row[0]), str(row[1])

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        run_id: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        params: Mapping[str, str] | None = None,
    ) -> None:
        now = _now_ms()
        db.executemany(
            'INSERT OR REPLACE INTO tags ("key", value, run_uuid) VALUES (?, ?, ?)',
            [(key, value, run_id) for key, value in tags.items()],
        )
        if params:
            db.executemany(
                'INSERT INTO params ("key", value, run_uuid) VALUES (?, ?, ?)',
                [(key, value, run_id) for key, value in params.items()],
            )
        db.executemany(
            'INSERT OR IGNORE INTO metrics ("key", value, timestamp, run_uuid, step, is_nan) '
            "VALUES (?, ?, ?, ?, 0, 0)",
            [(key, float(value), now, run_id) for key, value in metrics.items()],
        )
        # The latest value of a key is the one with the greatest (step, timestamp, value), as
        # MLflow keeps it.
        db.executemany(
            'INSERT INTO latest_metrics ("key", value, timestamp, step, is_nan, run_uuid) '
            "VALUES (?, ?, ?, 0, 0, ?) "
            'ON CONFLICT ("key", run_uuid) DO UPDATE SET value = excluded.value, '
            "timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan "
            "WHERE step < excluded.step OR (step = excluded.step AND (timestamp < "
            "excluded.timestamp OR (timestamp = excluded.timestamp AND value < excluded.value)))",
            [(key, float(value), now, run_id) for key, value in metrics.items()],
        )

    def log_run(
        self,
        experiment: str,
        run_name: str,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> str:
        _check_entries(params, metrics, tags)
        with self._transaction() as db:
            found = self._experiment(db, experiment)
            if found is None:
                raise MissingExperiment(f"experiment '{experiment}' does not exist yet")
            experiment_id, location = found
            run_id = uuid.uuid4().hex
            start = _now_ms()
            db.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, deleted_time, source_version, "
                "lifecycle_stage, artifact_uri, experiment_id) "
                "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'FINISHED', ?, ?, NULL, '', 'active', ?, ?)",
                (
                    run_id,
                    run_name,
                    tags.get("mlflow.user", ""),
                    start,
                    _now_ms(),
                    _append(location, run_id, "artifacts"),
                    experiment_id,
                ),
            )
            self._insert(db, run_id, metrics, {**tags, "mlflow.runName": run_name}, params)
        return run_id

    def add_to_newest_run(
        self,
        experiment: str,
        tag: tuple[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Sequence[Artifact],
    ) -> str | None:
        _check_entries({}, metrics, tags)
        files = _artifact_files(artifacts)
        with self._transaction() as db:
            found = self._experiment(db, experiment)
            if found is None:
                return None
            row = db.execute(
                "SELECT r.run_uuid, r.artifact_uri FROM runs r JOIN tags t "
                'ON t.run_uuid = r.run_uuid AND t."key" = ? AND t.value = ? '
                "WHERE r.experiment_id = ? AND r.status = 'FINISHED' "
                "AND r.lifecycle_stage = 'active' ORDER BY r.start_time DESC, r.run_uuid LIMIT 1",
                (tag[0], tag[1], found[0]),
            ).fetchone()
            if row is None:
                return None
            run_id, artifact_uri = row
            target = _local_dir(artifact_uri) if files else None
            self._insert(db, run_id, metrics, tags)
            # Files first, then the commit: a failed copy leaves the run's metrics as they were.
            for relative, local in files:
                assert target is not None
                dest = target / relative
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(local, dest)
                except OSError as exc:
                    raise StoreError(f"copying {local} to {dest}: {exc.strerror or exc}") from None
        return run_id

    def fail_runs_of_gone_processes(self, experiment: str) -> list[str]:
        marks = ", ".join("?" * len(PROCESS_TAGS))
        with self._transaction() as db:
            found = self._experiment(db, experiment)
            if found is None:
                return []
            owners: dict[str, dict[str, str]] = {}
            for run_id, key, value in db.execute(
                'SELECT r.run_uuid, t."key", t.value FROM runs r JOIN tags t '
                f'ON t.run_uuid = r.run_uuid AND t."key" IN ({marks}) '
                "WHERE r.experiment_id = ? AND r.status = 'RUNNING'",
                (*PROCESS_TAGS, found[0]),
            ):
                owners.setdefault(run_id, {})[key] = value
            gone = sorted(run_id for run_id, tags in owners.items() if process_gone(tags))
            db.executemany(
                "UPDATE runs SET status = 'FAILED', end_time = ? "
                "WHERE run_uuid = ? AND status = 'RUNNING'",
                [(_now_ms(), run_id) for run_id in gone],
            )
        return gone


def champion_files(uri: str, name: str, alias: str, files: Sequence[str]) -> dict[str, Any]:
    """The version an alias of a local SQLite registry names, its run and tags, and the bytes of
    `files` in its model's artifacts: ``{"version": str | None, "run_id": str | None, "tags":
    {key: value}, <file>: bytes | None}`` (version None: no such alias; a file None: not there).
    `Unsupported` for any other store (or one not at the schema revision MLflow expects) or a
    version not READY."""
    if urllib.parse.urlsplit(uri).scheme != "sqlite":
        raise Unsupported("a registry that is not a local SQLite file")
    path = sqlite_path(uri)
    if not path.is_file():
        raise Unsupported(f"{path} does not exist")
    try:
        db = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, timeout=SQLITE_BUSY_SECONDS
        )
    except sqlite3.Error as exc:
        raise Unsupported(f"{path}: {exc}") from None
    try:
        if _revision(db) != schema_head():  # MLflow refuses this store: it says why
            raise Unsupported(f"{path} is not at the schema revision MLflow expects")
        aliases = {row[1] for row in db.execute('PRAGMA table_info("registered_model_aliases")')}
        versions = {row[1] for row in db.execute('PRAGMA table_info("model_versions")')}
        if not {"alias", "version", "name"} <= aliases or not {
            "name", "version", "status", "storage_location"
        } <= versions:  # fmt: skip
            raise Unsupported(f"{path}: registry tables are not the schema known here")
        where = " AND a.workspace = v.workspace AND a.workspace = 'default'" if (
            "workspace" in aliases and "workspace" in versions
        ) else ""  # fmt: skip
        row = db.execute(
            "SELECT v.version, v.status, v.storage_location, v.run_id "
            "FROM registered_model_aliases a "
            f"JOIN model_versions v ON v.name = a.name AND v.version = a.version{where} "
            "WHERE a.name = ? AND a.alias = ?",
            (name, alias),
        ).fetchone()
        tags: dict[str, str] = {}
        if row is not None:
            workspace = " AND workspace = 'default'" if where else ""
            tags = dict(
                db.execute(
                    "SELECT key, value FROM model_version_tags "
                    f"WHERE name = ? AND version = ?{workspace}",
                    (name, row[0]),
                ).fetchall()
            )
    except sqlite3.Error as exc:
        raise Unsupported(f"{path}: {exc}") from None
    finally:
        db.close()
    if row is None:
        return {"version": None}
    version, status, location, run_id = row
    if status != "READY" or not location:
        raise Unsupported(f"version {version} is {status} or has no storage location")
    folder = _local_dir(str(location))
    found: dict[str, Any] = {"version": str(version), "run_id": run_id, "tags": tags}
    for relative in files:
        file = folder / relative
        try:
            found[relative] = file.read_bytes() if file.is_file() else None
        except OSError as exc:
            raise Unsupported(f"{file}: {exc.strerror or exc}") from None
    return found


# --- REST --------------------------------------------------------------------------------------


class RestRuns:
    """Runs written through a tracking server's REST API, artifacts through its proxy."""

    def __init__(self, uri: str) -> None:
        if os.environ.get("MLFLOW_TRACKING_AUTH") or os.environ.get(
            "MLFLOW_TRACKING_AWS_SIGV4", ""
        ).lower() in ("1", "true"):
            raise Unsupported("an MLflow authentication plugin is configured")
        if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
            raise Unsupported("a TLS client certificate is configured")
        self.base = uri.rstrip("/")
        self.headers = {"Content-Type": "application/json"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif user:
            pair = f"{user}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.context: ssl.SSLContext | None = None
        if uri.startswith("https:"):
            if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true"):
                self.context = ssl._create_unverified_context()
            else:
                cafile = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
                self.context = ssl.create_default_context(cafile=cafile)
        try:
            self.timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", ""))
        except ValueError:
            self.timeout = HTTP_TIMEOUT_SECONDS

    def _request(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> dict[str, Any]:
        url = f"{self.base}{path}"
        for attempt in range(HTTP_RETRIES + 1):
            request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
            try:
                with urllib.request.urlopen(
                    request, timeout=self.timeout, context=self.context
                ) as resp:
                    text = resp.read().decode("utf-8", errors="replace")
                return json.loads(text) if text.strip() else {}
            except urllib.error.HTTPError as exc:
                if exc.code in RETRY_STATUSES and attempt < HTTP_RETRIES:
                    time.sleep(1.0 + attempt)
                    continue
                raise StoreError(_http_error(exc, path)) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise StoreError(f"no answer from the tracking server ({reason})") from None
            except ValueError:
                raise StoreError(f"{path}: the tracking server's answer is not JSON") from None
        raise AssertionError("unreachable")

    def _call(self, endpoint: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        path = f"/api/2.0/mlflow/{endpoint}"
        if body is None:
            return self._request("GET", path, None, self.headers)
        return self._request("POST", path, json.dumps(body).encode(), self.headers)

    def _experiment_id(self, name: str, *, create: bool) -> str | None:
        query = urllib.parse.urlencode({"experiment_name": name})
        try:
            found = self._call(f"experiments/get-by-name?{query}")["experiment"]
        except StoreError as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
            if not create:
                return None
            return str(self._call("experiments/create", {"name": name})["experiment_id"])
        if found.get("lifecycle_stage") != "active":
            raise Unsupported(f"experiment '{name}' is deleted")
        return str(found["experiment_id"])

    def _log_batch(
        self,
        run_id: str,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> None:
        now = _now_ms()
        entries = (
            [("params", {"key": k, "value": v}) for k, v in params.items()]
            + [("tags", {"key": k, "value": v}) for k, v in tags.items()]
            + [
                ("metrics", {"key": k, "value": float(v), "timestamp": now, "step": 0})
                for k, v in metrics.items()
            ]
        )
        step = MAX_PARAMS_TAGS_PER_BATCH  # params and tags limit each batch; metrics fit too
        for start in range(0, len(entries), step):
            batch: dict[str, Any] = {"run_id": run_id, "params": [], "tags": [], "metrics": []}
            for kind, entry in entries[start : start + step]:
                batch[kind].append(entry)
            self._call("runs/log-batch", batch)

    def log_run(
        self,
        experiment: str,
        run_name: str,
        params: Mapping[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> str:
        _check_entries(params, metrics, tags)
        experiment_id = self._experiment_id(experiment, create=True)
        run = self._call(
            "runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": run_name,
                "user_id": tags.get("mlflow.user", ""),
                "start_time": _now_ms(),
                "tags": [
                    {"key": key, "value": value}
                    for key, value in {"mlflow.runName": run_name, **process_tags()}.items()
                ],
            },
        )
        run_id = str(run["run"]["info"]["run_id"])
        status = "FAILED"
        try:
            self._log_batch(run_id, params, metrics, tags)
            status = "FINISHED"
        finally:
            self._call("runs/update", {"run_id": run_id, "status": status, "end_time": _now_ms()})
        return run_id

    def add_to_newest_run(
        self,
        experiment: str,
        tag: tuple[str, str],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        artifacts: Sequence[Artifact],
    ) -> str | None:
        _check_entries({}, metrics, tags)
        files = _artifact_files(artifacts)
        experiment_id = self._experiment_id(experiment, create=False)
        if experiment_id is None:
            return None
        key, value = tag
        found = self._call(
            "runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{key}` = '{value}' and attributes.status = 'FINISHED'",
                "run_view_type": "ACTIVE_ONLY",
                "max_results": 1,
                "order_by": ["attributes.start_time DESC"],
            },
        ).get("runs", [])
        if not found:
            return None
        info = found[0]["info"]
        run_id, artifact_uri = str(info["run_id"]), str(info.get("artifact_uri", ""))
        where = urllib.parse.urlsplit(artifact_uri)
        if files and (where.scheme != "mlflow-artifacts" or where.netloc):
            raise Unsupported(
                f"artifact storage '{where.scheme or 'file'}:' (not the server's proxy)"
            )
        self._log_batch(run_id, {}, metrics, tags)
        root = where.path.strip("/")
        for relative, local in files:
            path = urllib.parse.quote(f"{root}/{relative}")
            self._request(
                "PUT",
                f"/api/2.0/mlflow-artifacts/artifacts/{path}",
                local.read_bytes(),
                {**self.headers, "Content-Type": "application/octet-stream"},
            )
        return run_id

    def fail_runs_of_gone_processes(self, experiment: str) -> list[str]:
        host = socket.gethostname()
        experiment_id = self._experiment_id(experiment, create=False)
        if experiment_id is None or "'" in host or "`" in host:
            return []
        runs = self._call(
            "runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}'",
                "run_view_type": "ALL",
                "max_results": 1000,
            },
        ).get("runs", [])
        gone = []
        for run in runs:
            tags = {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}
            if process_gone(tags):
                run_id = str(run["info"]["run_id"])
                self._call(
                    "runs/update", {"run_id": run_id, "status": "FAILED", "end_time": _now_ms()}
                )
                gone.append(run_id)
        return sorted(gone)


def _http_error(exc: urllib.error.HTTPError, path: str) -> str:
    """'HTTP 404 RESOURCE_DOES_NOT_EXIST: <message>' from MLflow's JSON error body."""
    try:
        body = json.loads(exc.read().decode("utf-8", errors="replace"))
        code, message = body.get("error_code", ""), str(body.get("message", ""))
    except (ValueError, AttributeError, OSError):
        code, message = "", ""
    first = message.strip().splitlines()[0][:300] if message.strip() else exc.reason
    return f"HTTP {exc.code} {code}: {first} ({path.split('?')[0]})".replace("  ", " ")
