"""From chunks to xgboost's matrices: read once, spill to local files, replay for each pass of the library.

``QuantileDMatrix`` built from a ``DataIter`` walks its data more than once (sketch, then bin). Parsing text
twice would double the cost and Pipe mode cannot rewind, so the first read writes each parsed chunk to a
spill file (float32, CSR or dense), and every pass of the library replays it. Dense rows go to a file of their
own, row-major and back to back, so that a replay hands the library batches of up to BATCH_BYTES (several
parsed chunks) as memory maps of that file: no copy, few batches, the row order the library reads fastest (the
library's matrix from the iterator costs about 1 s of CPU more, on 1M x 50, from 21 column-major chunks than
from one array; from 3 row-major batches about the same). Memory stays near one batch's pages plus the quantised
matrix (the pages are the file's, which the kernel may drop); the spill is deleted as soon as the matrix is
built.
"""

import logging
import os
import tempfile

import numpy as np
import scipy.sparse as sp

from common.errors import DataError

from .data import Chunk

log = logging.getLogger(__name__)

DENSE, SPARSE = 0, 1
BATCH_BYTES = 64 << 20  # dense rows handed to the library at once (a memory map of the dense spill)


class Spill:
    """Parsed chunks in a local file, with the counts the matrix needs."""

    def __init__(self, name, directory=None):
        self.name = name
        fd, self.path = tempfile.mkstemp(prefix=f"algobox-xgboost-{name}-", suffix=".spill", dir=directory)
        self.file = os.fdopen(fd, "wb")
        fd, self.dense_path = tempfile.mkstemp(prefix=f"algobox-xgboost-{name}-", suffix=".dense", dir=directory)
        self.dense_file = os.fdopen(fd, "wb")  # dense chunks' features, float32 rows back to back
        self.dense_rows = 0
        self.rows = 0
        self.chunks = 0
        self.width = 0
        self.dense_width = None
        self.weighted = None
        self.label_min = np.inf
        self.label_max = -np.inf
        self.qids = []  # ranking: each chunk's query ids, kept in memory (8 bytes a row) for the groups
        self.row_weights = []  # ranking with weights: each row's (xgboost weighs query groups, not rows)
        self.ranked = False  # ranking: chunks carry query ids
        self.bounded = False  # survival:aft: chunks carry upper bounds
        self.widened = False  # dense rows that came as sparse chunks: narrower than the data, they are widened

    def add(self, chunk):
        weighted = chunk.weights is not None
        if self.weighted is not None and weighted != self.weighted:
            raise DataError(f"Channel {self.name!r}: some files give instance weights and others do not",
                            source=chunk.source)
        self.weighted = weighted
        self.bounded = chunk.upper is not None
        if chunk.qid is not None:
            self.ranked = True
            self.qids.append(np.asarray(chunk.qid, dtype=np.int64))
            if weighted:
                self.row_weights.append(chunk.weights)
        self._write(chunk)

    def _write(self, chunk):
        weighted = chunk.weights is not None
        features = chunk.features
        if sp.issparse(features) and self._fully_populated(features):
            features = features.data.reshape(features.shape)  # the values, row-major: no copy
            self.widened = True
        if sp.issparse(features):
            header = np.array([SPARSE, features.shape[0], features.shape[1], int(weighted)], np.int64)
            arrays = (features.data.astype(np.float32, copy=False), features.indices.astype(np.int32, copy=False),
                      features.indptr.astype(np.int64, copy=False))
        else:
            if self.dense_width is not None and features.shape[1] != self.dense_width:
                raise DataError(f"Channel {self.name!r}: rows have {features.shape[1]} features here and "
                                f"{self.dense_width} in earlier files", source=chunk.source)
            self.dense_width = features.shape[1]
            header = np.array([DENSE, features.shape[0], features.shape[1], int(weighted)], np.int64)
            self.dense_file.write(np.ascontiguousarray(features, dtype=np.float32))  # row-major (the buffer, no copy)
            self.dense_rows += features.shape[0]
            arrays = ()
        np.save(self.file, header)
        for array in arrays:
            np.save(self.file, array)
        np.save(self.file, chunk.labels)
        if weighted:
            np.save(self.file, chunk.weights)
        if self.bounded:
            np.save(self.file, chunk.upper)
        self.rows += len(chunk)
        self.chunks += 1
        self.width = max(self.width, features.shape[1])
        if len(chunk):
            self.label_min = min(self.label_min, float(chunk.labels.min()))
            self.label_max = max(self.label_max, float(chunk.labels.max()))

    def _fully_populated(self, matrix):
        """Whether a CSR chunk holds every column of every row, in column order (libsvm that writes every value),
        as wide as the dense rows before it: it goes to the dense spill, whose batches the library reads faster
        than CSR chunks (a sparse chunk is a batch of its own). The values are the same, so is the model."""
        rows, cols = matrix.shape
        if not rows or not cols or matrix.nnz != rows * cols or cols != (self.dense_width or cols):
            return False
        return bool((matrix.indices.reshape(rows, cols) == np.arange(cols, dtype=matrix.indices.dtype)).all())

    def close(self):
        for file in (self.file, self.dense_file):
            if not file.closed:
                file.close()

    def replay(self, num_feature, batch_bytes=BATCH_BYTES):
        """The chunks again, sparse ones widened to ``num_feature`` columns; consecutive dense chunks joined into
        batches of up to ``batch_bytes`` of features (at least one chunk), each a read-only memory map of the
        dense spill (``None``: all consecutive dense chunks in one batch)."""
        self.close()
        run = _DenseRun(self.dense_path, num_feature, batch_bytes)
        with open(self.path, "rb") as f:
            for _ in range(self.chunks):
                kind, rows, cols, weighted = np.load(f)
                if kind == DENSE and cols != num_feature and self.widened:  # sparse rows, narrower: CSR again
                    if run.rows:
                        yield run.take()
                    features = run.widen(int(rows), int(cols), num_feature)
                    labels = np.load(f)
                    weights = np.load(f) if weighted else None
                    upper = np.load(f) if self.bounded else None
                    yield Chunk(features, labels, weights, upper=upper)
                    continue
                if kind == DENSE and cols != num_feature:
                    raise DataError(f"Channel {self.name!r} has {cols} features per row; the training data has "
                                    f"{num_feature}")
                if kind == SPARSE:
                    data, indices, indptr = np.load(f), np.load(f), np.load(f)
                    features = sp.csr_matrix((data, indices, indptr), shape=(int(rows), num_feature))
                labels = np.load(f)
                weights = np.load(f) if weighted else None
                upper = np.load(f) if self.bounded else None
                if kind == SPARSE:
                    if run.rows:
                        yield run.take()
                    yield Chunk(features, labels, weights, upper=upper)
                    continue
                if run.rows and run.full_with(int(rows)):
                    yield run.take()
                run.add(int(rows), labels, weights, upper)
            if run.rows:
                yield run.take()

    def delete(self):
        self.close()
        for path in (self.path, self.dense_path):
            if os.path.exists(path):
                os.unlink(path)

    def gather(self, num_feature):
        """Everything in memory at once: (features, labels, weights) for the matrices that need raw values."""
        chunks = list(self.replay(num_feature, batch_bytes=None))
        if not chunks:
            return np.zeros((0, num_feature), np.float32), np.zeros(0, np.float32), None, None
        if any(sp.issparse(c.features) for c in chunks):
            features = sp.vstack([c.features if sp.issparse(c.features) else _as_csr(np.asarray(c.features), num_feature)
                                  for c in chunks], format="csr")
        else:
            features = np.concatenate([c.features for c in chunks])
        labels = np.concatenate([c.labels for c in chunks])
        weights = np.concatenate([c.weights for c in chunks]) if self.weighted else None
        upper = np.concatenate([c.upper for c in chunks]) if self.bounded else None
        return features, labels, weights, upper

    def whole(self, num_feature):
        """Ranking: the whole channel as one chunk. The library's sketch of group-weighted rows differs between
        one batch and several (and a group cut at a batch's end would count as two), so ranking data goes to it
        in one batch, as a user's in-memory matrix does; it is in memory while the matrix is built."""
        features, labels, weights, upper = self.gather(num_feature)
        return Chunk(features, labels, weights, self.name, np.concatenate(self.qids), upper)

    def groups(self):
        """Ranking: (the size of each query group in row order, each group's weight or None); None without query
        ids. A group is a run of rows with the same query id; a query id in two separate runs is an error (its
        rows must be together). The library weighs groups: every row of a query must carry the same weight."""
        if not self.qids:
            return None
        qid = np.concatenate(self.qids)
        starts, sizes = _runs(qid)
        ids = qid[starts]
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            repeated = int(unique[np.argmax(counts > 1)])
            rows = np.flatnonzero(qid == repeated)
            gap = int(rows[np.flatnonzero(np.diff(rows) > 1)[0] + 1])
            raise DataError(f"Channel {self.name!r}: the rows of query id {repeated} are not together (row "
                            f"{gap + 1} is separated from the earlier ones); keep each query's rows contiguous")
        if not self.row_weights:
            return sizes, None
        weights = np.concatenate(self.row_weights)
        first = weights[starts]
        differ = np.flatnonzero(weights != np.repeat(first, sizes))
        if differ.size:
            row = int(differ[0])
            group_weight = first[np.searchsorted(starts, row, "right") - 1]
            raise DataError(f"Channel {self.name!r}: ranking weighs query groups, so every row of a query must carry "
                            f"the same weight; query id {int(qid[row])} has {group_weight:g} and {weights[row]:g} "
                            f"(row {row + 1})")
        return sizes, first


