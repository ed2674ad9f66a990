"""`gitops-ml changes` and `gitops-ml check-cache`: what pr.yml decides before anything runs.

The base commit holds the project's own dvc.yaml, dvc.lock and params.yaml (the real pipeline's
record, not one made up for the test); each test commits one kind of change on a branch.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from gitops_ml.cli import main
from gitops_ml.lineage.cache import check_cache
from gitops_ml.lineage.dvclock import METRICS_PATH
from gitops_ml.pr.changes import pipeline_changes
from tests.conftest import ROOT
from tests.integration.act import git


def write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`main` with the template's pipeline files, the files its lock names, and a README;
    checked out on a new branch `pr`."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for rel in ("dvc.yaml", "dvc.lock", "params.yaml", "gitops.yaml", "README.md"):
        shutil.copy2(ROOT / rel, repo / rel)
    write(repo, "src/gitops_ml/stages/train.py", "# train\n")
    write(repo, "data/source/adult/adult.data", "1,2\n")
    write(repo, METRICS_PATH, '{"roc_auc": 0.93}\n')
    write(repo, "tests/test_x.py", "def test(): pass\n")
    commit(repo, "main")
    git(repo, "checkout", "-q", "-b", "pr")
    monkeypatch.chdir(repo)
    return repo


def edit_params(repo: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_docs_tests_and_workflows_are_not_pipeline_inputs(repo: Path) -> None:
    write(repo, "README.md", "# changed\n")
    write(repo, "tests/test_x.py", "def test(): assert True\n")
    write(repo, ".github/workflows/ci.yml", "name: ci\n")
    gitops = yaml.safe_load((repo / "gitops.yaml").read_text())
    gitops["gate"]["thresholds"] = {"roc_auc": 0.5}  # the gate reads it, no stage does
    (repo / "gitops.yaml").write_text(yaml.safe_dump(gitops))
    commit(repo)
    changes = pipeline_changes("main")
    assert not changes.reproduce
    assert changes.files == (
        ".github/workflows/ci.yml",
        "README.md",
        "gitops.yaml",
        "tests/test_x.py",
    )
    assert changes.describe().startswith("No DVC dependency changed since ")
    assert "4 files: .github/workflows/ci.yml, README.md" in changes.describe()


def test_nothing_changed(repo: Path) -> None:
    changes = pipeline_changes("main")
    assert not changes.reproduce and changes.files == ()
    assert "Nothing changed" in changes.describe()


@pytest.mark.parametrize(
    ("rel", "why"),
    [
        ("src/gitops_ml/stages/train.py", "dependency of train"),
        ("data/source/adult/adult.data", "dependency of ingest"),  # a file in a dependency folder
        ("data/source/new.csv", "dependency of ingest"),
        (METRICS_PATH, "output of evaluate"),  # a hand-edited output is never trusted
        ("dvc.yaml", "the pipeline's definition"),
        ("requirements.lock", "the pinned environment"),
        ("requirements-runtime.lock", "the pinned environment"),  # what pr.yml installs
        ("data/extra.csv.dvc", "a DVC-tracked data file"),
        ("data/schema/adult.yaml", "dependency of validate"),  # through dvc.yaml's ${schema}
    ],
)
def test_a_pipeline_input_changed(repo: Path, rel: str, why: str) -> None:
    write(repo, rel, "changed\n")
    commit(repo)
    changes = pipeline_changes("main")
    assert changes.reproduce
    ((path, reason),) = changes.inputs
    assert path == rel and why in reason
    assert f"  {rel}: " in changes.describe()


def test_params_count_only_through_the_keys_a_stage_recorded(repo: Path) -> None:
    edit_params(repo, "mlflow", "model_name", "another-name")  # the registry's; no stage reads it
    commit(repo)
    assert not pipeline_changes("main").reproduce

    edit_params(repo, "train", "hyperparams", {"max_iter": 5})
    commit(repo)
    changes = pipeline_changes("main")
    ((path, reason),) = changes.inputs
    assert path == "params.yaml"
    assert reason == "params train.hyperparams (train), train.hyperparams (tune)"


def test_a_deleted_dependency_and_a_rename_count(repo: Path) -> None:
    git(repo, "mv", "src/gitops_ml/stages/train.py", "src/gitops_ml/stages/fit.py")
    commit(repo)
    changes = pipeline_changes("main")
    assert [p for p, _ in changes.inputs] == ["src/gitops_ml/stages/train.py"]
    assert "src/gitops_ml/stages/fit.py" in changes.files


def test_the_merge_base_not_the_base_tip(repo: Path) -> None:
    """main moving on after the branch was cut is not the PR's change."""
    git(repo, "checkout", "-q", "main")
    write(repo, "src/gitops_ml/stages/train.py", "# main moved on\n")
    commit(repo)
    git(repo, "checkout", "-q", "pr")
    write(repo, "README.md", "# docs\n")
    commit(repo)
    assert not pipeline_changes("main").reproduce


