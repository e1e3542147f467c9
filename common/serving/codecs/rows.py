"""Model outputs (columns of n values) turned into per-record Python objects for the text encoders."""

import numpy as np

from ...errors import RequestError


class NonFiniteOutput(RequestError):
    """The model's answer for a record is NaN or infinite: never sent as JSON (400, naming the record)."""

    status = 400


def column_list(values, name):
    """One column as a list of Python values: floats (or lists of floats) for numbers, as-is otherwise."""
    if isinstance(values, list) and values and not isinstance(values[0], (int, float, np.number, list, np.ndarray)):
        return values
    array = np.asarray(values)
    if array.dtype.kind in "iu":  # integer columns (class labels) stay integers: {"predicted_label": 1}
        return array.tolist()
    if array.dtype.kind in "bf":
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
            raise NonFiniteOutput(f"The model's {name!r} for record {bad} is not finite; the record's features are "
                                  "outside the range this model can answer for")
    return array.tolist()


def records(columns):
    """``{"a": [1, 2], "b": [[.1, .2], [.3, .4]]}`` -> ``[{"a": 1.0, "b": [.1, .2]}, ...]``."""
    names = list(columns)
    lists = [column_list(columns[name], name) for name in names]
    return [dict(zip(names, values)) for values in zip(*lists)]
