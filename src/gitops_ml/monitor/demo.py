"""`gitops-ml demo-batch`: an offline stream of new Adult rows with a controlled shift, to try the
drift check and the retraining pull request on.

A demo batch is judged against the training data, and a drifted one is appended to the data by
`gitops-ml retrain` and split with the rest by row content. So its rows must be rows the
pipeline has never seen, in either split:

- Real rows that the pipeline does not use do not exist: the ingest stage reads the whole of the
  shipped Adult files (adult.data and adult.test, 48,842 rows), and every row lands in the train
  or the test split.
- Test rows with the census weight ``fnlwgt`` nudged are near-copies: the split hashes each one
  to train or test at random, so a retraining pull request would train on near-copies of its
  own test rows and score itself too well.

So every row is generated, from the rows of a source: the training split by default, so nothing
of the test split goes into a batch. A row starts from an anchor row of the source, which gives
the person (`PERSON`: age, marital status, relationship, sex) and the label. Each block of
`DONOR_BLOCKS` (schooling and job; hours; capital gain and loss; race, native country and
census weight) is copied from another row of the source, a donor drawn among the rows with the
anchor's label, sex and age band (`MATCH`, a hot-deck draw). Columns that belong together stay
together, and what goes with label, sex and age follows them as in the census: the model scores
a ``none`` batch as it scores the test split (score PSI about 0.01, against the drift limit of
0.1) and separates its labels nearly as well (ROC AUC within 0.02 of the test split's; with
donors of any label it would fall by 0.15).

About one generated row in seven comes out equal to a known row (of the source, of the excluded
data: the test split by default, or an earlier row of the batch) on every column but
`NOT_COMPARED` (fnlwgt and the label); common people are common, and one real test row in six
equals a training row so. Such a row swaps the donor of one block with another row of the batch
from the same donor group, until both rows are new. A donor is drawn independently of the rest
of the row given its group, so a swapped row is as likely a draw as before, and the batch keeps
every value it was drawn with: no column's distribution moves. (Drawing new donors instead
thins out the common values, 40 hours a week above all, enough for the drift check to notice;
it is only the last resort, for the rare row no swap makes new.) So no batch row is a copy, or
a copy up to its census weight, of a training or test row, and the split deals the batch to
train and test like any new data.

On other data (a source without the Adult columns: a team's own data after `gitops-ml init`) the
same machinery runs in a generic layout (`generic_layout`): the label is the target of
params.yaml, each feature column is a block of its own, and donors share the anchor's label (its
class; for a regression target, its decile `TARGET_BANDS` band of the source; nothing when the
source has no label column). Copies are avoided as above, on every column but the label, and
the test split is excluded as above. The shifts ``none``, ``missing`` (the first two feature
columns blanked) and ``labels`` work on any data; the Adult ones (age, sex, income_mix) refuse
it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_ml import lazy
from gitops_ml.batches import check_output_path, read_batch, write_batch
from gitops_ml.cliargs import exit_codes, whole_number
from gitops_ml.config import load_params
from gitops_ml.errors import DataError

np = lazy.module("numpy")
pd = lazy.module("pandas")

#: The shifts `demo-batch` can apply (see `make_batch`).
SHIFTS = ("none", "age", "sex", "income_mix", "missing", "labels")


#: age: anchors are drawn with weight exp(AGE_TILT * (age - mean age)): about 9 years older.
AGE_TILT = 0.05


#: income_mix: this share of the rows have Adult's positive label (Adult: 24%).
INCOME_MIX_SHARE = 0.5


LABEL = "income"
POSITIVE_LABEL = ">50K"


#: missing: the columns blanked, in this share of the rows that have them.
BLANKED = ("workclass", "occupation")
MISSING_SHARE = 0.2


#: The columns a row takes from its anchor, with the label: the person.
PERSON = ("age", "marital_status", "relationship", "sex")


#: The other columns, by block: each block of a row is copied from one donor row.
DONOR_BLOCKS = (
    ("education", "education_num", "workclass", "occupation"),
    ("hours_per_week",),
    ("capital_gain", "capital_loss"),
    ("race", "native_country", "fnlwgt"),
)


#: Age bands donors are matched on: under 25, 25-29, ..., 60-64, 65 and older.
AGE_BANDS = (25, 30, 35, 40, 45, 50, 55, 60, 65)


#: What a donor shares with the anchor: the first of these whose group of source rows holds
#: at least `MIN_DONORS` rows (the last one whatever its size).
MATCH = ((LABEL, "sex", "age_band"), (LABEL, "sex"), (LABEL,))
MIN_DONORS = 25


#: Columns left out when a generated row is compared with known rows: the census sampling weight
#: (not a trait of the person) and the label. Equal on all the others is a copy.
NOT_COMPARED = ("fnlwgt", LABEL)


#: Tries to make a row that came out a copy of a known row new: as many swaps, then as many
#: draws of new donors.
TRIES = 100


DEFAULT_SOURCE = "data/processed/train.parquet"
DEFAULT_EXCLUDE = ("data/processed/test.parquet",)
DEFAULT_PARAMS = "params.yaml"


#: The shifts that work on any data; the others need the Adult columns.
GENERIC_SHIFTS = ("none", "missing", "labels")


#: Generic layout, regression target: donors share the anchor's band of this many quantiles.
TARGET_BANDS = 10


@dataclass(frozen=True)
class Layout:
    """How rows are put together: the label, the columns taken from the anchor with it (the
    person), the blocks taken each from one donor, what a donor shares with its anchor (`match`:
    columns of `match_keys`, from the narrowest group down), the columns left out of the
    comparison with known rows and the columns the ``missing`` shift blanks."""

    label: str | None
    person: tuple[str, ...]
    blocks: tuple[tuple[str, ...], ...]
    match: tuple[tuple[str, ...], ...]
    not_compared: tuple[str, ...]
    blanked: tuple[str, ...]
    regression: bool = False

    def match_keys(self, pool: pd.DataFrame) -> pd.DataFrame:
        """Per source row, the values donors are matched on."""
        if self.label is None:
            return pd.DataFrame({"all": np.zeros(len(pool), dtype=np.int64)})
        if self is ADULT:
            age = pd.to_numeric(pool["age"]).to_numpy(dtype=float)
            return pd.DataFrame(
                {
                    LABEL: pool[LABEL].to_numpy(),
                    "sex": pool["sex"].to_numpy(),
                    "age_band": np.searchsorted(AGE_BANDS, age, side="right"),
                }
            )
        label = pool[self.label]
        if self.regression:
            label = pd.qcut(
                pd.to_numeric(label, errors="coerce").rank(method="first"),
                TARGET_BANDS,
                labels=False,
                duplicates="drop",
            )
        return pd.DataFrame({"label": label.to_numpy()})


ADULT = Layout(
    label=LABEL,
    person=PERSON,
    blocks=DONOR_BLOCKS,
    match=MATCH,
    not_compared=NOT_COMPARED,
    blanked=BLANKED,
)


def generic_layout(pool: pd.DataFrame, target: str | None, regression: bool = False) -> Layout:
    """The layout for data that is not Adult: the label `target` (none if the source lacks it),
    each other column a donor block of its own, donors of the anchor's label (class, or
    quantile band for a regression), the first two feature columns blanked by ``missing``."""
    label = target if target is not None and target in pool.columns else None
    features = tuple(str(c) for c in pool.columns if c != label)
    if not features:
        raise DataError("the source has no feature column to generate rows from")
    return Layout(
        label=label,
        person=(),
        blocks=tuple((c,) for c in features),
        match=(("all",),) if label is None else (("label",),),
        not_compared=() if label is None else (label,),
        blanked=features[:2],
        regression=regression,
    )


def _draw_groups(
    rng: np.random.Generator, groups: Sequence[tuple[str, np.ndarray, int]]
) -> np.ndarray:
    """Draw `size` of the row numbers of each (label, rows, size) group, without replacement."""
    out = []
    for label, rows, size in groups:
        if size > len(rows):
            raise DataError(
                f"the source has only {len(rows)} rows with {label}, {size} needed; "
                "ask for fewer rows"
            )
        out.append(rng.choice(rows, size=size, replace=False))
    return np.concatenate(out)


def _anchors(pool: pd.DataFrame, rows: int, rng: np.random.Generator, shift: str) -> np.ndarray:
    """The row numbers of the anchors of the batch (its people and labels), shifted as asked."""
    n = len(pool)
    if shift in ("none", "missing", "labels"):
        idx = rng.choice(n, size=rows, replace=False)
    elif shift == "age":
        age = pd.to_numeric(pool["age"]).to_numpy(dtype=float)
        weights = np.exp(AGE_TILT * (age - np.nanmean(age)))
        weights = np.where(np.isfinite(weights), weights, 0.0)
        idx = rng.choice(n, size=rows, replace=False, p=weights / weights.sum())
    elif shift == "sex":
        shares = pool["sex"].value_counts(normalize=True)
        if len(shares) < 2:
            raise DataError("shift 'sex' needs at least two values of 'sex' in the source")
        swapped = dict(zip(shares.index, shares.to_numpy()[::-1], strict=True))
        sizes = {k: round(rows * v) for k, v in swapped.items()}
        first = next(iter(sizes))
        sizes[first] += rows - sum(sizes.values())
        sex = pool["sex"].to_numpy()
        idx = _draw_groups(
            rng, [(f"sex {k}", np.flatnonzero(sex == k), size) for k, size in sizes.items()]
        )
    else:  # income_mix
        positive = (pool[LABEL] == POSITIVE_LABEL).to_numpy()
        n_pos = round(rows * INCOME_MIX_SHARE)
        idx = _draw_groups(
            rng,
            [
                (f"{LABEL} {POSITIVE_LABEL}", np.flatnonzero(positive), n_pos),
                (f"{LABEL} other than {POSITIVE_LABEL}", np.flatnonzero(~positive), rows - n_pos),
            ],
        )
    return rng.permutation(idx)


class _Donors:
    """Draws donors for anchors: source rows of the anchor's `MATCH` group, uniformly."""

    def __init__(self, pool: pd.DataFrame, layout: Layout = ADULT) -> None:
        n = len(pool)
        self.blocks = len(layout.blocks)
        keys = layout.match_keys(pool)
        # Per source row: where its group's rows start in `self.order` and how many there are.
        self.start = np.zeros(n, dtype=np.int64)
        self.size = np.zeros(n, dtype=np.int64)
        orders = []
        chosen = np.zeros(n, dtype=bool)
        match = layout.match
        for level, columns in enumerate(match):
            group = keys.groupby(list(columns), dropna=False, sort=True).ngroup().to_numpy()
            counts = np.bincount(group)
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            take = ~chosen & ((counts[group] >= MIN_DONORS) | (level == len(match) - 1))
            self.start[take] = level * n + first[group[take]]
            self.size[take] = counts[group[take]]
            chosen |= take
            orders.append(np.argsort(group, kind="stable"))
        self.order = np.concatenate(orders)

    def draw(self, rng: np.random.Generator, anchors: np.ndarray) -> np.ndarray:
        """One donor (a source row number) per block of the layout for each anchor."""
        size = self.size[anchors, None]
        offset = rng.integers(0, size, size=(len(anchors), self.blocks))
        return self.order[self.start[anchors, None] + offset]


