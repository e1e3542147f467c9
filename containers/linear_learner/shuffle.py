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
    """Shuffles ``(features, labels, weights)`` row blocks within a pool of ``capacity`` rows."""

    def __init__(self, batch_size, capacity, seed=0):
        self.batch_size = batch_size
        self.capacity = max(capacity, batch_size)
        self.rng = np.random.default_rng(seed)
        self.parts = []
        self.rows = 0

    def _emit(self, keep):
        features = _stack([p[0] for p in self.parts])
        labels = np.concatenate([p[1] for p in self.parts])
        weights = np.concatenate([p[2] for p in self.parts])
        n = features.shape[0]
        order = self.rng.permutation(n)
        cut = n - keep
        out = (cut // self.batch_size) * self.batch_size if keep else n
        for start in range(0, out, self.batch_size):  # gather batch by batch: no second copy of the pool
            rows = order[start:min(start + self.batch_size, out)]
            yield features[rows], labels[rows], weights[rows]
        rest = order[out:]
        self.parts = [(features[rest], labels[rest], weights[rest])] if out < n else []
        self.rows = n - out

    def add(self, features, labels, weights):
        """Take one block; yield the shuffled batches that are ready."""
        self.parts.append((features, labels, weights))
        self.rows += features.shape[0]
        if self.rows >= self.capacity:
            yield from self._emit(keep=self.capacity // 2)

    def flush(self):
        """The rest, shuffled, at the end of an epoch."""
        if self.rows:
            yield from self._emit(keep=0)
