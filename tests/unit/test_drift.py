"""`gitops-ml drift`: the statistics, the verdict at the shipped params on the demo shifts, and
the CLI's exit codes, reports and one-line errors (`gitops-ml demo-batch` itself: test_demo.py).

The reference is the training part of the `adult_split` fixture, the reference scores are a
small model's (fitted with the train stage's own Pipeline) on its held-out part, and the demo
batches are generated from the reference, none a copy of a reference or held-out row.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from threadpoolctl import threadpool_limits

from gitops_ml.cli import main as cli_main
from gitops_ml.config import DriftConfig, load_params, parse_params, read_settings
from gitops_ml.errors import DataError
from gitops_ml.monitor import demo, drift
from gitops_ml.stages import train
from tests.conftest import template_settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "data" / "schema" / "adult.yaml"
FEATURE_KEYS = {
    "kind",
    "psi",
    "ks_statistic",
    "pvalue",
    "missing_rate_ref",
    "missing_rate_cur",
    "drifted",
    "reasons",
}
PREDICTION_KEYS = {
    "source",
    "psi",
    "ks_statistic",
    "pvalue",
    "mean_ref",
    "mean_cur",
    "rows_ref",
    "rows_cur",
    "drifted",
    "reasons",
}
REPORT_KEYS = {
    "alert",
    "drift",
    "reasons",
    "summary",
    "reference",
    "current",
    "schema",
    "rows",
    "features",
    "drifted_features",
    "prediction",
    "schema_violations",
    "thresholds",
    "quality",
}
QUALITY_KEYS = {
    "measured",
    "alert",
    "reasons",
    "note",
    "labelled_rows",
    "unlabelled_rows",
    "unseen_labels",
    "metrics",
    "rules",
}


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def params():
    return load_params(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def cfg(params) -> DriftConfig:
    return params.drift


@pytest.fixture(scope="module")
def reference(adult_split) -> pd.DataFrame:
    return adult_split[0]


@pytest.fixture(scope="module")
def pool(adult_split) -> pd.DataFrame:
    """Rows held out from `reference` (the test split): the reference scores are the model's
    scores of these rows, and no demo batch row is a copy of one of them."""
    return adult_split[1]


@pytest.fixture(scope="module")
def make_batch(reference, pool):
    """`demo.make_batch` as `gitops-ml demo-batch` calls it: generated from the training rows,
    none a copy of a held-out row."""

    def make(rows: int, seed: int, shift: str) -> pd.DataFrame:
        return demo.make_batch(reference, rows, seed, shift, {"test split": pool})

    return make


@pytest.fixture(scope="module")
def model(reference: pd.DataFrame):
    """A small gradient-boosting Pipeline, built as the train stage builds it."""
    raw = template_settings()
    raw["train"].update(model="hist_gradient_boosting", hyperparams={"max_iter": 40})
    small = parse_params(raw)
    sample = reference.sample(8000, random_state=0)
    X, y = train.split_features(sample, small.data.target, small.data.task)
    return train.configured_pipeline(sample, small).fit(X, y)


@pytest.fixture(scope="module")
def ref_scores(model, pool: pd.DataFrame, params) -> np.ndarray:
    """The reference scores: the model's scores of the held-out rows, as evaluate saves them."""
    return drift.model_scores(model, pool, params)


def judge(batch, reference, cfg, model, ref_scores, params) -> drift.DriftReport:
    return drift.detect_drift(
        reference,
        batch,
        cfg,
        ref_scores=ref_scores,
        cur_scores=drift.model_scores(model, batch, params),
        target=params.data.target,
        score_source="model",
    )


# --------------------------------------------------------------------------------------------
# the statistics


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert drift.psi([10, 20, 70], [1, 2, 7]) == pytest.approx(0.0)
    small = drift.psi([50, 50], [55, 45])
    large = drift.psi([50, 50], [80, 20])
    assert 0 < small < 0.05 < 0.2 < large
    # An empty bin counts as EPSILON: large but finite.
    empty = drift.psi([50, 50], [100, 0])
    assert np.isfinite(empty) and empty > 1


