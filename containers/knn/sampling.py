"""Reservoir sampling (Vitter's algorithm R) over a stream of mini-batches, vectorised per batch.

One pass, memory bounded by the sample: ``capacity`` rows of ``dim`` float32 values and their labels, whatever
the length of the stream. Every row of the stream ends up in the sample with probability capacity / rows seen.
Rows are transformed (projected, densified) only once they are chosen, so a sparse or high-dimensional stream
costs no more than its sample.
"""

import numpy as np
import scipy.sparse as sp

INITIAL_ROWS = 1 << 16


class Reservoir:
    def __init__(self, capacity, dim, seed, transform=None):
        self.capacity = int(capacity)
        self.dim = dim
        self.transform = transform  # rows (dense array or CSR) -> float32 (rows, dim) array
        self.rng = np.random.default_rng(seed)
        rows = min(self.capacity, INITIAL_ROWS)  # grown by doubling up to capacity: a large sample_size over a
        self.features = np.empty((rows, dim), np.float32)  # small data set costs only the data
        self.labels = np.empty(rows, np.float32)
        self.seen = 0

    def _reserve(self, rows):
        if rows <= self.features.shape[0]:
            return
        grown = min(self.capacity, max(rows, 2 * self.features.shape[0]))
        features = np.empty((grown, self.dim), np.float32)
        labels = np.empty(grown, np.float32)
        features[:self.size], labels[:self.size] = self.features[:self.size], self.labels[:self.size]
        self.features, self.labels = features, labels

    @property
    def size(self):
        return min(self.seen, self.capacity)

    def _rows(self, features, which):
        rows = features[which]
        if self.transform is not None:
            return self.transform(rows)
        return np.asarray(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float32)

    def add(self, features, labels):
        """One mini-batch: ``features`` (n x feature_dim, dense or CSR) and ``labels`` (n,)."""
        n = features.shape[0]
        if not n or not self.capacity:
            self.seen += n
            return
        labels = np.asarray(labels, dtype=np.float32).reshape(n, -1)[:, 0]
        fill = max(0, min(n, self.capacity - self.seen))
        if fill:  # the first `capacity` rows of the stream go straight in
            self._reserve(self.seen + fill)
            self.features[self.seen:self.seen + fill] = self._rows(features, slice(0, fill))
            self.labels[self.seen:self.seen + fill] = labels[:fill]
        if fill < n:
            # row t (1-based position in the stream) replaces slot j, drawn uniformly from [0, t), if j < capacity
            positions = np.arange(self.seen + fill + 1, self.seen + n + 1, dtype=np.int64)
            slots = (self.rng.random(positions.size) * positions).astype(np.int64)
            chosen = np.flatnonzero(slots < self.capacity)
            if chosen.size:
                slots = slots[chosen]
                # several rows of one batch may draw the same slot: the last one wins, as in the sequential loop
                reverse_unique = np.unique(slots[::-1], return_index=True)[1]
                keep = chosen[::-1][reverse_unique]
                self.features[slots[::-1][reverse_unique]] = self._rows(features, fill + keep)
                self.labels[slots[::-1][reverse_unique]] = labels[fill + keep]
        self.seen += n

    def sample(self):
        """``(features, labels)`` of the rows kept (views, ``size`` rows)."""
        return self.features[:self.size], self.labels[:self.size]
