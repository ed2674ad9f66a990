"""New data as batches: the ingest stage appends every file of `data/source/batches/` to the
source, in file-name order, and without batches writes exactly what it wrote before. Plus the
pure parts of `gitops-ml retrain`: where a batch goes, the PR's title, the push credentials."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml.config import DataConfig
from gitops_ml.errors import DataError
from gitops_ml.files import file_md5, write_parquet
from gitops_ml.monitor import retrain
from gitops_ml.sources import batch_files, load_dataset, load_source, read_batch
from gitops_ml.stages import ingest
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "a,b,label\n1,x,yes\n2,y,no\n3,?,yes\n"


def _cfg(path: Path) -> DataConfig:
    return DataConfig(
        source="csv",
        path=str(path),
        delimiter=",",
        header=True,
        columns=None,
        drop_columns=(),
        target="label",
        task="binary",
        n_rows=None,
        positive_label=None,
    )


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    d = tmp_path / "source"
    d.mkdir()
    (d / "own.csv").write_text(SOURCE)
    return d


def _batches(source_dir: Path) -> Path:
    d = source_dir / "batches"
    d.mkdir(exist_ok=True)
    return d


def test_batches_are_appended_in_file_name_order_with_the_source_columns(
    source_dir: Path,
) -> None:
    batches = _batches(source_dir)
    # Written out of order, columns reordered, one parquet and one CSV.
    pd.DataFrame({"label": ["no"], "b": ["z"], "a": [20]}).to_parquet(
        batches / "2026-02-01-bbbb.parquet", index=False
    )
    (batches / "2026-01-01-aaaa.csv").write_text("b,a,label\n w ,10,no\nq,11,yes\n")
    (batches / ".DS_Store").write_text("hidden files are skipped")
    df = load_dataset(_cfg(source_dir / "own.csv"), source_dir)
    assert list(df.columns) == ["a", "b", "label"]
    assert df["a"].tolist() == [1, 2, 3, 10, 11, 20]
    assert df["b"].tolist()[3:] == ["w", "q", "z"]  # normalised like the source
    assert pd.isna(df.loc[2, "b"])
    assert df["a"].dtype == "int64"
    assert len(df.index) == 6 and df.index.is_unique


def test_without_batches_the_output_is_byte_identical(source_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(source_dir / "own.csv")
    write_parquet(tmp_path / "before.parquet", load_source(cfg, source_dir))
    write_parquet(tmp_path / "none.parquet", load_dataset(cfg, source_dir))
    (_batches(source_dir) / ".gitkeep").write_text("")
    write_parquet(tmp_path / "empty.parquet", load_dataset(cfg, source_dir))
    digests = {file_md5(tmp_path / f"{n}.parquet") for n in ("before", "none", "empty")}
    assert len(digests) == 1


def test_the_shipped_adult_data_is_unchanged_by_the_batch_support(tmp_path: Path) -> None:
    """dvc.lock's ingest output, rebuilt from data/source (which has no batches directory)."""
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    declared = lock["stages"]["ingest"]["outs"][0]
    params = template_settings()
    if params["data"]["source"] != "adult" or (ROOT / "data/source/batches").exists():
        pytest.skip("the working tree is not the shipped Adult configuration")
    out = tmp_path / "dataset.parquet"
    code = ingest.main(
        ["--source-dir", str(ROOT / "data/source"), "--output", str(out),
         "--params", str(ROOT / "params.yaml")]
    )  # fmt: skip
    assert code == 0
    assert file_md5(out) == declared["md5"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,label\n1,yes\n", r"bad\.csv: batch columns differ from the source's: missing b$"),
        (
            "a,b,label,extra\n1,x,yes,0\n",
            r"bad\.csv: batch columns differ from the source's: unexpected extra$",
        ),
        ("a,c,label\n1,x,yes\n", r"missing b; unexpected c$"),
        ("a,b,label\nten,x,yes\n", r"bad\.csv: column 'a' is numeric in the source but holds text"),
    ],
)
def test_a_bad_batch_is_one_error_naming_the_file_and_columns(
    source_dir: Path, content: str, message: str
) -> None:
    (_batches(source_dir) / "bad.csv").write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(_cfg(source_dir / "own.csv"), source_dir)
    assert "\n" not in str(info.value)


def test_stray_files_and_folders_in_the_batches_directory_are_refused(source_dir: Path) -> None:
    batches = _batches(source_dir)
    (batches / "notes.txt").write_text("not data")
    with pytest.raises(DataError, match=r"notes\.txt: not a batch file"):
        batch_files(batches)
    (batches / "notes.txt").unlink()
    (batches / "nested").mkdir()
    with pytest.raises(DataError, match=r"nested: is a directory"):
        batch_files(batches)


def test_read_batch_converts_kinds_to_the_sources_and_refuses_an_empty_file(
    tmp_path: Path,
) -> None:
    like = pd.DataFrame({"n": [1, 2], "code": pd.Series(["a", "b"], dtype="str")})
    path = tmp_path / "b.parquet"
    pd.DataFrame({"code": [7, None], "n": ["3", None]}).to_parquet(path, index=False)
    out = read_batch(path, like)
    assert out["n"].dtype == "float64" and out["n"].iloc[0] == 3
    assert out["code"].iloc[0] == "7" and pd.isna(out["code"].iloc[1])
    pd.DataFrame({"n": pd.Series([], dtype="int64"), "code": []}).to_parquet(path, index=False)
    with pytest.raises(DataError, match="no rows"):
        read_batch(path, like)