def test_numeric_bins_merge_tied_quantiles_and_categorical_psi_sees_new_categories() -> None:
    ref = np.array([0.0] * 900 + list(range(1, 101)), dtype=float)
    edges = drift.quantile_edges(ref, 10)
    assert edges[0] == 0 and len(edges) < 9  # the zeros share one bin
    assert drift.numeric_psi(ref, ref.copy(), 10) == pytest.approx(0.0)
    assert drift.numeric_psi(ref, ref + 50, 10) > 0.2

    ref_cat = pd.Series(["a"] * 50 + ["b"] * 50)
    assert drift.categorical_psi(ref_cat, pd.Series(["b", "a"] * 30)) == pytest.approx(0.0)
    unseen = pd.Series(["a"] * 40 + ["b"] * 40 + ["z"] * 20)
    assert drift.categorical_psi(ref_cat, unseen) > 0.2


def test_missing_rate_increase_drifts_a_feature_and_a_decrease_does_not(cfg) -> None:
    rng = np.random.default_rng(0)
    ref = pd.Series(rng.normal(size=5000))
    cur = pd.Series(rng.normal(size=2000))
    assert not drift.feature_drift("x", ref, cur, cfg).drifted
    holes = cur.mask(rng.random(2000) < 0.10)
    result = drift.feature_drift("x", ref, holes, cfg)
    assert result.drifted
    assert result.missing_rate_cur == pytest.approx(holes.isna().mean())
    assert [r for r in result.reasons if r.startswith("missing rate")] == list(result.reasons)
    assert not drift.feature_drift("x", holes, cur, cfg).drifted


def test_ks_needs_a_large_statistic_not_only_a_small_p_value(cfg) -> None:
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(size=40000))
    nudged = pd.Series(rng.normal(0.08, 1, size=5000))  # significant, but a trivial effect
    result = drift.feature_drift("x", ref, nudged, cfg)
    assert result.pvalue < cfg.ks_pvalue
    assert result.ks_statistic < cfg.ks_statistic
    assert not result.drifted
    moved = drift.feature_drift("x", ref, pd.Series(rng.normal(0.4, 1, size=5000)), cfg)
    assert any(r.startswith("KS statistic") for r in moved.reasons)


# --------------------------------------------------------------------------------------------
# the verdict at the shipped params


@pytest.mark.parametrize(("seed", "rows"), [(0, 2000), (1, 2000), (2, 5000), (3, 500), (4, 3000)])
def test_a_same_distribution_batch_does_not_drift(
    seed, rows, make_batch, reference, cfg, model, ref_scores, params
) -> None:
    batch = make_batch(rows, seed, "none")
    report = judge(batch, reference, cfg, model, ref_scores, params)
    assert not report.drift, report.summary()
    assert report.drifted_features == []
    assert not report.prediction.drifted
    assert report.rows_current == rows


@pytest.mark.parametrize(
    ("shift", "seed", "expected"),
    [
        ("age", 0, "age"),
        ("age", 7, "age"),
        ("sex", 0, "sex"),
        ("sex", 7, "sex"),
        ("missing", 0, "occupation"),
    ],
)
def test_each_feature_shift_drifts_and_names_the_shifted_feature(
    shift, seed, expected, make_batch, reference, cfg, model, ref_scores, params
) -> None:
    batch = make_batch(2000, seed, shift)
    report = judge(batch, reference, cfg, model, ref_scores, params)
    assert report.drift
    assert expected in report.drifted_features
    if shift == "missing":
        assert set(report.drifted_features) == {"workclass", "occupation"}
        assert all(r.startswith("missing rate") for r in report.features["workclass"].reasons)
    else:
        assert report.drifted_features[0] == expected  # the largest PSI
    untouched = {"capital_gain", "capital_loss", "hours_per_week", "race", "native_country"}
    assert not untouched & set(report.drifted_features)


