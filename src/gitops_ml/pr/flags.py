"""Feature flags of the PR report: features the model barely uses, and features that nearly
duplicate another. They are warnings for a reviewer, never gate failures.

- **~0 importance**: evaluate's permutation importance (``reports/plots/importance.json``, reused,
  not recomputed) is the drop in ROC AUC (R² for regression) when a column is shuffled. A feature
  is flagged when that drop is below `IMPORTANCE_FLOOR` (0.001: a tenth of a point of AUC or R²),
  or below `NOISE_STDS` times its spread over the repeats (the shuffles cannot tell it from zero).
  On Adult the floor flags `sex` (0.00076 ± 0.00018) and `race` (0.00078 ± 0.00036), which
  `relationship` and the rest make redundant, and keeps `fnlwgt` (0.00114 ± 0.00044).
- **near duplicates**, on a sample of `SAMPLE_ROWS` rows of the train split: two numeric
  columns whose Spearman correlation is at least `MIN_CORRELATION` in absolute value (a copy, a
  rescaling or any monotone transform: `mean radius` and `mean perimeter` in breast cancer), or a
  column with at most `MAX_LEVELS` values that determines another: each of its values goes with
  one value of the other in `MIN_AGREEMENT` of the rows (Adult's `education` and
  `education_num`, one-to-one). A determining column with more levels (an ID, a timestamp)
  would determine everything on a sample, so it is not tested. Missing values count as a value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Permutation importance below this (AUC or R² points) is ~0.
IMPORTANCE_FLOOR = 0.001
#: ... and so is one below this many standard deviations of its repeats.
NOISE_STDS = 2.0
#: |Spearman| at or above this: two numeric columns carry the same ranking.
MIN_CORRELATION = 0.95
#: Share of rows in which a column's value fixes the other's: "determines".
MIN_AGREEMENT = 0.99
#: A determining column has at most this many distinct values in the sample.
MAX_LEVELS = 100
#: Rows of the train split sampled for the duplicate checks.
SAMPLE_ROWS = 20_000
#: At most this many flags of each kind are shown.
MAX_SHOWN = 10


@dataclass(frozen=True)
class Flag:
    """One warning: its kind (``importance`` or ``duplicate``), the features, and why."""

    kind: str
    features: tuple[str, ...]
    message: str


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def weak_features(
    rows: Any, floor: float = IMPORTANCE_FLOOR, noise_stds: float = NOISE_STDS
) -> list[Flag]:
    """Features whose permutation importance is ~0 (see the module docstring), least first.

    `rows` is importance.json: ``[{"feature", "importance", "std"}, ...]``; malformed rows are
    skipped."""
    flags = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        mean, std = _num(row.get("importance")), _num(row.get("std")) or 0.0
        if mean is None or row.get("feature") is None:
            continue
        name = str(row["feature"])
        if mean < floor:
            why = f"below {floor:g}"
        elif mean < noise_stds * std:
            why = f"within {noise_stds:g} std of 0"
        else:
            continue
        text = f"`{name}`: importance {mean:.4f} ± {std:.4f} ({why})"
        flags.append((mean, Flag("importance", (name,), text)))
    return [flag for _, flag in sorted(flags, key=lambda mf: (mf[0], mf[1].features))]


def _codes(values: Any) -> tuple[Any, int]:
    """Integer codes of a column (missing values one code of their own) and how many."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = codes.astype("int64") + 1  # -1 (missing) -> 0
    return codes, len(uniques) + 1