def _compose(
    pool: pd.DataFrame,
    anchors: np.ndarray,
    donors: np.ndarray,
    blank: np.ndarray,
    layout: Layout = ADULT,
) -> pd.DataFrame:
    """The rows: each column from the anchor or its block's donor, in the source's columns and
    dtypes; the layout's blanked columns (Adult: workclass and occupation) blanked where `blank`
    says."""
    source_of = dict.fromkeys(pool.columns, anchors)
    for j, block in enumerate(layout.blocks):
        source_of.update(dict.fromkeys(block, donors[:, j]))
    batch = pd.DataFrame(
        {c: pool[c].take(source_of[c]).reset_index(drop=True) for c in pool.columns}
    )
    if blank.any():
        for col in layout.blanked:
            batch[col] = batch[col].mask(blank)
    return batch


def compared_columns(pool: pd.DataFrame, layout: Layout = ADULT) -> list[str]:
    """The columns on which a batch row differs from every known row: all but the layout's
    `not_compared` (Adult: `NOT_COMPARED`)."""
    return [str(c) for c in pool.columns if c not in layout.not_compared]


class _Keys:
    """What a generated row is compared on, as a tuple of codes: the codes of its anchor's
    person and of each of its donors' blocks (equal values have equal codes in every frame), with
    `BLANKED` missing where the row is blanked; and the keys of the known rows."""

    def __init__(
        self, pool: pd.DataFrame, exclude: Mapping[str, pd.DataFrame], layout: Layout = ADULT
    ) -> None:
        compared = compared_columns(pool, layout)
        for name, frame in exclude.items():
            missing = [c for c in compared if c not in frame.columns]
            if missing:
                raise DataError(
                    f"{name}: lacks the column(s) {', '.join(missing)}, so its rows cannot be "
                    "compared with the batch's"
                )
        in_blocks = {c for block in layout.blocks for c in block}
        parts = [[c for c in compared if c not in in_blocks]]
        parts += [[c for c in block if c in compared] for block in layout.blocks]
        n = len(pool)
        self.plain: list[np.ndarray] = []  # per part: the code of each source row
        self.blanked: list[np.ndarray] = []  # idem, with BLANKED missing
        excluded: list[np.ndarray] = []  # per part: the code of each excluded row
        for columns in parts:
            frames = [pool.loc[:, columns]]
            blanks = [c for c in columns if c in layout.blanked]
            if blanks:
                frames.append(frames[0].assign(**dict.fromkeys(blanks, np.nan)))
            frames += [frame.loc[:, columns] for frame in exclude.values()]
            joined = pd.concat(frames, ignore_index=True)
            if columns:
                codes = joined.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
            else:
                codes = np.zeros(len(joined), dtype=np.int64)
            self.plain.append(codes[:n])
            self.blanked.append(codes[n : 2 * n] if blanks else codes[:n])
            excluded.append(codes[2 * n :] if blanks else codes[n:])
        self.known = set(zip(*(c.tolist() for c in self.plain), strict=True))
        self.known |= set(zip(*(c.tolist() for c in excluded), strict=True))

    def of(
        self, anchors: np.ndarray, donors: np.ndarray, blank: np.ndarray
    ) -> list[tuple[int, ...]]:
        """The keys of the rows made of these anchors and donors."""
        parts = [self.plain[0][anchors]]
        for j in range(len(self.plain) - 1):
            rows = donors[:, j]
            parts.append(np.where(blank, self.blanked[j + 1][rows], self.plain[j + 1][rows]))
        return list(zip(*(p.tolist() for p in parts), strict=True))


