"""The model protocol: what an algorithm's model class offers the serving runtime.

An algorithm's ``model_class`` (``AlgorithmSpec.model_class``) is a class with:

``load(model_dir) -> model`` (classmethod)
    Read the model files from a directory (already unpacked from model.tar.gz). Refuse, with a
    ``ClientError`` naming the file, any model that cannot serve (wrong arrays, non-finite parameters,
    no clusters): the worker then fails to boot and ``/ping`` never answers 200 for a server that would
    answer 500 to everything.
``predict(inputs) -> Prediction | dict``
    ``inputs`` is what the request codec decoded: a float32 (n, d) array or CSR matrix of n records, or a
    list of n raw payloads (images, sentences). The result holds *columns*: name -> a sequence of n values
    (numbers, vectors, strings), one per record, in request order; values that are not one per record
    (IC-TF's class ``labels``) go in ``Prediction.extras``. A plain dict is taken as the columns.
``feature_dim`` (attribute, optional, default None)
    The number of features a record must have; requests of another width are refused (400) before
    ``predict``, and early, while decoding.
``allows_missing`` (attribute, optional, default False)
    NaN (an empty CSV field, ``nan``, a JSON ``null``) is a missing value the model handles (XGBoost);
    otherwise non-finite features are the client's to fix (400).
``predict_rows`` (attribute, optional, default None)
    The model's answer for a record depends on that record alone, and ``predict`` may be given the records
    in slices of at most this many rows (the runtime joins the slices' columns; a slice's ``extras`` are not
    joined, so a model with extras leaves this None). Bounds ``predict``'s own temporaries for a request of
    millions of records to those of one slice.
``distinct_rows`` (attribute, optional, default False)
    The model's answer for a record is a function of that record's features alone, the same bits whatever other
    records come with it, and ``predict`` returns no extras computed from the records: when a sample of a dense
    request says that fewer than half of its rows are distinct, the runtime predicts the distinct rows only
    (``common/repeats.py``) and the Prediction's ``inverse`` says which distinct record each record is.
``prepare(inputs) -> inputs`` (optional)
    Validation or conversion before ``predict`` (raise ``CodecError`` for the client's faults).
``warmup_inputs() -> inputs`` (optional)
    A tiny valid input for the load-time warm-up; the default is one row of zeros of ``feature_dim``.

At load, the worker checks the protocol and runs one warm-up prediction through every declared response
type, so a broken output contract fails at start-up instead of on the first request.
"""

import operator
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import AlgorithmError


@dataclass
class Prediction:
    """Columns of n values each (one per record) and extras that are not per record; or, with ``inverse`` (n
    indices), columns of the D distinct records' values, record i of the answer being distinct record
    ``inverse[i]`` (``expanded()`` gives the n values)."""

    columns: dict
    extras: dict = field(default_factory=dict)
    inverse: object = None

    def __len__(self):
        if self.inverse is not None:
            return len(self.inverse)
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def expanded(self):
        """The prediction with one value per record in every column (itself when it has no ``inverse``)."""
        if self.inverse is None:
            return self
        return replace(self, columns={name: take(values, self.inverse) for name, values in self.columns.items()},
                       inverse=None)


def take(values, inverse):
    """A column's values (a numpy array or a list) for each record, from the distinct records' values."""
    if isinstance(values, list):
        if not len(inverse):
            return []
        picked = operator.itemgetter(*inverse.tolist())(values)
        return list(picked) if len(inverse) > 1 else [picked]
    return np.take(np.asarray(values), inverse, axis=0)


def as_prediction(result):
    if isinstance(result, Prediction):
        return result
    if isinstance(result, dict):
        return Prediction(dict(result))
    raise AlgorithmError(f"predict() returned {type(result).__name__}; expected a Prediction or a dict of columns")


def feature_dim(model):
    value = getattr(model, "feature_dim", None)
    return int(value) if value is not None else None


def dense_width(model):
    """The width a dense request row must have: ``feature_dim``, or for a model that takes narrower sparse rows
    (feature_dim None) its ``dense_width`` when it declares one; used to bound a request's cost before parsing."""
    value = feature_dim(model)
    if value is None:
        value = getattr(model, "dense_width", None)
    return int(value) if value is not None else None


def allows_missing(model):
    return bool(getattr(model, "allows_missing", False))


def check_model(model, name):
    """The protocol's static part: a callable predict, a sane feature_dim."""
    if not callable(getattr(model, "predict", None)):
        raise AlgorithmError(f"{name}: the loaded model has no predict()")
    dim = getattr(model, "feature_dim", None)
    if dim is not None and (not isinstance(dim, (int, np.integer)) or dim < 1):
        raise AlgorithmError(f"{name}: feature_dim must be a positive integer or None, got {dim!r}")


def warmup_inputs(model):
    """The model's own warm-up input, or one row of zeros; None when neither is known."""
    own = getattr(model, "warmup_inputs", None)
    if callable(own):
        return own()
    dim = feature_dim(model)
    return np.zeros((1, dim), np.float32) if dim else None


def distinct_rows(model):
    return bool(getattr(model, "distinct_rows", False))


def predict_rows(model):
    value = getattr(model, "predict_rows", None)
    return int(value) if value else None


def join_predictions(parts):
    """The columns of predictions of consecutive slices of records, joined (numpy arrays or lists)."""
    if len(parts) == 1:
        return parts[0]
    columns = {}
    for name, first in parts[0].columns.items():
        values = [part.columns[name] for part in parts]
        columns[name] = (sum((list(v) for v in values), []) if isinstance(first, list)
                         else np.concatenate([np.asarray(v) for v in values]))
    return Prediction(columns, parts[0].extras)


def check_prediction(prediction, rows, name):
    """Every column holds one value per record."""
    for column, values in prediction.columns.items():
        if len(values) != rows:
            raise AlgorithmError(f"{name}: predict() column {column!r} has {len(values)} values for {rows} records")
