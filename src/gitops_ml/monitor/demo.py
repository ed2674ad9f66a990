"""`gitops-ml demo-batch`: an offline stream of Adult batches with a controlled shift, to try the
drift check and the retraining pull request on."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gitops_ml.batches import check_output_path, read_batch, write_batch
from gitops_ml.cliargs import exit_codes, whole_number
from gitops_ml.errors import DataError

#: The shifts `demo-batch` can apply (see `make_batch`).
SHIFTS = ("none", "age", "sex", "income_mix", "missing")


#: age: rows are drawn with weight exp(AGE_TILT * (age - mean age)): about 9 years older.
AGE_TILT = 0.05


#: income_mix: this share of the rows have Adult's positive label (Adult: 24%).
INCOME_MIX_SHARE = 0.5


POSITIVE_LABEL = ">50K"


#: missing: workclass and occupation are blanked in this share of the rows that have them.
MISSING_SHARE = 0.2


#: fnlwgt (the census sampling weight) is scaled by a random factor within 1 ± this.
FNLWGT_JITTER = 0.02


DEFAULT_POOL = "data/processed/test.parquet"


def _need(pool: pd.DataFrame, columns: Sequence[str], shift: str) -> None:
    missing = [c for c in columns if c not in pool.columns]
    if missing:
        raise DataError(f"shift '{shift}' needs the column(s) {', '.join(missing)} in the pool")


def _draw_groups(
    rng: np.random.Generator, groups: Sequence[tuple[str, np.ndarray, int]]
) -> np.ndarray:
    """Draw `size` of the row numbers of each (label, rows, size) group, without replacement."""
    out = []
    for label, rows, size in groups:
        if size > len(rows):
            raise DataError(
                f"the pool has only {len(rows)} rows with {label}, {size} needed; "
                "ask for fewer rows"
            )
        out.append(rng.choice(rows, size=size, replace=False))
    return np.concatenate(out)


def make_batch(pool: pd.DataFrame, rows: int, seed: int, shift: str = "none") -> pd.DataFrame:
    """`rows` rows drawn without replacement from `pool` (Adult columns), with a controlled shift.

    - ``none``: a uniform sample: the same distribution as the pool.
    - ``age``: an older population: rows drawn with weight ``exp(AGE_TILT * (age - mean))``,
      so age moves and what goes with age (marital status, income) follows as in the census.
    - ``sex``: the shares of the sexes swapped (Adult: 67% male becomes 67% female).
    - ``income_mix``: `INCOME_MIX_SHARE` of the rows earn >50K: a label shift that no single
      feature shows strongly but the model's scores do.
    - ``missing``: workclass and occupation blanked in `MISSING_SHARE` of the rows that have
      them (an upstream form that stopped asking).

    Every row's ``fnlwgt`` (the census sampling weight, not a trait of the person) is scaled
    by a random factor within ``1 ± FNLWGT_JITTER``, so a batch appended to the data for a
    retrain adds new rows rather than exact duplicates of held-out ones (which the schema's
    ``max_duplicate_rate`` refuses). The same pool, rows, seed and shift give the same frame.
    """
    if shift not in SHIFTS:
        raise DataError(f"unknown shift '{shift}'; choose one of {', '.join(SHIFTS)}")
    if rows < 1:
        raise DataError(f"rows must be at least 1, got {rows}")
    n = len(pool)
    if rows > n:
        raise DataError(f"the pool has {n} rows; ask for at most {n}")
    rng = np.random.default_rng(seed)
    if shift in ("none", "missing"):
        idx = rng.choice(n, size=rows, replace=False)
    elif shift == "age":
        _need(pool, ["age"], shift)
        age = pd.to_numeric(pool["age"]).to_numpy(dtype=float)
        weights = np.exp(AGE_TILT * (age - np.nanmean(age)))
        weights = np.where(np.isfinite(weights), weights, 0.0)
        idx = rng.choice(n, size=rows, replace=False, p=weights / weights.sum())
    elif shift == "sex":
        _need(pool, ["sex"], shift)
        shares = pool["sex"].value_counts(normalize=True)
        if len(shares) < 2:
            raise DataError("shift 'sex' needs at least two values of 'sex' in the pool")
        swapped = dict(zip(shares.index, shares.to_numpy()[::-1], strict=True))
        sizes = {k: round(rows * v) for k, v in swapped.items()}
        first = next(iter(sizes))
        sizes[first] += rows - sum(sizes.values())
        sex = pool["sex"].to_numpy()
        idx = _draw_groups(
            rng, [(f"sex {k}", np.flatnonzero(sex == k), size) for k, size in sizes.items()]
        )
    else:  # income_mix
        _need(pool, ["income"], shift)
        positive = (pool["income"] == POSITIVE_LABEL).to_numpy()
        n_pos = round(rows * INCOME_MIX_SHARE)
        idx = _draw_groups(
            rng,
            [
                (f"income {POSITIVE_LABEL}", np.flatnonzero(positive), n_pos),
                (f"income other than {POSITIVE_LABEL}", np.flatnonzero(~positive), rows - n_pos),
            ],
        )
    batch = pool.iloc[rng.permutation(idx)].reset_index(drop=True)
    if shift == "missing":
        _need(batch, ["workclass", "occupation"], shift)
        has = np.flatnonzero((batch["workclass"].notna() & batch["occupation"].notna()).to_numpy())
        blank = rng.choice(has, size=round(len(has) * MISSING_SHARE), replace=False)
        mask = np.zeros(len(batch), dtype=bool)
        mask[blank] = True
        for col in ("workclass", "occupation"):
            batch[col] = batch[col].mask(mask)
    if "fnlwgt" in batch.columns:
        weight = pd.to_numeric(batch["fnlwgt"]).to_numpy(dtype=float)
        factor = rng.uniform(1 - FNLWGT_JITTER, 1 + FNLWGT_JITTER, size=len(batch))
        jittered = np.maximum(np.rint(weight * factor), 1)
        jittered = np.where(jittered == weight, weight + 1, jittered)
        batch["fnlwgt"] = jittered.astype(batch["fnlwgt"].dtype)
    return batch


def _demo_batch(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    pool = read_batch(args.source)
    batch = make_batch(pool, args.rows, args.seed, args.shift)
    write_batch(args.output, batch)
    print(
        f"wrote {len(batch)} rows (shift {args.shift}, seed {args.seed}) "
        f"from {args.source} to {args.output}"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `demo-batch` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "demo-batch",
        help="write a held-out Adult batch with a controlled shift",
        description="Offline demo data for drift: draw rows from the test split (held out from "
        "training) and shift them: " + ", ".join(SHIFTS) + ". The same seed gives the same batch.",
        epilog=exit_codes("the batch was written"),
    )
    p.add_argument("--output", required=True, help="batch to write (.parquet or .csv)")
    p.add_argument("--rows", type=whole_number(1), default=2000, help="rows (default: %(default)s)")
    p.add_argument(
        "--seed", type=whole_number(0), default=0, help="random seed (default: %(default)s)"
    )
    p.add_argument("--shift", choices=SHIFTS, default="none", help="(default: %(default)s)")
    p.add_argument(
        "--source",
        default=DEFAULT_POOL,
        help="rows to draw from, parquet or CSV with the ingested columns (default: %(default)s)",
    )
    p.set_defaults(func=_demo_batch)
