"""XGBoost's request and response bodies, as the open container answers them (and JSON, which it refuses).

Requests: CSV, JSON, JSON lines and recordIO-protobuf through the runtime's decoders (missing values allowed:
the model says so); text/libsvm here, with its indices as written, so that the model can apply the index
base its training data had (``XGBoostModel.prepare``).

Responses are built from the model's columns: ``score`` alone (the default) or the SAGEMAKER_INFERENCE_OUTPUT
keys. An Accept parameter ``contributions=true`` adds each record's SHAP values (the library's
``pred_contribs``: one per feature and the bias last; per class for multiclass models).
"""

import math

import numpy as np
import scipy.sparse as sp

from common.serving.codecs import Codec, CodecError
from common.serving.codecs.csv import CSVCodec as CommonCSV
from common.serving.codecs.json import JSONCodec as CommonJSON
from common.serving.codecs import json as common_json
from common.serving.codecs import layout
from common.serving.codecs.json import dumps
from common.serving.codecs.recordio import dense_records, output_records
from common.serving.codecs.jsonlines import JSONLinesCodec as CommonJSONLines
from common.serving.codecs.libsvm import parse_request
from common.serving.codecs.recordio import RecordIOProtobufCodec as CommonRecordIO

CONTRIBUTIONS = "contributions"
INTEGER_KEYS = ("predicted_label", "labels")


class LibSVMRows(sp.csr_matrix):
    """A libsvm request's rows with indices as written; ``smallest`` is the least index used (None: none)."""

    smallest = None


def columns_of(prediction, media):
    """The response's columns: the model's, plus contributions when the Accept header asks for them."""
    columns = dict(prediction.columns)
    if media is not None and media.flag(CONTRIBUTIONS):
        compute = prediction.extras.get(CONTRIBUTIONS)
        if compute is None:
            raise CodecError("This model cannot give feature contributions")
        columns[CONTRIBUTIONS] = compute()
    return columns


def _lists(columns):
    n = len(next(iter(columns.values())))
    return n, {name: np.asarray(values, dtype=np.float64).tolist() for name, values in columns.items()}


def _json_value(name, value):
    if isinstance(value, list):
        if name in INTEGER_KEYS:
            return [int(v) if v == v else None for v in value]
        return [_json_value(name, v) for v in value]
    if value != value or math.isinf(value):
        return None  # keys that do not apply to the objective (the open container writes NaN)
    if name in INTEGER_KEYS and float(value).is_integer():
        return int(value)
    return value


def records(columns):
    n, lists = _lists(columns)
    return [{name: _json_value(name, values[i]) for name, values in lists.items()} for i in range(n)]


def numeric_columns(columns):
    """The columns as the vectorised encoders take them, when ``records`` would give exactly their numbers: all
    finite (no ``null``), integer keys integral (then integers: truncated, for lists, as ``_json_value``
    does). None otherwise: those answers take the per-record path."""
    arrays = {}
    for name, values in columns.items():
        array = np.asarray(values, dtype=np.float64)
        if array.ndim not in (1, 2) or not np.isfinite(array).all():
            return None
        if name in INTEGER_KEYS:
            if array.ndim == 1 and not (array == np.floor(array)).all():
                return None
            if np.abs(array).max(initial=0) >= 2**63:
                return None
            array = array.astype(np.int64)
        arrays[name] = array
    return arrays


def json_document(columns, key):
    arrays = numeric_columns(columns)
    if arrays is None:
        return (dumps({key: records(columns)}),)
    return common_json.json_document(arrays, key)


def json_lines(columns):
    arrays = numeric_columns(columns)
    if arrays is None:
        return (b"\n".join(dumps(record) for record in records(columns)),)
    return common_json.json_lines(arrays)


def _field(name, value):
    if isinstance(value, list):
        return '"' + str([_json_value(name, v) for v in value]) + '"'
    value = _json_value(name, value)
    return "nan" if value is None else repr(value)


def format_csv(columns):
    """``score`` (with or without contributions): one record per line, every value a field. Selected keys: one
    field per key, lists quoted, as the open container writes them. No final newline (AssembleWith=Line)."""
    names = list(columns)
    if names[0] == "score":  # every value's repr (layout: orjson's tokens, repr's where their notation differs)
        n = len(columns["score"])
        parts = [np.asarray(columns[name], dtype=np.float64).reshape(n, -1) for name in names]
        flat = parts[0] if len(parts) == 1 else np.hstack(parts)
        return layout.csv_stream({"values": flat}, ["values"], float_format="%r")
    n, lists = _lists(columns)
    return ("\n".join(",".join(_field(name, lists[name][i]) for name in names) for i in range(n)).encode(),)


class CSVCodec(CommonCSV):
    def encode_chunks(self, prediction, media, options):
        return format_csv(columns_of(prediction, media))


class JSONCodec(CommonJSON):
    """``{"predictions": [{"score": 0.43}, ...]}`` (a list of class probabilities for multi:softprob)."""

    def encode_chunks(self, prediction, media, options):
        return json_document(columns_of(prediction, media), options.response_key)


class JSONLinesCodec(CommonJSONLines):
    def encode_chunks(self, prediction, media, options):
        return json_lines(columns_of(prediction, media))


class RecordIOCodec(CommonRecordIO):
    """Default: one Record per row with the prediction(s) in ``features['values']`` (the open container's
    layout); selected keys and contributions: ``label[key]`` float32 tensors."""

    def encode_chunks(self, prediction, media, options):
        columns = columns_of(prediction, media)
        n = len(next(iter(columns.values())))
        if list(columns) == ["score"]:
            return dense_records(np.asarray(columns["score"], dtype=np.float32).reshape(n, -1))
        return output_records({k: np.asarray(v, dtype=np.float32) for k, v in columns.items()})


class LibSVMCodec(Codec):
    content_type = "text/libsvm"
    aliases = ("libsvm", "text/x-libsvm", "application/x-libsvm")

    def decode(self, body, media, hints):
        """Rows of ``[label] index:value ...`` (a first token without a colon is a label), parsed by common."""
        parsed = parse_request(body)
        width = int(parsed.indices.max()) + 1 if parsed.indices.size else 0
        rows = LibSVMRows((parsed.values, parsed.indices.astype(np.int32), parsed.indptr),
                          shape=(parsed.rows, width))
        rows.sum_duplicates()  # a feature given twice in a row counts once, summed (as training reads it)
        rows.smallest = int(parsed.indices.min()) if parsed.indices.size else None
        return rows
