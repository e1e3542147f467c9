"""XGBoost's request and response bodies, as the open container answers them (and JSON, which it refuses).

Requests: text/libsvm (with or without a label; indices zero- or one-based, see ``decode_libsvm``) here; CSV,
JSON, JSON lines and recordIO-protobuf through the runtime's decoders. Responses from the model's columns:
``score`` alone (the default) or the SAGEMAKER_INFERENCE_OUTPUT keys, plus ``contributions`` when asked.
"""

import json

import numpy as np

from common import protobuf, recordio
from common.errors import DataError
from common.serving.codecs import CodecError

from . import libsvm

LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm")


def decode_libsvm(body, media=None, one_based=None):
    """Rows of ``[label] index:value ...`` as CSR. ``one_based`` True/False when the model recorded the base of
    its training data; None (models from elsewhere): shift down when no index is 0, as the open container does."""
    try:
        parsed = libsvm.parse_request(body)
    except DataError as exc:
        raise CodecError(f"Malformed libsvm: {exc}") from None
    smallest = int(parsed.indices.min()) if parsed.indices.size else 0
    shift = smallest >= 1 if one_based is None else bool(one_based)
    if shift and smallest == 0 and parsed.indices.size:
        raise CodecError("libsvm request uses feature index 0, but the model was trained on one-based indices")
    width = int(parsed.indices.max()) + 1 - int(shift) if parsed.indices.size else 0
    return parsed.matrix(max(width, 0), 1 if shift else 0)


def _number(value):
    return repr(float(value))


def _rows(columns):
    n = len(next(iter(columns.values())))
    return n, {name: np.asarray(values) for name, values in columns.items()}


def _plain(values):
    """Python values for JSON: floats, lists of floats; NaN as the open container writes it."""
    return values.tolist()


def encode_csv(columns, media=None):
    """Default (``score`` only): one prediction per line, class probabilities comma-separated; contributions
    follow on the same line. Selected keys: one field per key, lists quoted as the open container writes them."""
    n, arrays = _rows(columns)
    names = list(arrays)
    if names[0] == "score":
        flat = np.hstack([a.reshape(n, -1).astype(np.float64) for a in arrays.values()])
        if flat.shape[1] == 1:
            return ("\n".join(map(repr, flat[:, 0].tolist())) + "\n").encode()
        return ("\n".join(",".join(map(repr, row)) for row in flat.tolist()) + "\n").encode()
    lines = []
    lists = {name: arrays[name].tolist() for name in names}
    for i in range(n):
        fields = []
        for name in names:
            value = lists[name][i]
            fields.append(f'"{value}"' if isinstance(value, list) else repr(float(value)))
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


def _records(columns):
    n, arrays = _rows(columns)
    lists = {name: array.tolist() for name, array in arrays.items()}
    labels_int = {"predicted_label", "labels"}
    records = []
    for i in range(n):
        record = {}
        for name, values in lists.items():
            value = values[i]
            if name in labels_int and value == value and not isinstance(value, list):
                value = int(value) if float(value).is_integer() else value
            elif name == "labels" and isinstance(value, list):
                value = [int(v) for v in value]
            record[name] = value
        records.append(record)
    return records


def encode_json(columns, media=None):
    return json.dumps({"predictions": _records(columns)}).encode()


def encode_jsonlines(columns, media=None):
    return "".join(json.dumps(record) + "\n" for record in _records(columns)).encode()


def encode_recordio(columns, media=None):
    """Default: one Record per row with the prediction(s) in ``features['values']`` (the open container's layout);
    selected keys: ``label[key]`` float32 tensors."""
    n, arrays = _rows(columns)
    if list(arrays) == ["score"]:
        payloads = protobuf.encode_dense(arrays["score"].reshape(n, -1).astype(np.float32))
    else:
        payloads = protobuf.encode_outputs(arrays)
    return b"".join(recordio.encode_record(p) for p in payloads)
