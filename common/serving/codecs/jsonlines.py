"""application/jsonlines: one instance per line in, one JSON object per line out (batch transform).

Responses end without a newline: with AssembleWith=Line the platform (and the SDK's local mode) appends one
after each response, so a trailing newline of ours would put an empty line after every mini-batch.
"""

from ...contenttypes import JSONLINES
from . import Codec, CodecError, register_codec
from .features import features_of
from .json import check_containers, dumps, json_lines, json_lines_repeated, orjson, parse_json


def _parse_all_at_once(body):
    """Every line's document from one parse of the lines joined into a JSON array (millions of short lines
    cost one orjson call, not millions). A syntax error is reported for the line holding it; None when the
    body is not exactly one document per line (blank lines inside, documents spanning lines)."""
    stripped = body.strip()
    if orjson is None or not stripped or b"\n\n" in stripped:
        return None
    lead = body[:len(body) - len(body.lstrip())].count(b"\n")
    lines = stripped.split(b"\n")
    joined = b"[" + b",".join(lines) + b"]"  # same offsets as ``stripped``, plus one
    try:
        documents = orjson.loads(joined)
    except orjson.JSONDecodeError as exc:
        position = max(0, min(len(stripped) - 1, getattr(exc, "pos", 0) - 1))
        number = stripped.count(b"\n", 0, position)
        if lines[number].strip():
            parse_json(lines[number], f"JSON on line {lead + number + 1}")  # raises the line's own error
        return None
    return documents if isinstance(documents, list) and len(documents) == len(lines) else None


def parse_lines(body):
    """The JSON document on each non-blank line."""
    if isinstance(body, (bytes, bytearray)):
        documents = _parse_all_at_once(bytes(body))
        if documents is not None:
            return documents
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
        check_containers(body, hints, "JSON Lines")
        return features_of(parse_lines(body), "line", hints)

    repeats = True  # a Prediction with an inverse: each distinct record formatted once

    def encode_repeated(self, prediction, media, options):
        return json_lines_repeated(prediction.columns, prediction.inverse)

    def encode_chunks(self, prediction, media, options):
        return json_lines(prediction.columns)
