"""`gitops-ml model-age`: gitops.yaml's ``monitoring.max_model_age_days``, read and checked, and
the verdict's job summary. The check against a real registry runs under act in
tests/integration/test_act_monitor.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from gitops_ml.batches import RetentionConfig, retention_config
from gitops_ml.cli import main
from gitops_ml.config import ConfigError, load_params, max_model_age_days
from gitops_ml.monitor.age import summary_markdown
from gitops_ml.release.promote import VerifyResult, check_age
from tests.conftest import ROOT

MD5 = "0123456789abcdef0123456789abcdef"
DAY_MS = 86_400_000
NOW_MS = 1_790_000_000_000


def test_the_shipped_limit_is_90_days_and_retention_still_reads_the_section() -> None:
    raw = load_params(ROOT / "params.yaml").raw
    assert max_model_age_days(raw) == 90
    assert retention_config(raw) == RetentionConfig(None, None)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"retention_days": None, "retention_rows": None, "max_model_age_days": 7}, 7),
        ({"retention_days": None, "retention_rows": None, "max_model_age_days": None}, None),
        ({"retention_days": None, "retention_rows": None}, None),  # from before the key: off
        (None, None),  # no section
    ],
)
def test_the_limit_or_none(section, expected) -> None:
    raw = {} if section is None else {"monitoring": section}
    assert max_model_age_days(raw) == expected
    retention_config(raw)  # the prediction log's reader accepts the section


@pytest.mark.parametrize("value", [0, -3, True, "90", 1.5, [90]])
def test_a_bad_limit_is_one_line_naming_the_key(value) -> None:
    with pytest.raises(ConfigError) as error:
        max_model_age_days({"monitoring": {"max_model_age_days": value}})
    message = str(error.value)
    assert message == (
        "params: 'monitoring.max_model_age_days' must be a whole number of days >= 1 or null "
        f"(no age limit), got {value!r}"
    )


def _repo(tmp_path: Path, value) -> Path:
    for name in ("params.yaml", "gitops.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    gitops = yaml.safe_load((tmp_path / "gitops.yaml").read_text())
    gitops["monitoring"]["max_model_age_days"] = value
    (tmp_path / "gitops.yaml").write_text(yaml.safe_dump(gitops, sort_keys=False))
    return tmp_path


def test_the_command_refuses_a_bad_limit_in_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(_repo(tmp_path, 0))
    assert main(["model-age", "--summary", "age.md", "--json", "age.json"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "error: params: 'monitoring.max_model_age_days' must be a whole number of days >= 1 or "
        "null (no age limit), got 0"
    ]
    assert not (tmp_path / "age.md").exists() and not (tmp_path / "age.json").exists()


def test_a_null_limit_checks_nothing_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(_repo(tmp_path, None))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never contacted
    assert main(["model-age", "--summary", "age.md", "--json", "age.json"]) == 0
    assert capsys.readouterr().out.startswith("model age not checked: gitops.yaml monitoring.")
    assert (tmp_path / "age.md").read_text().startswith("## Model age: not checked\n")
    assert '"checked": false' in (tmp_path / "age.json").read_text()


def _verified(version: str = "4") -> VerifyResult:
    return VerifyResult(
        True, f"ok: churn@champion (version {version}) holds model md5 {MD5}, as dvc.lock "
        "declares", MD5, version, MD5,
    )  # fmt: skip


def test_the_summary_says_ok_stale_or_out_of_sync() -> None:
    young = check_age(_verified(), NOW_MS - 12 * DAY_MS, 90, NOW_MS)
    text = summary_markdown(young, 90)
    assert text.startswith("## Model age: ok\n\nok: churn@champion (version 4)")
    assert "Registered 12.0 days ago (" in text and "the limit is 90 days (gitops.yaml" in text

    old = check_age(_verified(), NOW_MS - 100 * DAY_MS, 90, NOW_MS)
    assert old.too_old
    text = summary_markdown(old, 90)
    assert text.startswith("## Model age: **stale champion**\n\ntoo old: churn@champion")
    assert "was registered 100.0 days ago" in text and "Registered" not in text
    assert "\n\nThe limit is 90 days (gitops.yaml monitoring.max_model_age_days).\n" in text
    assert "Retrain it" in text

    other = replace(_verified(), ok=False, message="mismatch: churn@champion is another model")
    text = summary_markdown(other, 90)
    assert text.startswith("## Model age: **@champion is not main's model**\n\nmismatch:")
    assert "run promote.yml" in text and "Registered" not in text
