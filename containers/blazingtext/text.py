"""Text in and out: the training reader of one sentence per line, and the JSON / JSON Lines request codecs.

Training channels are ``text/plain`` files (one preprocessed sentence per line, space-separated tokens;
``__label__x`` tokens anywhere in a supervised line). Requests are the guide's ``{"instances": [...],
"configuration": {"k": 2}}`` (application/json) and ``{"source": "...", "k": 2}`` lines (application/jsonlines).
Light imports only: the spec names these classes and the server loads them.
"""

from dataclasses import dataclass

from common.contenttypes import JSON, JSONLINES
from common.errors import DataError
from common.readers import Piece, Reader
from common.serving.codecs import Codec, CodecError
from common.serving.codecs.json import dumps, parse_json
from common.serving.codecs.jsonlines import join_lines, parse_lines

TEXT = "text/plain"
MAX_K = 10_000


class TextLinesReader(Reader):
    """``text/plain``: each line a sentence (UTF-8), given to the trainer as a list of strings."""

    content_type = TEXT
    aliases = ("text", "text/txt")

    def read(self, stream, source, options):
        lines, first, number = [], 0, 0
        for raw in stream:
            number += 1
            try:
                lines.append(raw.decode("utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as exc:
                raise DataError(f"line is not UTF-8 text ({exc.reason} at byte {exc.start})", source=source,
                                record=number) from None
            if len(lines) >= options.batch_size:
                yield Piece(lines, None, None, first)
                first, lines = number, []
        if lines:
            yield Piece(lines, None, None, first)


@dataclass(frozen=True)
class Query:
    """One request item: a sentence (supervised) or a word (Word2Vec), and the top-k wanted (supervised)."""

    text: str
    k: int = 1


def _k(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise CodecError(f"{where}: k must be an integer from 1 to {MAX_K}, got {value!r}")
    return value


def _text(value, where):
    if not isinstance(value, str):
        raise CodecError(f"{where} must be a string (a word or a sentence of space-separated tokens), "
                         f"got {type(value).__name__}")
    return value


def queries_from_json(document):
    if isinstance(document, list):
        instances, configuration = document, {}
    elif isinstance(document, dict) and "instances" in document:
        instances, configuration = document["instances"], document.get("configuration") or {}
    else:
        raise CodecError('JSON request must be {"instances": ["sentence or word", ...]} '
                         '(optionally with "configuration": {"k": 2})')
    if not isinstance(instances, list) or not instances:
        raise CodecError("'instances' must be a non-empty list of strings")
    if not isinstance(configuration, dict):
        raise CodecError("'configuration' must be an object such as {\"k\": 2}")
    k = _k(configuration.get("k", 1), "configuration")
    return [Query(_text(item, f"instances[{i}]"), k) for i, item in enumerate(instances)]


def queries_from_lines(documents):
    queries = []
    for number, document in enumerate(documents, start=1):
        where = f"line {number}"
        if isinstance(document, str):
            queries.append(Query(document))
            continue
        if not isinstance(document, dict) or "source" not in document:
            raise CodecError(f'{where}: each line must be an object such as {{"source": "a sentence", "k": 2}}')
        queries.append(Query(_text(document["source"], f"{where}: 'source'"), _k(document.get("k", 1), where)))
    return queries


def answer_records(prediction):
    """The model's columns as the guide's objects: ``{"label": [...], "prob": [...]}`` or ``{"vector": [...],
    "word": "..."}``, one per request item."""
    columns = prediction.columns
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*(columns[name] for name in names))]


class TextJSONCodec(Codec):
    """application/json: a list with one object per instance."""

    content_type = JSON
    aliases = ("json",)

    def decode(self, body, media, hints):
        return queries_from_json(parse_json(body))

    def encode(self, prediction, media, options):
        return dumps(answer_records(prediction))


class TextJSONLinesCodec(Codec):
    """application/jsonlines (batch transform): one ``{"source": ..., "k": ...}`` per line, one object back per line."""

    content_type = JSONLINES
    aliases = ("jsonlines", "application/x-jsonlines", "application/json-lines", "application/jsonl")

    def decode(self, body, media, hints):
        return queries_from_lines(parse_lines(body))

    def encode(self, prediction, media, options):
        return join_lines(answer_records(prediction))
