"""application/x-recordio-protobuf: Records in, Records with a ``label`` map out (the SDK's format)."""

import io

import numpy as np

from ... import protobuf, recordio
from ...contenttypes import RECORDIO_PROTOBUF
from ...errors import DataError
from . import Codec, CodecError, register_codec
from .rows import column_list


@register_codec
class RecordIOProtobufCodec(Codec):
    content_type = RECORDIO_PROTOBUF
    aliases = ("recordio-protobuf", "application/recordio-protobuf", "recordio")

    def decode(self, body, media, hints):
        try:
            payloads = list(recordio.iter_records(io.BytesIO(body), source="request"))
            if not payloads:
                raise CodecError("recordIO-protobuf request holds no records")
            features, _labels = protobuf.decode_batch(payloads, hints.feature_dim, source="request")
        except DataError as exc:
            raise CodecError(f"Malformed recordIO-protobuf: {exc}") from None
        except (OverflowError, ValueError, MemoryError) as exc:
            raise CodecError(f"Malformed recordIO-protobuf: {type(exc).__name__}: {exc}") from None
        return features

    def encode(self, prediction, media, options):
        columns = {}
        for name, values in prediction.columns.items():
            listed = column_list(values, name)
            if listed and isinstance(listed[0], str):
                continue  # strings have no float32 tensor; JSON carries them
            columns[name] = np.asarray(listed, dtype=np.float32)
        return b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(columns))
