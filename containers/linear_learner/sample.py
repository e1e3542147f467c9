"""Linear Learner's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import numpy as np

from common import tabular

HYPERPARAMETERS = {"feature_dim": "4", "predictor_type": "binary_classifier", "epochs": "2", "num_models": "4",
                   "mini_batch_size": "20"}
INVALID_HYPERPARAMETERS = [({"predictor_type": "ranker"}, "predictor_type"),
                           ({"loss": "squared_loss"}, "loss"),
                           ({"num_models": "0"}, "num_models"),
                           ({"positive_example_weight_mult": "heavy"}, "positive_example_weight_mult")]


def rows(n=120, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.float32)
    features = rng.normal(size=(n, 4)).astype(np.float32) + 2.0 * labels[:, None] * np.array([1, -1, 0.5, 0],
                                                                                             np.float32)
    return features, labels


def training_data(channel, content_type):
    features, labels = rows(120, seed=1 if channel == "test" else 0)
    return tabular.encode_rows(features, labels, content_type)


def requests():
    features, _ = rows(4, seed=2)
    return [(mime, tabular.encode_request(features, mime), 4) for mime in tabular.REQUEST_TYPES]
