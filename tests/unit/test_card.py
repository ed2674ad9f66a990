"""The model card: its sections from a real pipeline's reports (Palmer penguins, multiclass),
the checks against dvc.lock, the tolerant reads (sensitive flags, tuning results), the `card`
section of gitops.yaml, and verify's age limit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gitops_ml import cli
from gitops_ml.config import ConfigError, load_params, parse_params
from gitops_ml.files import file_md5, write_json, write_parquet
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.dvclock import (
    METRICS_PATH,
    MODEL_PATH,
    SLICES_PATH,
    TRAIN_PATH,
    VALIDATION_PATH,
)
from gitops_ml.release import card as mc
from gitops_ml.release import promote as pm
from gitops_ml.schema import infer_schema
from gitops_ml.stages import evaluate as ev
from gitops_ml.stages import train as tr
from gitops_ml.stages import validate
from tests.conftest import template_settings
from tests.datasets import penguins

SCHEMA = "data/schema/penguins.yaml"
RAW = "data/raw/dataset.parquet"
TRAIN_PARAMS = {
    "train.model": "hist_gradient_boosting",
    "train.hyperparams": {"max_iter": 50},
    "train.seed": 42,
}


def penguin_settings() -> dict:
    raw = template_settings()
    raw["data"].update(
        source="csv",
        path="data/source/penguins.csv",
        target="species",
        task="multiclass",
        positive_label=None,
    )
    raw["evaluate"].update(slices=["island"], importance_rows=80, importance_repeats=2)
    raw["gate"] = {
        "fail_on_violation": True,
        "primary": "accuracy",
        "thresholds": {"accuracy": 0.5},
        "max_regression": {"accuracy": 0.05},
        "worst_slice": None,
    }
    raw.pop("card", None)
    return raw


@pytest.fixture(scope="module")
def penguin_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace as the pipeline leaves it on penguins: the validate stage's report, the
    train stage's model, the evaluate stage's files, and a dvc.lock recording them."""
    ws = tmp_path_factory.mktemp("penguins")
    data = penguins()
    frame = data.frame.dropna(subset=[data.target]).reset_index(drop=True)
    (ws / "params.yaml").write_text(yaml.safe_dump(penguin_settings(), sort_keys=False))
    params = load_params(ws / "params.yaml")
    write_parquet(ws / RAW, frame)
    (ws / SCHEMA).parent.mkdir(parents=True)
    schema = infer_schema(frame, data.target, data.task)
    (ws / SCHEMA).write_text(yaml.safe_dump(schema, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:  # the report names the schema as dvc.yaml does
        mp.chdir(ws)
        rc = validate.main(["--input", RAW, "--schema", SCHEMA, "--report", VALIDATION_PATH])
    assert rc == 0
    # A flag the schema parser may not know yet: the card reads it from the YAML itself.
    schema["columns"]["sex"]["sensitive"] = "yes"
    (ws / SCHEMA).write_text(yaml.safe_dump(schema, sort_keys=False))

    shuffled = frame.sample(frac=1.0, random_state=0)
    train_df, test_df = shuffled.iloc[:250], shuffled.iloc[250:]
    write_parquet(ws / TRAIN_PATH, train_df)
    model = tr.train(train_df, params).pipeline
    (ws / MODEL_PATH).parent.mkdir()
    tr.save_model(model, ws / MODEL_PATH)
    result = ev.evaluate(model, test_df, params)
    write_json(ws / METRICS_PATH, result.metrics)
    write_json(ws / SLICES_PATH, result.slices)
    write_json(ws / mc.CLASSES_PATH, result.per_class)
    (ws / "reports/plots").mkdir(parents=True)
    ev.write_plot_data(result.plots, ws / "reports/plots")

    def out(path: str) -> dict:
        return {"path": path, "hash": "md5", "md5": file_md5(ws / path)}

    lock = {
        "schema": "2.0",
        "stages": {
            "validate": {"outs": [out(VALIDATION_PATH)]},
            "train": {
                "deps": [out(TRAIN_PATH)],
                "params": {"params.yaml": TRAIN_PARAMS},
                "outs": [out(MODEL_PATH)],
            },
            "evaluate": {"outs": [out(METRICS_PATH), out(SLICES_PATH), out(mc.CLASSES_PATH)]},
        },
    }
    (ws / "dvc.lock").write_text(yaml.safe_dump(lock))
    return ws


def lineage_of(declared: dvclock.Declared, **changes: str) -> mc.CardLineage:
    values = {
        "model_name": "penguins",
        "version": "4",
        "model_md5": declared.md5,
        "dvc_lock_md5": declared.lock_md5,
        "git_sha": "1" * 40,
        "pr_number": "12",
        "run_id": "r" * 32,
        "train_data_md5": declared.train_data_md5,
        **changes,
    }
    return mc.CardLineage(**values)


def section(card: str, title: str) -> str:
    """The text of one `## title` section."""
    start = card.index(f"\n## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start : end if end != -1 else len(card)]


def render(ws: Path, **changes: str) -> str:
    params = load_params(ws / "params.yaml")
    declared = dvclock.read_declared(ws / "dvc.lock")
    return mc.render_card(ws, params, declared, lineage_of(declared, **changes))


def test_card_of_a_multiclass_data_set_has_every_section(penguin_ws: Path) -> None:
    ws = penguin_ws
    card = render(ws)
    frame = pd.read_parquet(ws / RAW)
    metrics = json.loads((ws / METRICS_PATH).read_text())
    slices = json.loads((ws / SLICES_PATH).read_text())
    declared = dvclock.read_declared(ws / "dvc.lock")

    assert card.startswith("# Model card: penguins version 4\n")
    task = section(card, "Task")
    assert "| task | multiclass |" in task and "| target | `species` |" in task
    assert "| classes | `Adelie`, `Chinstrap`, `Gentoo` |" in task
    assert "positive class" not in task

    data = section(card, "Data")
    n, n_test = len(frame), int(metrics["n_test"])
    assert f"| data contract (schema) | `{SCHEMA}` |" in data
    assert f"| rows validated | {n:,} |" in data
    assert f"| rows in train | {n - n_test:,} (validated rows minus test rows) |" in data
    assert f"| rows in test | {n_test:,} |" in data
    assert n - n_test == 250  # what the split above really put in train

    est = section(card, "Estimator and hyperparameters")
    assert "| estimator (train.model) | `hist_gradient_boosting` |" in est
    assert '`{"max_iter": 50}`' in est
    assert "Tuning" not in est  # no reports/tuned.json: nothing, and no error

    shown = section(card, "Metrics (test split)")
    assert f"| accuracy | {metrics['accuracy']:.4g} |" in shown
    assert "n_test" not in shown

    # The gap is the spread of the gate's primary metric (accuracy) over the island groups.
    acc = {g: row["accuracy"] for g, row in slices["island"].items()}
    hi, lo = max(sorted(acc), key=acc.get), min(sorted(acc), key=acc.get)
    gap = f"| `island` | {acc[hi] - acc[lo]:.4g} | {hi} {acc[hi]:.4g} | {lo} {acc[lo]:.4g} |"
    sliced = section(card, "Slices")
    assert "Largest gap in `accuracy`" in sliced and gap in sliced
    assert "predicted_positive_rate" not in sliced  # a binary-only view
    assert "<summary>island: 3 groups</summary>" in sliced

    importance = json.loads((ws / mc.IMPORTANCE_PATH).read_text())
    top = section(card, "Feature importance")
    assert importance and f"| `{importance[0]['feature']}` |" in top
    order = [top.index(f"| `{row['feature']}` |") for row in importance]
    assert order == sorted(order)  # most important first, as evaluate wrote them

    sensitive = section(card, "Sensitive columns")
    assert "| `sex` | **no**: add it to evaluate.slices |" in sensitive
    assert "`island`" not in sensitive

    assert mc.NOT_DESCRIBED in section(card, "Intended use")
    assert mc.NOT_DESCRIBED in section(card, "Limitations")

    lineage = section(card, "Lineage")
    assert f"| model md5 (dvc.lock) | `{declared.md5}` |" in lineage
    assert f"| dvc.lock md5 | `{file_md5(ws / 'dvc.lock')}` |" in lineage
    assert f"| git commit | `{'1' * 40}` |" in lineage
    assert "| pull request | #12 |" in lineage
    assert f"| train data md5 | `{file_md5(ws / TRAIN_PATH)}` |" in lineage
    assert "## Notes" not in card


def test_reports_that_are_not_dvc_locks_are_named_not_shown(
    penguin_ws: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    import shutil

    shutil.copytree(penguin_ws, ws)
    metrics = json.loads((ws / METRICS_PATH).read_text())
    write_json(ws / METRICS_PATH, {**metrics, "accuracy": 0.999})
    (ws / SLICES_PATH).unlink()
    card = render(ws)
    assert "No metrics" in section(card, "Metrics (test split)")
    assert "0.999" not in card
    assert "| rows in test | — |" in section(card, "Data")
    assert "_No slices" in section(card, "Slices")
    notes = section(card, "Notes")
    assert f"- {METRICS_PATH} differs from the one dvc.lock records: not shown" in notes


def test_tuning_results_are_shown_when_a_tune_stage_wrote_them(
    penguin_ws: Path, tmp_path: Path
) -> None:
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(penguin_ws, ws)
    tuned = {"best_params": {"learning_rate": 0.1}, "cv_score": 0.9712, "cv_folds": 5}
    write_json(ws / mc.TUNED_PATH, tuned)
    est = section(render(ws), "Estimator and hyperparameters")
    assert f"Tuning ({mc.TUNED_PATH}):" in est
    assert '| `best_params` | {"learning_rate": 0.1} |' in est
    assert "| `cv_score` | 0.9712 |" in est
    (ws / mc.TUNED_PATH).write_text("not json")
    card = render(ws)
    assert "Tuning" not in section(card, "Estimator and hyperparameters")
    assert f"{mc.TUNED_PATH} is not readable JSON" in section(card, "Notes")


def test_intended_use_and_limitations_come_from_gitops_yaml(penguin_ws: Path, tmp_path: Path):
    settings = penguin_settings()
    settings["card"] = {"intended_use": "Sorting penguin photos.", "limitations": "Three species."}
    params = parse_params(settings)
    declared = dvclock.read_declared(penguin_ws / "dvc.lock")
    card = mc.render_card(penguin_ws, params, declared, lineage_of(declared))
    assert "Sorting penguin photos." in section(card, "Intended use")
    assert "Three species." in section(card, "Limitations")
    assert mc.NOT_DESCRIBED not in card


@pytest.mark.parametrize(
    ("flag", "sensitive"),
    [(True, True), ("yes", True), ("True", True), (1, True), (False, False), ("no", False),
     (None, False), (0, False), ("", False), ([1], False)],
)  # fmt: skip
def test_sensitive_flag_is_read_tolerantly(flag: object, sensitive: bool) -> None:
    assert mc.is_sensitive({"dtype": "str", "sensitive": flag}) is sensitive


def test_sensitive_columns_of_odd_schemas() -> None:
    assert mc.sensitive_columns(None) == []
    assert mc.sensitive_columns({"columns": ["a", "b"]}) == []
    assert mc.sensitive_columns({"columns": {"a": None, "b": {"sensitive": True}}}) == ["b"]


def test_slice_gaps_leave_out_small_groups() -> None:
    slices = {
        "sex": {
            "F": {"n": 100, "auc": 0.9},
            "M": {"n": 300, "auc": 0.8},
            "X": {"n": 3, "auc": 0.1},
        },
        "one": {"a": {"n": 100, "auc": 0.7}},
    }
    assert mc.slice_gaps(slices, "auc", min_rows=50) == {"sex": ("F", 0.9, "M", 0.8), "one": None}
    assert mc.slice_gaps(slices, "auc")["sex"] == ("F", 0.9, "X", 0.1)


# -- gitops.yaml's card section ------------------------------------------------------------------


def test_the_template_declares_its_card() -> None:
    card = load_params(Path(__file__).resolve().parents[2] / "params.yaml").card
    assert card is not None and "Replace this text" in card.intended_use


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ({"intended_use": "x"}, "params: missing key 'card.limitations'"),
        ({"intended_use": "x", "limitations": "y", "owner": "z"}, "unknown key 'card.owner'"),
        ({"intended_use": "", "limitations": "y"}, "'card.intended_use' must be a non-empty"),
        ("free text", "section 'card' is missing or not a mapping"),
    ],
)
def test_a_bad_card_section_is_a_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], card: object, message: str
) -> None:
    settings = template_settings()
    settings["card"] = card
    gitops = {k: settings.pop(k) for k in ("gate", "drift", "card")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (tmp_path / "gitops.yaml").write_text(yaml.safe_dump(gitops, sort_keys=False))
    with pytest.raises(ConfigError, match="card"):
        load_params(tmp_path / "params.yaml")
    code = cli.main(["verify", "--params", str(tmp_path / "params.yaml"), "--lock", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# -- the promotion summary and verify's age ------------------------------------------------------


def a_result(**changes: object) -> pm.PromoteResult:
    values: dict = {
        "model_name": "m",
        "version": "2",
        "created": True,
        "artifact_source": "workspace",
        "model_md5": "a" * 32,
        "dvc_lock_md5": "b" * 32,
        "git_sha": "c" * 40,
        "pr_number": "5",
        "run_id": "r1",
        "run_reused": False,
        "alias_moves": [],
        "tracking_uri": "sqlite:///mlflow.db",
        "lineage": {},
        "card_path": mc.CARD_PATH,
        "card_uri": mc.card_uri("r1"),
    }
    values.update(changes)
    return pm.PromoteResult(**values)


def test_summary_links_the_card_and_folds_its_text() -> None:
    text = pm.summary_markdown(a_result(), "# Model card: m version 2\n\nbody\n")
    assert "| model card | `runs:/r1/card/model-card.md` (tag `gitops_ml.model_card`" in text
    assert text.endswith(
        "<details><summary>Model card</summary>\n\n# Model card: m version 2\n\nbody\n\n"
        "</details>\n"
    )
    url = "http://h:5000/#/experiments/3/runs/r1/artifactPath/card/model-card.md"
    assert pm.card_page("http://u:p@h:5000", "3", "r1") == url
    linked = pm.summary_markdown(a_result(card_url=url))
    assert f"| model card | [model-card.md]({url}) (`runs:/r1/card/model-card.md`) |" in linked
    assert "model card" not in pm.summary_markdown(a_result(card_path=None, card_uri=None))
    assert "model card: reports/model-card.md, logged as runs:/r1/card/model-card.md" in (
        pm.summary_lines(a_result())
    )


def test_age_limit_counts_whole_days_from_the_version_creation() -> None:
    ok = pm._verified("m", "3", "a" * 32)
    created = 1_700_000_000_000
    at_limit = pm.check_age(ok, created, 7, now_ms=created + 7 * pm.DAY_MS)
    assert at_limit.ok and not at_limit.too_old and at_limit.age_days == 7.0
    assert at_limit.registered_at == "2023-11-14T22:13:20Z"
    old = pm.check_age(ok, created, 7, now_ms=created + 7 * pm.DAY_MS + 3_600_000)
    assert (old.ok, old.too_old) == (False, True)
    assert old.message == (
        "too old: m@champion (version 3) was registered 7.0 days ago (2023-11-14T22:13:20Z), "
        "more than --max-age-days 7; retrain it (gitops-ml retrain) and merge the pull request"
    )
    assert pm.check_age(ok, created, 0, now_ms=created + 1).too_old


def test_max_age_days_must_be_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["verify", "--max-age-days", "-1"])
    assert exit_.value.code == 2
    assert "must be >= 0, got -1" in capsys.readouterr().err
