"""application/x-recordio-protobuf: Records in, Records with a ``label`` map out (the SDK's format)."""

import io

from ... import protobuf, recordio
from ...contenttypes import RECORDIO_PROTOBUF
from ...errors import DataError
from . import CodecError, register_decoder


@register_decoder(RECORDIO_PROTOBUF)
def decode(body, media):
    try:
        payloads = list(recordio.iter_records(io.BytesIO(body), source="request"))
        if not payloads:
            raise CodecError("recordIO-protobuf request holds no records")
        features, _labels = protobuf.decode_batch(payloads, source="request")
    except DataError as exc:
        raise CodecError(f"Malformed recordIO-protobuf: {exc}") from None
    return features


def records_encoder():
    """Encode columns as one Record per row whose ``label[name]`` is a float32 tensor."""

    def encode(columns, media):
        return b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(columns))

    return encode
