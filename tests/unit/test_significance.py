"""The paired bootstrap of champion-vs-challenger deltas, on data sets the project did not design.

Each weighted metric must equal the pipeline's own metric function on the rows a draw
materialises (rows repeated as often as drawn): that is what makes an interval the interval of
the numbers the report shows.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from gitops_ml import metrics as m
from gitops_ml.models import build_pipeline, feature_columns
from gitops_ml.pr import significance as sig
from gitops_ml.scoring import score
from tests.datasets import breast_cancer, cars, penguins


@cache
def _answers(name: str) -> tuple[str, np.ndarray, sig.Answers, sig.Answers, object]:
    """(task, actual, weak model's answers, strong model's answers, positive) on a test half."""
    data = {"penguins": penguins, "breast_cancer": breast_cancer, "cars": cars}[name]()
    frame = data.frame.dropna(subset=[data.target]).sample(frac=1.0, random_state=0)
    half = len(frame) // 2
    train, test = frame.iloc[:half], frame.iloc[half:]
    numeric, categorical = feature_columns(train, data.target)
    out = []
    for model, hyper in (("logistic_regression", {"max_iter": 50}), ("hist_gradient_boosting", {})):
        if data.task == "regression":
            model = "ridge" if model == "logistic_regression" else model
            hyper = {} if model == "ridge" else hyper
        pipe = build_pipeline(model, data.task, hyper, 0, numeric, categorical)
        pipe.fit(train[numeric + categorical], train[data.target])
        scored = score(pipe, test[numeric + categorical], data.task)
        out.append((scored, sig.Answers(scored.labels, scored.score, scored.proba, scored.classes)))
    actual = test[data.target].to_numpy()
    if data.task == "regression":
        actual = actual.astype(float)
    return data.task, actual, out[0][1], out[1][1], out[1][0].positive


def _reference(task: str, actual: np.ndarray, a: sig.Answers, positive: object) -> dict:
    if task == "binary":
        return m.binary_metrics(actual, a.labels, a.score, positive)
    if task == "multiclass":
        return m.multiclass_metrics(actual, a.labels, a.proba, a.classes)
    return m.regression_metrics(actual, a.labels)


def _take(a: sig.Answers, rows: np.ndarray) -> sig.Answers:
    return sig.Answers(
        a.labels[rows],
        None if a.score is None else a.score[rows],
        None if a.proba is None else a.proba[rows],
        a.classes,
    )


@pytest.mark.parametrize("name", ["breast_cancer", "penguins", "cars"])
def test_weighted_metrics_equal_the_pipelines_on_the_drawn_rows(name: str) -> None:
    task, actual, weak, strong, positive = _answers(name)
    rng = np.random.default_rng(7)
    n = len(actual)
    for answers in (weak, strong):
        for _ in range(3):
            rows = rng.integers(0, n, n)
            weights = np.bincount(rows, minlength=n)[None, :]
            expected = _reference(task, actual[rows], _take(answers, rows), positive)
            for metric in sig.SUPPORTED[task]:
                got = sig.weighted_metric(task, metric, weights, actual, answers, positive)[0]
                assert expected[metric] is not None, metric
                assert got == pytest.approx(expected[metric], abs=5.1e-7), (
                    name,
                    metric,
                )  # 6 decimals


@pytest.mark.parametrize("name", ["breast_cancer", "penguins", "cars"])
def test_a_model_against_itself_is_no_real_change(name: str) -> None:
    task, actual, _, strong, positive = _answers(name)
    intervals = sig.paired_intervals(task, actual, strong, strong, sig.SUPPORTED[task],
                                     positive=positive, replicates=200)  # fmt: skip
    assert set(intervals) == set(sig.SUPPORTED[task])
    for interval in intervals.values():
        assert (interval.delta, interval.low, interval.high) == (0, 0, 0)
        assert not interval.real


def test_intervals_are_seeded_and_bracket_the_delta() -> None:
    task, actual, weak, strong, positive = _answers("penguins")
    args = (task, actual, weak, strong, ("accuracy", "log_loss", "roc_auc_ovr"))
    first = sig.paired_intervals(*args, positive=positive, replicates=300)
    assert first == sig.paired_intervals(*args, positive=positive, replicates=300)
    assert first != sig.paired_intervals(*args, positive=positive, replicates=300, seed=1)
    for interval in first.values():
        assert interval.low <= interval.delta <= interval.high


def test_a_real_improvement_clears_zero_and_noise_does_not() -> None:
    """Breast cancer: a model against one that guesses from a coin is a real change; the same
    model with its scores nudged by 1e-4 is not."""
    task, actual, _, strong, positive = _answers("breast_cancer")
    rng = np.random.default_rng(0)
    coin = sig.Answers(
        np.where(rng.random(len(actual)) < 0.5, strong.labels, strong.labels[::-1]),
        rng.random(len(actual)),
    )
    better = sig.paired_intervals(task, actual, coin, strong, ("roc_auc", "accuracy"),
                                  positive=positive)  # fmt: skip
    assert all(i.real and i.low > 0 for i in better.values()), better
    nudged = sig.Answers(
        strong.labels, np.clip(strong.score + 1e-4 * rng.standard_normal(len(actual)), 0, 1)
    )
    same = sig.paired_intervals(task, actual, strong, nudged, ("roc_auc", "log_loss"),
                                positive=positive)  # fmt: skip
    assert not any(i.real for i in same.values()), same


def test_the_report_reads_a_delta_inside_its_interval_as_no_real_change() -> None:
    from gitops_ml.pr import report as r

    rows = r.compare_metrics(
        {"roc_auc": 0.9303, "accuracy": 0.8767, "log_loss": 0.2733},
        {"roc_auc": 0.9303, "accuracy": 0.8760, "log_loss": 0.2601},
    )
    intervals = {
        "roc_auc": {"delta": 0.0, "low": -0.0004, "high": 0.0005, "real": False},
        "accuracy": {"delta": -0.0007, "low": -0.0021, "high": 0.0006, "real": False},
        "log_loss": {"delta": -0.0132, "low": -0.0171, "high": -0.0094, "real": True},
    }
    table = r._metric_table(rows, "champion", "PR", "roc_auc", intervals)
    assert table[0].endswith("| Δ | 95% interval of Δ |")
    by_name = {line.split("|")[1].strip(): line for line in table[2:]}
    assert "-0.0007 ⚪ no real change | [-0.0021, +0.0006]" in by_name["`accuracy`"]
    assert "🔴" not in by_name["`accuracy`"]
    assert "-0.0132 🟢 better | [-0.0171, -0.0094]" in by_name["`log_loss`"]
    assert "no real change" in by_name["**`roc_auc`** (primary)"]
    # Without intervals (a champion from committed metrics only), the table is as before.
    assert r._metric_table(rows, "champion", "PR")[0] == "| metric | champion | PR | Δ |"


def test_the_significance_rule_passes_only_an_interval_clear_of_zero() -> None:
    from gitops_ml.pr import gate as g

    intervals = {
        "roc_auc": {"delta": 0.004, "low": 0.0011, "high": 0.007, "real": True},
        "accuracy": {"delta": 0.0007, "low": -0.0021, "high": 0.0026, "real": False},
        "log_loss": {"delta": -0.0132, "low": -0.0171, "high": -0.0094, "real": True},
        "f1": {"delta": -0.02, "low": -0.03, "high": -0.01, "real": True},
    }
    rules = {
        r.name: r
        for r in g.significance_rules(intervals, ["roc_auc", "accuracy", "log_loss", "f1"])
    }
    assert rules["significant:roc_auc"].passed
    assert rules["significant:log_loss"].passed  # lower is better: the interval is below zero
    assert not rules["significant:accuracy"].passed
    assert "the interval holds zero, no real change" in rules["significant:accuracy"].message
    assert not rules["significant:f1"].passed and "worse than the champion" in (
        rules["significant:f1"].message
    )
    (skipped,) = g.significance_rules(None, ["roc_auc"], missing_reason="no champion yet")
    assert skipped.skipped and skipped.passed and "no champion yet" in skipped.message


def test_significant_metrics_are_checked_against_the_task(tmp_path: Path) -> None:
    import shutil

    import yaml

    from gitops_ml.config import load_params
    from gitops_ml.errors import ConfigError
    from tests.conftest import ROOT

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    gitops = yaml.safe_load((ROOT / "gitops.yaml").read_text())
    for value, ok in (([], True), (["roc_auc", "log_loss"], True), (["rmse"], False),
                      (["average_precision"], False), ("roc_auc", False)):  # fmt: skip
        gitops["gate"]["significant"] = value
        (tmp_path / "gitops.yaml").write_text(yaml.safe_dump(gitops))
        if ok:
            assert load_params(tmp_path / "params.yaml").gate.significant == tuple(value)
        else:
            with pytest.raises(ConfigError, match=r"gate\.significant"):
                load_params(tmp_path / "params.yaml")


def test_the_draws_do_not_depend_on_how_replicates_are_chunked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Memory is bounded by chunking the replicates; the intervals must not change with it."""
    task, actual, weak, strong, positive = _answers("breast_cancer")
    args = (task, actual, weak, strong, ("roc_auc", "log_loss"))
    whole = sig.paired_intervals(*args, positive=positive, replicates=120)
    monkeypatch.setattr(sig, "CHUNK_ELEMENTS", 7 * len(actual))  # 7 replicates a chunk
    assert sig.paired_intervals(*args, positive=positive, replicates=120) == whole


