"""A registry model is trusted for its bytes, never for its tags.

A promotion registers the model as a skops archive with the exact bytes of the DVC file beside
it. Here the registered artifact is tampered with after promotion, the way anyone holding
registry write credentials could: its tag still names the declared md5. verify, predict, serve
and promote must each refuse it in one line naming the expected and the actual md5, and the
planted pickle (which creates a marker file when loaded) must never run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from gitops_ml import tracking
from gitops_ml.cli import main
from gitops_ml.lineage import artifacts
from gitops_ml.lineage.artifacts import EXACT_DIR, SKOPS_FILE
from gitops_ml.release import promote
from tests.integration.act import git
from tests.integration.test_integrity import plant
from tests.unit.test_predict import MODEL_NAME, TARGET, Champion, build_champion


@pytest.fixture
def champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> Champion:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q")  # the promote command runs at a repository's root
    monkeypatch.chdir(ws)
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{ws / 'mlflow.db'}")
    return build_champion(ws, adult_split[0].head(1000))


def stored(champion: Champion) -> Path:
    """The registered version's artifact directory in the local artifact store."""
    uri = mlflow.MlflowClient().get_model_version_download_uri(MODEL_NAME, champion.version)
    path = Path(uri.removeprefix("file://"))
    path = path if path.is_absolute() else champion.ws / path
    assert (path / EXACT_DIR / "model.joblib").is_file(), path
    return path


def one_line(text: str, *md5s: str) -> str:
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 1, text
    assert all(md5 in lines[0] for md5 in md5s), lines[0]
    return lines[0]


def scoring_args(champion: Champion, tmp_path: Path, adult_split) -> tuple[list[str], Path]:
    batch = tmp_path / "batch.csv"
    adult_split[1].head(5).drop(columns=[TARGET]).to_csv(batch, index=False)
    out = tmp_path / "scored.csv"
    return ["--input", str(batch), "--output", str(out)], out


