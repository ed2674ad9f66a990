"""The pure parts of promotion: the lock, the rebuild check, the alias plan, the summaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gitops_ml import cli
from gitops_ml.errors import GitopsMLError
from gitops_ml.files import file_md5
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.dvclock import METRICS_PATH, MODEL_PATH, TRAIN_PATH
from gitops_ml.release import promote as pm

ROOT = Path(__file__).resolve().parents[2]
MD5 = "a" * 32
DATA_MD5 = "b" * 32


def train_entry(**changes) -> dict:
    entry = {
        "cmd": "python -m gitops_ml.stages.train --train data/processed/train.parquet",
        "deps": [
            {"path": TRAIN_PATH, "hash": "md5", "md5": DATA_MD5},
            {"path": "src/gitops_ml/models.py", "hash": "md5", "md5": "c" * 32},
        ],
        "params": {"params.yaml": {"train.model": "hist_gradient_boosting", "train.seed": 42}},
        "outs": [{"path": MODEL_PATH, "hash": "md5", "md5": MD5}],
    }
    entry.update(changes)
    return entry


def a_lock(**changes) -> dict:
    return {
        "schema": "2.0",
        "stages": {
            "train": train_entry(**changes),
            "evaluate": {"outs": [{"path": METRICS_PATH, "md5": "d" * 32}]},
        },
    }


def write_lock(path: Path, lock: dict) -> Path:
    path.write_text(yaml.safe_dump(lock), encoding="utf-8")
    return path


# -- the lock ------------------------------------------------------------------------------------


def test_declared_model_reads_md5_deps_and_params(tmp_path: Path) -> None:
    path = write_lock(tmp_path / "dvc.lock", a_lock())
    declared = dvclock.read_declared(path)
    assert (declared.stage, declared.path, declared.md5) == ("train", MODEL_PATH, MD5)
    assert declared.lock_md5 == file_md5(path)
    assert declared.train_data_md5 == DATA_MD5
    assert declared.params == {"train.model": "hist_gradient_boosting", "train.seed": 42}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "not found (run `dvc repro` and commit dvc.lock)"),
        ("stages: [unclosed", "not valid YAML"),
        ("- a list", "not a dvc.lock"),
        (yaml.safe_dump({"stages": {"split": {}}}), "no 'train' stage"),
        (yaml.safe_dump(a_lock(outs=[{"path": "other.pkl", "md5": MD5}])), "no output models/"),
        (yaml.safe_dump(a_lock(outs=[{"path": MODEL_PATH}])), "has no md5"),
    ],
)
def test_bad_locks_are_one_line_errors(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "dvc.lock"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(GitopsMLError, match=r"dvc\.lock") as err:  # LockError or PromoteError
        dvclock.read_declared(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_stage_differences_name_what_differs() -> None:
    declared = train_entry()
    assert dvclock.stage_differences(declared, train_entry()) == []
    rebuilt = train_entry(
        deps=[
            {"path": TRAIN_PATH, "md5": "e" * 32},
            {"path": "src/gitops_ml/models.py", "md5": "c" * 32},
            {"path": "src/gitops_ml/extra.py", "md5": "f" * 32},
        ],
        params={"params.yaml": {"train.model": "random_forest", "train.seed": 42}},
        outs=[{"path": MODEL_PATH, "md5": "9" * 32}],  # bytes may differ: not listed
    )
    diffs = dvclock.stage_differences(declared, rebuilt)
    assert diffs == [
        "dependency data/processed/train.parquet differs "
        f"(md5 {'e' * 32} in the workspace, {DATA_MD5} in dvc.lock)",
        "dependency src/gitops_ml/extra.py is not in dvc.lock",
        "param train.model differs (random_forest in the workspace, hist_gradient_boosting in "
        "dvc.lock)",
    ]
    assert dvclock.stage_differences(declared, train_entry(cmd="python other.py")) == [
        "the command differs"
    ]
    assert dvclock.stage_differences(declared, None) == [
        "the rebuild recorded no entry for the stage"
    ]


def test_workspace_differences_are_found_before_any_rebuild(tmp_path: Path) -> None:
    code = tmp_path / "src/gitops_ml/models.py"
    code.parent.mkdir(parents=True)
    code.write_text("MODELS = {}\n")
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"train": {"model": "hist_gradient_boosting", "seed": 42}})
    )
    deps = [
        {"path": TRAIN_PATH, "hash": "md5", "md5": DATA_MD5},
        {"path": "src/gitops_ml/models.py", "hash": "md5", "md5": file_md5(code)},
    ]
    lock = a_lock(deps=deps)
    lock["stages"]["split"] = {"outs": [{"path": TRAIN_PATH, "md5": DATA_MD5}]}
    declared = dvclock.declared_model(lock, "0" * 32)
    # The split is another stage's output: only the rebuild can tell whether it differs.
    assert dvclock.workspace_differences(tmp_path, declared) == []

    code.write_text("MODELS = {'x': 1}\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"model": "ridge"}}))
    assert dvclock.workspace_differences(tmp_path, declared) == [
        f"dependency src/gitops_ml/models.py differs (md5 {file_md5(code)} in the workspace, "
        f"{deps[1]['md5']} in dvc.lock)",
        "param train.model differs (ridge in the workspace, hist_gradient_boosting in dvc.lock)",
        "param train.seed is gone",
    ]
    code.unlink()
    assert "dependency src/gitops_ml/models.py is missing from the workspace" in (
        dvclock.workspace_differences(tmp_path, declared)
    )


def test_params_of_another_file_keep_their_file_name() -> None:
    entry = train_entry(params={"params.yaml": {"a": 1}, "other.yaml": {"b": 2}})
    assert dvclock.stage_params(entry) == {"a": 1, "other.yaml:b": 2}


# -- lineage -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "number"),
    [
        ("Merge pull request #12 from team/tune\n\nTune the model", "12"),
        ("Tune the learning rate (#34)\n\n* squashed commits", "34"),
        ('Revert "Tune (#34)"\n\nThis reverts commit abc.', None),
        ("Fix issue #5 in the README", None),
        ("", None),
    ],
)
def test_pr_number_from_merge_and_squash_messages(message: str, number: str | None) -> None:
    assert pm.parse_pr_number(message) == number


def test_metrics_are_recorded_only_when_dvc_lock_vouches_for_them(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    metrics = tmp_path / METRICS_PATH
    metrics.write_text(json.dumps({"roc_auc": 0.91, "n_test": 300, "note": "x"}))
    lock = a_lock()
    lock["stages"]["evaluate"]["outs"][0]["md5"] = file_md5(metrics)
    declared = dvclock.declared_model(lock, "0" * 32)
    assert pm.committed_metrics(tmp_path, declared) == ({"roc_auc": 0.91, "n_test": 300.0}, None)

    metrics.write_text(json.dumps({"roc_auc": 0.5}))
    found, note = pm.committed_metrics(tmp_path, declared)
    assert found == {} and "differs from the one dvc.lock records" in note
    metrics.unlink()
    assert pm.committed_metrics(tmp_path, declared)[1].startswith("reports/metrics.json not found")


# -- aliases -------------------------------------------------------------------------------------


def moves(aliases: dict[str, str], target: str) -> list[tuple[str, str | None, str]]:
    return [(m.alias, m.old, m.new) for m in pm.plan_aliases(aliases, target)]


def test_alias_plan() -> None:
    assert moves({}, "1") == [("champion", None, "1")]
    assert moves({"champion": "1"}, "1") == []
    assert moves({"champion": "1"}, "2") == [("previous", None, "1"), ("champion", "1", "2")]
    # Rollback: champion goes back, previous follows the version it replaced.
    assert moves({"champion": "2", "previous": "1"}, "1") == [
        ("previous", "1", "2"),
        ("champion", "2", "1"),
    ]
    # A rerun after a crash between the two moves only finishes the second.
    assert moves({"champion": "2", "previous": "2"}, "3") == [("champion", "2", "3")]


def test_unknown_crash_point_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pm.CRASH_ENV, "alias")
    with pytest.raises(pm.PromoteError, match="expected one of run, register, previous"):
        pm._crash_point()
    monkeypatch.delenv(pm.CRASH_ENV)
    assert pm._crash_point() is None


# -- summaries -----------------------------------------------------------------------------------


def a_result(uri: str = "sqlite:///mlflow.db", **changes) -> pm.PromoteResult:
    fields = {
        "model_name": "adult income",
        "version": "3",
        "created": True,
        "artifact_source": "rebuild",
        "model_md5": MD5,
        "dvc_lock_md5": "e" * 32,
        "git_sha": "1" * 40,
        "pr_number": "12",
        "run_id": "r1",
        "run_reused": False,
        "alias_moves": [pm.AliasMove("previous", None, "2"), pm.AliasMove("champion", "2", "3")],
        "tracking_uri": uri,
        "lineage": {"gitops_ml.train_data_md5": DATA_MD5},
        "notes": ["the rebuilt file differs"],
    }
    fields.update(changes)
    return pm.PromoteResult(**fields)


def test_summary_of_a_local_dry_run() -> None:
    text = pm.summary_markdown(a_result())
    assert text.startswith("## Promotion: `adult income` version 3 is `@champion`")
    assert "| alias moves | `@previous`: (none) → 2; `@champion`: 2 → 3 |" in text
    assert f"| model md5 (dvc.lock) | `{MD5}` |" in text
    assert f"| train data md5 | `{DATA_MD5}` |" in text
    assert "| pull request | #12 |" in text
    assert "_dry run: local sqlite registry (`sqlite:///mlflow.db`)" in text
    assert "> the rebuilt file differs" in text
    assert "Registry:" not in text


def test_summary_links_the_registry_of_a_server() -> None:
    result = a_result("https://mlflow.example.com/", alias_moves=[], created=False)
    text = pm.summary_markdown(result)
    url = "https://mlflow.example.com/#/models/adult%20income/versions/3"
    assert f"Registry: [adult income v3]({url})" in text
    assert "dry run" not in text
    assert "none (`@champion` already on version 3)" in text
    data = result.to_dict()
    assert json.loads(json.dumps(data))["registry_url"] == url
    assert data["dry_run"] is False and data["model_uri"] == "models:/adult income@champion"
    assert pm.summary_lines(result)[1] == "aliases: unchanged (champion is version 3)"


# -- verify without a registry -------------------------------------------------------------------


def test_verify_without_dvc_lock_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        ["verify", "--params", str(ROOT / "params.yaml"), "--lock", str(tmp_path / "dvc.lock")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "error: " in err and "dvc.lock: not found" in err


def test_verify_against_a_registry_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    lock = write_lock(tmp_path / "dvc.lock", a_lock())
    out = tmp_path / "verdict.json"
    args = ["verify", "--params", str(ROOT / "params.yaml"), "--lock", str(lock)]
    assert cli.main([*args, "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert printed.startswith("no champion alias") and MD5 in printed
    assert json.loads(out.read_text())["ok"] is False
    assert not db.exists()  # verify never creates a registry


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("sqlite:///mlflow.db", True),
        ("file:///tmp/mlruns", True),
        ("mlruns", True),
        ("http://127.0.0.1:5000", False),
        ("postgresql://user:secret@db/mlflow", False),
        ("databricks", False),
    ],
)
def test_which_registries_are_a_local_dry_run(uri: str, local: bool) -> None:
    assert pm.is_local_registry(uri) is local


def test_credentials_in_the_tracking_uri_never_reach_the_summary() -> None:
    assert (
        pm.redact("https://user:token@mlflow.example.com/x") == "https://***@mlflow.example.com/x"
    )
    assert pm.redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"
    result = a_result(pm.redact("postgresql://user:secret@db/mlflow"))
    text = pm.summary_markdown(result) + json.dumps(result.to_dict())
    assert "secret" not in text and "Registry: `postgresql://***@db/mlflow`" in text
    url = pm.registry_url("https://user:token@mlflow.example.com", "m", "1")
    assert url == "https://mlflow.example.com/#/models/m/versions/1"


def test_lock_outputs_and_the_cache_path(tmp_path: Path) -> None:
    lock = {"stages": {"train": {"outs": [{"path": MODEL_PATH, "md5": "ab" + "c" * 30}]}}}
    md5 = dvclock.out_md5(lock, MODEL_PATH)
    assert md5 == "ab" + "c" * 30
    assert dvclock.out_md5(None, MODEL_PATH) is None
    assert dvclock.out_md5(lock, METRICS_PATH) is None
    # Not a DVC repository: the default cache layout.
    assert dvclock.cache_path(tmp_path, md5) == tmp_path / ".dvc/cache/files/md5/ab" / ("c" * 30)


@pytest.mark.parametrize("level", ["local", "repo", "global"])
def test_the_cache_path_follows_a_cache_dir_set_in_any_dvc_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    """Without a [cache] section the default layout is answered without DVC; `dvc config
    cache.dir` at any level is honoured, as DVC itself resolves it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "system"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    md5 = "ab" + "c" * 30
    assert dvclock.cache_path(repo, md5) == repo / ".dvc/cache/files/md5/ab" / ("c" * 30)
    elsewhere = tmp_path / "shared-cache"
    flag = {"local": ["--local"], "repo": [], "global": ["--global"]}[level]
    subprocess.run(
        [sys.executable, "-m", "dvc", "config", *flag, "cache.dir", str(elsewhere)],
        cwd=repo,
        check=True,
    )
    assert dvclock.cache_path(repo, md5) == elsewhere / "files/md5/ab" / ("c" * 30)
