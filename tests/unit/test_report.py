"""The report's pure pieces on inline dicts: deltas by direction, params diff, markdown."""

from __future__ import annotations

from gitops_ml.pr import report as r

BASE = {"roc_auc": 0.93, "log_loss": 0.27, "accuracy": 0.87, "n_test": 800}
HEAD = {"roc_auc": 0.92, "log_loss": 0.25, "accuracy": 0.87, "n_test": 900, "f1": 0.7}


def test_direction_follows_the_metric() -> None:
    assert r.direction_of("roc_auc", 0.01) == "better"
    assert r.direction_of("roc_auc", -0.01) == "worse"
    assert r.direction_of("log_loss", -0.01) == "better"
    assert r.direction_of("rmse", 0.5) == "worse"
    assert r.direction_of("accuracy", 1e-9) == "unchanged"
    assert r.direction_of("n_test", 100) == "changed"


def test_compare_metrics() -> None:
    rows = {row.name: row for row in r.compare_metrics(BASE, HEAD)}
    assert rows["roc_auc"].direction == "worse" and rows["roc_auc"].delta == -0.01
    assert rows["log_loss"].direction == "better"
    assert rows["accuracy"].direction == "unchanged"
    assert rows["f1"].direction == "new" and rows["f1"].base is None
    assert all(row.direction == "new" for row in r.compare_metrics(None, HEAD) if row.head)


def test_params_diff_flattens_both_sides() -> None:
    base = {"train": {"model": "hgb", "hyperparams": {}}, "split": {"seed": 42}}
    head = {"train": {"model": "hgb", "hyperparams": {"max_iter": 50}}, "split": {"seed": 42}}
    diff = r.params_diff(base, head)
    keys = {k: (a, b) for k, a, b in diff}
    assert keys["train.hyperparams"] == ("{}", r.MISSING)
    assert keys["train.hyperparams.max_iter"] == (r.MISSING, "50")
    assert r.params_diff(head, head) == []


def test_slice_rows() -> None:
    base = {"sex": {"F": {"n": 10, "roc_auc": 0.9}}}
    head = {"sex": {"F": {"n": 10, "roc_auc": 0.8}, "M": {"n": 20, "roc_auc": 0.7}}}
    assert r.slice_rows(base, head, "roc_auc") == [
        ("sex=F", 10, 0.9, 0.8, -0.1),
        ("sex=M", 20, None, 0.7, None),
    ]


def test_the_report_charts_each_delta_and_none_on_a_first_pr() -> None:
    """The chart is the delta chart (`gitops_ml.pr.chart`): one row per metric, no champion, no
    chart."""
    with_champion = r.render_markdown(_data(champion=BASE, challenger=HEAD))
    assert "```mermaid" in with_champion and "right is better" in with_champion
    assert "```mermaid" not in r.render_markdown(_data(champion=None, base_metrics=None))


def _data(**kw) -> r.ReportData:
    values = dict(
        base_ref="main", base_sha="b" * 40, head_sha="a" * 40, merge_base="c" * 40,
        primary="roc_auc", head_metrics=HEAD, base_metrics=BASE,
        head_params={"train": {"hyperparams": {"max_iter": 50}}},
        base_params={"train": {"hyperparams": {}}},
        champion=BASE, challenger=HEAD, champion_source="Champion from the DVC cache.",
        slice_metric="roc_auc", head_slices={"sex": {"F": {"n": 10, "roc_auc": 0.8}}},
        validation={"passed": True, "summary": {"checks": 3, "passed": 3}, "n_rows": 4000,
                    "schema": "data/schema/adult.yaml", "failures": []},
        figures=["roc.png"],
    )  # fmt: skip
    values.update(kw)
    return r.ReportData(**values)


