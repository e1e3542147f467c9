"""Model outputs as columns (name -> array of n rows) turned into per-record Python objects."""

import numpy as np


def records(columns):
    """``{"a": [1, 2], "b": [[.1, .2], [.3, .4]]}`` -> ``[{"a": 1.0, "b": [.1, .2]}, ...]`` (floats)."""
    names = list(columns)
    lists = [np.asarray(columns[name], dtype=np.float64).tolist() for name in names]
    return [dict(zip(names, values)) for values in zip(*lists)]