def test_the_ingest_stage_fails_in_one_line_and_keeps_its_output(
    source_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = template_settings()
    params["data"].update(source="csv", path=str(source_dir / "own.csv"), target="label")
    params["data"]["positive_label"] = None
    params["evaluate"]["slices"] = []
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    out = tmp_path / "raw" / "dataset.parquet"
    argv = ["--source-dir", str(source_dir), "--output", str(out), "--params", str(params_path)]
    assert ingest.main(argv) == 0
    before = out.read_bytes()
    (_batches(source_dir) / "2026-01-01-x.parquet").write_bytes(b"PAR1 not really")
    assert ingest.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "2026-01-01-x.parquet" in err[-1]
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["dataset.parquet"]  # no temp file left


# --------------------------------------------------------------------------------------------
# gitops-ml retrain: its pure parts (the whole flow is tests/integration/test_retrain.py)


def test_a_batch_is_named_by_date_and_content_and_never_added_twice(tmp_path: Path) -> None:
    batch = tmp_path / "incoming.parquet"
    batch.write_bytes(b"some bytes")
    batches = tmp_path / "batches"
    day = datetime(2026, 3, 4, 23, 59, tzinfo=UTC)
    dest = retrain.batch_destination(batch, batches, day)
    assert dest == batches / f"2026-03-04-{file_md5(batch)[:8]}.parquet"
    csv = tmp_path / "incoming.csv.gz"
    csv.write_bytes(b"other bytes")
    assert retrain.batch_destination(csv, batches, day).name.endswith(f"{file_md5(csv)[:8]}.csv.gz")
    odd = tmp_path / "export.csv.old.csv"
    odd.write_bytes(b"more bytes")
    assert (
        retrain.batch_destination(odd, batches, day).name == f"2026-03-04-{file_md5(odd)[:8]}.csv"
    )
    batches.mkdir()
    (batches / f"2026-01-01-{file_md5(batch)[:8]}.parquet").write_bytes(b"some bytes")
    with pytest.raises(retrain.RetrainError, match="already in the training data"):
        retrain.batch_destination(batch, batches, day)


def _drift(tmp_path: Path, report: dict) -> retrain.Drift:
    (tmp_path / "drift.json").write_text(json.dumps(report))
    (tmp_path / "drift.md").write_text("## Data drift: **drift detected**\n")
    return retrain.read_drift(tmp_path / "drift.json", tmp_path / "drift.md")


def test_the_title_names_the_drifted_features_or_the_predictions(tmp_path: Path) -> None:
    names = ["age", "sex", "race", "hours_per_week", "workclass"]
    drift = _drift(tmp_path, {"drift": True, "drifted_features": names})
    assert retrain.pr_title(drift) == "Retrain: drift detected in age, sex, race (+2 more)"
    drift = _drift(tmp_path, {"drift": True, "drifted_features": [], "prediction": {}})
    assert retrain.pr_title(drift) == "Retrain: drift detected in the model's predictions"
    body = retrain.pr_body(drift, "data/source/batches/x.parquet", pushed=False)
    assert body.startswith("**Why: data drift.**") and "\n\n## Data drift" in body
    assert "not pushed" in body
    for long in ("| row |\n" * 10_000, "x" * 70_000):  # cut at a line break, or hard when none
        body = retrain.pr_body(replace(drift, markdown=long), "x.parquet", pushed=True)
        assert len(body) <= retrain.MAX_BODY_CHARS and "(drift report truncated)" in body


def test_drift_reports_that_are_not_are_refused(tmp_path: Path) -> None:
    with pytest.raises(retrain.RetrainError, match="file not found"):
        retrain.read_drift(tmp_path / "nope.json", tmp_path / "nope.md")
    (tmp_path / "drift.json").write_text('{"verdict": "bad"}')
    with pytest.raises(retrain.RetrainError, match="no boolean 'drift' key"):
        retrain.read_drift(tmp_path / "drift.json", tmp_path / "drift.md")
    (tmp_path / "drift.json").write_text('{"drift": true}')
    (tmp_path / "drift.md").write_text("  \n")
    with pytest.raises(retrain.RetrainError, match="is empty"):
        retrain.read_drift(tmp_path / "drift.json", tmp_path / "drift.md")


def test_the_push_token_goes_in_a_header_for_https_remotes_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    env = retrain.push_env("https://github.com/acme/churn.git", "ghs_secret")
    assert env["GIT_CONFIG_COUNT"] == "3"
    key = "http.https://github.com/.extraheader"
    assert env["GIT_CONFIG_KEY_1"] == env["GIT_CONFIG_KEY_2"] == key
    assert env["GIT_CONFIG_VALUE_1"] == ""  # clears a header a checkout may have left
    encoded = env["GIT_CONFIG_VALUE_2"].removeprefix("AUTHORIZATION: basic ")
    assert base64.b64decode(encoded).decode() == "x-access-token:ghs_secret"
    for url in ("/srv/git/origin.git", "git@github.com:acme/churn.git"):
        local = retrain.push_env(url, "ghs_secret")
        assert "ghs_secret" not in json.dumps(local) and local["GIT_CONFIG_COUNT"] == "1"
