"""application/json: the guide's dense, ``data.features`` and sparse ``keys/shape/values`` forms.

Bodies are parsed by orjson when installed (nesting over 1024 levels, numbers that overflow a double, and
NaN literals are parse errors, hence 400), else by the standard library under the same bounds.
"""

import functools
import json as _json

from ...contenttypes import JSON
from . import Codec, CodecError, layout, register_codec
from .features import features_of
from .rows import records

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the runtime's requirements
    orjson = None

MAX_DEPTH = 1024


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _check_depth(text):
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise CodecError(f"Request JSON is nested more than {MAX_DEPTH} levels deep")
        elif char in "]}":
            depth -= 1


def parse_json(body, what="JSON"):
    """A JSON document from bytes; every malformed input is a CodecError (400)."""
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if isinstance(body, (bytes, bytearray)) and body[:2] in (b"\xff\xfe", b"\xfe\xff"):
                pass  # UTF-16 with a BOM: the standard library reads it
            else:
                raise CodecError(f"Request body is not valid {what}: {exc}") from None
    try:
        text = body.decode(_json.detect_encoding(body)) if isinstance(body, (bytes, bytearray)) else body
    except (UnicodeDecodeError, LookupError):
        raise CodecError(f"Request body is not UTF-8 {what}") from None
    _check_depth(text)
    try:
        return _json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise CodecError(f"Request body is not valid {what}: {exc}") from None


def check_containers(body, hints, what="JSON"):
    """Refuse, before parsing, a body holding more arrays/objects than records of the model's width can: each
    dense row of d numbers takes at least 2d + 2 bytes per array, a sparse instance at least 8 bytes per
    container. Parsing costs a Python object per container: 2 million empty lists in 6 MB took seconds and
    hundreds of MB."""
    width = hints.width
    if width is None or not isinstance(body, (bytes, bytearray)):
        return
    containers = body.count(b"[") + body.count(b"{")
    bound = len(body) / min(2 * width + 2, 8) + 16
    if containers > bound:
        raise CodecError(f"Request {what} holds {containers} arrays/objects in {len(body)} bytes: more than records "
                         f"of {width} features can (each record must have {width} features)")


def instances_of(document):
    """The list of instances in a JSON request, whichever documented form it takes."""
    if isinstance(document, dict):
        if "instances" in document:
            instances = document["instances"]
            if not isinstance(instances, list):
                raise CodecError("'instances' must be a list")
            return instances
        if "features" in document or "data" in document:
            return [document]
        raise CodecError("JSON request needs 'instances', 'features' or 'data.features'")
    if isinstance(document, list):
        if document and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in document[:64]):
            return [document]
        return document
    raise CodecError("JSON request must be an object or a list")


def dumps(document):
    if orjson is not None:
        return orjson.dumps(document)
    return _json.dumps(document, allow_nan=False).encode()


@register_codec
class JSONCodec(Codec):
    content_type = JSON
    aliases = ("json",)

    def decode(self, body, media, hints):
        check_containers(body, hints)
        instances = instances_of(parse_json(body))
        if not instances:
            raise CodecError("JSON request holds no instances")
        return features_of(instances, "instance", hints)

    repeats = True  # a Prediction with an inverse: each distinct record formatted once

    def encode_repeated(self, prediction, media, options):
        return json_document_repeated(prediction.columns, prediction.inverse, options.response_key)

    def encode_chunks(self, prediction, media, options):
        return json_document(prediction.columns, options.response_key)


def json_document(columns, key, names=None):
    """``{key: [{"name": value, ...}, ...]}`` in chunks: numeric columns laid out by numpy (``layout``), the
    bytes ``dumps({key: records(columns)})`` gives."""
    names = list(columns) if names is None else list(names)
    arrays = layout.numeric_columns(columns, names)
    if arrays is None:
        return (dumps({key: records({name: columns[name] for name in names})}),)
    count = len(arrays[names[0]]) if names else 0
    return layout.records_stream(count, functools.partial(layout.json_objects, arrays, names),
                                 b",", head=b"{" + dumps(key) + b":[", tail=b"]}")


def json_lines(columns, names=None):
    """One ``{"name": value, ...}`` per record, joined by newlines, in chunks (see ``json_document``)."""
    names = list(columns) if names is None else list(names)
    arrays = layout.numeric_columns(columns, names)
    if arrays is None:
        return (b"\n".join(dumps(record) for record in records({name: columns[name] for name in names})),)
    count = len(arrays[names[0]]) if names else 0
    return layout.records_stream(count, functools.partial(layout.json_objects, arrays, names),
                                 b"\n")


def _objects_repeated(columns, inverse, separator, head=b"", tail=b"", names=None):
    names = list(columns) if names is None else list(names)
    arrays = layout.distinct_arrays(columns, names)
    if arrays is None:
        return None
    pieces = layout.distinct_records(len(arrays[names[0]]), functools.partial(layout.json_objects, arrays, names),
                                     b"\n")  # JSON text holds no raw newline
    return layout.repeated_stream(pieces, inverse, separator, head=head, tail=tail)


def json_document_repeated(columns, inverse, key, names=None):
    """``json_document`` of the records ``inverse`` picks from the columns' distinct records, each distinct record
    formatted once (the same bytes); None where the columns do not allow it (``layout.distinct_arrays``)."""
    return _objects_repeated(columns, inverse, b",", head=b"{" + dumps(key) + b":[", tail=b"]}", names=names)


def json_lines_repeated(columns, inverse, names=None):
    """``json_lines`` of repeated records (see ``json_document_repeated``)."""
    return _objects_repeated(columns, inverse, b"\n", names=names)
