"""The model card written at promotion: what the promoted model is, what it was trained and
tested on, how it does on each group, and what it is for, in one markdown file.

Every number comes from a file the pipeline already wrote (dvc.yaml's outputs), read only when
it is the one dvc.lock records: a report that differs from the lock is named as such in the card
instead of being shown as this model's. The words no file knows (intended use, limitations)
come from gitops.yaml's ``card`` section. Lineage (git SHA, dvc.lock and model md5s, PR number)
is what `promote` already established; the card does not recompute it.

Nothing here imports MLflow or pandas: `promote` writes the card even when it has nothing else
to do. `log_card` (MLflow) is called only when a version is created or has no card yet.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_ml import tracking
from gitops_ml.files import file_md5, load_yaml
from gitops_ml.lineage import dvclock
from gitops_ml.lineage.dvclock import (
    METRICS_PATH,
    PLOTS_DIR,
    SLICES_PATH,
    VALIDATION_PATH,
    Declared,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from gitops_ml.config import Params

log = logging.getLogger(__name__)

#: Where `promote` writes the card by default (gitignored, like reports/promotion.md).
CARD_PATH = "reports/model-card.md"
#: The folder of the promotion run that holds the card, and the version tag naming it.
CARD_ARTIFACT_DIR = "card"
CARD_FILE = "model-card.md"
TAG_MODEL_CARD = f"{tracking.TAG_PREFIX}model_card"
#: evaluate's permutation importance (a file of its `reports/plots` output).
IMPORTANCE_PATH = f"{PLOTS_DIR}/importance.json"
#: Tuned hyperparameters with their cross-validation scores, when a tuning stage writes them.
TUNED_PATH = "reports/tuned.json"
CLASSES_PATH = "reports/classes.json"
#: Rows of the importance table.
TOP_FEATURES = 10

NOT_DESCRIBED = (
    "_Not described: add a `card:` section with `intended_use` and `limitations` to gitops.yaml._"
)


@dataclass(frozen=True)
class CardLineage:
    """What `promote` established about the version; shown as it is."""

    model_name: str
    version: str
    model_md5: str
    dvc_lock_md5: str
    git_sha: str | None
    pr_number: str | None
    run_id: str | None
    train_data_md5: str | None = None
    version_git_sha: str | None = None  # the commit the version was registered at, if another


# -- reading the pipeline's files ------------------------------------------------------------------


class _Reader:
    """The reports of the workspace, each checked against dvc.lock where the lock records it."""

    def __init__(self, root: Path, lock: Mapping[str, Any] | None) -> None:
        self.root, self.lock = root, lock
        self.notes: list[str] = []

    def json(self, rel: str, *, recorded: bool = True) -> Any:
        """The parsed file, or None (with a note) when absent, unreadable or not dvc.lock's."""
        path = self.root / rel
        if not path.is_file():
            return None
        if recorded:
            expected = dvclock.out_md5(self.lock, rel)
            if expected is not None and file_md5(path) != expected:
                self.notes.append(f"{rel} differs from the one dvc.lock records: not shown")
                return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            self.notes.append(f"{rel} is not readable JSON: not shown")
            return None

    def yaml(self, rel: str) -> Any:
        path = self.root / rel
        try:
            return load_yaml(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except Exception as exc:
            self.notes.append(f"{rel} is not readable YAML ({type(exc).__name__}): not shown")
            return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _fmt(value: Any) -> str:
    number = _num(value)
    if number is None:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return _cell(text)
    if number.is_integer() and abs(number) >= 1:
        return f"{int(number):,}"
    return f"{number:.4g}"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _flag(rules: Any, key: str) -> bool:
    flag = _mapping(rules).get(key)
    if isinstance(flag, str):
        return flag.strip().lower() in ("true", "yes", "y", "1", "on")
    return flag is True or (isinstance(flag, int) and flag == 1)


def is_sensitive(rules: Any) -> bool:
    """A schema column's ``sensitive`` flag, read tolerantly: true, "true", "yes", 1."""
    return _flag(rules, "sensitive")


def sensitive_columns(schema: Any) -> list[str]:
    """Columns a schema marks ``sensitive: true``, in the schema's order."""
    columns = _mapping(_mapping(schema).get("columns"))
    return [str(name) for name, rules in columns.items() if is_sensitive(rules)]


def excluded_columns(schema: Any) -> list[str]:
    """Columns a schema marks ``exclude: true`` (no model input), in the schema's order."""
    columns = _mapping(_mapping(schema).get("columns"))
    return [str(name) for name, rules in columns.items() if _flag(rules, "exclude")]


def slice_gaps(
    slices: Mapping[str, Any], metric: str, min_rows: int = 0
) -> dict[str, tuple[str, float, str, float] | None]:
    """Per slice column: (best group, its value, worst group, its value) of `metric` over the
    groups of at least `min_rows` rows (None: fewer than two such groups). "Best" is the higher
    value, whatever the metric's direction; the gap is their difference."""
    gaps: dict[str, tuple[str, float, str, float] | None] = {}
    for column, groups in slices.items():
        values = [
            (str(group), v)
            for group, row in _mapping(groups).items()
            if (v := _num(_mapping(row).get(metric))) is not None
            and (_num(_mapping(row).get("n")) or 0) >= min_rows
        ]
        if len(values) < 2:
            gaps[str(column)] = None
            continue
        values.sort()  # ties go to the first group in name order
        high = max(values, key=lambda gv: gv[1])
        low = min(values, key=lambda gv: gv[1])
        gaps[str(column)] = (high[0], high[1], low[0], low[1])
    return gaps


# -- the card ---------------------------------------------------------------------------------------


def _slice_metric(params: Params, slices: Mapping[str, Any]) -> str | None:
    """The metric the card compares groups on: the gate's worst-slice metric, else its primary
    metric, else the first one the slices hold."""
    candidates = []
    if params.gate.worst_slice is not None:
        candidates.append(params.gate.worst_slice.metric)
    candidates.append(params.gate.primary)
    held: list[str] = []
    for groups in slices.values():
        for row in _mapping(groups).values():
            held.extend(k for k, v in _mapping(row).items() if k != "n" and _num(v) is not None)
    for name in candidates:
        if name in held:
            return name
    return held[0] if held else None


def _data_section(params: Params, validation: Any, metrics: Any) -> list[str]:
    v = _mapping(validation)
    schema_path = v.get("schema")
    rows_total = _num(v.get("n_rows"))
    rows_test = _num(_mapping(metrics).get("n_test"))
    # The split puts every validated row on one side (validation rejects missing labels).
    rows_train = (
        rows_total - rows_test if rows_total is not None and rows_test is not None else None
    )
    summary = _mapping(v.get("summary"))
    checks = (
        f"{_fmt(summary.get('passed'))} of {_fmt(summary.get('checks'))} passed" if summary else "—"
    )
    source = params.data.source + (f" (`{params.data.path}`)" if params.data.path else "")
    rows = [
        ("source", source),
        ("data contract (schema)", f"`{schema_path}`" if schema_path else "—"),
        ("validation checks", checks if validation is not None else "no reports/validation.json"),
        ("rows validated", _fmt(rows_total) if rows_total is not None else "—"),
        (
            "rows in train",
            f"{_fmt(rows_train)} (validated rows minus test rows)"
            if rows_train is not None
            else "—",
        ),
        ("rows in test", _fmt(rows_test) if rows_test is not None else "—"),
        ("test share (split.test_size)", _fmt(params.split.test_size)),
        ("columns", _fmt(v.get("n_columns")) if v.get("n_columns") is not None else "—"),
        (
            "dropped columns (data.drop_columns)",
            ", ".join(f"`{c}`" for c in params.data.drop_columns) or "none",
        ),
        ("raw data md5", f"`{v['data_md5']}`" if v.get("data_md5") else "—"),
    ]
    return ["## Data", "", *_table(["", ""], rows), ""]


def _task_section(r: _Reader, params: Params) -> list[str]:
    data = params.data
    rows = [("task", data.task), ("target", f"`{data.target}`")]
    if data.task == "binary":
        rows.append(("positive class", f"`{data.positive_label}`" if data.positive_label else
                     "the last label in sorted order"))  # fmt: skip
    classes = r.json(CLASSES_PATH)
    if data.task != "regression" and isinstance(classes, Mapping) and classes:
        rows.append(("classes", ", ".join(f"`{_cell(str(c))}`" for c in classes)))
    return ["## Task", "", *_table(["", ""], rows), ""]


def _estimator_section(r: _Reader, declared: Declared) -> list[str]:
    hp = declared.params.get("train.hyperparams")
    rows = [
        ("estimator (train.model)", f"`{declared.params.get('train.model', '—')}`"),
        (
            "hyperparameters (train.hyperparams)",
            f"`{json.dumps(hp, sort_keys=True)}`" if hp else "the estimator's defaults",
        ),
        ("seed (train.seed)", _fmt(declared.params.get("train.seed", "—"))),
    ]
    lines = ["## Estimator and hyperparameters", "", *_table(["", ""], rows), ""]
    lines += ["_As dvc.lock records them for the train stage that built this model._", ""]
    tuned = r.json(TUNED_PATH)
    if isinstance(tuned, Mapping) and tuned:
        lines += [f"Tuning ({TUNED_PATH}):", ""]
        lines += _table(["", ""], [(f"`{_cell(str(k))}`", _fmt(v)) for k, v in tuned.items()])
        lines.append("")
    return lines


def _metrics_section(metrics: Any) -> list[str]:
    lines = ["## Metrics (test split)", ""]
    values = {k: v for k, v in _mapping(metrics).items() if k != "n_test"}
    if not values:
        return [*lines, f"_No metrics: {METRICS_PATH} is missing or not dvc.lock's._", ""]
    return [
        *lines,
        *_table(["metric", "value"], [(k, _fmt(v)) for k, v in sorted(values.items())]),
        "",
    ]


def _slices_section(params: Params, slices: Any) -> list[str]:
    lines = ["## Slices", ""]
    slices = _mapping(slices)
    if not slices:
        lines.append("_No slices: evaluate.slices names no column, or "
                     f"{SLICES_PATH} is missing or not dvc.lock's._")  # fmt: skip
        return [*lines, ""]
    metric = _slice_metric(params, slices)
    if metric is None:
        return [*lines, "_The slices hold no metric._", ""]
    min_rows = params.gate.worst_slice.min_rows if params.gate.worst_slice is not None else 0
    gaps = slice_gaps(slices, metric, min_rows)
    lines.append(
        f"Largest gap in `{metric}` between the groups of each column"
        + (f" (groups of at least {min_rows} rows, `gate.worst_slice.min_rows`)" if min_rows
           else "") + ":"
    )  # fmt: skip
    lines.append("")
    rows = []
    for column, gap in gaps.items():
        if gap is None:
            rows.append((f"`{column}`", "—", "—", "fewer than two groups to compare"))
        else:
            hi, hv, lo, lv = gap
            rows.append(
                (f"`{column}`", _fmt(hv - lv), f"{_cell(hi)} {_fmt(hv)}", f"{_cell(lo)} {_fmt(lv)}")
            )
    lines += _table(["column", "gap", "highest", "lowest"], rows)
    lines.append("")
    extra = "predicted_positive_rate"
    if params.data.task == "binary" and extra != metric:
        rates = slice_gaps(slices, extra, min_rows)
        shown = [(c, g) for c, g in rates.items() if g is not None]
        if shown:
            lines.append(f"Gap in `{extra}` (how often each group is predicted positive):")
            lines.append("")
            lines += _table(
                ["column", "gap", "highest", "lowest"],
                [
                    (f"`{c}`", _fmt(g[1] - g[3]), f"{_cell(g[0])} {_fmt(g[1])}",
                     f"{_cell(g[2])} {_fmt(g[3])}")
                    for c, g in shown
                ],
            )  # fmt: skip
            lines.append("")
    for column, groups in slices.items():
        rows = [
            (_cell(str(group)), _fmt(_mapping(row).get("n")), _fmt(_mapping(row).get(metric)))
            for group, row in _mapping(groups).items()
        ]
        lines += [f"<details><summary>{_cell(str(column))}: {len(rows)} groups</summary>", ""]
        lines += [*_table(["group", "rows", metric], rows), "", "</details>", ""]
    return lines


def _importance_section(r: _Reader, params: Params) -> list[str]:
    lines = ["## Feature importance", ""]
    rows = r.json(IMPORTANCE_PATH, recorded=False)
    if not isinstance(rows, list) or not rows:
        why = (
            "evaluate.importance_rows is 0"
            if params.evaluate.importance_rows == 0
            else f"{IMPORTANCE_PATH} is missing or empty"
        )
        return [*lines, f"_Not computed: {why}._", ""]
    scoring = "R²" if params.data.task == "regression" else "ROC AUC (accuracy for some multiclass)"
    lines += [
        f"Permutation importance on at most {params.evaluate.importance_rows:,} test rows: the "
        f"drop in {scoring} when a column's values are shuffled ({IMPORTANCE_PATH}).",
        "",
    ]
    table = [
        (f"`{_cell(str(_mapping(row).get('feature')))}`", _fmt(_mapping(row).get("importance")),
         _fmt(_mapping(row).get("std")))
        for row in rows[:TOP_FEATURES]
    ]  # fmt: skip
    lines += _table(["feature", "importance", "std"], table)
    if len(rows) > TOP_FEATURES:
        lines += ["", f"_{len(rows) - TOP_FEATURES} more features in {IMPORTANCE_PATH}._"]
    return [*lines, ""]


def _sensitive_section(r: _Reader, params: Params, validation: Any) -> list[str]:
    lines = ["## Sensitive columns", ""]
    schema_path = _mapping(validation).get("schema")
    schema = r.yaml(str(schema_path)) if isinstance(schema_path, str) else None
    found = sensitive_columns(schema)
    if not found:
        where = f" in `{schema_path}`" if schema_path else ""
        lines.append(f"None declared{where} (mark a schema column `sensitive: true`).")
        return [*lines, ""]
    sliced = set(params.evaluate.slices)
    rows = [
        (f"`{c}`", "yes" if c in sliced else "**no**: add it to evaluate.slices") for c in found
    ]
    lines += [f"Declared in `{schema_path}`:", "", *_table(["column", "sliced"], rows)]
    return [*lines, ""]


def _excluded_section(r: _Reader, params: Params, validation: Any, declared: Declared) -> list[str]:
    """The columns left out of the model's inputs, as the schema the train stage read says."""
    lines = ["## Excluded columns", ""]
    schema_path = _mapping(validation).get("schema")
    if not isinstance(schema_path, str):
        return [*lines, "_Unknown: no schema named in the validation report._", ""]
    deps = declared.deps
    if schema_path not in deps:
        lines.append(
            "None: the train stage that built this model read no schema (dvc.lock), so every "
            "column of the data but the target is an input."
        )
        return [*lines, ""]
    path = r.root / schema_path
    if path.is_file() and file_md5(path) != deps[schema_path]:
        r.notes.append(f"{schema_path} differs from the one the train stage read: not shown")
        return [*lines, f"_Not shown: `{schema_path}` is not the one dvc.lock records._", ""]
    schema = r.yaml(schema_path)
    found = excluded_columns(schema)
    if not found:
        lines.append(f"None: every column of `{schema_path}` is a model input "
                     "(mark one `exclude: true` to leave it out).")  # fmt: skip
        return [*lines, ""]
    sensitive, sliced = set(sensitive_columns(schema)), set(params.evaluate.slices)
    rows = [
        (f"`{c}`", "yes" if c in sensitive else "no", "yes" if c in sliced else "no") for c in found
    ]
    lines += [
        f"Left out of the model's inputs (`exclude: true` in `{schema_path}`): the model never "
        "sees them and ignores them in a request; they stay in the data for slices.",
        "",
        *_table(["column", "sensitive", "sliced"], rows),
    ]
    return [*lines, ""]


def _use_section(params: Params) -> list[str]:
    card = params.card
    if card is None:
        return ["## Intended use", "", NOT_DESCRIBED, "", "## Limitations", "", NOT_DESCRIBED, ""]
    return ["## Intended use", "", card.intended_use, "", "## Limitations", "", card.limitations,
            ""]  # fmt: skip


def _lineage_section(lineage: CardLineage) -> list[str]:
    rows = [
        ("registered model", f"`{lineage.model_name}` version {lineage.version}"),
        ("model md5 (dvc.lock)", f"`{lineage.model_md5}`"),
        ("dvc.lock md5", f"`{lineage.dvc_lock_md5}`"),
        ("git commit", f"`{lineage.git_sha}`" if lineage.git_sha else "—"),
    ]
    if lineage.version_git_sha and lineage.version_git_sha != lineage.git_sha:
        rows.append(("registered at commit", f"`{lineage.version_git_sha}`"))
    rows += [
        ("train data md5", f"`{lineage.train_data_md5}`" if lineage.train_data_md5 else "—"),
        ("pull request", f"#{lineage.pr_number}" if lineage.pr_number else "—"),
        ("promotion run", f"`{lineage.run_id}`" if lineage.run_id else "—"),
    ]
    return ["## Lineage", "", *_table(["", ""], rows), ""]


def render_card(root: str | Path, params: Params, declared: Declared, lineage: CardLineage) -> str:
    """The card's markdown, from the workspace's reports under `root` (see the module docstring)."""
    r = _Reader(Path(root), declared.lock)
    validation = r.json(VALIDATION_PATH)
    metrics = r.json(METRICS_PATH)
    slices = r.json(SLICES_PATH)
    lines = [
        f"# Model card: {lineage.model_name} version {lineage.version}",
        "",
        f"The model `{declared.path}` with md5 `{lineage.model_md5}`, as dvc.lock declares it; "
        "written by `gitops-ml promote` from the pipeline's reports.",
        "",
        *_task_section(r, params),
        *_data_section(params, validation, metrics),
        *_estimator_section(r, declared),
        *_metrics_section(metrics),
        *_slices_section(params, slices),
        *_importance_section(r, params),
        *_sensitive_section(r, params, validation),
        *_excluded_section(r, params, validation, declared),
        *_use_section(params),
        *_lineage_section(lineage),
    ]
    if r.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in dict.fromkeys(r.notes)), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# -- MLflow ------------------------------------------------------------------------------------------


def card_uri(run_id: str) -> str:
    """Where the card of a version lives: an artifact of its promotion run."""
    return f"runs:/{run_id}/{CARD_ARTIFACT_DIR}/{CARD_FILE}"


def log_card(client: MlflowClient, name: str, version: str, run_id: str, path: Path) -> str:
    """Log the card file as an artifact of the version's run, then tag the version with its
    location (in that order, so a tag always names a card that exists). Returns the location."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gitops-ml-card-") as tmp:
        copy = Path(tmp) / CARD_FILE
        shutil.copyfile(path, copy)
        client.log_artifact(run_id, str(copy), CARD_ARTIFACT_DIR)
    uri = card_uri(run_id)
    client.set_model_version_tag(name, version, TAG_MODEL_CARD, uri)
    return uri