def test_a_none_batch_is_scored_like_the_test_split_and_as_predictable(
    make_batch, pool, cfg, model, ref_scores, params
) -> None:
    """Generated rows keep what ties the features to the label: the model's scores of a none
    batch are distributed as its scores of the held-out rows, and separate the labels as well."""
    from sklearn.metrics import roc_auc_score

    batch = make_batch(5000, 6, "none")
    scores = drift.model_scores(model, batch, params)
    assert drift.prediction_drift(ref_scores, scores, cfg, "model").psi < 0.03
    held_out_auc = roc_auc_score(pool["income"] == ">50K", ref_scores)
    batch_auc = roc_auc_score(batch["income"] == ">50K", scores)
    assert batch_auc == pytest.approx(held_out_auc, abs=0.025)  # donors of any label: 0.77


def test_the_income_mix_shift_shows_in_the_predictions(
    make_batch, reference, cfg, model, ref_scores, params
) -> None:
    batch = make_batch(2000, 0, "income_mix")
    report = judge(batch, reference, cfg, model, ref_scores, params)
    assert report.drift
    assert report.prediction.drifted
    assert report.prediction.mean_cur > report.prediction.mean_ref + 0.1
    assert any(r.startswith("the predictions drifted") for r in report.reasons)


def test_prediction_drift_is_found_when_only_the_scores_shift(
    pool, reference, cfg, ref_scores
) -> None:
    batch = pool.iloc[:2000]
    same = drift.detect_drift(
        reference, batch, cfg, ref_scores=ref_scores, cur_scores=ref_scores[2000:4000]
    )
    assert not same.prediction.drifted and not same.drift
    shifted = np.sqrt(ref_scores[2000:4000])  # every score moves up
    moved = drift.detect_drift(reference, batch, cfg, ref_scores=ref_scores, cur_scores=shifted)
    assert moved.prediction.drifted
    assert moved.prediction.psi >= cfg.prediction_psi_threshold
    assert moved.drift and moved.drifted_features == []


def test_max_drifted_features_tolerates_that_many(make_batch, reference, cfg, ref_scores) -> None:
    batch = make_batch(2000, 0, "missing")  # two features drift, scores do not
    scores = ref_scores[:2000]
    strict = drift.detect_drift(reference, batch, cfg, ref_scores=ref_scores, cur_scores=scores)
    lenient_cfg = dataclasses.replace(cfg, max_drifted_features=2)
    lenient = drift.detect_drift(
        reference, batch, lenient_cfg, ref_scores=ref_scores, cur_scores=scores
    )
    assert strict.drift and not lenient.drift
    assert lenient.drifted_features == strict.drifted_features


# --------------------------------------------------------------------------------------------
# the CLI


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, reference, pool, model, ref_scores) -> Path:
    """reference, test predictions, model and params, as the pipeline leaves them."""
    ws = tmp_path_factory.mktemp("drift-ws")
    reference.to_parquet(ws / "train.parquet", index=False)
    pd.DataFrame({"actual": pool["income"], "prediction": "<=50K", "score": ref_scores}).to_parquet(
        ws / "predictions.parquet", index=False
    )
    train.save_model(model, ws / "model.joblib")
    for name in ("params.yaml", "gitops.yaml"):
        (ws / name).write_text((ROOT / name).read_text(encoding="utf-8"))
    return ws


def run_cli(ws: Path, current: Path, out: Path, *extra: str) -> int:
    return cli_main(
        [
            "drift",
            "--reference",
            str(ws / "train.parquet"),
            "--current",
            str(current),
            "--predictions",
            str(ws / "predictions.parquet"),
            "--model",
            str(ws / "model.joblib"),
            "--params",
            str(ws / "params.yaml"),
            "--schema",
            str(SCHEMA),
            "--json",
            str(out / "drift.json"),
            "--markdown",
            str(out / "drift.md"),
            *extra,
        ]
    )