def test_a_base_without_a_lock_reproduces(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    git(repo, "rm", "-q", "dvc.lock")
    commit(repo)
    git(repo, "checkout", "-q", "-B", "pr")
    write(repo, "README.md", "# docs\n")
    commit(repo)
    assert pipeline_changes("main").inputs == (("dvc.lock", "the base has no dvc.lock"),)


def test_cli_writes_the_step_output(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(repo, "README.md", "# docs\n")
    commit(repo)
    out = repo.parent / "github-output"
    assert main(["changes", "--base", "main", "--github-output", str(out)]) == 0
    assert out.read_text() == "reproduce=false\n"
    assert "No DVC dependency changed" in capsys.readouterr().out
    write(repo, "src/gitops_ml/stages/train.py", "# code\n")
    commit(repo)
    assert main(["changes", "--base", "main", "--github-output", str(out)]) == 0
    assert out.read_text() == "reproduce=false\nreproduce=true\n"


def test_cli_unknown_base_is_a_one_line_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes", "--base", "origin/nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown revision 'origin/nope'" in err[0]


# -- check-cache ------------------------------------------------------------------------------


def put(cache: Path, content: bytes, suffix: str = "") -> Path:
    md5 = hashlib.md5(content).hexdigest()
    path = cache / "files" / "md5" / md5[:2] / (md5[2:] + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_check_cache_keeps_true_objects_and_removes_the_rest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    good = put(cache, b"model bytes")
    listing = put(cache, b'[{"md5": "x", "relpath": "a"}]', ".dir")
    forged = put(cache, b"the champion")
    forged.write_bytes(b"import os; os.system('evil')")  # same name, other content
    stray = cache / "files" / "md5" / "ab" / "not-an-object.tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("half written")
    secret = tmp_path / "secret"
    secret.write_bytes(b"model bytes")
    link_md5 = hashlib.md5(b"model bytes").hexdigest()
    link = cache / "files" / "md5" / "ff" / link_md5[2:]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)  # a link is never an object, whatever it points at

    result = check_cache(cache)
    assert result.checked == 5
    assert sorted(result.removed) == sorted(
        str(p.relative_to(cache)) for p in (forged, stray, link)
    )
    assert good.read_bytes() == b"model bytes" and listing.exists()
    assert not forged.exists() and not stray.exists() and not link.is_symlink()
    assert secret.exists()  # the link's target is left alone
    assert check_cache(cache).removed == ()  # a second run finds nothing more


def test_check_cache_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    assert main(["check-cache", "--cache-dir", str(cache)]) == 0  # no cache yet: nothing to do
    assert "0 objects checked, 0 removed" in capsys.readouterr().out
    bad = put(cache, b"a")
    bad.write_bytes(b"b")
    assert main(["check-cache", "--cache-dir", str(cache)]) == 0
    assert (
        "1 objects checked, 1 removed (content does not match the name" in capsys.readouterr().out
    )
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["check-cache", "--cache-dir", str(afile)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {afile}: not a directory"
