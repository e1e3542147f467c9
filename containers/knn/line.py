"""Exact k-NN search over points of one dimension (an L2 faiss.Flat index of d=1), faiss's answer without its scan.

faiss searches a flat L2 index of fewer than ``faiss.cvar.distance_compute_blas_threshold`` queries at a time
(128,000 in faiss 1.15; the model searches at most ``SLICE_ROWS`` = 65,536) by computing every query's squared
distance to every point, ``fl(fl(x - y)^2)`` in float32 for d=1, and keeping the k smallest (distance, id)
pairs: ties to the smaller id. A 6 MB request can hold 3,000,000 one-feature rows, and that scan costs
n x points distances and heap steps (1.2 s for 3,000,000 queries of a 200-point index on two quiet cores).

In one dimension that distance is monotone on each side of the query among the points sorted by value
(``fl(x - y)`` is monotone in y, and so is its square on each side), so the k nearest lie in a window of the
sorted points around the query's position: k on each side. The window's k smallest (distance, id)
pairs are faiss's whenever the first point outside the window on each side is strictly farther than the k-th
(every point beyond is at least as far as that one); a row where it is not (equal distances at the window's
edge: duplicate points, a query halfway between two) is searched again in a window four times wider, up to
all the points or ``WIDEST``. Rows still undecided then (runs of more equal distances), and rows whose k-th
distance is not finite (|x - y| past the float32 range), are searched by faiss itself.
Cost: a binary search (log2 of the points) and about 30 vectorised operations per row, not one per point.
"""

import numpy as np

SLICE_ROWS = 1 << 16  # rows searched at a time (faiss: below its BLAS threshold, so its distances are these)
GROWTH = 4
WIDEST = 256  # points in a window; rows still undecided then (long runs of equal distances) go to faiss
KEY_CELLS = 1 << 15  # window cells (8-byte keys) searched at a time: 256 KB of keys stay in the cache
ALL_ONES = np.uint64(2**64 - 1)
SHIFT = np.uint64(32)
LOW = np.uint64(0xFFFFFFFF)


def applies(index, faiss):
    """Whether ``index`` is a CPU flat L2 index of one dimension (GPU and IVF indexes are searched by faiss)."""
    return isinstance(index, faiss.IndexFlat) and index.d == 1 and index.metric_type == faiss.METRIC_L2 \
        and 0 < index.ntotal < 2**32


class LineIndex:
    """The index's points sorted by value (stable: equal values in id order), and their ids."""

    def __init__(self, index, fallback):
        points = index.reconstruct_n(0, index.ntotal).reshape(-1).astype(np.float32)
        order = np.argsort(points, kind="stable")
        self.points = points[order]
        self.ids = order.astype(np.uint64)
        self.size = len(points)
        self.fallback = fallback  # (queries (n, 1) float32, k) -> faiss's (distances, ids)

    def search(self, queries, k):
        """faiss's ``(squared distances, ids)`` of the k nearest points of each query row (n x 1 float32)."""
        x = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1)
        k = min(k, self.size)
        n = len(x)
        distances = np.empty((n, k), np.float32)
        ids = np.empty((n, k), np.int64)
        with np.errstate(over="ignore"):  # |x - y| past float32's range: inf, and such rows go to faiss
            rows = self._windows(x, k, distances, ids)
        if rows.size:
            distances[rows], ids[rows] = self.fallback(np.ascontiguousarray(x[rows, None]), k)
        return distances, ids

    def _windows(self, x, k, distances, ids):
        """Fill in the rows' answers, windows growing until each is known; the rows left undecided, for faiss."""
        rows = np.arange(len(x))
        half = k
        while rows.size:
            width = min(self.size, 2 * half)
            step = max(1, KEY_CELLS // width)
            retry = []
            for begin in range(0, rows.size, step):
                part = rows[begin:begin + step]
                done, top = self._window(x[part], k, half, width)
                if not done.all():
                    retry.append(part[~done])
                    part, top = part[done], top[:, done]
                distances[part] = (top >> SHIFT).astype(np.uint32).view(np.float32).T
                ids[part] = (top & LOW).astype(np.int64).T
            rows = np.concatenate(retry) if retry else rows[:0]
            if width == self.size or 2 * half * GROWTH > max(WIDEST, 2 * k):  # faiss's scan is then cheaper
                break
            half *= GROWTH
        return rows

    def _window(self, x, k, half, width):
        """``(done, top)``: top is the k smallest (distance bits << 32 | id) keys of each row in its window of
        ``width`` sorted points around it (k x n); done says where they are faiss's k nearest."""
        position = np.searchsorted(self.points, x)
        start = np.clip(position - half, 0, self.size - width)
        cells = start + np.arange(width)[:, None]  # width x n
        difference = x - self.points[cells]
        squared = difference * difference
        keys = squared.view(np.uint32).astype(np.uint64)
        keys <<= SHIFT
        keys |= self.ids[cells]
        top = np.empty((k, len(x)), np.uint64)
        for rank in range(k):
            smallest = keys.min(axis=0)
            top[rank] = smallest
            if rank + 1 < k:
                np.putmask(keys, keys == smallest, ALL_ONES)  # keys are unique in a row (ids are)
        kth = (top[k - 1] >> SHIFT).astype(np.uint32).view(np.float32)
        done = np.isfinite(kth)
        if width < self.size:
            for outside in (start - 1, start + width):
                no_point = (outside < 0) | (outside >= self.size)
                gap = x - self.points[np.clip(outside, 0, self.size - 1)]
                done &= no_point | (gap * gap > kth)
        return done, top
