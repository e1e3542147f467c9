"""k-NN's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import numpy as np

from common import tabular

HYPERPARAMETERS = {"feature_dim": "6", "k": "3", "predictor_type": "classifier", "sample_size": "200",
                   "mini_batch_size": "30"}
INVALID_HYPERPARAMETERS = [
    ({"predictor_type": "ranker"}, "predictor_type"),
    ({"index_type": "faiss.IVFPQ", "index_metric": "COSINE"}, "index_metric"),
    ({"dimension_reduction_type": "sign"}, "dimension_reduction_target"),
    ({"k": "0"}, "k"),
]


def rows(n=90, seed=0):
    """Three well-separated classes in 6 dimensions; the label is the class."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0, 0, 0, 0], [5, 5, 5, 0, 0, 0], [0, 0, 0, 5, 5, 5]], np.float32)
    labels = rng.integers(0, 3, size=n)
    return (centers[labels] + rng.normal(0, 0.5, size=(n, 6))).astype(np.float32), labels.astype(np.float32)


def training_data(channel, content_type):
    features, labels = rows(90, seed=1 if channel == "test" else 0)
    return tabular.encode_rows(features, labels, content_type)  # CSV: the label first (label_size=1)


def requests():
    x, _ = rows(4, seed=2)
    return [(mime, tabular.encode_request(x, mime), 4) for mime in tabular.REQUEST_TYPES]
