"""Random Cut Forest's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs.

``write_channels`` because the train channel must be ShardedByS3Key (the suite's default is FullyReplicated)
and the test channel is labelled."""

import json

import numpy as np

from common import contenttypes as ct
from common import tabular

HYPERPARAMETERS = {"feature_dim": "3", "num_trees": "50", "num_samples_per_tree": "32"}
INVALID_HYPERPARAMETERS = [({"num_trees": "10"}, "num_trees"), ({"num_samples_per_tree": "0"}, "num_samples_per_tree"),
                           ({"eval_metrics": '["f2"]'}, "eval_metrics")]


def rows(n=200, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    x[:3] += 8  # a few anomalies
    return x


def training_data(channel, content_type):
    x = rows(200, seed=1 if channel == "test" else 0)
    labels = (np.arange(len(x)) < 3).astype(np.float32) if channel == "test" else None
    return tabular.encode_rows(x, labels, content_type)


def write_channels(root, content_type, input_mode):
    """train (ShardedByS3Key, in ``input_mode``) and a labelled test channel (File), as inputdataconfig entries."""
    import os
    import threading

    config = {}
    for channel, mode, distribution in (("train", input_mode, "ShardedByS3Key"), ("test", "File", "FullyReplicated")):
        data = training_data(channel, content_type)
        folder = root / "input" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        if mode == "Pipe":
            for epoch in range(2):
                fifo = folder / f"{channel}_{epoch}"
                os.mkfifo(fifo)
                threading.Thread(target=_feed, args=(fifo, data), daemon=True).start()
        else:
            (folder / channel).mkdir(exist_ok=True)
            (folder / channel / "part-0").write_bytes(data)
        mime = content_type + (";label_size=1" if channel == "test" and content_type == ct.CSV else "")
        config[channel] = {"ContentType": mime, "TrainingInputMode": mode, "S3DistributionType": distribution}
    (root / "input" / "config").mkdir(parents=True, exist_ok=True)
    return json.loads(json.dumps(config))


def _feed(fifo, data):
    try:
        with open(fifo, "wb") as pipe:
            pipe.write(data)
    except OSError:  # the job ended without reading this epoch
        pass


def requests():
    x = rows(4, seed=2)
    return [(mime, tabular.encode_request(x, mime), 4) for mime in tabular.REQUEST_TYPES]