def test_cli_exit_codes_and_stable_report(workspace, pool, make_batch, tmp_path, capsys) -> None:
    calm = tmp_path / "calm.parquet"
    make_batch(2000, 11, "none").to_parquet(calm, index=False)
    assert run_cli(workspace, calm, tmp_path) == 0
    out = capsys.readouterr().out
    assert out.startswith("no drift: 0 of 14 features drifted")
    report = json.loads((tmp_path / "drift.json").read_text())
    assert set(report) == REPORT_KEYS
    assert report["drift"] is False and report["reasons"] == []
    assert report["rows"] == {"reference": 26048, "current": 2000}
    assert set(report["features"]) == {c for c in pool.columns if c != "income"}
    assert all(set(f) == FEATURE_KEYS for f in report["features"].values())
    assert report["features"]["age"]["kind"] == "numeric"
    assert report["features"]["sex"]["kind"] == "categorical"
    assert report["features"]["sex"]["ks_statistic"] is None
    assert set(report["prediction"]) == PREDICTION_KEYS
    assert report["prediction"]["source"] == "model"
    assert report["schema_violations"] == []
    assert report["thresholds"] == template_settings()["drift"]

    aged = tmp_path / "aged.csv"
    make_batch(2000, 11, "age").to_csv(aged, index=False)
    assert run_cli(workspace, aged, tmp_path) == 1
    out = capsys.readouterr().out
    assert out.startswith("DRIFT:") and "age" in out.splitlines()[0]
    report = json.loads((tmp_path / "drift.json").read_text())
    assert set(report) == REPORT_KEYS
    assert report["drift"] is True
    assert report["drifted_features"][0] == "age"
    assert report["features"]["age"]["drifted"] is True
    md = (tmp_path / "drift.md").read_text()
    assert md.startswith("## Data drift: **drift detected**")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    feature_rows = rows[rows.index(next(r for r in rows if r.startswith("| feature"))) + 1 :]
    assert feature_rows[0].startswith("| **age** | numeric |")  # sorted by PSI, marked
    assert sum("**yes**" in r for r in feature_rows) == len(report["drifted_features"])


def test_cli_reads_a_prediction_log_directory(
    workspace, make_batch, model, params, tmp_path
) -> None:
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    batch = make_batch(3000, 5, "missing").drop(columns=["income"])
    batch["prediction"] = "<=50K"
    batch["score"] = drift.model_scores(model, batch, params)
    batch["scored_at"] = pd.Timestamp("2024-01-01", tz="UTC")
    for i, part in enumerate(np.array_split(np.arange(len(batch)), 3)):
        batch.iloc[part].to_parquet(log_dir / f"20240101T00000{i}-abcd.parquet", index=False)
    (log_dir / ".20240101T000009-x.tmp").write_text("half-written")
    out = tmp_path / "out"
    assert run_cli(workspace, log_dir, out) == 1
    report = json.loads((out / "drift.json").read_text())
    assert report["rows"]["current"] == 3000
    assert report["prediction"]["source"] == "score column"
    assert report["prediction"]["rows_cur"] == 3000
    assert set(report["drifted_features"]) == {"workclass", "occupation"}
    violated = {(v["column"], v["rule"]) for v in report["schema_violations"]}
    assert violated == {("workclass", "max_missing_rate"), ("occupation", "max_missing_rate")}


def _garbage(path: Path, pool: pd.DataFrame) -> Path:
    path.write_bytes(b"PAR1 this is not a parquet file")
    return path


def _no_age(path: Path, pool: pd.DataFrame) -> Path:
    pool.iloc[:1000].drop(columns=["age", "sex"]).to_parquet(path, index=False)
    return path


def _empty(path: Path, pool: pd.DataFrame) -> Path:
    pool.iloc[:0].to_parquet(path, index=False)
    return path


