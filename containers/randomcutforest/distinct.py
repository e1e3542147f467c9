"""Rows scored once per distinct row: a row's score depends on its values alone, so equal rows get equal scores.

A request can repeat rows many times (a 6 MB CSV body holds 3,000,000 one-feature rows only when they are one
digit each: at most 10 distinct values). When a sample of the rows says that fewer than half of them are distinct,
the rows are deduplicated by their bits (``common/repeats.py``, the runtime's rule for every model that declares
``distinct_rows``: the float32 bits the kernel would read), the distinct rows are scored, and their scores are put
back in the rows' order. The runtime already does this for a dense request; here it also covers sparse requests
(densified slice by slice) and batch calls of ``score``. Rows with equal bits take the same
path through the kernel, so every score is bit for bit the one it gets without this (tested).

The sample (``repeats.SAMPLE`` evenly spaced rows) costs 0.13-0.17 ms a slice of 65,536 rows at feature_dim 3-48, so rows
that are all distinct pay next to nothing; the full ``np.unique`` (~5 ms for 65,536 distinct rows, ~7% of the
kernel's time on the hardening tests' small forest) is paid only where the sample shows many repeats. The estimate: n sampled rows out of D
equally likely distinct ones hold about n^2 / (2D) pairs of equal rows, so with c repeats in the sample,
D ~ n^2 / (2c), and D < rows / 2 when c * rows > n^2.

One or two features: the rows are always deduplicated, which also sorts them (``np.unique`` of their bits: by
value within each sign; two features as one uint64, the second feature first), so that the kernel's 8 walks down
a tree, and its climbs, take nearly the same path from one row to the next. 65,536 Gaussian rows (50 trees x 64
samples, medians of in-process runs, nice 19, load 2-4) score 1.3-2x faster at one feature (including the
~5 ms of ``np.unique``), 1.1-1.3x at two; at three and ten features, no gain (0.9-1.1x), so more features are
scored in their own order. Every score is still the row's own (the kernel scores each row alone; tested bit for
bit).
"""

import numpy as np

from common import repeats

ORDERED_DIMS = 2  # rows of this many features or fewer are always scored as their sorted distinct rows


def score(x, score_rows):
    """``score_rows(x)`` (float64 scores of the rows of a float32 C-contiguous array), computed once per distinct
    row where that pays, and for one or two features always on the distinct rows in sorted order."""
    if x.shape[1] <= ORDERED_DIMS and x.shape[0] > 1:
        unique, inverse = np.unique(repeats.keys(x), return_inverse=True)  # the rows' bits, sorted
        rows = np.ascontiguousarray(unique).view(np.float32).reshape(unique.shape[0], x.shape[1])
        return score_rows(rows)[inverse.reshape(-1)]
    found = repeats.distinct(x)
    if found is None:
        return score_rows(x)
    rows, inverse = found
    return score_rows(rows)[inverse]