def _per_metric_reference(task: str, w: np.ndarray, y: np.ndarray, a: sig.Answers,
                          positive: object) -> dict[str, np.ndarray]:  # fmt: skip
    """The count-based metrics one matrix-vector product at a time, the AUC with its own sort."""
    n = w.sum(axis=1)

    def count(mask: np.ndarray) -> np.ndarray:
        return w @ mask.astype(float)

    def auc(is_pos: np.ndarray, score: np.ndarray) -> np.ndarray:
        pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
        neg = neg[np.argsort(score[neg], kind="mergesort")]
        below = np.searchsorted(score[neg], score[pos], side="left")
        up_to = np.searchsorted(score[neg], score[pos], side="right")
        cum = np.zeros((len(w), len(neg) + 1))
        np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
        wins = np.einsum("ij,ij->i", w[:, pos], cum[:, below] + cum[:, up_to]) / 2
        return sig._ratio(wins, w[:, pos].sum(axis=1) * cum[:, -1])

    if task == "binary":
        is_y, is_label = y == positive, a.labels == positive
        prf = sig._prf(count(is_y & is_label), count(~is_y & is_label), count(is_y & ~is_label))
        return {"roc_auc": auc(is_y, a.score), "accuracy": count(y == a.labels) / n,
                "precision": prf[0], "recall": prf[1], "f1": prf[2]}  # fmt: skip
    labels = np.unique(np.concatenate([y, a.labels]))
    per_class = [
        sig._prf(count((y == c) & (a.labels == c)), count((y != c) & (a.labels == c)),
                 count((y == c) & (a.labels != c)))
        for c in labels
    ]  # fmt: skip
    recall, f1, support = (np.vstack([p[i] for p in per_class]) for i in (1, 2, 3))
    present = support > 0
    drawn = np.vstack([count(y == c) + count(a.labels == c) for c in labels]) > 0
    aucs = [auc(y == c, a.proba[:, i]) for i, c in enumerate(a.classes)]
    return {
        "accuracy": count(y == a.labels) / n,
        "balanced_accuracy": np.sum(np.where(present, recall, 0), axis=0) / present.sum(axis=0),
        "f1_macro": np.sum(np.where(drawn, f1, 0), axis=0) / drawn.sum(axis=0),
        "f1_weighted": sig._ratio(np.sum(f1 * support, axis=0), support.sum(axis=0)),
        "roc_auc_ovr": np.nanmean(np.vstack(aucs), axis=0),
    }


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_metrics_sharing_their_counts_are_the_per_metric_ones_bit_for_bit(task: str) -> None:
    """Matches and the AUC's wins are sums of integers, exact however they are summed: the
    metrics computed together equal those computed one by one to the last bit. Scores are
    rounded to two decimals so that ties are frequent; one class of four is never answered."""
    rng = np.random.default_rng(11)
    n = 3000
    classes = np.array(["a", "b"] if task == "binary" else ["a", "b", "c", "d"])
    y = rng.choice(classes, n)
    proba = np.round(rng.dirichlet(np.ones(len(classes)), n), 2)
    answered = classes[:-1] if task == "multiclass" else classes
    labels = np.where(rng.random(n) < 0.7, y, rng.choice(answered, n))
    labels = np.where(np.isin(labels, answered), labels, answered[0])
    answers = sig.Answers(labels, proba[:, 1], proba, classes)
    names = [m for m in sig.SUPPORTED[task] if m not in ("log_loss", "brier")]
    model = sig._Model(task, y, answers, "b")
    for size in (1, 13, 250):
        rows = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
        w = np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(float)
        got = model.metrics(names, w)
        expected = _per_metric_reference(task, w, y, answers, "b")
        for name in names:
            assert np.array_equal(got[name], expected[name], equal_nan=True), (task, name, size)


@pytest.mark.parametrize("name", ["breast_cancer", "penguins", "cars"])
def test_each_models_draws_made_apart_pair_into_the_same_intervals(name: str) -> None:
    """The report draws each model's half of the bootstrap in the process that scored it."""
    from functools import partial

    from gitops_ml import forked

    task, actual, weak, strong, positive = _answers(name)
    names = sig.SUPPORTED[task]
    draws = partial(sig.draws, task, actual, metrics=names, positive=positive, replicates=300)
    together = sig.paired_intervals(task, actual, weak, strong, names, positive=positive,
                                    replicates=300)  # fmt: skip
    in_a_child = forked.call(draws, weak)()
    assert sig.intervals(in_a_child, draws(strong)) == together
    assert set(together) == set(names)
    with pytest.raises(ValueError, match="not paired"):
        sig.intervals(in_a_child, draws(strong, seed=1))