def _text_in_numbers(path: Path, pool: pd.DataFrame) -> Path:
    path = path.with_suffix(".csv")
    bad = pool.iloc[:1000].copy()
    bad["hours_per_week"] = bad["hours_per_week"].astype(str)
    bad.loc[5, "hours_per_week"] = "forty"
    bad.to_csv(path, index=False)
    return path


def _too_few(path: Path, pool: pd.DataFrame) -> Path:
    pool.iloc[:100].to_parquet(path, index=False)
    return path


def _empty_dir(path: Path, pool: pd.DataFrame) -> Path:
    path = path.with_suffix("")
    path.mkdir()
    return path


def _missing_file(path: Path, pool: pd.DataFrame) -> Path:
    return path.with_name("nope.parquet")


def _log_file_without_a_feature(path: Path, pool: pd.DataFrame) -> Path:
    path = path.with_suffix("")
    path.mkdir()
    pool.iloc[:600].to_parquet(path / "20240101T000000-aaaa.parquet", index=False)
    pool.iloc[600:1200].drop(columns=["race"]).to_parquet(
        path / "20240102T000000-bbbb.parquet", index=False
    )
    return path


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_garbage, "cannot read parquet"),
        (_no_age, "missing feature column(s) age, sex"),
        (_empty, "the batch has no rows"),
        (
            _text_in_numbers,
            "non-numeric values in numeric column(s) 'hours_per_week' (e.g. 'forty')",
        ),
        (_too_few, "100 rows, fewer than drift.min_rows (500)"),
        (_empty_dir, "no logged predictions"),
        (_missing_file, "file not found"),
        (
            _log_file_without_a_feature,
            "20240102T000000-bbbb.parquet: missing feature column(s) race",
        ),
    ],
)
def test_cli_refuses_a_malformed_batch_in_one_line_and_writes_nothing(
    make, needle, workspace, pool, tmp_path, capsys
) -> None:
    current = make(tmp_path / "batch.parquet", pool)
    out = tmp_path / "out"
    assert run_cli(workspace, current, out) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ") and needle in err[0]
    assert captured.out == ""
    assert not out.exists()


def test_cli_refuses_a_bad_drift_section(workspace, pool, tmp_path, capsys) -> None:
    bad = read_settings(workspace / "params.yaml")
    bad["drift"]["psi_threshold"] = 0
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("train.parquet", "predictions.parquet", "model.joblib"):
        (ws / name).symlink_to(workspace / name)
    (ws / "params.yaml").write_text(yaml.safe_dump(bad))
    current = tmp_path / "batch.parquet"
    pool.iloc[:600].to_parquet(current, index=False)
    assert run_cli(ws, current, tmp_path / "out") == 2
    assert "drift.psi_threshold" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# model quality on labelled batches


def _swap_income(batch: pd.DataFrame) -> pd.DataFrame:
    out = batch.copy()
    out["income"] = batch["income"].map({">50K": "<=50K", "<=50K": ">50K"})
    return out


def test_adult_flipped_labels_alert_and_clean_labels_do_not(model, pool, params, cfg) -> None:
    clean = drift.quality_check(model, pool, params, min_rows=cfg.min_rows)
    assert clean.measured and not clean.alert, clean.reasons
    assert clean.labelled_rows == len(pool) and clean.unlabelled_rows == 0
    assert clean.metrics["n_test"] == len(pool)
    assert {r["metric"] for r in clean.rules} == set(params.gate.thresholds)
    assert all(r["passed"] and not r["skipped"] for r in clean.rules)

    flipped = drift.quality_check(model, _swap_income(pool), params, min_rows=cfg.min_rows)
    assert flipped.alert
    assert flipped.metrics["roc_auc"] == pytest.approx(1 - clean.metrics["roc_auc"], abs=1e-6)
    broken = {r["metric"] for r in flipped.rules if not r["passed"]}
    assert broken == set(params.gate.thresholds)  # roc_auc below its minimum, log_loss above
    assert any(r.startswith("roc_auc 0.") and "(minimum)" in r for r in flipped.reasons)


