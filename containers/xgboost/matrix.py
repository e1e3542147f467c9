"""From chunks to xgboost's matrices: read once, spill to a local file, replay for each pass of the library.

``QuantileDMatrix`` built from a ``DataIter`` walks its data more than once (sketch, then bin). Parsing text
twice would double the cost and Pipe mode cannot rewind, so the first read writes each parsed chunk to a
spill file (float32, CSR or dense), and every pass of the library replays it a chunk at a time. Memory stays
near one chunk plus the quantised matrix; the spill is deleted as soon as the matrix is built.
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


class Spill:
    """Parsed chunks in a local file, with the counts the matrix needs."""

    def __init__(self, name, directory=None):
        self.name = name
        fd, self.path = tempfile.mkstemp(prefix=f"algobox-xgboost-{name}-", suffix=".spill", dir=directory)
        self.file = os.fdopen(fd, "wb")
        self.rows = 0
        self.chunks = 0
        self.width = 0
        self.dense_width = None
        self.weighted = None
        self.label_min = np.inf
        self.label_max = -np.inf

    def add(self, chunk):
        weighted = chunk.weights is not None
        if self.weighted is not None and weighted != self.weighted:
            raise DataError(f"Channel {self.name!r}: some files give instance weights and others do not",
                            source=chunk.source)
        self.weighted = weighted
        features = chunk.features
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
            arrays = (np.ascontiguousarray(features, dtype=np.float32),)
        np.save(self.file, header)
        for array in arrays:
            np.save(self.file, array)
        np.save(self.file, chunk.labels)
        if weighted:
            np.save(self.file, chunk.weights)
        self.rows += len(chunk)
        self.chunks += 1
        self.width = max(self.width, features.shape[1])
        if len(chunk):
            self.label_min = min(self.label_min, float(chunk.labels.min()))
            self.label_max = max(self.label_max, float(chunk.labels.max()))

    def close(self):
        if not self.file.closed:
            self.file.close()

    def replay(self, num_feature):
        """Each chunk again, sparse ones widened to ``num_feature`` columns."""
        self.close()
        with open(self.path, "rb") as f:
            for _ in range(self.chunks):
                kind, rows, cols, weighted = np.load(f)
                if kind == SPARSE:
                    data, indices, indptr = np.load(f), np.load(f), np.load(f)
                    features = sp.csr_matrix((data, indices, indptr), shape=(int(rows), num_feature))
                else:
                    features = np.load(f)
                    if cols != num_feature:
                        raise DataError(f"Channel {self.name!r} has {cols} features per row; the training data has "
                                        f"{num_feature}")
                labels = np.load(f)
                weights = np.load(f) if weighted else None
                yield Chunk(features, labels, weights)

    def delete(self):
        self.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def gather(self, num_feature):
        """Everything in memory at once: (features, labels, weights) for the matrices that need raw values."""
        chunks = list(self.replay(num_feature))
        if not chunks:
            return np.zeros((0, num_feature), np.float32), np.zeros(0, np.float32), None
        if any(sp.issparse(c.features) for c in chunks):
            features = sp.vstack([sp.csr_matrix(c.features) for c in chunks], format="csr")
        else:
            features = np.concatenate([c.features for c in chunks])
        labels = np.concatenate([c.labels for c in chunks])
        weights = np.concatenate([c.weights for c in chunks]) if self.weighted else None
        return features, labels, weights


def spill_channel(name, chunks, shard=None, directory=None):
    """Read a channel's chunks into a Spill; ``shard=(rank, hosts)`` keeps this host's slice of each chunk."""
    spill = Spill(name, directory)
    try:
        for chunk in chunks:
            if shard is not None:
                rank, hosts = shard
                n = len(chunk)
                start, stop = rank * n // hosts, (rank + 1) * n // hosts
                chunk = Chunk(chunk.features[start:stop], chunk.labels[start:stop],
                              None if chunk.weights is None else chunk.weights[start:stop], chunk.source)
            spill.add(chunk)
    except BaseException:
        spill.delete()
        raise
    spill.close()
    return spill


def make_iterator(spill, num_feature):
    import xgboost as xgb

    class SpillIter(xgb.DataIter):
        def __init__(self):
            super().__init__(release_data=True)
            self.passes = 0
            self.chunks = None

        def reset(self):
            self.chunks = None

        def next(self, input_data):
            if self.chunks is None:
                self.chunks = iter(spill.replay(num_feature))
                self.passes += 1
            chunk = next(self.chunks, None)
            if chunk is None:
                return False
            input_data(data=chunk.features, label=chunk.labels, weight=chunk.weights)
            return True

    return SpillIter()


def build(spill, num_feature, *, quantile, max_bin=None, ref=None, nthread=None):
    """The library's matrix for a spilled channel: a QuantileDMatrix (hist) or an in-memory DMatrix."""
    import xgboost as xgb

    if quantile:
        iterator = make_iterator(spill, num_feature)
        kwargs = {"max_bin": max_bin} if max_bin and ref is None else {}
        matrix = xgb.QuantileDMatrix(iterator, missing=np.nan, ref=ref, nthread=nthread, **kwargs)
        log.info("Channel %s: QuantileDMatrix of %d rows x %d features from %d chunks (%d passes over the spill)",
                 spill.name, matrix.num_row(), matrix.num_col(), spill.chunks, iterator.passes)
        return matrix
    features, labels, weights = spill.gather(num_feature)
    matrix = xgb.DMatrix(features, label=labels, weight=weights, missing=np.nan, nthread=nthread)
    log.info("Channel %s: DMatrix of %d rows x %d features in memory (the tree method needs raw values)",
             spill.name, matrix.num_row(), matrix.num_col())
    return matrix
