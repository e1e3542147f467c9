"""application/x-recordio-protobuf: Records in, Records with a ``label`` map out (the SDK's format)."""

import io
import struct

import numpy as np
import scipy.sparse as sp

from ... import protobuf, recordio
from ...contenttypes import RECORDIO_PROTOBUF
from ...errors import DataError
from . import Codec, CodecError, layout, register_codec
from .rows import column_list


MAX_RECORDS = 1 << 22  # per batch: runs of same-length records are framed and decoded as arrays


@register_codec
class RecordIOProtobufCodec(Codec):
    content_type = RECORDIO_PROTOBUF
    aliases = ("recordio-protobuf", "application/recordio-protobuf", "recordio")

    def decode(self, body, media, hints):
        try:
            parts, first = [], 0
            for batch in recordio.iter_record_batches(io.BytesIO(body), MAX_RECORDS, source="request"):
                features, _labels = protobuf.decode_batch(batch, hints.feature_dim, source="request",
                                                          first_record=first)
                parts.append(features)
                first += len(batch)
            if not parts:
                raise CodecError("recordIO-protobuf request holds no records")
            features = parts[0] if len(parts) == 1 else (
                sp.vstack(parts, format="csr") if any(sp.issparse(p) for p in parts) else np.concatenate(parts))
        except DataError as exc:
            raise CodecError(f"Malformed recordIO-protobuf: {exc}") from None
        except (OverflowError, ValueError, MemoryError) as exc:
            raise CodecError(f"Malformed recordIO-protobuf: {type(exc).__name__}: {exc}") from None
        return features

    repeats = True  # a Prediction with an inverse: each distinct record framed once

    def encode_repeated(self, prediction, media, options):
        try:
            columns = self.output_columns(prediction)
        except layout.NonFiniteOutput:
            return None  # reported for the first record that holds it, by the expanded path
        return output_records_repeated(columns, prediction.inverse)

    def encode_chunks(self, prediction, media, options):
        return output_records(self.output_columns(prediction))

    @staticmethod
    def output_columns(prediction):
        """The prediction's columns as float32 arrays (strings left out: JSON carries them)."""
        columns = {}
        for name, values in prediction.columns.items():
            array = layout.numeric(values, name)  # checks finite values, as column_list does
            if array is None:
                listed = column_list(values, name)
                if listed and isinstance(listed[0], str):
                    continue  # strings have no float32 tensor; JSON carries them
                array = listed
            columns[name] = np.asarray(array, dtype=np.float32)
        return columns


def output_records(columns, rows=None):
    """``encode_outputs`` framed as recordIO, in chunks of records laid out by numpy (per record where the
    records are not all alike)."""
    rows = rows or layout.CHUNK_ROWS
    count = len(next(iter(columns.values()))) if columns else 0
    if not count or protobuf.output_rows({name: values[:1] for name, values in columns.items()}) is None:
        return (b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(columns)),)
    return (recordio.encode_rows(protobuf.output_rows({name: values[start:start + rows]
                                                       for name, values in columns.items()}))
            for start in range(0, count, rows))


def output_records_repeated(columns, inverse):
    """``output_records`` of the records ``inverse`` picks from the columns' distinct records, each record framed
    once (the same bytes, cut at its length header); None where the records are not all alike in size."""
    count = len(next(iter(columns.values()))) if columns else 0
    if not count or count > layout.MAX_DISTINCT or \
            protobuf.output_rows({name: values[:1] for name, values in columns.items()}) is None:
        return None
    body = b"".join(output_records(columns))
    size = len(body) // count
    if size < 8 or size * count != len(body):
        return None
    headers = np.frombuffer(body, np.uint8).reshape(count, size)[:, :8]
    if not (headers == headers[0]).all() or size != 8 + recordio_size(headers[0]):
        return None  # records split in parts (a payload holding the magic word): framed one by one
    pieces = [body[start:start + size] for start in range(0, len(body), size)]
    pieces.append(b"")
    return layout.repeated_stream(pieces, inverse, b"")


def recordio_size(header):
    """The padded payload size a record's 8-byte header says (whole records only, else -1)."""
    magic, word = struct.unpack("<II", header.tobytes())
    if magic != recordio.MAGIC or word >> 29 != recordio.WHOLE:
        return -1
    return recordio.padded(word & recordio.LENGTH_MASK)


def dense_records(features, rows=None):
    """``encode_dense(features)`` (n x values, float32) framed as recordIO, in chunks laid out by numpy."""
    rows = rows or layout.CHUNK_ROWS
    features = np.asarray(features, dtype=np.float32)
    if not len(features) or protobuf.dense_rows(features[:1]) is None:
        return (b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(features)),)
    return (recordio.encode_rows(protobuf.dense_rows(features[start:start + rows]))
            for start in range(0, len(features), rows))
