"""XGBoost's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import io

import numpy as np

from common import contenttypes as ct
from common import tabular

HYPERPARAMETERS = {"num_round": "3", "objective": "binary:logistic", "max_depth": "2", "eval_metric": "auc"}
INVALID_HYPERPARAMETERS = [({"num_round": "0"}, "num_round"), ({"objective": "multi:softmax"}, "num_class"),
                           ({"updater": "grow_nothing"}, "updater"), ({"max_depth": "2.5"}, "max_depth")]


def rows(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


def training_data(channel, content_type):
    x, y = rows(200, seed=1 if channel == "validation" else 0)
    if content_type == "application/x-parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.table({"label": y, **{f"f{j}": x[:, j] for j in range(x.shape[1])}}), buffer)
        return buffer.getvalue()
    return tabular.encode_rows(x, y, content_type)


def requests():
    """(content type, body, records) of every request type the spec declares."""
    x, _ = rows(5, seed=2)
    return [(mime, tabular.encode_request(x, mime), 5)
            for mime in (ct.CSV, ct.LIBSVM, ct.RECORDIO_PROTOBUF, ct.JSON, ct.JSONLINES)]