class _Draft:
    """The batch as anchors and donors, with the key of each row and how often each key occurs."""

    def __init__(
        self, keys: _Keys, anchors: np.ndarray, donors: np.ndarray, blank: np.ndarray
    ) -> None:
        self._keys = keys
        self.anchors, self.donors, self.blank = anchors, donors, blank
        self.row_keys = keys.of(anchors, donors, blank)
        self._count = Counter(self.row_keys)

    def is_copy(self, row: int) -> bool:
        """Whether the row equals a known row or another row of the batch."""
        key = self.row_keys[row]
        return key in self._keys.known or self._count[key] > 1

    def change(self, rows: list[int], donors: np.ndarray) -> bool:
        """Give `rows` these donors if each of them then differs from every known row and every
        other row of the batch; else leave them as they were. True when changed."""
        old = [self.row_keys[r] for r in rows]
        self._count.subtract(old)
        new = self._keys.of(self.anchors[rows], donors, self.blank[rows])
        ok = len(set(new)) == len(new) and not any(
            k in self._keys.known or self._count[k] > 0 for k in new
        )
        self._count.update(new if ok else old)
        if ok:
            self.donors[rows] = donors
            for r, k in zip(rows, new, strict=True):
                self.row_keys[r] = k
        return ok


def _make_new(
    draft: _Draft, row: int, mates: np.ndarray, donors: _Donors, rng: np.random.Generator
) -> None:
    """Make a copy row new: first by swapping one block's donor with a row of the batch that
    draws from the same donor group (a swapped block is as likely a draw as before, and every
    block keeps the values it was drawn with, so no column's distribution moves), else with new
    donors."""
    for _ in range(TRIES):
        mate = int(mates[rng.integers(len(mates))])
        if mate == row:
            continue
        block = rng.integers(donors.blocks)
        swapped = draft.donors[[row, mate]].copy()
        swapped[:, block] = swapped[::-1, block]
        if draft.change([row, mate], swapped):
            return
    for _ in range(TRIES):
        if draft.change([row], donors.draw(rng, draft.anchors[[row]])):
            return
    raise DataError(
        f"found no donors that make row {row + 1} of the batch unlike every known row in "
        f"{2 * TRIES} tries; ask for fewer rows or give a larger source"
    )


