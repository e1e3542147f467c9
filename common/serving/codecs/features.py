"""Parsed JSON instances into a feature matrix (dense rows, or sparse keys/shape/values), with bounds.

Every number is checked for type (no strings, booleans or nulls — nulls are NaN where the model allows
missing values), every key for range, every shape for size, before anything large is allocated.
"""

import numpy as np
import scipy.sparse as sp

from . import CodecError

MAX_DIM = 2**31 - 1


def _numbers(values, where, hints):
    """A 1-D float32 array of JSON numbers."""
    if not isinstance(values, list):
        raise CodecError(f"{where}: features must be a list of numbers, got {type(values).__name__}")
    array = np.asarray(values) if values else np.zeros(0, np.float32)
    if array.dtype.kind not in "iuf":
        if hints.allows_missing and array.dtype == object and all(v is None or _is_number(v) for v in values):
            array = np.array(values, dtype=np.float64)
        else:
            raise CodecError(f"{where}: features must be a flat list of numbers (no strings, booleans, nulls, "
                             "nested lists or integers beyond 64 bits)")
    if array.ndim != 1:
        raise CodecError(f"{where}: features must be a flat list of numbers, not nested lists")
    return array.astype(np.float32)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value, what, where, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CodecError(f"{where}: {what} must be a whole number in [{low}, {high}], got {value!r}"[:300])
    return value


def _tensor(element, where, hints):
    """A list of numbers (dense row) or ``{"values": [...], "keys": [...], "shape": [d]}``."""
    if isinstance(element, list):
        return _numbers(element, where, hints), None
    if not isinstance(element, dict) or "values" not in element:
        raise CodecError(f"{where}: expected a list of numbers or an object with 'values'")
    values = _numbers(element["values"], where, hints)
    keys = element.get("keys")
    if keys is None or (isinstance(keys, list) and not keys and not values.size and "shape" not in element):
        return values, None
    shape = element.get("shape")
    if not isinstance(shape, list) or len(shape) != 1:
        raise CodecError(f"{where}: a sparse tensor needs 'shape': [feature_dim]")
    dim = _whole(shape[0], "'shape'[0]", where, 1, MAX_DIM)
    if not isinstance(keys, list):
        raise CodecError(f"{where}: 'keys' must be a list of whole numbers, got {type(keys).__name__}")
    indices = np.asarray(keys) if keys else np.zeros(0, np.int64)
    if indices.dtype.kind not in "iu" or indices.ndim != 1:
        raise CodecError(f"{where}: 'keys' must be a flat list of whole numbers")
    if indices.shape != values.shape:
        raise CodecError(f"{where}: 'keys' has {indices.size} entries but 'values' has {values.size}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= dim):
        raise CodecError(f"{where}: a key is outside the shape [{dim}]")
    return values, (indices.astype(np.int64), dim)


def instance_features(instance, where, hints):
    """The feature tensor of one instance in any of the guide's JSON forms."""
    if isinstance(instance, list):
        return _tensor(instance, where, hints)
    if not isinstance(instance, dict):
        raise CodecError(f"{where}: an instance must be an object or a list of numbers")
    if "features" in instance:
        return _tensor(instance["features"], where, hints)
    data = instance.get("data")
    if isinstance(data, dict) and "features" in data:
        return _tensor(data["features"], where, hints)
    raise CodecError(f"{where}: no 'features' or 'data.features' in the instance")


def dense_rows(instances, hints):
    """Fast path: a list of equal-length number lists (or of ``{"features": [...]}`` objects holding them) as
    one float32 matrix; None when the instances have another shape (the general path then says why)."""
    if not instances:
        return None
    if type(instances[0]) is dict:
        if not all(type(row) is dict and len(row) == 1 and type(row.get("features")) is list for row in instances):
            return None
        instances = [row["features"] for row in instances]
    elif not all(type(row) is list for row in instances[:64]):
        return None
    if len(instances) < 2 or len(instances[1]) == len(instances[0]):  # (ragged ones: the general path says so)
        _check_width(len(instances[0]), hints)  # before converting millions of rows of the wrong width
    try:
        array = np.asarray(instances)
    except ValueError:  # ragged
        return None
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        return None
    return array.astype(np.float32, copy=False)


def stack(rows, where, hints):
    """Rows of (values, sparse-info) into a float32 array, or a CSR matrix if any row is sparse."""
    if not rows:
        raise CodecError(f"{where}: no instances")
    if all(info is None for _, info in rows):
        lengths = {values.shape[0] for values, _ in rows}
        if len(lengths) > 1:
            raise CodecError(f"{where}: instances have different feature counts {sorted(lengths)[:10]}")
        return np.stack([values for values, _ in rows])
    dims = {info[1] for _, info in rows if info is not None} | {v.shape[0] for v, info in rows if info is None}
    if len(dims) > 1:
        raise CodecError(f"{where}: instances have different feature counts {sorted(dims)[:10]}")
    dim = dims.pop()
    indptr, indices, data = [0], [], []
    for values, info in rows:
        keys = info[0] if info is not None else np.arange(values.shape[0])
        indices.append(keys)
        data.append(values)
        indptr.append(indptr[-1] + keys.size)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=(len(rows), dim))


def sparse_rows(instances, hints):
    """Fast path: ``{"features": {"keys", "values", "shape": [d]}}`` instances gathered with list operations and
    converted once (None when not exactly that shape; the general path then says what is wrong where)."""
    if not instances or type(instances[0]) is not dict:
        return None
    values, keys, lengths, dim = [], [], [], None
    for instance in instances:
        tensor = instance.get("features") if type(instance) is dict else None
        if type(tensor) is not dict:
            return None
        row_values, row_keys, shape = tensor.get("values"), tensor.get("keys"), tensor.get("shape")
        if (type(row_values) is not list or type(row_keys) is not list or type(shape) is not list or len(shape) != 1
                or type(shape[0]) is not int or len(row_keys) != len(row_values) or (dim is not None and shape[0] != dim)):
            return None
        if dim is None:
            dim = shape[0]
            if not 1 <= dim <= MAX_DIM:
                return None
            _check_width(dim, hints, dense=False)
        values.extend(row_values)
        keys.extend(row_keys)
        lengths.append(len(row_values))
    data = np.asarray(values) if values else np.zeros(0, np.float32)
    indices = np.asarray(keys) if keys else np.zeros(0, np.int64)
    if data.ndim != 1 or indices.ndim != 1 or data.dtype.kind not in "iuf" or indices.dtype.kind not in "iu":
        return None
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= dim):
        return None
    indptr = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    matrix = sp.csr_matrix((data.astype(np.float32), indices.astype(np.int64), indptr), shape=(len(lengths), dim))
    matrix.sum_duplicates()
    return matrix


def _check_width(width, hints, dense=True):
    """Dense rows must have ``hints.width`` features; sparse ones ``feature_dim`` (narrower ones may be fine)."""
    expected = hints.width if dense else hints.feature_dim
    if expected is not None and width != expected:
        raise CodecError(f"Each record must have {expected} features; got {width}")


def features_of(instances, where, hints):
    """A feature matrix from a list of instances, refusing a wrong width at the first row that shows it."""
    fast = dense_rows(instances, hints)
    if fast is None:
        fast = sparse_rows(instances, hints)
    if fast is not None:
        return fast
    rows = [instance_features(instance, f"{where} {index}", hints) for index, instance in enumerate(instances)]
    return stack(rows, where, hints)
