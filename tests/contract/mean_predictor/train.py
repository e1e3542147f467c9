import json

import numpy as np


def train(context):
    hp = context.hyperparameters
    total = weight = 0.0
    for batch in context.batches("train", hp["mini_batch_size"], feature_dim=hp["feature_dim"]):
        w = np.ones(len(batch)) if batch.weights is None else batch.weights.astype(np.float64)
        total += float((w * batch.labels).sum())
        weight += float(w.sum())
    mean = (1 - hp["shrinkage"]) * total / max(weight, 1e-12) + hp["shrinkage"] * hp["prior"]
    with context.model_file("mean.json", "w") as f:
        json.dump({"mean": mean, "feature_dim": hp["feature_dim"]}, f)
    if context.has_channel("test"):
        errors, count = 0.0, 0
        for batch in context.batches("test", hp["mini_batch_size"], feature_dim=hp["feature_dim"], sharded=False):
            errors += float(((batch.labels - mean) ** 2).sum())
            count += len(batch)
        context.report_test({"mse": errors / max(count, 1)})