def test_right_tag_other_bytes_is_refused_everywhere(
    champion: Champion,
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "ran"
    actual = plant(stored(champion) / EXACT_DIR / "model.joblib", marker)
    version = mlflow.MlflowClient().get_model_version(MODEL_NAME, champion.version)
    assert version.tags[tracking.TAG_MODEL_MD5] == champion.md5  # the tag still says honest

    verdict = promote.verify()
    assert not verdict.ok
    one_line(verdict.message, champion.md5, actual)
    assert main(["verify"]) == 1

    args, out = scoring_args(champion, tmp_path, adult_split)
    capsys.readouterr()
    assert main(["predict", *args]) == 2
    one_line(capsys.readouterr().err, champion.md5, actual)
    assert not out.exists()

    assert main(["serve", "--port", "1"]) == 2  # refused before any server starts
    one_line(capsys.readouterr().err, champion.md5, actual)

    assert main(["promote"]) == 2  # the version with the declared tag is not reused
    one_line(capsys.readouterr().err, champion.md5, actual)
    client = mlflow.MlflowClient()
    assert client.get_registered_model(MODEL_NAME).aliases == {"champion": int(champion.version)}
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1
    assert not marker.exists()


def test_a_skops_archive_of_another_model_is_refused(
    champion: Champion,
    tmp_path: Path,
    adult_split: tuple[pd.DataFrame, pd.DataFrame],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The exact file is intact, but what MLflow would load is another model."""
    train = adult_split[0].head(200)
    X = train.select_dtypes("number")
    other = LogisticRegression(max_iter=200).fit(X, train[TARGET])
    skops.io.dump(other, stored(champion) / SKOPS_FILE)

    verdict = promote.verify()
    assert not verdict.ok
    line = one_line(verdict.message)
    assert f"its {SKOPS_FILE} is not the model whose md5 dvc.lock declares" in line

    args, out = scoring_args(champion, tmp_path, adult_split)
    capsys.readouterr()
    assert main(["predict", *args]) == 2
    assert SKOPS_FILE in one_line(capsys.readouterr().err)
    assert not out.exists()


def test_an_untouched_champion_verifies_and_scores(
    champion: Champion, tmp_path: Path, adult_split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """The control: the same checks pass on the artifact as promoted."""
    assert promote.verify().ok
    args, out = scoring_args(champion, tmp_path, adult_split)
    assert main(["predict", *args]) == 0
    assert len(pd.read_csv(out)) == 5


VERIFY_AND_SAY_WHAT_WAS_IMPORTED = (
    "import sys\n"
    "from gitops_ml.release import promote\n"
    "verdict = promote.verify()\n"
    "print(verdict.ok, 'mlflow' in sys.modules, 'sklearn' in sys.modules)\n"
)


def _output_of_a_new_process(ws: Path, code: str) -> list[str]:
    """The lines `code` prints, run by a new interpreter in `ws`."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ws, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


def _verify_in_a_new_process(ws: Path) -> tuple[str, str, str]:
    ok, mlflow_imported, sklearn_imported = _output_of_a_new_process(
        ws, VERIFY_AND_SAY_WHAT_WAS_IMPORTED
    )[0].split()
    return ok, mlflow_imported, sklearn_imported


def test_verify_decides_from_bytes_alone_once_this_machine_checked_the_model(
    champion: Champion, own_cache_dir: Path
) -> None:
    """The promotion remembered the skops digest of the checked model: verify then compares the
    registry's bytes with it and with dvc.lock, importing neither MLflow nor scikit-learn. With
    nothing remembered it takes the full check, which remembers for the next time."""
    assert _verify_in_a_new_process(champion.ws) == ("True", "False", "False")
    artifacts._digest_memo().unlink()
    assert _verify_in_a_new_process(champion.ws) == ("True", "True", "True")
    assert artifacts.remembered_digest(champion.md5) is not None
    assert _verify_in_a_new_process(champion.ws) == ("True", "False", "False")


PROMOTE_AND_SAY_WHAT_WAS_IMPORTED = (
    "import json, sys\n"
    "from gitops_ml.release import promote\n"
    "result = promote.promote('.')\n"
    "print(json.dumps(result.to_dict(), sort_keys=True))\n"
    "print('mlflow' in sys.modules)\n"
)


def _promote_in_a_new_process(ws: Path) -> tuple[dict, str]:
    result, mlflow_imported = _output_of_a_new_process(ws, PROMOTE_AND_SAY_WHAT_WAS_IMPORTED)
    return json.loads(result), mlflow_imported


def test_promoting_the_champion_again_is_decided_from_bytes_alone(
    champion: Champion, own_cache_dir: Path
) -> None:
    """A promote.yml run after a merge that did not change the model: the champion's bytes show
    it already holds dvc.lock's model, so nothing is imported or written, and the result is the
    one the full path through MLflow gives."""
    quick, imported = _promote_in_a_new_process(champion.ws)
    assert imported == "False"
    assert (quick["version"], quick["created"], quick["alias_moves"]) == (
        champion.version, False, []
    )  # fmt: skip
    assert quick["lineage"][tracking.TAG_MODEL_MD5] == champion.md5
    artifacts._digest_memo().unlink()
    full, imported = _promote_in_a_new_process(champion.ws)
    assert imported == "True"
    assert full == quick


def test_the_bytes_only_verdict_is_never_given_to_tampered_bytes(
    champion: Champion, adult_split: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    uri = tracking.tracking_uri()
    assert promote._verified_from_bytes(uri, MODEL_NAME, champion.md5) is not None
    archive = stored(champion) / SKOPS_FILE
    genuine = archive.read_bytes()
    train = adult_split[0].head(200)
    other = LogisticRegression(max_iter=200).fit(train.select_dtypes("number"), train[TARGET])
    skops.io.dump(other, archive)
    assert promote._verified_from_bytes(uri, MODEL_NAME, champion.md5) is None
    archive.write_bytes(genuine)
    plant(stored(champion) / EXACT_DIR / "model.joblib", tmp_path / "ran")
    assert promote._verified_from_bytes(uri, MODEL_NAME, champion.md5) is None
    assert not (tmp_path / "ran").exists()
