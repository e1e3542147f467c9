"""application/jsonlines: one instance per line in, one JSON object per line out (batch transform).

Responses end without a newline: with AssembleWith=Line the platform (and the SDK's local mode) appends one
after each response, so a trailing newline of ours would put an empty line after every mini-batch.
"""

from ...contenttypes import JSONLINES
from . import Codec, CodecError, register_codec
from .features import features_of
from .json import dumps, parse_json
from .rows import records


def parse_lines(body):
    """The JSON document on each non-blank line."""
    documents = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            documents.append(parse_json(line, f"JSON on line {number}"))
    if not documents:
        raise CodecError("application/jsonlines request holds no lines")
    return documents


def join_lines(documents):
    return b"\n".join(dumps(document) for document in documents)


@register_codec
class JSONLinesCodec(Codec):
    content_type = JSONLINES
    aliases = ("jsonlines", "application/x-jsonlines", "application/json-lines", "application/jsonl")

    def decode(self, body, media, hints):
        return features_of(parse_lines(body), "line", hints)

    def encode(self, prediction, media, options):
        return join_lines(records(prediction.columns))