def test_unseen_labels_alert_by_themselves_and_leave_the_metrics_to_known_rows(
    model, pool, params, cfg
) -> None:
    batch = pool.copy()
    batch.loc[:299, "income"] = batch.loc[:299, "income"] + "."  # the adult.test spelling
    q = drift.quality_check(model, batch, params, min_rows=cfg.min_rows)
    assert q.measured and q.alert
    assert sum(q.unseen_labels.values()) == 300
    assert set(q.unseen_labels) <= {">50K.", "<=50K."}
    assert q.metrics["n_test"] == len(pool) - 300
    assert all(r["passed"] for r in q.rules)  # the known rows are scored as usual
    assert len(q.reasons) == 1 and "300 labelled row(s) carry label(s)" in q.reasons[0]


def test_unlabelled_rows_are_left_out_and_too_few_labels_are_not_judged(
    model, pool, params, cfg
) -> None:
    batch = _swap_income(pool)
    batch.loc[cfg.min_rows - 1 :, "income"] = None
    q = drift.quality_check(model, batch, params, min_rows=cfg.min_rows)
    assert not q.measured and not q.alert
    assert q.labelled_rows == cfg.min_rows - 1
    assert q.unlabelled_rows == len(pool) - cfg.min_rows + 1
    assert "fewer than drift.min_rows" in q.note

    batch.loc[cfg.min_rows - 1, "income"] = "<=50K"  # one more label: judged
    q = drift.quality_check(model, batch, params, min_rows=cfg.min_rows)
    assert q.measured and q.alert and q.metrics["n_test"] == cfg.min_rows


def test_a_metric_the_batch_leaves_undefined_is_skipped_not_failed(
    model, pool, params, cfg
) -> None:
    rich = pool[pool["income"] == ">50K"]
    q = drift.quality_check(model, rich, params, min_rows=cfg.min_rows)
    auc = next(r for r in q.rules if r["metric"] == "roc_auc")
    assert auc["skipped"] and auc["passed"] and auc["observed"] is None
    assert q.metrics["roc_auc"] is None


def _own_data(dataset, thresholds: dict, model: str = "hist_gradient_boosting"):
    """params for a data set of tests/datasets.py, and a model fitted on 60 % of its rows; the
    other 40 % is the batch."""
    raw = template_settings()
    raw["data"].update(
        source="csv",
        path="data/source/own.csv",
        target=dataset.target,
        task=dataset.task,
        positive_label=None,
    )
    raw["train"].update(model=model, hyperparams={})
    raw["evaluate"]["slices"] = []
    metric = next(iter(thresholds))
    raw["gate"].update(primary=metric, thresholds=thresholds, max_regression={}, worst_slice=None)
    own = parse_params(raw)
    frame = dataset.frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    cut = int(len(frame) * 0.6)
    fit, batch = frame.iloc[:cut], frame.iloc[cut:].reset_index(drop=True)
    X, y = train.split_features(fit, dataset.target, dataset.task)
    return own, train.configured_pipeline(fit, own).fit(X, y), batch


def _rotate(labels: pd.Series) -> pd.Series:
    classes = sorted(labels.dropna().unique())
    return labels.map(dict(zip(classes, classes[1:] + classes[:1], strict=True)))


