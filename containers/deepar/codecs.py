"""The guide's DeepAR inference formats.

application/json      ``{"instances": [series, ...], "configuration": {...}}`` in (configuration optional), and
                      ``{"predictions": [{"quantiles": {"0.5": [...]}, "samples": [...], "mean": [...]}, ...]}`` out.
application/jsonlines one series per line in (batch transform; the configuration comes from
                      DEEPAR_INFERENCE_CONFIG), one prediction object per line out, in the same order.
"""

from common import contenttypes as ct
from common.serving.codecs import Codec, CodecError
from common.serving.codecs.json import orjson, parse_json
from common.serving.codecs.jsonlines import parse_lines

from .model import ForecastRequest


def forecasts(prediction):
    return prediction.columns["forecast"]


def dumps(document):
    """JSON with numpy float32 arrays written directly (orjson: their shortest float32 form; NaN as null)."""
    if orjson is not None:
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    import json

    import numpy as np

    def plain(value):
        if isinstance(value, np.ndarray):
            return [None if v != v else v for v in value.tolist()] if value.ndim == 1 else [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(document)).encode()


class DeepARJSONCodec(Codec):
    content_type = ct.JSON

    def decode(self, body, media, hints):
        document = parse_json(body)
        if not isinstance(document, dict) or "instances" not in document:
            raise CodecError('application/json request must be an object {"instances": [...], "configuration": '
                             '{...}} (configuration optional)')
        unknown = sorted(set(document) - {"instances", "configuration"})
        if unknown:
            raise CodecError(f"request has unknown field(s) {', '.join(unknown)}; use instances and configuration")
        instances = document["instances"]
        if not isinstance(instances, list) or not instances:
            raise CodecError("'instances' must be a non-empty array of time series objects")
        return ForecastRequest(instances, document.get("configuration"))

    def encode(self, prediction, media, options):
        return dumps({options.response_key: forecasts(prediction)})


class DeepARJSONLinesCodec(Codec):
    content_type = ct.JSONLINES
    aliases = ("jsonlines", "application/x-jsonlines", "application/json-lines", "application/jsonl")

    def decode(self, body, media, hints):
        return ForecastRequest(parse_lines(body), None)

    def encode(self, prediction, media, options):
        return b"\n".join(dumps(record) for record in forecasts(prediction))
