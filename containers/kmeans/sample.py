"""k-means' conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import numpy as np

from common import tabular

HYPERPARAMETERS = {"k": "3", "feature_dim": "4", "mini_batch_size": "30"}
INVALID_HYPERPARAMETERS = [({"k": "0"}, "k"), ({"init_method": "nope"}, "init_method"),
                           ({"feature_dim": "4.5"}, "feature_dim")]
CENTERS = np.array([[0, 0, 0, 0], [10, 10, 0, 0], [0, 0, 10, 10]], np.float32)


def rows(n=90, seed=0):
    rng = np.random.default_rng(seed)
    return (CENTERS[rng.integers(0, 3, n)] + rng.normal(scale=0.3, size=(n, 4))).astype(np.float32)


def training_data(channel, content_type):
    return tabular.encode_rows(rows(90, seed=1 if channel == "test" else 0), None, content_type)


def requests():
    """(content type, body, records) of every request type the spec declares."""
    x = rows(5, seed=2)
    return [(mime, tabular.encode_request(x, mime), 5) for mime in tabular.REQUEST_TYPES]
