"""Repeated rows answered once: a request's distinct rows, and for each row which of them it is.

A 6 MB body holds millions of rows only when they repeat: 3,000,000 one-feature CSV rows are one digit and a
newline each, at most 10 distinct values; the most distinct rows 6 MB can hold (about 786,432, ``d.ddddd``) make a
far smaller answer. For a model whose answer for a row depends on that row alone (``distinct_rows``,
common/model.py), the runtime predicts the distinct rows only and carries the inverse on the Prediction
(``Prediction.inverse``): the encoders format each distinct record once and join their bytes by the inverse.

The decision costs next to nothing when rows differ: a sample of ``SAMPLE`` evenly spaced rows (their bits: a
uint32 or uint64 per row for one or two features, a hash otherwise) holds about n^2 / (2D) pairs of equal rows
for D equally likely distinct rows, so with c repeats in the sample D ~ n^2 / (2c), and D < rows / 2 when
c * rows > n^2. Rows are equal when their float32 bits are (-0.0 and 0.0 are different rows; NaNs of one
payload are one row). More than two features are keyed by a 64-bit hash of their bits, and the distinct rows
expanded by the inverse are checked bit for bit against the request (a collision: the rows are answered as
they are).
"""

import numpy as np

SAMPLE = 1024  # rows sampled to decide
MIN_ROWS = 2 * SAMPLE  # fewer rows are answered as they are
_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
                        np.uint64)


def keys(x):
    """One uint key per row of the float32 C-contiguous (n, d) ``x``: its bits for d <= 2, else a hash of them."""
    rows, dims = x.shape
    if dims == 1:
        return x.view(np.uint32).reshape(rows)
    if dims == 2:
        return x.view(np.uint64).reshape(rows)
    bits = x.view(np.uint32)
    key = np.zeros(rows, np.uint64)
    with np.errstate(over="ignore"):
        for column in range(dims):
            key ^= bits[:, column].astype(np.uint64) + np.uint64(column)
            key *= _MULTIPLIERS[column % len(_MULTIPLIERS)]
            key ^= key >> np.uint64(29)
    return key


def worth_it(x):
    """Whether a sample of the rows says that fewer than half of them are distinct."""
    rows = x.shape[0]
    if rows < MIN_ROWS:
        return False
    sample = keys(np.ascontiguousarray(x[::rows // SAMPLE]))
    repeats = sample.shape[0] - np.unique(sample).shape[0]
    return repeats * rows > sample.shape[0] ** 2


def distinct(x):
    """``(rows, inverse)`` for a float32 (n, d) array whose sample says it repeats rows (``worth_it``): the distinct
    rows (float32, C-contiguous, in the order of their keys) and for each row of ``x`` the index of its distinct
    row (intp), so that ``rows[inverse]`` is ``x`` bit for bit; None where it does not pay."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != np.float32 or not x.shape[1] or not worth_it(x):
        return None
    x = np.ascontiguousarray(x)
    row_keys = keys(x)
    unique = np.unique(row_keys)
    if 2 * unique.shape[0] > x.shape[0]:
        return None
    inverse = np.searchsorted(unique, row_keys)
    if x.shape[1] <= 2:
        rows = np.ascontiguousarray(unique).view(np.float32).reshape(unique.shape[0], x.shape[1])
        return rows, inverse
    first = np.empty(unique.shape[0], np.intp)
    first[inverse] = np.arange(x.shape[0])
    rows = x[first]
    if not np.array_equal(rows.view(np.uint32)[inverse], x.view(np.uint32)):
        return None  # two distinct rows share a hash
    return rows, inverse
