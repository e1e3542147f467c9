"""DeepAR's conformance sample: the tiny job and requests the contract suite (tests/contract/) runs."""

import io
import json

import numpy as np

from common import contenttypes as ct

HYPERPARAMETERS = {"time_freq": "H", "context_length": "12", "prediction_length": "6", "epochs": "2",
                   "mini_batch_size": "32", "num_cells": "8", "num_layers": "1", "num_eval_samples": "20"}
INVALID_HYPERPARAMETERS = [({"time_freq": "3Q"}, "time_freq"), ({"likelihood": "poisson"}, "likelihood"),
                           ({"prediction_length": "0"}, "prediction_length"),
                           ({"cardinality": "[0]"}, "cardinality")]
PARQUET = "application/x-parquet"


def series(n=12, length=60, seed=0):
    """Daily-cycle series with a level per category (two categorical features)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(length)
        level = 10.0 + 5.0 * (i % 3)
        target = level + 3.0 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, length)
        out.append({"start": f"2021-03-{1 + i % 20:02d} 00:00:00", "target": [round(float(v), 4) for v in target],
                    "cat": [i % 3, i % 2]})
    out[0]["target"][5] = "NaN"
    out[1]["target"][7] = None
    return out


def json_lines(records):
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def parquet(records):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"start": [r["start"] for r in records],
                      "target": [[float("nan") if v in (None, "NaN") else v for v in r["target"]] for r in records],
                      "cat": [r["cat"] for r in records]})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def training_data(channel, content_type):
    records = series(seed=1 if channel == "test" else 0)
    if channel == "train":
        records = [{**r, "target": r["target"][:-6]} for r in records]
    return parquet(records) if content_type == PARQUET else json_lines(records)


def requests():
    instances = [{"start": r["start"], "target": r["target"][:40], "cat": r["cat"]} for r in series(3, seed=2)]
    configuration = {"num_samples": 10, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.1", "0.9"]}
    body = json.dumps({"instances": instances, "configuration": configuration}).encode()
    return [(ct.JSON, body, 3), (ct.JSONLINES, json_lines(instances).rstrip(b"\n"), 3)]
