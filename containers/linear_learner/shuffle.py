"""A bounded shuffle buffer: batches in, shuffled batches of the same size out.

The guide warns that Amazon's Linear Learner fails on unshuffled input (say, sorted by label). Rows pass through
a pool of at most ``capacity`` rows: once full, the pool is permuted, all but half of it leaves as batches, and the
other half stays to mix with what comes next. Data that fits in the pool is shuffled completely, every epoch;
longer data is mixed over windows of the pool's size. Memory: at most ``capacity`` + one incoming batch of rows.
"""

import mmap

import numpy as np
import scipy.sparse as sp

# Pool size: 500,000 rows, or fewer so that a dense pool holds at most 128 MiB of float32 features (training
# alternates two pools by epoch, rows.py: 256 MiB in all, as one pool of twice the size before the read-ahead).
MAX_ROWS = 500_000
MAX_VALUES = 1 << 25
# A dense pool is permuted in runs of RUN_ROWS consecutive slots when a mini-batch holds at least RUN_MIN_RUNS runs
# (mini_batch_size >= 512): gathering 8 rows that lie together costs one cache/TLB miss where 8 random rows cost 8.
RUN_ROWS = 8
RUN_MIN_RUNS = 64


def run_rows(batch_size):
    """Rows per run of the dense pool's permutation: RUN_ROWS for mini-batches of 64 runs or more, else single rows
    (a small mini-batch of a few runs of sorted data would mix its labels too coarsely)."""
    return RUN_ROWS if batch_size >= RUN_ROWS * RUN_MIN_RUNS else 1


