"""The PR report's hyperparameter search section, from the tune stage's reports/tuned.json.

It shows the best candidate's cross-validated score with its spread over the folds, the values
train fitted, and the runners-up, so a reviewer sees whether the winner stands out from the
noise; with tuning off it says the hyperparameters came from params.yaml as written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gitops_ml.errors import GitopsMLError

#: The tune stage's output, as dvc.yaml declares it (a test keeps the two equal).
TUNED_PATH = "reports/tuned.json"
#: Candidates listed besides the best one.
RUNNERS_UP = 4


def read_tuned_file(path: str | Path) -> Mapping[str, Any] | None:
    """tuned.json, or None where there is none (a pipeline from before the tune stage)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise GitopsMLError(f"{path}: not valid JSON ({exc})") from None
    return record if isinstance(record, Mapping) else None


def _code(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _values(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{_code(f'{k}={json.dumps(v)}')}" for k, v in sorted(params.items())) or "—"


def _score(candidate: Mapping[str, Any]) -> str:
    return f"{candidate['mean']:.4f} ± {candidate['std']:.4f}"


def render_tuning(
    head: Mapping[str, Any] | None,
    base: Mapping[str, Any] | None = None,
    *,
    base_ref: str = "base",
) -> list[str]:
    """Markdown lines for the PR report: the CV score ± its spread and the chosen values.

    `head` is the PR's tuned.json, `base` the base branch's (for its score, when it searched on
    the same metric). No lines at all when the PR has no tune stage.
    """
    if not head:
        return []
    out = ["### Hyperparameter search", ""]
    search = head.get("search")
    fitted = head.get("hyperparams") or {}
    model = head.get("model", "the model")
    if not search:
        out.append(
            f"Tuning is off (`tune.enabled: false`): `{model}` was fitted with "
            f"`train.hyperparams` as written: {_values(fitted)}."
        )
        return [*out, ""]
    best = search["best"]
    metric = search["metric"]
    candidates: Sequence[Mapping[str, Any]] = search.get("candidates") or [best]
    out.append(
        f"**Cross-validated `{metric}`: {_score(best)}** (mean ± standard deviation over "
        f"{search['folds']} folds; best of {len(candidates)} candidates, {search['method']} "
        f"search, seed {search['seed']})."
    )
    base_search = (base or {}).get("search")
    if base_search and base_search.get("metric") == metric:
        out.append(f"On `{base_ref}`: {_score(base_search['best'])}.")
    elif base is not None and not base_search:
        out.append(f"`{base_ref}` was not tuned.")
    out += ["", f"`{model}` was fitted with: {_values(fitted)}.", ""]
    ranked = sorted(candidates, key=lambda c: c["rank"])[: RUNNERS_UP + 1]
    out += [f"| rank | CV `{metric}` | values |", "|---:|---:|---|"]
    out += [f"| {c['rank']} | {_score(c)} | {_values(c['params'])} |" for c in ranked]
    if len(candidates) > len(ranked):
        out.append(f"\n{len(candidates) - len(ranked)} more candidate(s) in `{TUNED_PATH}`.")
    return [*out, ""]