@pytest.mark.parametrize(
    ("name", "thresholds", "flip"),
    [
        ("penguins", {"accuracy": 0.9, "log_loss": 0.3}, _rotate),
        ("breast_cancer", {"roc_auc": 0.95, "f1": 0.85}, lambda y: 1 - y),
        ("cars", {"r2": 0.6}, lambda y: y.sample(frac=1.0, random_state=0).to_numpy()),
    ],
)
def test_own_data_flipped_labels_alert_and_clean_labels_do_not(
    name, thresholds, flip, tmp_path
) -> None:
    from tests import datasets

    dataset = getattr(datasets, name)()
    own, fitted, batch = _own_data(dataset, thresholds)
    # through a CSV, as a team's labelled extract arrives (int labels come back as numbers)
    path = tmp_path / "batch.csv"
    batch.to_csv(path, index=False)
    batch = drift.read_batch(path)
    clean = drift.quality_check(fitted, batch, own, min_rows=50)
    assert clean.measured and not clean.alert, (clean.reasons, clean.metrics)
    assert clean.unseen_labels == {}

    bad = batch.copy()
    bad[dataset.target] = flip(batch[dataset.target])
    flipped = drift.quality_check(fitted, bad, own, min_rows=50)
    assert flipped.alert and flipped.unseen_labels == {}
    assert {r["metric"] for r in flipped.rules if not r["passed"]} == set(thresholds)


def test_a_multiclass_label_the_model_never_saw_alerts(tmp_path) -> None:
    from tests import datasets

    own, fitted, batch = _own_data(datasets.penguins(), {"accuracy": 0.9})
    batch.loc[:9, "species"] = "Emperor"
    q = drift.quality_check(fitted, batch, own, min_rows=50)
    assert q.alert and q.unseen_labels == {"Emperor": 10}
    assert q.metrics["n_test"] == len(batch) - 10
    assert all(r["passed"] for r in q.rules)


def test_text_in_a_regression_label_is_an_error(tmp_path) -> None:
    from tests import datasets

    own, fitted, batch = _own_data(datasets.cars(), {"r2": 0.6})
    target = "Miles_per_Gallon"
    batch[target] = batch[target].astype(object)
    batch.loc[3, target] = "n/a"
    with pytest.raises(DataError, match=r"1 label\(s\) in the 'Miles_per_Gallon' column are not"):
        drift.quality_check(fitted, batch, own, min_rows=50)


def test_cli_alerts_on_a_flipped_labelled_batch_that_does_not_drift(
    workspace, make_batch, tmp_path, capsys
) -> None:
    calm = make_batch(2000, 11, "none")
    clean = tmp_path / "clean.csv"
    calm.to_csv(clean, index=False)
    assert run_cli(workspace, clean, tmp_path / "clean") == 0
    out = capsys.readouterr().out
    assert "model quality within gate.thresholds on 2000 labelled rows" in out.splitlines()[0]
    report = json.loads((tmp_path / "clean" / "drift.json").read_text())
    assert report["alert"] is False and report["drift"] is False
    assert set(report["quality"]) == QUALITY_KEYS
    assert report["quality"]["measured"] is True and report["quality"]["alert"] is False

    flipped = tmp_path / "flipped.csv"
    _swap_income(calm).to_csv(flipped, index=False)
    assert run_cli(workspace, flipped, tmp_path / "flipped") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("no drift:") and "QUALITY ALERT on 2000 labelled rows" in out[0]
    assert any(line.startswith("  - quality: roc_auc 0.") for line in out)
    report = json.loads((tmp_path / "flipped" / "drift.json").read_text())
    assert report["drift"] is False and report["reasons"] == []  # the features did not move
    assert report["alert"] is True and report["quality"]["alert"] is True
    assert {r["metric"] for r in report["quality"]["rules"] if not r["passed"]} == {
        "roc_auc",
        "log_loss",
    }
    md = (tmp_path / "flipped" / "drift.md").read_text()
    assert md.startswith("## Data drift: no drift · model quality: **below the gate**")
    assert "| roc_auc | 0." in md and "| **fail** |" in md


def test_cli_without_labels_reports_quality_as_not_measured(
    workspace, make_batch, tmp_path, capsys
) -> None:
    path = tmp_path / "unlabelled.parquet"
    make_batch(1000, 12, "none").drop(columns=["income"]).to_parquet(path, index=False)
    assert run_cli(workspace, path, tmp_path) == 0
    report = json.loads((tmp_path / "drift.json").read_text())
    assert report["quality"]["measured"] is False
    assert report["quality"]["note"] == "the batch has no 'income' column"
    assert "Not measured: the batch has no 'income' column." in (tmp_path / "drift.md").read_text()