def default_capacity(feature_dim, batch_size):
    return max(batch_size, min(MAX_ROWS, MAX_VALUES // max(int(feature_dim), 1)))


def _pool_array(rows, columns):
    """An uninitialised float32 (rows, columns) array without transparent huge pages where the OS allows: numpy
    asks for huge pages for large arrays, and on a machine whose memory is fragmented the kernel then compacts
    memory to fault them in; the pool's first fill took 0.54-0.74 s of CPU that way against 0.25 s with 4 KiB
    pages (671,088 x 100 float32, 256 MiB), and gathering mini-batches from it was as fast (0.09 s a pass)."""
    size = rows * columns * 4
    advise = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advise is None or size < (1 << 22):
        return np.empty((rows, columns), np.float32)
    memory = mmap.mmap(-1, size)
    memory.madvise(advise)
    return np.frombuffer(memory, np.float32).reshape(rows, columns)  # the array keeps the mapping alive


def _stack(parts):
    if len(parts) == 1:
        return parts[0]
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


class ShuffleBuffer:
    """Shuffles ``(features, labels, weights, ...)`` row blocks within a pool of ``capacity`` rows (after the
    features, any number of per-row 1-d columns: labels, weights, fold ids).

    Dense rows are copied into one preallocated pool of ``capacity`` slots that is reused from epoch to epoch
    (``reset``). When it is full, a random permutation of the slots (in runs of ``run`` slots) picks the rows that
    leave (gathered into mini-batches); the slots they free are refilled in place by the rows that come next, so
    the rows that stay are never moved: a pass costs one copy in and one gather out per row. Sparse rows are
    stacked per pool and permuted row by row.
    """

    def __init__(self, batch_size, capacity=None, seed=0, run=None):
        """``capacity`` None: ``default_capacity`` of the first block's width. ``run``: rows per run of the dense
        pool's permutation (None: ``run_rows(batch_size)``)."""
        self.batch_size = batch_size
        self.run = run_rows(batch_size) if run is None else max(int(run), 1)
        self.capacity = None if capacity is None else max(capacity, batch_size)
        self.rng = np.random.default_rng(seed)
        self.parts = []  # sparse pieces
        self.rows = 0  # rows held
        self.pool = None  # dense: (features, *columns) arrays of ``capacity`` slots
        self.free = None  # dense, after a pool has been emitted: the free slots, refilled in this order
        self.filled = 0  # how many of ``free`` hold rows again

    def reset(self, seed):
        """Start an epoch: empty, with a new random stream (the pool's memory is kept)."""
        self.rng = np.random.default_rng(seed)
        self.parts, self.rows, self.free, self.filled = [], 0, None, 0

    def _reserve(self, features, columns):
        if self.pool is None or self.pool[0].shape[1] != features.shape[1] or len(self.pool) != 1 + len(columns):
            self.pool = (_pool_array(self.capacity, features.shape[1]),
                         *(np.empty(self.capacity, np.float32) for _ in columns))

    def _held(self):
        """The slots that hold rows."""
        if self.free is None:
            return np.arange(self.rows)
        held = np.ones(self.capacity, bool)
        held[self.free[self.filled:]] = False
        return np.flatnonzero(held)

    def _emit_dense(self, keep):
        held = self._held()
        n = len(held)
        if self.run == 1:
            order = held[self.rng.permutation(n)]
        else:  # runs of ``run`` consecutive held slots (the last one shorter), in random order
            runs = -(-n // self.run)
            index = (self.rng.permutation(runs)[:, None] * self.run + np.arange(self.run)).ravel()
            order = held[index[index < n]] if n % self.run else held[index]
        out = ((n - keep) // self.batch_size) * self.batch_size if keep else n
        features, *columns = self.pool
        for start in range(0, out, self.batch_size):
            rows = order[start:min(start + self.batch_size, out)]
            yield (np.take(features, rows, axis=0), *(c[rows] for c in columns))
        if keep:  # the emitted slots are refilled next, in address order (the next permutation mixes them)
            emitted = np.zeros(self.capacity, bool)  # in address order: a linear pass, where a sort is n log n
            emitted[order[:out]] = True
            self.free, self.filled = np.flatnonzero(emitted), 0
        else:
            self.free, self.filled = None, 0
        self.rows = n - out

    def _emit_sparse(self, keep):
        features = _stack([p[0] for p in self.parts])
        columns = [np.concatenate([p[i] for p in self.parts]) for i in range(1, len(self.parts[0]))]
        n = features.shape[0]
        order = self.rng.permutation(n)
        out = ((n - keep) // self.batch_size) * self.batch_size if keep else n
        for start in range(0, out, self.batch_size):
            rows = order[start:min(start + self.batch_size, out)]
            yield (features[rows], *(c[rows] for c in columns))
        rest = order[out:]
        self.parts = [(features[rest], *(c[rest] for c in columns))] if out < n else []
        self.rows = n - out

    def _emit(self, keep):
        return self._emit_sparse(keep) if self.parts else self._emit_dense(keep)

    def _put_dense(self, features, columns):
        """Copy rows into free slots, as many as fit; how many did."""
        pool_features, *pool_columns = self.pool
        n = features.shape[0]
        if self.free is None:
            take = min(n, self.capacity - self.rows)
            where = slice(self.rows, self.rows + take)
        else:
            take = min(n, len(self.free) - self.filled)
            where = self.free[self.filled:self.filled + take]
            self.filled += take
        pool_features[where] = features[:take]
        for pool, column in zip(pool_columns, columns):
            pool[where] = column[:take]
        self.rows += take
        return take

    def add(self, features, *columns):
        """Take one block (features, then its per-row columns); yield the shuffled batches that are ready."""
        n = features.shape[0]
        if self.capacity is None:
            self.capacity = default_capacity(features.shape[1], self.batch_size)
        if sp.issparse(features) or self.parts:
            if not self.parts and self.rows:  # a dense pool meets a sparse block: continue as sparse pieces
                held = self._held()
                self.parts = [tuple(a[held] for a in self.pool)]
                self.free, self.filled = None, 0
            self.parts.append((features, *columns))
            self.rows += n
            if self.rows >= self.capacity:
                yield from self._emit(keep=self.capacity // 2)
            return
        self._reserve(features, columns)
        done = 0
        while done < n:
            done += self._put_dense(features[done:], [c[done:] for c in columns])
            if self.rows >= self.capacity:
                yield from self._emit_dense(keep=self.capacity // 2)

    def flush(self):
        """The rest, shuffled, at the end of an epoch."""
        if self.rows:
            yield from self._emit(keep=0)
