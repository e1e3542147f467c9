"""Training readers: one per content type, found through a registry, like the serving codecs.

A reader turns one source's byte stream into :class:`Piece` objects (features, labels, weights) of at most
``options.batch_size`` rows; ``batches.py`` cuts them into exact mini-batches. ``common/`` registers
recordIO-protobuf, CSV and libsvm; an algorithm registers its own (JSON Lines series, text lines, ...)
from its folder by naming it in ``AlgorithmSpec.readers``.
"""

from dataclasses import dataclass

from . import contenttypes, csv_reader, libsvm, protobuf, recordio
from .errors import ChannelError, DataError


@dataclass(frozen=True)
class ReadOptions:
    """What the consumer of a channel wants from its reader."""

    batch_size: int
    feature_dim: int | None = None
    label_size: int = 0          # CSV: leading label columns
    weights: bool = False        # CSV: one weight column right after the labels
    missing_values: bool = False  # empty fields and nan are NaN features (else a data error)
    strings: bool = False        # CSV: rows as strings (numpy object arrays), not numbers


@dataclass
class Piece:
    """Rows of one source: features (float32 array, CSR matrix, or a list/object array), optional labels and
    per-record weights, and the record number of the first row in that source."""

    features: object
    labels: object = None
    weights: object = None
    first_record: int = 0

    def __len__(self):
        return len(self.features) if isinstance(self.features, list) else self.features.shape[0]


class Reader:
    """Base of training readers: ``content_type``, ``aliases`` and ``read(stream, source, options)``."""

    content_type = None
    aliases = ()

    def read(self, stream, source, options):  # pragma: no cover - interface
        raise NotImplementedError


_READERS = {}


def register_reader(reader):
    """Register a Reader class or instance under its content type and aliases; returns it (decorator use)."""
    instance = reader() if isinstance(reader, type) else reader
    if not instance.content_type:
        raise TypeError(f"{reader!r} declares no content_type")
    _READERS[instance.content_type] = instance
    for alias in instance.aliases:
        contenttypes.register_alias(alias, instance.content_type)
    return reader


def reader_for(mime):
    reader = _READERS.get(mime)
    if reader is None:
        raise ChannelError(f"No training reader for content type {mime}; registered: {', '.join(sorted(_READERS))}")
    return reader


def registered():
    return sorted(_READERS)


DECODE_RECORDS = 8192  # recordIO records decoded together (numpy's per-call costs shared), handed on in batches


@register_reader
class RecordIOProtobufReader(Reader):
    content_type = contenttypes.RECORDIO_PROTOBUF

    def read(self, stream, source, options):
        first, size = 0, options.batch_size
        for payloads in recordio.iter_record_batches(stream, max(size, DECODE_RECORDS), source=source):
            features, labels = protobuf.decode_batch(payloads, options.feature_dim, source=source,
                                                     first_record=first)
            for start in range(0, len(payloads), size):
                yield Piece(features[start:start + size], None if labels is None else labels[start:start + size],
                            None, first + start)
            first += len(payloads)


@register_reader
class CSVReader(Reader):
    """No header; ``label_size`` leading label columns, then an optional weight column, then features."""

    content_type = contenttypes.CSV

    def read(self, stream, source, options):
        lead = options.label_size + int(options.weights)
        columns = None if options.feature_dim is None else lead + options.feature_dim
        blocks = csv_reader.iter_csv_blocks(stream, source=source, missing=options.missing_values,
                                            strings=options.strings, columns=columns)
        for array, first in blocks:
            if array.shape[1] <= lead:
                raise DataError(f"CSV has {array.shape[1]} columns, not more than the {lead} label/weight "
                                "column(s)", source=source, record=first + 1)
            for start in range(0, array.shape[0], options.batch_size):
                part = array[start:start + options.batch_size]
                labels = None
                if options.label_size:
                    labels = part[:, 0] if options.label_size == 1 else part[:, :options.label_size]
                    labels = labels.astype("float32") if not options.strings else labels
                weights = part[:, options.label_size].astype("float32") if options.weights else None
                yield Piece(part[:, lead:].copy() if options.strings else part[:, lead:].astype("float32"),
                            labels, weights, first + start)


@register_reader
class LibSVMReader(Reader):
    """``<label>[:<weight>] <index>:<value> ...`` lines as CSR batches; zero- or one-based per file."""

    content_type = contenttypes.LIBSVM

    def read(self, stream, source, options):
        yield from (Piece(features, labels, weights, first) for features, labels, weights, first in
                    libsvm.iter_libsvm_batches(stream, options.batch_size, options.feature_dim, source=source))
