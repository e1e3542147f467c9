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

from common import libsvm, protobuf, recordio
from common.errors import DataError
from common.serving.codecs import Codec, CodecError
from common.serving.codecs.csv import CSVCodec as CommonCSV
from common.serving.codecs.json import JSONCodec as CommonJSON
from common.serving.codecs.json import dumps
from common.serving.codecs.jsonlines import JSONLinesCodec as CommonJSONLines
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


def _field(name, value):
    if isinstance(value, list):
        return '"' + str([_json_value(name, v) for v in value]) + '"'
    value = _json_value(name, value)
    return "nan" if value is None else repr(value)


def format_csv(columns):
    """``score`` (with or without contributions): one record per line, every value a field. Selected keys: one
    field per key, lists quoted, as the open container writes them. No final newline (AssembleWith=Line)."""
    n, lists = _lists(columns)
    names = list(lists)
    if names[0] == "score":
        flat = np.hstack([np.asarray(columns[name], dtype=np.float64).reshape(n, -1) for name in names])
        if flat.shape[1] == 1:
            return "\n".join(map(repr, flat[:, 0].tolist())).encode()
        return "\n".join(",".join(map(repr, row)) for row in flat.tolist()).encode()
    return "\n".join(",".join(_field(name, lists[name][i]) for name in names) for i in range(n)).encode()


class CSVCodec(CommonCSV):
    def encode(self, prediction, media, options):
        return format_csv(columns_of(prediction, media))


class JSONCodec(CommonJSON):
    """``{"predictions": [{"score": 0.43}, ...]}`` (a list of class probabilities for multi:softprob)."""

    def encode(self, prediction, media, options):
        return dumps({options.response_key: records(columns_of(prediction, media))})


class JSONLinesCodec(CommonJSONLines):
    def encode(self, prediction, media, options):
        return b"\n".join(dumps(record) for record in records(columns_of(prediction, media)))


class RecordIOCodec(CommonRecordIO):
    """Default: one Record per row with the prediction(s) in ``features['values']`` (the open container's
    layout); selected keys and contributions: ``label[key]`` float32 tensors."""

    def encode(self, prediction, media, options):
        columns = columns_of(prediction, media)
        n = len(next(iter(columns.values())))
        if list(columns) == ["score"]:
            payloads = protobuf.encode_dense(np.asarray(columns["score"], dtype=np.float32).reshape(n, -1))
        else:
            payloads = protobuf.encode_outputs({k: np.asarray(v, dtype=np.float32) for k, v in columns.items()})
        return b"".join(recordio.encode_record(p) for p in payloads)


class LibSVMCodec(Codec):
    content_type = "text/libsvm"
    aliases = ("libsvm", "text/x-libsvm", "application/x-libsvm")

    def decode(self, body, media, hints):
        """Rows of ``[label] index:value ...`` (a first token without a colon is a label), parsed by common."""
        try:
            parsed = libsvm.parse(body, "request", labels="optional")
        except DataError as exc:
            raise CodecError(f"Malformed libsvm: {exc}") from None
        if not parsed.rows:
            raise CodecError("text/libsvm request holds no rows")
        width = int(parsed.indices.max()) + 1 if parsed.indices.size else 0
        rows = LibSVMRows((parsed.values, parsed.indices.astype(np.int32), parsed.indptr),
                          shape=(parsed.rows, width))
        rows.sum_duplicates()  # a feature given twice in a row counts once, summed (as training reads it)
        rows.smallest = int(parsed.indices.min()) if parsed.indices.size else None
        return rows
