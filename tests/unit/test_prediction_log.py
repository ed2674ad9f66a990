"""The prediction log's retention: gitops.yaml ``monitoring:`` parsed by
`batches.retention_config`, `batches.prune_prediction_log` on real log files, and
`gitops-ml predict --log-dir` pruning after each append. Nothing outside the log's own files is
ever deleted."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from gitops_ml import batches
from gitops_ml.batches import RetentionConfig, prune_prediction_log, retention_config
from gitops_ml.cli import main as cli_main
from gitops_ml.config import load_params, parse_params
from gitops_ml.errors import ConfigError
from gitops_ml.stages import train
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
NOW = pd.Timestamp("2026-03-31T12:00:00", tz="UTC")


def _log(folder: Path, days_ago: float, rows: int = 100) -> Path:
    """One batch logged `days_ago` before NOW, as `append_prediction_log` writes it."""
    at = NOW - pd.Timedelta(days=days_ago)
    frame = pd.DataFrame({"age": range(rows), "score": 0.5})
    return batches.append_prediction_log(folder, frame, at)


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------------------------
# the monitoring: section


def test_the_shipped_section_keeps_everything_and_an_absent_one_too() -> None:
    params = load_params(ROOT / "params.yaml")
    assert "monitoring" in params.raw
    assert retention_config(params.raw) == RetentionConfig(None, None)
    assert not retention_config(params.raw).limited
    raw = template_settings()
    del raw["monitoring"]
    assert retention_config(parse_params(raw).raw) == RetentionConfig()


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"retention_days": 0, "retention_rows": None}, "'monitoring.retention_days' must be"),
        ({"retention_days": 7, "retention_rows": "lots"}, "'monitoring.retention_rows' must be"),
        ({"retention_days": True, "retention_rows": None}, "'monitoring.retention_days' must be"),
        ({"retention_days": 7}, "missing key 'monitoring.retention_rows'"),
        ({"retention_days": 7, "retention_rows": None, "days": 1}, "unknown key 'monitoring.days'"),
        ([7], "section 'monitoring' must be a mapping"),
    ],
)
def test_a_bad_section_names_the_key(section, needle) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        retention_config({"monitoring": section})


def test_an_unknown_section_is_still_refused() -> None:
    raw = template_settings()
    raw["monitor"] = {"retention_days": 1}
    with pytest.raises(ConfigError, match="unknown section 'monitor'"):
        parse_params(raw)


# --------------------------------------------------------------------------------------------
# pruning


def test_batches_older_than_retention_days_are_deleted(tmp_path: Path) -> None:
    old, older = _log(tmp_path, 8), _log(tmp_path, 30)
    recent, today = _log(tmp_path, 6.9), _log(tmp_path, 0)
    pruned = prune_prediction_log(tmp_path, RetentionConfig(retention_days=7), NOW)
    assert set(pruned.files) == {old, older} and pruned.rows == 200
    assert _names(tmp_path) == {recent.name, today.name}
    assert len(batches.read_prediction_log(tmp_path)) == 200


def test_only_the_newest_batches_within_retention_rows_are_kept(tmp_path: Path) -> None:
    files = [_log(tmp_path, d, rows=100) for d in (3, 2, 1, 0)]  # oldest first
    pruned = prune_prediction_log(tmp_path, RetentionConfig(retention_rows=250), NOW)
    assert set(pruned.files) == set(files[:2])
    assert _names(tmp_path) == {f.name for f in files[2:]}
    # the newest batch stays even when it alone is over the limit
    pruned = prune_prediction_log(tmp_path, RetentionConfig(retention_rows=50), NOW)
    assert pruned.files == (files[2],)
    assert _names(tmp_path) == {files[3].name}


def test_no_limit_deletes_nothing_and_keep_is_never_deleted(tmp_path: Path) -> None:
    ancient = _log(tmp_path, 400)
    assert prune_prediction_log(tmp_path, RetentionConfig(), NOW).files == ()
    kept = prune_prediction_log(tmp_path, RetentionConfig(1, 1), NOW, keep=ancient)
    assert kept.files == () and ancient.exists()


def test_nothing_but_the_logs_own_files_is_ever_deleted(tmp_path: Path) -> None:
    log = tmp_path / "log"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # a file outside the log, named and aged like a logged batch, and a link to it in the log
    target = _log(outside, 100)
    link = log / "20200101T000000-0badc0de.parquet"
    log.mkdir()
    link.symlink_to(target)
    (log / "20200101T000000-00000000.parquet").mkdir()  # a directory with a log file's name
    (log / "20200101T000000-11111111.parquet" / "x").mkdir(parents=True, exist_ok=True)
    for name in ("notes.txt", "old.parquet", ".20200101T000000-x.tmp", "20200101T000000.parquet"):
        (log / name).write_text("not a logged batch")
    unreadable = log / "20200101T000000-22222222.parquet"
    unreadable.write_bytes(b"PAR1 not parquet")
    before = _names(log)
    doomed = _log(log, 100)
    pruned = prune_prediction_log(log, RetentionConfig(retention_days=1, retention_rows=1), NOW)
    assert pruned.files == (doomed,)
    assert _names(log) == before
    assert link.is_symlink() and target.is_file() and _names(outside) == {target.name}
    assert unreadable.read_bytes() == b"PAR1 not parquet"


# --------------------------------------------------------------------------------------------
# gitops-ml predict --log-dir


@pytest.fixture(scope="module")
def workspace(adult_split, tmp_path_factory) -> Path:
    """params.yaml + gitops.yaml with a 250-row retention, and a small model."""
    ws = tmp_path_factory.mktemp("retention")
    raw = template_settings()
    gitops = {k: raw.pop(k) for k in ("gate", "drift", "monitoring")}
    gitops["monitoring"] = {"retention_days": 30, "retention_rows": 250}
    (ws / "params.yaml").write_text(yaml.safe_dump(raw))
    (ws / "gitops.yaml").write_text(yaml.safe_dump(gitops))
    params = load_params(ws / "params.yaml")
    sample = adult_split[0].head(2000)
    X, y = train.split_features(sample, "income", "binary")
    with threadpool_limits(limits=1, user_api="openmp"):
        model = train.configured_pipeline(sample, params).fit(X, y)
    train.save_model(model, ws / "model.joblib")
    adult_split[1].head(100).to_csv(ws / "batch.csv", index=False)
    return ws


def _predict(ws: Path, out: Path, log: Path) -> int:
    return cli_main(
        ["predict", "--input", str(ws / "batch.csv"), "--output", str(out), "--model",
         str(ws / "model.joblib"), "--params", str(ws / "params.yaml"), "--schema",
         str(ROOT / "data/schema/adult.yaml"), "--log-dir", str(log)]
    )  # fmt: skip


def test_predict_prunes_the_log_after_each_append(workspace, tmp_path, capsys) -> None:
    log = tmp_path / "log"
    stale = _log(log, 365 * 10)  # ten years old: beyond retention_days
    for _ in range(3):
        assert _predict(workspace, tmp_path / "out.csv", log) == 0
    out = capsys.readouterr().out.splitlines()
    assert "pruned 1 older batch(es), 100 rows" in out[0]  # the stale one
    assert "pruned" not in out[1]  # 200 rows: within 250
    assert "pruned 1 older batch(es), 100 rows" in out[2]  # 300 rows: the oldest goes
    assert not stale.exists()
    assert len(batches.read_prediction_log(log)) == 200


def test_predict_refuses_a_bad_monitoring_section_and_writes_nothing(
    workspace, tmp_path, capsys
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("params.yaml", "model.joblib", "batch.csv"):
        (ws / name).symlink_to(workspace / name)
    gitops = yaml.safe_load((workspace / "gitops.yaml").read_text())
    gitops["monitoring"]["retention_rows"] = -1
    (ws / "gitops.yaml").write_text(yaml.safe_dump(gitops))
    assert _predict(ws, tmp_path / "out.csv", tmp_path / "log") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'monitoring.retention_rows' must be" in err[0]
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "log").exists()
