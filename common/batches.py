"""From a channel's records to mini-batches of a requested size, in bounded memory.

The channel's content type picks a reader from the registry (``readers.py``); this module only cuts what
readers yield into exact batches. Dense batches are float32 numpy arrays, sparse batches float32 scipy CSR
matrices, and readers of other records (series, sentences) yield lists or object arrays. Batches span file
boundaries; only the last batch of an epoch may be short.
"""

from contextlib import closing
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .errors import DataError
from .readers import ReadOptions, reader_for
from .sources import Stopped, iter_sources


@dataclass
class Batch:
    """Rows of features (with labels and per-record weights, when the data has them), and where they came from."""

    features: object
    labels: object = None
    source: str = ""
    first_record: int = 0
    weights: object = None

    def __len__(self):
        return len(self.features) if isinstance(self.features, list) else self.features.shape[0]


def _is_numeric(features):
    if sp.issparse(features):
        return True
    return isinstance(features, np.ndarray) and features.dtype.kind == "f"


def check_finite(features, source, first_record):
    """A data error naming the record when numeric features hold NaN or inf."""
    if not _is_numeric(features):
        return
    values = features.data if sp.issparse(features) else features
    if np.isfinite(values).all():
        return
    if sp.issparse(features):
        rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
        bad = rows[~np.isfinite(features.data)][0]
    else:
        bad = int(np.flatnonzero(~np.isfinite(features.reshape(features.shape[0], -1)).all(axis=1))[0])
    raise DataError("record has a NaN or infinite feature value", source=source, record=first_record + bad)


def _concat(parts):
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], list):
        return [item for part in parts for item in part]
    if any(sp.issparse(p) for p in parts):
        width = max(p.shape[1] for p in parts)
        matrices = [sp.csr_matrix(p) for p in parts]
        matrices = [m if m.shape[1] == width else sp.csr_matrix((m.data, m.indices, m.indptr), (m.shape[0], width))
                    for m in matrices]
        return sp.vstack(matrices, format="csr")
    return np.concatenate(parts)


class _Rebatcher:
    """Collects pieces until a full batch is available; keeps at most one batch plus one piece."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.features, self.labels, self.weights = [], [], []
        self.rows = 0
        self.source, self.first = "", 0

    def add(self, piece, source):
        if not self.rows:
            self.source, self.first = source, piece.first_record
        self.features.append(piece.features)
        self.labels.append(piece.labels)
        self.weights.append(piece.weights)
        self.rows += len(piece)

    @staticmethod
    def _column(parts):
        return _concat(parts) if all(part is not None for part in parts) else None

    def take(self, final=False):
        while self.rows >= self.batch_size or (final and self.rows):
            features = _concat(self.features)
            labels, weights = self._column(self.labels), self._column(self.weights)
            n = min(self.batch_size, self.rows)
            yield Batch(features[:n], None if labels is None else labels[:n], self.source, self.first,
                        None if weights is None else weights[:n])
            rest = self.rows - n
            self.features = [features[n:]] if rest else []
            self.labels = [None if labels is None else labels[n:]] if rest else []
            self.weights = [None if weights is None else weights[n:]] if rest else []
            self.rows = rest
            self.first += n


def _share(batch, rank, world_size):
    """Host ``rank``'s contiguous slice of a batch read for all hosts."""
    n = len(batch)
    start, end = rank * n // world_size, (rank + 1) * n // world_size
    return Batch(batch.features[start:end], None if batch.labels is None else batch.labels[start:end], batch.source,
                 batch.first_record + start, None if batch.weights is None else batch.weights[start:end])


def read_batches(channel, paths, batch_size, *, epoch=0, feature_dim=None, shard=None, stop=None,
                 allow_nonfinite=None, options=None):
    """Mini-batches of one epoch of a channel.

    ``options`` (a ReadOptions) says what to read; by default it follows the channel's declaration.
    ``shard=(rank, world_size)`` keeps this host's slice of every world_size batches' worth of rows (a disjoint
    share per host, in batches of ``batch_size``; every host gets rows as soon as there are world_size of them);
    ``stop`` (a threading.Event) ends the epoch at the next batch boundary.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    if options is None:
        options = channel.read_options(batch_size, feature_dim=feature_dim)
    if allow_nonfinite is not None:
        options = ReadOptions(**{**options.__dict__, "missing_values": allow_nonfinite})
    reader = reader_for(channel.media_type.mime)
    if stop is not None and hasattr(stop, "started"):
        stop.started()  # from now on SIGTERM means: stop at a batch boundary and save what was read
    rebatcher = _Rebatcher(batch_size * (shard[1] if shard else 1))
    records = 0

    def keep(batches, counter):
        """Yield this host's batches; after a stop request, the one in hand still goes (it was read), then none."""
        for batch in batches:
            part = batch if shard is None else _share(batch, *shard)
            if len(part):
                yield part
            counter[0] += 1
            if stop is not None and stop.is_set():
                return False
        return True

    counter = [0]
    with closing(iter_sources(channel, paths, epoch, stop=stop)) as sources:
        try:
            for source, stream in sources:
                for piece in reader.read(stream, source, options):
                    if not options.missing_values:
                        check_finite(piece.features, source, piece.first_record)
                    rebatcher.add(piece, source)
                    records += len(piece)
                    if (yield from keep(rebatcher.take(), counter)) is False:
                        return
        except Stopped:  # a stalled Pipe read: what was read before it still counts
            if records:
                yield from keep(rebatcher.take(final=True), counter)
            return
    if not records:
        if stop is not None and stop.is_set():
            return
        raise DataError(f"Channel {channel.name!r} holds no records in epoch {epoch}")
    yield from keep(rebatcher.take(final=True), counter)