def _agreement(a: Any, na: int, b: Any, nb: int) -> float:
    """Share of rows whose `b` code is the most common one among rows with their `a` code."""
    import numpy as np

    keys, counts = np.unique(a * nb + b, return_counts=True)
    best = np.zeros(na, dtype="int64")
    np.maximum.at(best, keys // nb, counts)
    return float(best.sum()) / len(a)


def duplicate_features(
    frame: Any,
    features: Sequence[str],
    *,
    max_rows: int = SAMPLE_ROWS,
    seed: int = 0,
) -> list[Flag]:
    """Pairs of `features` (columns of `frame`) that nearly duplicate each other (see the module
    docstring), in the order of `features`."""
    import numpy as np
    import pandas as pd

    features = [c for c in features if c in frame.columns]
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    frame = frame.loc[:, features]
    flags: list[Flag] = []
    flagged: set[frozenset[str]] = set()
    numeric = [
        c
        for c in features
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]
    varying = [c for c in numeric if frame[c].nunique(dropna=True) > 1]
    if len(varying) > 1:
        ranks = frame[varying].rank().to_numpy(dtype="float64")
        ranks = np.where(np.isnan(ranks), np.nanmean(ranks, axis=0), ranks)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(ranks, rowvar=False)
        for i, j in zip(*np.triu_indices(len(varying), k=1), strict=True):
            rho = corr[i, j]
            if np.isfinite(rho) and abs(rho) >= MIN_CORRELATION:
                pair = (varying[i], varying[j])
                flagged.add(frozenset(pair))
                flags.append(
                    Flag(
                        "duplicate",
                        pair,
                        f"`{pair[0]}` and `{pair[1]}`: Spearman correlation {rho:+.3f}",
                    )
                )
    coded = {c: _codes(frame[c].to_numpy()) for c in features}
    # distinct non-missing values, and the share of the most common value (missing included)
    levels = {c: int(pd.Series(frame[c]).nunique(dropna=True)) for c in features}
    mode = {c: float(np.bincount(coded[c][0]).max()) / max(len(frame), 1) for c in features}
    for a in features:
        if not 2 <= levels[a] <= MAX_LEVELS:
            continue
        codes_a, na = coded[a]
        for b in features:
            # a nearly constant column is "determined" by anything: it is no duplicate
            if b == a or frozenset((a, b)) in flagged or levels[b] < 2:
                continue
            if mode[b] >= MIN_AGREEMENT:
                continue
            codes_b, nb = coded[b]
            share = _agreement(codes_a, na, codes_b, nb)
            if share < MIN_AGREEMENT:
                continue
            back = _agreement(codes_b, nb, codes_a, na)
            flagged.add(frozenset((a, b)))
            if back >= MIN_AGREEMENT:
                text = f"`{a}` and `{b}`: one-to-one ({min(share, back):.1%} of rows)"
            else:
                text = f"`{a}` determines `{b}` ({share:.1%} of rows)"
            flags.append(Flag("duplicate", (a, b), text))
    return flags


def feature_flags(
    importance: Any,
    train: Any,
    features: Sequence[str],
    *,
    seed: int = 0,
) -> tuple[list[Flag], float]:
    """Both kinds of flags, and the seconds the duplicate check took (None data: skipped)."""
    flags = weak_features(importance) if importance is not None else []
    start = time.perf_counter()
    if train is not None and len(features) > 1:
        flags += duplicate_features(train, features, seed=seed)
    return flags, time.perf_counter() - start


def render_flags(
    flags: Sequence[Flag], *, importance_known: bool, duplicates_known: bool
) -> list[str]:
    """The report's "Feature flags" section: warnings, not gate failures."""
    out = ["### Feature flags", ""]
    if not importance_known and not duplicates_known:
        return [*out, "Not checked: no permutation importance and no train split in the "
                "workspace.", ""]  # fmt: skip
    weak = [f for f in flags if f.kind == "importance"]
    dupes = [f for f in flags if f.kind == "duplicate"]
    if not weak and not dupes:
        checked = [
            *(["no feature has ~0 permutation importance"] if importance_known else []),
            *(["no feature nearly duplicates another"] if duplicates_known else []),
        ]
        return [*out, f"None: {' and '.join(checked)}.", ""]
    out.append("_Warnings for a reviewer; the gate does not fail on them._")
    out.append("")
    if weak:
        out.append(
            f"⚠️ **~0 permutation importance** ({len(weak)}): below {IMPORTANCE_FLOOR:g} or "
            f"within {NOISE_STDS:g} std of 0; the model barely uses them."
        )
        out += [f"- {f.message}" for f in weak[:MAX_SHOWN]]
        if len(weak) > MAX_SHOWN:
            out.append(f"- ... and {len(weak) - MAX_SHOWN} more")
        out.append("")
    if dupes:
        out.append(
            f"⚠️ **Near duplicates** ({len(dupes)}): |Spearman| ≥ {MIN_CORRELATION:g}, or one "
            f"column fixing the other in ≥ {MIN_AGREEMENT:.0%} of train rows; one of each pair "
            "adds little."
        )
        out += [f"- {f.message}" for f in dupes[:MAX_SHOWN]]
        if len(dupes) > MAX_SHOWN:
            out.append(f"- ... and {len(dupes) - MAX_SHOWN} more")
        out.append("")
    return out