class _DenseRun:
    """Consecutive dense chunks of a replay, joined into one batch: their rows of the dense spill (a memory map)
    and their labels, weights and bounds."""

    def __init__(self, path, width, batch_bytes):
        self.path = path
        self.width = width
        self.limit = None if batch_bytes is None else max(batch_bytes // (4 * max(width, 1)), 1)  # rows
        self.offset = 0  # where the batch starts in the dense spill (bytes)
        self.rows = 0
        self.parts = []

    def full_with(self, rows):
        return self.limit is not None and self.rows + rows > self.limit

    def add(self, rows, labels, weights, upper):
        self.rows += rows
        self.parts.append((labels, weights, upper))

    def widen(self, rows, cols, width):
        """The next ``rows`` dense rows of ``cols`` values (after the batch, which must be taken first) as a CSR
        matrix of ``width`` columns."""
        values = np.fromfile(self.path, dtype=np.float32, count=rows * cols, offset=self.offset)
        self.offset += rows * cols * 4
        return _as_csr(values.reshape(rows, cols), width)

    def take(self):
        features = np.memmap(self.path, dtype=np.float32, mode="r", offset=self.offset, shape=(self.rows, self.width))
        labels, weights, upper = (None if parts[0] is None else _joined(parts) for parts in zip(*self.parts))
        self.offset += self.rows * self.width * 4
        self.rows = 0
        self.parts = []
        return Chunk(features, labels, weights, upper=upper)


def _as_csr(dense, width):
    """Dense rows as a CSR matrix of ``width`` columns that keeps every value (a zero too: absent is missing)."""
    rows, cols = dense.shape
    return sp.csr_matrix((dense.ravel(), np.tile(np.arange(cols, dtype=np.int32), rows),
                          np.arange(0, rows * cols + 1, cols, dtype=np.int64)), shape=(rows, width))


def _joined(arrays):
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def spill_channel(name, chunks, shard=None, directory=None):
    """Read a channel's chunks into a Spill; ``shard=(rank, hosts)`` keeps this host's slice of each chunk."""
    spill = Spill(name, directory)
    try:
        for chunk in chunks:
            if shard is not None:
                rank, hosts = shard
                n = len(chunk)
                start, stop = rank * n // hosts, (rank + 1) * n // hosts
                if chunk.qid is not None and 0 < start < n:  # cut at a query group's start
                    start = _group_start(chunk.qid, start)
                if chunk.qid is not None and 0 < stop < n:
                    stop = _group_start(chunk.qid, stop)
                chunk = _rows(chunk, slice(start, stop))
            spill.add(chunk)
    except BaseException:
        spill.delete()
        raise
    spill.close()
    return spill


def _rows(chunk, part):
    def cut(values):
        return None if values is None else values[part]

    return Chunk(chunk.features[part], chunk.labels[part], cut(chunk.weights), chunk.source, cut(chunk.qid),
                 cut(chunk.upper))


def _group_start(qid, row):
    """The first row of the query group that holds ``row``."""
    before = np.flatnonzero(qid[:row] != qid[row])
    return int(before[-1]) + 1 if before.size else 0


def _runs(qid):
    """The first row of each query group (a run of one query id) and the groups' sizes."""
    starts = np.flatnonzero(np.r_[True, qid[1:] != qid[:-1]])
    return starts, np.diff(np.r_[starts, qid.size])


def make_iterator(spill, num_feature):
    import xgboost as xgb

    class SpillIter(xgb.DataIter):
        def __init__(self):
            super().__init__(release_data=True)
            self.passes = 0
            self.batches = 0  # handed to the library in a pass
            self.counting = 0
            self.chunks = None

        def reset(self):
            self.chunks = None

        def next(self, input_data):
            if self.chunks is None:
                self.chunks = iter(spill.replay(num_feature) if not spill.ranked else [spill.whole(num_feature)])
                self.passes += 1
                self.counting = 0
            chunk = next(self.chunks, None)
            if chunk is None:
                return False
            self.counting += 1
            self.batches = max(self.batches, self.counting)
            if chunk.qid is not None:  # the whole channel: the library weighs query groups
                starts, sizes = _runs(chunk.qid)
                input_data(data=chunk.features, label=chunk.labels, group=sizes,
                           weight=None if chunk.weights is None else chunk.weights[starts])
            elif chunk.upper is None:
                input_data(data=chunk.features, label=chunk.labels, weight=chunk.weights)
            else:  # survival:aft: the bounds are the label
                input_data(data=chunk.features, weight=chunk.weights, label_lower_bound=chunk.labels,
                           label_upper_bound=chunk.upper)
            return True

    return SpillIter()


def build(spill, num_feature, *, quantile, max_bin=None, ref=None, nthread=None):
    """The library's matrix for a spilled channel: a QuantileDMatrix (hist) or an in-memory DMatrix."""
    import xgboost as xgb

    if quantile:
        iterator = make_iterator(spill, num_feature)
        kwargs = {"max_bin": max_bin} if max_bin and ref is None else {}
        _log_groups(spill)  # checked before the library reads the rows
        matrix = xgb.QuantileDMatrix(iterator, missing=np.nan, ref=ref, nthread=nthread, **kwargs)
        log.info("Channel %s: QuantileDMatrix of %d rows x %d features from %d chunks in %d batches (%d passes over "
                 "the spill)", spill.name, matrix.num_row(), matrix.num_col(), spill.chunks, iterator.batches,
                 iterator.passes)
        return matrix
    groups = _log_groups(spill)
    features, labels, weights, upper = spill.gather(num_feature)
    if groups is not None:
        sizes, group_weights = groups
        matrix = xgb.DMatrix(features, label=labels, weight=group_weights, group=sizes, missing=np.nan,
                             nthread=nthread)
    elif upper is None:
        matrix = xgb.DMatrix(features, label=labels, weight=weights, missing=np.nan, nthread=nthread)
    else:
        matrix = xgb.DMatrix(features, weight=weights, missing=np.nan, nthread=nthread, label_lower_bound=labels,
                             label_upper_bound=upper)
    log.info("Channel %s: DMatrix of %d rows x %d features in memory (the tree method needs raw values)",
             spill.name, matrix.num_row(), matrix.num_col())
    return matrix


def _log_groups(spill):
    """Ranking: the channel's query groups, checked (contiguous, one weight per query) and logged."""
    groups = spill.groups()
    if groups is not None:
        sizes, weights = groups
        log.info("Channel %s: %d query groups of %d to %d rows (mean %.1f)%s", spill.name, len(sizes),
                 int(sizes.min()), int(sizes.max()), float(sizes.mean()),
                 ", weighted per group" if weights is not None else "")
    return groups