def make_batch(
    pool: pd.DataFrame,
    rows: int,
    seed: int,
    shift: str = "none",
    exclude: Mapping[str, pd.DataFrame] | None = None,
    target: str | None = None,
    task: str | None = None,
) -> pd.DataFrame:
    """`rows` new rows generated from `pool` (the Adult columns), with a controlled shift.

    A pool without the Adult columns is generated in the generic layout (`generic_layout`) when
    `target` names its label (the target of params.yaml; `task` "regression" matches donors on
    the target's quantile band), with shift ``none`` or ``missing`` only.

    Each row is an anchor row's person and label with the other blocks of columns from donors
    of the same label, sex and age band (see the module docstring). The shift acts on the
    anchors, and the donors follow them:

    - ``none``: uniformly drawn anchors: the distribution of the pool.
    - ``age``: an older population: anchors drawn with weight ``exp(AGE_TILT * (age - mean))``,
      so age moves and what goes with age (marital status, schooling, income) follows.
    - ``sex``: the shares of the sexes swapped (Adult: 67% male becomes 67% female).
    - ``income_mix``: `INCOME_MIX_SHARE` of the rows earn >50K: a label shift that no single
      feature shows strongly but the model's scores do.
    - ``missing``: workclass and occupation blanked in `MISSING_SHARE` of the rows that have
      them (an upstream form that stopped asking).
    - ``labels``: the rows of ``none`` with every label changed (`flip_labels`): the features
      do not drift, the relation between them and the label does (concept drift, or a broken
      label feed), which only the drift check's quality alert sees.

    No row equals a row of `pool`, of a frame of `exclude` (name: frame) or another row of the
    batch on `compared_columns`. The same pool, exclude, rows, seed, shift and target give the
    same frame.
    """
    if shift not in SHIFTS:
        raise DataError(f"unknown shift '{shift}'; choose one of {', '.join(SHIFTS)}")
    if rows < 1:
        raise DataError(f"rows must be at least 1, got {rows}")
    missing = adult_columns_missing(pool)
    if not missing:
        layout = ADULT
    elif target is None:
        raise DataError(
            f"the source lacks the column(s) {', '.join(missing)}: demo batches are made of "
            "Adult rows, or of other data given its target (params.yaml's data.target)"
        )
    elif shift not in GENERIC_SHIFTS:
        raise DataError(
            f"shift '{shift}' needs the Adult column(s) {', '.join(missing)}, which the source "
            f"lacks; on other data use shift {' or '.join(GENERIC_SHIFTS)}"
        )
    else:
        regression = task == "regression" if task is not None else _looks_numeric(pool, target)
        layout = generic_layout(pool, target, regression)
    n = len(pool)
    if rows > n:
        raise DataError(f"the source has {n} rows; ask for at most {n}")
    pool = pool.reset_index(drop=True)
    keys = _Keys(pool, exclude or {}, layout)

    rng = np.random.default_rng(seed)
    anchors = _anchors(pool, rows, rng, shift)
    donors = _Donors(pool, layout)
    chosen = donors.draw(rng, anchors)
    blank = np.zeros(rows, dtype=bool)
    if shift == "labels" and layout.label is None:
        raise DataError(
            "shift 'labels' changes the label, and the source has no label column "
            f"({target!r}, params.yaml's data.target)"
        )
    if shift == "missing":
        first = _compose(pool, anchors, chosen, blank, layout)
        has = np.flatnonzero(first.loc[:, list(layout.blanked)].notna().all(axis=1).to_numpy())
        blank[rng.choice(has, size=round(len(has) * MISSING_SHARE), replace=False)] = True
    draft = _Draft(keys, anchors, chosen, blank)
    group_of = donors.start[anchors]
    rows_of_group = pd.Series(np.arange(rows)).groupby(group_of).indices
    for row in range(rows):
        if draft.is_copy(row):
            _make_new(draft, row, rows_of_group[group_of[row]], donors, rng)
    batch = _compose(pool, anchors, draft.donors, blank, layout)
    if shift == "labels":
        label = str(layout.label)
        batch[label] = flip_labels(batch[label], pool[label], layout.regression)
    return batch


