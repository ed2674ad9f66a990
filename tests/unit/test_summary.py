"""`gitops-ml summary` (what `make repro` prints after `dvc repro`), and what the commands of a
fresh clone leave behind: versioned, or gitignored."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gitops_ml import summary
from gitops_ml.cli import main
from gitops_ml.lineage.dvclock import METRICS_PATH

ROOT = Path(__file__).resolve().parents[2]


def outputs(root: Path) -> Path:
    """A workspace with what the evaluate stage writes, and a params.yaml naming the primary."""
    (root / "reports/plots").mkdir(parents=True)
    (root / "reports/figures").mkdir(parents=True)
    metrics = {"accuracy": 0.876651, "f1": 0.72, "n_test": 9769, "roc_auc": 0.9303, "x": "y"}
    (root / METRICS_PATH).write_text(json.dumps(metrics), encoding="utf-8")
    slices = {"race": {"White": {"n": 10}}, "sex": {"Male": {"n": 5}}}
    (root / "reports/slices.json").write_text(json.dumps(slices), encoding="utf-8")
    (root / "reports/plots/roc.json").write_text("[]", encoding="utf-8")
    for name in ("roc", "calibration"):
        (root / f"reports/figures/{name}.png").write_bytes(b"png")
    params = {"mlflow": {"experiment": "exp"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (root / "gitops.yaml").write_text(yaml.safe_dump({"gate": {"primary": "roc_auc"}}))
    return root


def test_summary_names_every_output_and_the_missing_remote(tmp_path: Path) -> None:
    lines = summary.summary_lines(
        outputs(tmp_path), remotes=summary.Remotes({}), tracking_uri="sqlite:///mlflow.db"
    )
    text = "\n".join(lines)
    assert "reports/metrics.json: roc_auc 0.9303, accuracy 0.8767, f1 0.72, n_test 9769" in text
    assert "reports/slices.json: metrics per value of race, sex" in text
    assert "`dvc plots show` renders them into dvc_plots/index.html" in text
    assert "reports/figures/*.png: calibration, roc" in text
    assert (
        "sqlite:///mlflow.db, experiment 'exp': `make ui` opens it on http://127.0.0.1:5000" in text
    )
    assert lines[-1] == (
        "  remote   no DVC remote configured, nothing to push: outputs stay in this clone's "
        "cache (see README 'Team-scale storage: a DVC remote')"
    )
    assert f"## {summary.REMOTE_SECTION}\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_summary_with_a_remote_a_server_and_nothing_built(tmp_path: Path) -> None:
    remotes = summary.Remotes({"storage": "s3://bucket/path", "other": "/mnt/x"}, "storage")
    uri = "https://user:secret@mlflow.example"
    text = "\n".join(summary.summary_lines(tmp_path, remotes=remotes, tracking_uri=uri))
    assert "DVC remote 'storage' (s3://bucket/path): `dvc push` sends" in text
    assert "MLflow   https://***@mlflow.example" in text and "secret" not in text
    assert "make ui" not in text
    for path in (
        METRICS_PATH,
        "reports/slices.json",
        "reports/plots/",
        "reports/figures/",
    ):
        assert f"{path}: not there yet (run `make repro`)" in text, path

    no_default = summary.Remotes({"b": "/x", "a": "/y"})
    text = "\n".join(summary.summary_lines(tmp_path, remotes=no_default, tracking_uri=uri))
    assert "DVC remote(s) a, b but no default: `dvc push -r NAME`" in text
    text = "\n".join(summary.summary_lines(tmp_path, remotes=None, tracking_uri=uri))
    assert "not a DVC repository" in text


def test_headline_puts_the_primary_first_and_stops_at_four() -> None:
    metrics = {"a": 1.0, "b": 0.123456, "c": 3, "d": True, "e": 5.0, "f": float("nan")}
    assert summary.headline(metrics, "e") == "e 5, a 1, b 0.1235, c 3 (+1 more: `dvc metrics show`)"
    assert summary.headline({"a": 0.5}, "missing") == "a 0.5"


def test_dvc_remotes_reads_the_dvc_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dvc.repo import Repo

    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "system"))
    repo = tmp_path / "repo"
    repo.mkdir()
    assert summary.dvc_remotes(repo) is None
    Repo.init(str(repo), no_scm=True).close()
    assert summary.dvc_remotes(repo) == summary.Remotes({}, None)
    config = (repo / ".dvc/config").read_text(encoding="utf-8")  # [core] no_scm = True
    config = config.replace("[core]\n", "[core]\n    remote = storage\n")
    config += "['remote \"storage\"']\n    url = /srv/dvc\n"
    (repo / ".dvc/config").write_text(config, encoding="utf-8")
    assert summary.dvc_remotes(repo) == summary.Remotes({"storage": "/srv/dvc"}, "storage")


def test_summary_command_prints_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(outputs(tmp_path))
    monkeypatch.setattr(summary, "dvc_remotes", lambda root: summary.Remotes({}))
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Outputs of the pipeline:\n") and "no DVC remote configured" in out
    assert main(["summary", "--metrics", "elsewhere.json"]) == 0
    assert "elsewhere.json: not there yet" in capsys.readouterr().out


def test_make_repro_prints_the_summary_after_dvc_repro() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrepro:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("dvc repro") < recipe.index("gitops-ml summary")


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_what_a_run_leaves_behind_is_versioned_or_gitignored() -> None:
    """Outputs of gate, drift, `dvc plots show` and the CI steps are ignored; the pipeline's
    git-tracked reports are not."""
    ignored = [
        "dvc_plots/index.html",
        "reports/gate.json",
        "reports/drift.json",
        "reports/drift.md",
        "reports/pr-report.md",
        "reports/pr-number",
        "reports/promotion.md",
        "reports/promotion.json",
        "reports/bench.md",
        "mlflow.db",
        "monitoring/predictions/x.parquet",
    ]
    versioned = [METRICS_PATH, "reports/slices.json", "reports/validation.json"]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *ignored, *versioned],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.split() == ignored, proc.stderr
