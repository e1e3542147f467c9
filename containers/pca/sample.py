"""PCA's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import numpy as np

from common import tabular

HYPERPARAMETERS = {"feature_dim": "6", "num_components": "2", "mini_batch_size": "30"}
INVALID_HYPERPARAMETERS = [({"num_components": "7"}, "num_components"), ({"algorithm_mode": "fast"}, "algorithm_mode"),
                           ({"mini_batch_size": "-1"}, "mini_batch_size")]


def rows(n=90, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(7).normal(size=(2, 6))
    return (rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 6))).astype(np.float32)


def training_data(channel, content_type):
    return tabular.encode_rows(rows(90, seed=1 if channel == "test" else 0), None, content_type)


def requests():
    x = rows(4, seed=2)
    return [(mime, tabular.encode_request(x, mime), 4) for mime in tabular.REQUEST_TYPES]