def flip_labels(labels: pd.Series, source: pd.Series, regression: bool) -> pd.Series:
    """Every label changed, none new: a class becomes the next of the source's classes in sorted
    order (two classes swap), a regression target is mirrored in the source's range
    (``min + max - y``). Missing labels stay missing."""
    if regression:
        values = pd.to_numeric(source, errors="coerce")
        return values.min() + values.max() - pd.to_numeric(labels, errors="coerce")
    classes = sorted(source.dropna().unique().tolist(), key=str)
    if len(classes) < 2:
        raise DataError("shift 'labels' needs at least two classes in the source's labels")
    following = dict(zip(classes, classes[1:] + classes[:1], strict=True))
    return labels.map(following).astype(labels.dtype)


def adult_columns_missing(pool: pd.DataFrame) -> list[str]:
    """The Adult columns (label, person and donor blocks) that `pool` lacks."""
    needed = [LABEL, *PERSON, *(c for block in DONOR_BLOCKS for c in block)]
    return [c for c in needed if c not in pool.columns]


def _looks_numeric(pool: pd.DataFrame, target: str) -> bool:
    """No task given: a numeric target with more than 20 distinct values is a regression's."""
    if target not in pool.columns:
        return False
    values = pool[target]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return bool(numeric and values.nunique() > 20)


