"""From a channel's records to mini-batches of a requested size, in bounded memory.

Dense batches are float32 numpy arrays, sparse batches float32 scipy CSR matrices. Batches span file
boundaries; only the last batch of an epoch may be short.
"""

from contextlib import closing
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import contenttypes, csv_reader, protobuf, recordio
from .errors import ChannelError, DataError
from .sources import iter_sources


@dataclass
class Batch:
    """Rows of features (and labels, when the data has them), and where they came from."""

    features: object
    labels: object = None
    source: str = ""
    first_record: int = 0

    def __len__(self):
        return self.features.shape[0]


def _decoded_pieces(channel, source, stream, batch_size, feature_dim):
    """Batches of one source as ``(features, labels, first_record)``, numbered from 0 in that source."""
    mime = channel.media_type.mime
    if mime == contenttypes.RECORDIO_PROTOBUF:
        first = 0
        for payloads in recordio.iter_record_batches(stream, batch_size, source=source):
            features, labels = protobuf.decode_batch(payloads, feature_dim, source=source, first_record=first)
            yield features, labels, first
            first += len(payloads)
    elif mime == contenttypes.CSV:
        try:
            label_size = channel.media_type.int_param("label_size", 0)
        except ValueError as exc:
            raise ChannelError(f"Channel {channel.name!r}: {exc}") from None
        first = 0
        for features, labels in csv_reader.iter_csv_batches(stream, batch_size, label_size, source=source):
            if feature_dim is not None and features.shape[1] != feature_dim:
                raise DataError(
                    f"row has {features.shape[1]} feature columns (after {label_size} label columns), "
                    f"expected feature_dim={feature_dim}",
                    source=source, record=first + 1,
                )
            yield features, labels, first
            first += features.shape[0]
    else:
        raise ChannelError(f"Channel {channel.name!r}: no batch reader for content type {mime}")


def _check_finite(features, source, first_record):
    values = features.data if sp.issparse(features) else features
    if np.isfinite(values).all():
        return
    if sp.issparse(features):
        rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
        bad = rows[~np.isfinite(features.data)][0]
    else:
        bad = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
    raise DataError("record has a NaN or infinite feature value", source=source, record=first_record + bad)


def _concat(parts):
    if len(parts) == 1:
        return parts[0]
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


class _Rebatcher:
    """Collects pieces until a full batch is available; keeps at most one batch plus one piece."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.features, self.labels = [], []
        self.rows = 0
        self.source, self.first = "", 0

    def add(self, features, labels, source, first):
        if not self.rows:
            self.source, self.first = source, first
        self.features.append(features)
        self.labels.append(labels)
        self.rows += features.shape[0]

    def take(self, final=False):
        while self.rows >= self.batch_size or (final and self.rows):
            features = _concat(self.features)
            has_labels = all(label is not None for label in self.labels)
            labels = _concat(self.labels) if has_labels else None
            n = min(self.batch_size, self.rows)
            yield Batch(features[:n], labels[:n] if has_labels else None, self.source, self.first)
            rest = self.rows - n
            self.features = [features[n:]] if rest else []
            self.labels = [labels[n:] if has_labels else None] if rest else []
            self.rows = rest
            self.first += n


def read_batches(channel, paths, batch_size, *, epoch=0, feature_dim=None, shard=None, stop=None,
                 allow_nonfinite=False):
    """Mini-batches of one epoch of a channel.

    ``shard=(rank, world_size)`` keeps every world_size-th batch (a disjoint slice per host);
    ``stop`` (a threading.Event) ends the epoch at the next batch boundary.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    rebatcher = _Rebatcher(batch_size)
    index = 0
    records = 0
    with closing(iter_sources(channel, paths, epoch)) as sources:
        for source, stream in sources:
            for features, labels, first in _decoded_pieces(channel, source, stream, batch_size, feature_dim):
                if not allow_nonfinite:
                    _check_finite(features, source, first)
                rebatcher.add(features, labels, source, first)
                records += features.shape[0]
                for batch in rebatcher.take():
                    if stop is not None and stop.is_set():
                        return
                    if shard is None or index % shard[1] == shard[0]:
                        yield batch
                    index += 1
    if not records:
        raise DataError(f"Channel {channel.name!r} holds no records in epoch {epoch}")
    for batch in rebatcher.take(final=True):
        if stop is not None and stop.is_set():
            return
        if shard is None or index % shard[1] == shard[0]:
            yield batch
        index += 1
