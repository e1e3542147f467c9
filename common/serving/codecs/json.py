"""application/json: the guide's dense, ``data.features`` and sparse ``keys/shape/values`` forms."""

import json

from ...contenttypes import JSON
from . import CodecError, register_decoder
from .features import instance_features, stack
from .rows import records


def parse_json(body, what="JSON"):
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise CodecError(f"Request body is not UTF-8 {what}") from None
    except json.JSONDecodeError as exc:
        raise CodecError(f"Request body is not valid {what}: {exc}") from None


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
        if document and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in document):
            return [document]
        return document
    raise CodecError("JSON request must be an object or a list")


@register_decoder(JSON)
def decode(body, media):
    rows = [instance_features(inst, f"instance {i}") for i, inst in enumerate(instances_of(parse_json(body)))]
    return stack(rows)


def records_encoder(top_key="predictions"):
    """Encode columns as ``{"<top_key>": [{"name": value, ...}, ...]}``."""

    def encode(columns, media):
        return json.dumps({top_key: records(columns)}).encode()

    return encode