def _demo_batch(args: argparse.Namespace) -> int:
    check_output_path(args.output)
    pool = read_batch(args.source)
    exclude = {str(path): read_batch(path) for path in args.exclude}
    target = task = None
    params = args.params if args.params is not None else DEFAULT_PARAMS
    if adult_columns_missing(pool) and (args.params is not None or Path(params).is_file()):
        data = load_params(params).data  # only other data needs the target
        target, task = data.target, data.task
    batch = make_batch(pool, args.rows, args.seed, args.shift, exclude, target, task)
    write_batch(args.output, batch)
    known = " or ".join([str(args.source), *exclude])
    print(
        f"wrote {len(batch)} rows (shift {args.shift}, seed {args.seed}) to {args.output}: "
        f"generated from {args.source}, none a copy of a row of {known}"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `demo-batch` to the `gitops-ml` subcommands."""
    p = sub.add_parser(
        "demo-batch",
        help="write a batch of new rows with a controlled shift",
        description="Offline demo data for drift: new rows generated from the training split "
        "(on Adult, each a person of one row with schooling, job, hours, capital and origin of "
        "other rows with the same label, sex and age band; on other data, each feature from a "
        "row with the same label, the target of params.yaml), none a copy of a training or "
        "test row, and shifted: "
        + ", ".join(SHIFTS)
        + " (other data: "
        + ", ".join(GENERIC_SHIFTS)
        + "). The same seed gives the same batch.",
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
        default=DEFAULT_SOURCE,
        help="rows to generate from, parquet or CSV with the ingested columns; no batch "
        "row is a copy of one of them (default: %(default)s)",
    )
    p.add_argument(
        "--params",
        default=None,
        help="params.yaml naming the target of a source that is not Adult (default: "
        f"{DEFAULT_PARAMS}, if there is one)",
    )
    p.add_argument(
        "--exclude",
        nargs="*",
        default=list(DEFAULT_EXCLUDE),
        metavar="PATH",
        help="more rows no batch row may be a copy of (compared on every column but "
        f"{' and '.join(NOT_COMPARED)}, or but the target on other data); --exclude alone: "
        "none (default: %(default)s)",
    )
    p.set_defaults(func=_demo_batch)
