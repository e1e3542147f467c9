"""A bounded shuffle buffer: batches in, shuffled batches of the same size out.

The guide warns that Amazon's Linear Learner fails on unshuffled input (say, sorted by label). Rows pass through
a pool of at most ``capacity`` rows: once full, the pool is permuted, all but half of it leaves as batches, and the
other half stays to mix with what comes next. Data that fits in the pool is shuffled completely, every epoch;
longer data is mixed over windows of the pool's size. Memory: at most ``capacity`` + one incoming batch of rows.
"""

import numpy as np
import scipy.sparse as sp

# Pool size: 1M rows, or fewer so that a dense pool holds at most 256 MiB of float32 features.
MAX_ROWS = 1_000_000
MAX_VALUES = 1 << 26


def default_capacity(feature_dim, batch_size):
    return max(batch_size, min(MAX_ROWS, MAX_VALUES // max(int(feature_dim), 1)))


def _stack(parts):
    if len(parts) == 1:
        return parts[0]
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


class ShuffleBuffer:
    """Shuffles ``(features, labels, weights)`` row blocks within a pool of ``capacity`` rows.

    Dense rows are copied into one preallocated pool that is reused from epoch to epoch (``reset``), so a
    pass costs one copy in and one gather out per row, and no fresh memory; sparse rows are stacked per pool.
    """

    def __init__(self, batch_size, capacity=None, seed=0):
        """``capacity`` None: ``default_capacity`` of the first block's width."""
        self.batch_size = batch_size
        self.capacity = None if capacity is None else max(capacity, batch_size)
        self.rng = np.random.default_rng(seed)
        self.parts = []  # sparse pieces
        self.rows = 0
        self.pool = None  # dense: (features, labels, weights) arrays of at least capacity + one block rows

    def reset(self, seed):
        """Start an epoch: empty, with a new random stream (the pool's memory is kept)."""
        self.rng = np.random.default_rng(seed)
        self.parts, self.rows = [], 0

    def _reserve(self, features, extra):
        need = self.capacity + extra
        if self.pool is None or self.pool[0].shape[0] < need or self.pool[0].shape[1] != features.shape[1]:
            old, rows = self.pool, self.rows
            self.pool = (np.empty((need, features.shape[1]), np.float32), np.empty(need, np.float32),
                         np.empty(need, np.float32))
            if old is not None and rows:
                for new, kept in zip(self.pool, old):
                    new[:rows] = kept[:rows]

    def _emit_dense(self, keep):
        features, labels, weights = (a[:self.rows] for a in self.pool)
        n = self.rows
        order = self.rng.permutation(n)
        out = ((n - keep) // self.batch_size) * self.batch_size if keep else n
        for start in range(0, out, self.batch_size):
            rows = order[start:min(start + self.batch_size, out)]
            yield features[rows], labels[rows], weights[rows]
        rest = order[out:]
        for array in self.pool:
            array[:len(rest)] = array[rest]
        self.rows = len(rest)

    def _emit_sparse(self, keep):
        features = _stack([p[0] for p in self.parts])
        labels = np.concatenate([p[1] for p in self.parts])
        weights = np.concatenate([p[2] for p in self.parts])
        n = features.shape[0]
        order = self.rng.permutation(n)
        out = ((n - keep) // self.batch_size) * self.batch_size if keep else n
        for start in range(0, out, self.batch_size):
            rows = order[start:min(start + self.batch_size, out)]
            yield features[rows], labels[rows], weights[rows]
        rest = order[out:]
        self.parts = [(features[rest], labels[rest], weights[rest])] if out < n else []
        self.rows = n - out

    def _emit(self, keep):
        return self._emit_sparse(keep) if self.parts else self._emit_dense(keep)

    def add(self, features, labels, weights):
        """Take one block; yield the shuffled batches that are ready."""
        n = features.shape[0]
        if self.capacity is None:
            self.capacity = default_capacity(features.shape[1], self.batch_size)
        if sp.issparse(features) or self.parts:
            if not self.parts and self.rows:  # a dense pool meets a sparse block: continue as sparse pieces
                self.parts = [tuple(a[:self.rows].copy() for a in self.pool)]
            self.parts.append((features, labels, weights))
        else:
            self._reserve(features, n)
            features_pool, labels_pool, weights_pool = self.pool
            features_pool[self.rows:self.rows + n] = features
            labels_pool[self.rows:self.rows + n] = labels
            weights_pool[self.rows:self.rows + n] = weights
        self.rows += n
        if self.rows >= self.capacity:
            yield from self._emit(keep=self.capacity // 2)

    def flush(self):
        """The rest, shuffled, at the end of an epoch."""
        if self.rows:
            yield from self._emit(keep=0)
