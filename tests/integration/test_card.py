"""The model card of the Adult champion and verify's age limit, on a real git + DVC repository
and its SQLite registry.

One module-scoped repository: the template on 1,500 rows of Adult (a team's CSV), reproduced
with permutation importance on, committed as a merged pull request. Tests run in order: the
first promotion writes and logs the card, a no-op promotion reads its location back without
MLflow, then verify's age limit, first on the fresh version, then with its creation time moved
back in the registry's own database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitops_ml import cli, tracking
from gitops_ml.files import file_md5
from gitops_ml.lineage.dvclock import METRICS_PATH, SLICES_PATH, VALIDATION_PATH
from gitops_ml.release import card as mc
from gitops_ml.release import promote as pm
from tests.integration.conftest import in_repo, run_in, sample_repo, set_params

pytestmark = pytest.mark.slow

NAME = "adult-income"
ROWS = 1500
PR = "21"


def client():
    import mlflow

    tracking.configure()
    return mlflow.MlflowClient()


def section(card: str, title: str) -> str:
    start = card.index(f"\n## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start : end if end != -1 else len(card)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = sample_repo(tmp_path_factory.mktemp("card") / "repo", ROWS)
    set_params(root, evaluate={"importance_rows": 300, "importance_repeats": 2})
    run_in(root, "dvc", "repro")
    run_in(root, "git", "add", "-A")
    run_in(root, "git", "commit", "-q", "-m", "Permutation importance in the reports (#21)")
    return root


@pytest.fixture
def at_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return in_repo(repo, monkeypatch)


def test_promotion_writes_the_card_and_logs_it_with_the_version(
    at_repo: Path, tmp_path: Path
) -> None:
    repo = at_repo
    summary, out = tmp_path / "promotion.md", tmp_path / "promotion.json"
    started = time.perf_counter()
    assert cli.main(["promote", "--summary", str(summary), "--json", str(out)]) == 0
    print(f"promote with the card: {time.perf_counter() - started:.2f} s")
    result = json.loads(out.read_text())
    assert result["version"] == "1" and result["pr_number"] == PR
    assert result["card_path"] == mc.CARD_PATH
    card = (repo / mc.CARD_PATH).read_text()

    validation = json.loads((repo / VALIDATION_PATH).read_text())
    metrics = json.loads((repo / METRICS_PATH).read_text())
    slices = json.loads((repo / SLICES_PATH).read_text())
    importance = json.loads((repo / mc.IMPORTANCE_PATH).read_text())
    assert card.startswith(f"# Model card: {NAME} version 1\n")
    assert "| task | binary |" in section(card, "Task")
    assert "| positive class | `>50K` |" in section(card, "Task")
    data = section(card, "Data")
    assert "| data contract (schema) | `data/schema/adult.yaml` |" in data
    assert f"| rows validated | {validation['n_rows']:,} |" in data
    assert f"| rows in test | {metrics['n_test']:,} |" in data
    assert f"| rows in train | {validation['n_rows'] - metrics['n_test']:,} " in data
    assert "| source | csv (`data/source/adult_sample.csv`) |" in data
    assert "`hist_gradient_boosting`" in section(card, "Estimator and hyperparameters")
    assert f"| roc_auc | {metrics['roc_auc']:.4g} |" in section(card, "Metrics (test split)")
    sliced = section(card, "Slices")
    assert "Largest gap in `roc_auc`" in sliced
    assert "| `sex` |" in sliced and "| `race` |" in sliced
    sex = {g: r["roc_auc"] for g, r in slices["sex"].items()}
    assert f"| `sex` | {max(sex.values()) - min(sex.values()):.4g} |" in sliced
    assert importance, "evaluate wrote no permutation importance"
    assert f"| `{importance[0]['feature']}` |" in section(card, "Feature importance")
    sensitive = section(card, "Sensitive columns")
    assert "Declared in `data/schema/adult.yaml`" in sensitive
    assert "| `race` | yes |" in sensitive and "| `sex` | yes |" in sensitive
    assert "1994 US census" in section(card, "Intended use")
    assert "Replace this text" in section(card, "Limitations")
    lineage = section(card, "Lineage")
    sha = run_in(repo, "git", "rev-parse", "HEAD").stdout.strip()
    assert f"| git commit | `{sha}` |" in lineage
    assert f"| dvc.lock md5 | `{file_md5(repo / 'dvc.lock')}` |" in lineage
    assert f"| model md5 (dvc.lock) | `{result['model_md5']}` |" in lineage
    assert f"| pull request | #{PR} |" in lineage
    assert "## Notes" not in card

    # Logged with the version: an artifact of its run, its location a tag of the version.
    version = client().get_model_version(NAME, "1")
    uri = mc.card_uri(version.run_id)
    assert version.tags[mc.TAG_MODEL_CARD] == uri == result["card_uri"]
    logged = client().download_artifacts(version.run_id, "card/model-card.md", str(tmp_path))
    assert Path(logged).read_text() == card

    # Linked from the promotion comment, and folded into it.
    text = summary.read_text()
    assert f"| model card | `{uri}` (tag `{mc.TAG_MODEL_CARD}` of the version) |" in text
    assert "<details><summary>Model card</summary>" in text and card.strip() in text


def test_a_no_op_promotion_rewrites_the_card_without_mlflow(at_repo: Path) -> None:
    """The champion's bytes decide (no MLflow import); the card file is written again and its
    logged location read from the version's tags."""
    repo = at_repo
    card = repo / mc.CARD_PATH
    logged = card.read_text()
    card.unlink()
    code = (
        "import json, sys, time\n"
        "from gitops_ml.release import promote\n"
        "t = time.perf_counter()\n"
        "r = promote.promote('.')\n"
        "print(json.dumps([r.created, r.card_uri, 'mlflow' in sys.modules,"
        " time.perf_counter() - t]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    created, uri, imported, seconds = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"no-op promote: {seconds:.2f} s")
    assert (created, imported) == (False, False)
    assert uri == client().get_model_version(NAME, "1").tags[mc.TAG_MODEL_CARD]
    assert card.read_text() == logged  # same commit, same reports: the same card


def _verify(*args: str) -> tuple[int, str]:
    proc = run_in(Path.cwd(), "gitops-ml", "verify", *args, check=False)
    assert proc.stderr.strip() == "" or "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.strip()


def test_verify_max_age_days_on_a_fresh_version(at_repo: Path, tmp_path: Path) -> None:
    md5 = client().get_model_version(NAME, "1").tags[tracking.TAG_MODEL_MD5]
    assert _verify("--max-age-days", "3650") == (
        0,
        f"ok: {NAME}@champion (version 1) holds model md5 {md5}, as dvc.lock declares "
        "(its file hashed, its skops archive compared)",
    )
    code, out = _verify("--max-age-days", "0", "--json", str(tmp_path / "v.json"))
    assert code == pm.TOO_OLD_EXIT
    assert out.startswith(f"too old: {NAME}@champion (version 1) was registered 0.0 days ago (")
    assert out.endswith("more than --max-age-days 0; retrain it (gitops-ml retrain) and merge "
                        "the pull request")  # fmt: skip
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert (verdict["ok"], verdict["too_old"], verdict["champion_md5"]) == (False, True, md5)
    assert _verify() == (0, _verify("--max-age-days", "1")[1])  # no limit: as before


def test_verify_max_age_days_on_a_version_registered_ten_days_ago(at_repo: Path) -> None:
    """The version's creation time moved back in the registry's own SQLite database."""
    db = sqlite3.connect(at_repo / "mlflow.db")
    try:
        (created,) = db.execute(
            "SELECT creation_time FROM model_versions WHERE name = ? AND version = 1", (NAME,)
        ).fetchone()
        with db:
            db.execute(
                "UPDATE model_versions SET creation_time = ? WHERE name = ? AND version = 1",
                (created - 10 * pm.DAY_MS, NAME),
            )
    finally:
        db.close()
    assert client().get_model_version(NAME, "1").creation_timestamp == created - 10 * pm.DAY_MS
    code, out = _verify("--max-age-days", "7")
    assert code == 3 and "was registered 10.0 days ago" in out and "--max-age-days 7;" in out
    assert _verify("--max-age-days", "30")[0] == 0
    assert _verify("--max-age-days", "7", "--lock", "missing.lock")[0] == 2  # errors stay 2
