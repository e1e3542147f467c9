"""Turning parsed JSON instances into a feature matrix (dense rows or sparse keys/shape/values)."""

import numpy as np
import scipy.sparse as sp

from . import CodecError


def _dense_row(values, where):
    if not isinstance(values, list):
        raise CodecError(f"{where}: features must be a list of numbers, got {type(values).__name__}")
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise CodecError(f"{where}: features must be a list of numbers") from None


def _tensor(element, where):
    """A ``{"values": [...], "keys": [...], "shape": [...]}`` element: (dense row) or (keys, values, dim)."""
    if isinstance(element, list):
        return _dense_row(element, where), None
    if not isinstance(element, dict) or "values" not in element:
        raise CodecError(f"{where}: expected a list of numbers or an object with 'values'")
    values = _dense_row(element["values"], where)
    keys = element.get("keys")
    if not keys:
        return values, None
    shape = element.get("shape")
    if not isinstance(shape, list) or len(shape) != 1:
        raise CodecError(f"{where}: a sparse tensor needs 'shape': [feature_dim]")
    try:
        keys = np.asarray(keys, dtype=np.int64)
        dim = int(shape[0])
    except (TypeError, ValueError):
        raise CodecError(f"{where}: 'keys' and 'shape' must be whole numbers") from None
    if keys.shape != values.shape:
        raise CodecError(f"{where}: 'keys' has {keys.size} entries but 'values' has {values.size}")
    if keys.size and (keys.min() < 0 or keys.max() >= dim):
        raise CodecError(f"{where}: a key is outside the shape [{dim}]")
    return values, (keys, dim)


def instance_features(instance, where):
    """The feature tensor of one instance in any of the guide's JSON forms."""
    if isinstance(instance, list):
        return _tensor(instance, where)
    if not isinstance(instance, dict):
        raise CodecError(f"{where}: an instance must be an object or a list of numbers")
    if "features" in instance:
        return _tensor(instance["features"], where)
    data = instance.get("data")
    if isinstance(data, dict) and "features" in data:
        return _tensor(data["features"], where)
    raise CodecError(f"{where}: no 'features' or 'data.features' in the instance")


def stack(rows, where="request"):
    """Rows of (values, sparse-info) into a float32 array, or a CSR matrix if any row is sparse."""
    if not rows:
        raise CodecError(f"{where}: no instances")
    if all(info is None for _, info in rows):
        lengths = {values.shape[0] for values, _ in rows}
        if len(lengths) > 1:
            raise CodecError(f"{where}: instances have different feature counts {sorted(lengths)}")
        return np.stack([values for values, _ in rows])
    dims = {info[1] for _, info in rows if info is not None} | {v.shape[0] for v, info in rows if info is None}
    if len(dims) > 1:
        raise CodecError(f"{where}: instances have different feature counts {sorted(dims)}")
    dim = dims.pop()
    indptr, indices, data = [0], [], []
    for values, info in rows:
        keys = info[0] if info is not None else np.arange(values.shape[0])
        indices.append(keys)
        data.append(values)
        indptr.append(indptr[-1] + keys.size)
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=(len(rows), dim))
