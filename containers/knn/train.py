"""k-NN training: check, sample this host's share in one pass, gather the samples on the first host, build the
faiss index there, save the three files, score ``test``."""

import logging

import numpy as np

from common import logs

from . import checks, knn

log = logging.getLogger(__name__)


def gather_samples(cluster, features, labels):
    """Every host's sample, concatenated in rank order, for the first host (the others drop it).

    The cluster protocol's all_gather of same-shaped blocks: each host pads its sample to the largest one; the
    label rides in an extra column. Memory stays bounded by sample_size (plus one host's padding)."""
    if cluster.world_size == 1:
        return features, labels
    import torch

    counts = cluster.all_gather(torch.tensor([features.shape[0]], dtype=torch.int64)).tolist()
    block = torch.zeros(max(counts), features.shape[1] + 1, dtype=torch.float32)
    block[:features.shape[0], :-1] = torch.from_numpy(features)
    block[:features.shape[0], -1] = torch.from_numpy(labels)
    gathered = cluster.all_gather(block).numpy()
    del block
    if not cluster.is_master:
        return features[:0], labels[:0]
    rows = max(counts)
    stacked = np.concatenate([gathered[r * rows:r * rows + n] for r, n in enumerate(counts)])
    log.info("Gathered %s sampled points from %d hosts", counts, cluster.world_size)
    return np.ascontiguousarray(stacked[:, :-1]), np.ascontiguousarray(stacked[:, -1])


def evaluate(context, model, batch_size):
    score = knn.Score(model.predictor_type)
    for number, batch in enumerate(context.batches("test", batch_size, feature_dim=model.feature_dim,
                                                   sharded=False), start=1):
        truth = knn.batch_labels(batch)
        value = score.add(model.predict(batch.features)["predicted_label"], truth)
        log.info("test mini-batch %d: %d records, %s %.6g", number, len(batch), score.name, value)
    return score


def train(context):
    hp = context.hyperparameters
    plan = checks.plan(hp)  # checks.check ran at setup
    resource = context.resource
    capacity = plan.host_sample_size(resource.rank, resource.world_size)
    log.info("k-NN: k=%d, %s, feature_dim=%d, %s%s, index %s (dimension %d%s), metric %s; this host samples %d "
             "of sample_size=%d over %d host(s)", plan.k, plan.predictor_type, plan.feature_dim,
             f"{plan.reduction} reduction to " if plan.reduction else "no reduction",
             plan.reduced_dim if plan.reduction else "", plan.index_type, plan.index_dim,
             "".join(f", {k}={v}" for k, v in (("nlists", plan.nlists), ("pq_m", plan.pq_m)) if v),
             plan.metric, capacity, plan.sample_size, resource.world_size)
    with context.cluster("cpu") as cluster:
        train_on(context, plan, cluster, capacity)


def train_on(context, plan, cluster, capacity):
    resource = context.resource
    matrix = knn.projection_matrix(plan)
    progress = logs.Progress("train")
    with context.timings.stage("sampling"):
        batches = context.batches("train", plan.mini_batch_size, feature_dim=plan.feature_dim)
        reservoir = knn.sample(batches, capacity, plan.reduced_dim, matrix, knn.SEED + 1 + resource.rank,
                               progress, context.stop)
    progress.done()
    features, labels = reservoir.sample()
    log.info("Sampled %d of the %d records this host read", features.shape[0], reservoir.seen)
    with context.timings.stage("gather"):
        features, labels = gather_samples(cluster, features, labels)
    if cluster.is_master:
        with context.timings.stage("index"):
            model = knn.build_model(plan, features, labels, matrix)
        del features, labels, reservoir
        model.save(context.paths.model_dir, context.model_file)
        log.info("Saved model_algo-1 (%s, %d points), model_algo-1.labels, model_algo-1.json%s", plan.index_type,
                 model.index.ntotal, ", model_algo-1.projection" if matrix is not None else "")
        if context.has_channel("test") and not context.stop.is_set():
            with context.timings.stage("evaluate"):
                score = evaluate(context, model, plan.mini_batch_size)
            context.report_test({score.name: score.value})
    cluster.barrier()
