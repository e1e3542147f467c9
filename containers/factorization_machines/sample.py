"""Factorization Machines' conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import numpy as np
import scipy.sparse as sp

from common import tabular

from .spec import SPEC

HYPERPARAMETERS = {"feature_dim": "12", "num_factors": "3", "predictor_type": "binary_classifier",
                   "mini_batch_size": "30", "epochs": "2", "factors_lr": "0.01", "linear_lr": "0.01"}
INVALID_HYPERPARAMETERS = [({"predictor_type": "multiclass_classifier"}, "predictor_type"),
                           ({"factors_init_method": "uniform"}, "factors_init_scale"),
                           ({"num_factors": "0"}, "num_factors")]
FIELDS = (6, 4, 2)  # three one-hot fields: 12 features


def rows(n=90, seed=0):
    """One-hot rows (CSR) and 0/1 labels from a planted interaction of the first two fields."""
    rng = np.random.default_rng(seed)
    values = np.stack([rng.integers(0, size, n) for size in FIELDS], axis=1)
    cols = values + np.cumsum((0,) + FIELDS[:-1])
    x = sp.csr_matrix((np.ones(cols.size, np.float32), cols.reshape(-1), np.arange(0, cols.size + 1, len(FIELDS))),
                      shape=(n, sum(FIELDS)))
    labels = ((values[:, 0] % 2) == (values[:, 1] % 2)).astype(np.float32)
    return x, labels


def training_data(channel, content_type):
    x, labels = rows(90, seed=1 if channel == "test" else 0)
    return tabular.encode_rows(x, labels, content_type)


def requests():
    """(content type, body, records) of every request type the spec declares."""
    x = rows(5, seed=2)[0].toarray()
    return [(mime, tabular.encode_request(x, mime), 5) for mime in SPEC.request_types]