# --------------------------------------------------------------------------------------------
# scores that are not numbers


def _scored_log(path: Path, pool: pd.DataFrame, model, params, bad: float | None) -> Path:
    path = path.with_suffix("")
    path.mkdir()
    batch = pool.iloc[:1200].drop(columns=["income"]).copy()
    batch["score"] = drift.model_scores(model, batch, params)
    batch.loc[[3, 70, 500], "score"] = bad
    batch.to_parquet(path / "20240101T000000-aaaaaaaa.parquet", index=False)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, None])
def test_cli_refuses_a_score_column_with_non_finite_scores_and_counts_them(
    bad, workspace, pool, model, params, tmp_path, capsys
) -> None:
    current = _scored_log(tmp_path / "log", pool, model, params, bad)
    out = tmp_path / "out"
    assert run_cli(workspace, current, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "the 'score' column: 3 of 1200 scores are not finite" in err[0]
    assert not out.exists()


def test_non_finite_reference_scores_are_an_error_not_dropped(cfg) -> None:
    ref = np.linspace(0, 1, 1000)
    ref[[1, 2]] = np.nan
    with pytest.raises(DataError, match=r"reference predictions: 2 of 1000 scores are not finite"):
        drift.prediction_drift(ref, np.linspace(0, 1, 600), cfg, "model")


@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
def test_a_model_that_overflows_to_inf_is_an_error_with_the_count() -> None:
    from sklearn.linear_model import LinearRegression

    raw = template_settings()
    raw["data"].update(source="csv", path="x.csv", task="regression", target="y")
    raw["train"].update(model="ridge", hyperparams={})
    raw["gate"].update(primary="r2", thresholds={}, max_regression={}, worst_slice=None)
    regression = parse_params(raw)
    X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    fitted = LinearRegression().fit(X, X["a"] + X["b"])  # a real model: y = a + b
    huge = pd.DataFrame({"a": [1e308, -1e308], "b": [1e308, -1e308]})  # finite inputs
    with pytest.raises(DataError, match=r"model's scores of the batch: 2 of 52 scores are not"):
        drift.model_scores(fitted, pd.concat([X, huge], ignore_index=True), regression)


def test_infinite_feature_values_are_refused_before_scoring(reference, pool, cfg) -> None:
    batch = pool.iloc[:1000].copy()
    batch["age"] = batch["age"].astype(float)
    batch.loc[[1, 2], "age"] = np.inf
    features = drift.feature_columns(reference, "income")
    with pytest.raises(DataError, match=r"infinite values in numeric column\(s\) 'age' \(2 rows\)"):
        drift.check_batch(batch, reference, features, cfg)


@pytest.mark.parametrize("alert", [True, False])
def test_the_monitor_workflow_warns_on_a_quality_alert(tmp_path, alert) -> None:
    """monitor.yml's job summary step, run as the runner runs it, on a report with(out) one."""
    import os
    import subprocess
    import sys

    job = yaml.safe_load((ROOT / ".github/workflows/monitor.yml").read_text())["jobs"]["drift"]
    step = next(s for s in job["steps"] if s.get("name") == "Job summary")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "drift.md").write_text("## Data drift: no drift\n")
    reasons = ["roc_auc 0.0800 < 0.8800 (minimum) (gate.thresholds)"] if alert else []
    report = {"drift": False, "alert": alert, "quality": {"alert": alert, "reasons": reasons}}
    (tmp_path / "reports" / "drift.json").write_text(json.dumps(report))
    (tmp_path / "step.sh").write_text(step["run"])
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "DRIFT_CODE": "1" if alert else "0",
        "DVC_REMOTE": "storage",
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(tmp_path / "step.sh")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = (
        f"::warning title=Model quality::on the batch's labels: {reasons[0]}\n" if alert else ""
    )
    assert proc.stdout == expected
