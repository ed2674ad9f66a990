"""Rows by content: the hash that decides a row's side of the split, and which test rows a
champion trained on.

The split stage puts a row in the test set when its hash (with ``split.seed``) falls below
``split.test_size`` (`gitops_ml.stages.split.is_test_row`), so appending rows never moves an
existing one; the report uses the same hash to count the PR's test rows that were in the base's
training split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

#: The NA token of text values when rows are hashed (no real value contains a NUL).
_NA = "\x00NA"


def row_hashes(df: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """A 64-bit hash of each row's values (column names included), independent of the row's
    position, of the other rows and of dtypes: numbers and booleans hash as float64, anything
    else as text."""
    columns = {}
    for name in sorted(df.columns, key=str):
        col = df[name]
        if is_bool_dtype(col) or is_numeric_dtype(col):
            columns[str(name)] = col.astype("float64")
        else:
            text = col.astype("string")
            columns[str(name)] = text.fillna(_NA)
    frame = pd.DataFrame(columns, index=df.index)
    key = f"{seed % 10**16:016d}"
    hashes = pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy()
    # The column names take part: the same values under another schema are another row.
    names = pd.util.hash_array(np.array(["|".join(columns)], dtype=object), hash_key=key)[0]
    return hashes ^ names
