"""application/jsonlines: one instance per line in, one JSON object per line out (batch transform)."""

import json

from ...contenttypes import JSONLINES
from . import CodecError, register_decoder
from .features import instance_features, stack
from .json import parse_json
from .rows import records


@register_decoder(JSONLINES)
def decode(body, media):
    rows = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        document = parse_json(line, f"JSON on line {number}")
        rows.append(instance_features(document, f"line {number}"))
    if not rows:
        raise CodecError("application/jsonlines request holds no lines")
    return stack(rows)


def records_encoder():
    """Encode columns as one JSON object per record, each line ending in a newline."""

    def encode(columns, media):
        return "".join(json.dumps(record) + "\n" for record in records(columns)).encode()

    return encode