def test_markdown_has_every_section() -> None:
    gate = {
        "passed": False, "fail_on_violation": True, "warnings": ["output differs"],
        "rules": [{"name": "threshold:roc_auc", "passed": False, "skipped": False,
                   "observed": 0.5, "limit": 0.88, "message": "roc_auc 0.5 < 0.88 (minimum)"}],
    }  # fmt: skip
    md = r.render_markdown(_data(gate=gate))
    assert "| head (this PR) | `" + "a" * 40 + "` |" in md
    assert "| merge base | `" + "c" * 40 + "` |" in md
    assert "### Quality gate: ❌ failed" in md and "| `threshold:roc_auc` | ❌ |" in md
    assert "⚠️ output differs" in md
    assert "| **`roc_auc`** (primary) | 0.9300 | 0.9200 | -0.0100 🔴 worse |" in md
    assert "| `log_loss` | 0.2700 | 0.2500 | -0.0200 🟢 better |" in md
    assert "| `f1` | — | 0.7000 | new |" in md
    assert "<details><summary>1 unchanged metric(s)</summary>" in md
    assert "| `train.hyperparams.max_iter` | — | `50` |" in md
    assert "```mermaid" in md
    assert "✅ passed: 3 of 3 checks passed on 4000 rows" in md
    assert "`roc.png`" in md and "artifact of this workflow run" in md
    linked = r.render_markdown(_data(workflow_url="https://github.com/o/r/actions/runs/7"))
    assert "artifact of [this workflow run](https://github.com/o/r/actions/runs/7)" in linked


def test_workflow_url_from_the_runner_env() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "7",
    }
    assert r._workflow_url(env) == "https://github.com/o/r/actions/runs/7"
    assert r._workflow_url({}) is None


def test_markdown_first_pr_and_missing_pieces() -> None:
    md = r.render_markdown(
        _data(base_metrics=None, base_params=None, champion=None, champion_source="",
              validation=None, figures=[], head_slices=None, gate=None)
    )  # fmt: skip
    assert "No champion yet: `main` has no model or metrics." in md
    assert "`main` has no `reports/metrics.json` (first model?)" in md
    assert "`main` has no `params.yaml`." in md
    assert "No figures in `reports/figures/`" in md
    assert "The gate was not run." in md
    assert "### Slices" not in md


def test_markdown_falls_back_to_committed_metrics() -> None:
    md = r.render_markdown(_data(champion=None, champion_source="test data may differ"))
    assert "test data may differ" in md
    assert "| **`roc_auc`** (primary) | 0.9300 | 0.9200 |" in md


def test_mlflow_link_only_for_a_tracking_server(monkeypatch) -> None:
    from types import SimpleNamespace

    from gitops_ml import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    url, lines = r._mlflow_lineage("abc", "gitops-ml")
    assert url is None and "sqlite:///mlflow.db" in lines[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.com/")
    run = SimpleNamespace(info=SimpleNamespace(experiment_id="3", run_id="r1"))
    seen = []
    monkeypatch.setattr(
        tracking, "find_run_by_model_hash", lambda md5, exp: seen.append((md5, exp)) or run
    )
    url, _ = r._mlflow_lineage("abc", "gitops-ml")
    assert url == "https://mlflow.example.com/#/experiments/3/runs/r1"
    assert seen == [("abc", "gitops-ml")]
    md = r.render_markdown(_data(run_url=url))
    assert "MLflow run of the challenger: https://mlflow.example.com/#/experiments/3/runs/r1" in md


def _threads() -> dict[str, int]:
    from threadpoolctl import threadpool_info

    return {i["internal_api"]: i["num_threads"] for i in threadpool_info()}


def test_two_models_scored_at_once_share_the_cores(monkeypatch, tmp_path) -> None:
    """The champion (in the scoring child) and the challenger (in its own child) each get half
    the cores for OpenMP and BLAS; a champion scored alone keeps the libraries' own count."""
    import sklearn.ensemble  # noqa: F401  (its OpenMP runtime)

    from gitops_ml import config, forked

    class Found:
        def load(self, base_sha: str) -> str:
            return "champion"

    monkeypatch.setattr(config, "load_params", lambda path: None)
    monkeypatch.setattr(r, "load_challenger", lambda root: "challenger")
    monkeypatch.setattr(r, "_fitting", lambda model, test, params: model)
    monkeypatch.setattr(
        r, "_score_one", lambda model, error, test, params, draw: (model, draw, _threads())
    )

    def receive(with_challenger: bool):
        sent = iter([(tmp_path, "abc", tmp_path / "params.yaml", Found(), with_challenger), "rows"])
        return lambda: next(sent)

    own = _threads()
    assert "openmp" in own
    share = max(1, forked.usable_cores() // 2)
    champion, challenger = r._score_models(receive(True))
    assert champion[:2] == ("champion", True) and challenger[:2] == ("challenger", True)
    assert set(champion[2].values()) == {share} == set(challenger[2].values())
    assert champion[2].keys() == own.keys()
    alone, none = r._score_models(receive(False))
    assert none is None and alone == ("champion", False, own)
    assert _threads() == own  # the limits end with the scoring
