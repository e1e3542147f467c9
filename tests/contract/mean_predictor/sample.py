import numpy as np

from common import contenttypes as ct
from common import tabular

HYPERPARAMETERS = {"feature_dim": "3", "mini_batch_size": "16"}
INVALID_HYPERPARAMETERS = [({"shrinkage": "2"}, "shrinkage"),
                           ({"feature_dim": "2000", "shrinkage": "0.5"}, "feature_dim <= 1000")]


def training_data(channel, content_type):
    rng = np.random.default_rng(1 if channel == "test" else 0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    return tabular.encode_rows(x, 5 + rng.normal(size=40), content_type)


def requests():
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    return [(mime, tabular.encode_request(x, mime), 2) for mime in (ct.LIBSVM, ct.CSV, ct.JSON)]
