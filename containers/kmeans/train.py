"""k-means training: stream mini-batches through StreamingKMeans, combine hosts, reduce K -> k, save."""

import logging
import math

import scipy.sparse as sp
import torch

from common import logs
from common.accel import dense_tensor, dense_tensors, pick_device
from common.errors import AlgorithmError, DataError

from .kmeans import StreamingKMeans, assign, weighted_lloyd
from .model import KMeansModel

log = logging.getLogger(__name__)

DENSE_CHUNK_ELEMENTS = 1 << 24  # sparse batches are densified this many values at a time
SEED = 17


def resolve_auto(hyperparameters):
    """What ``auto`` means here; see README.md for the measurements behind these choices."""
    k = hyperparameters["k"]
    factor = hyperparameters["extra_center_factor"]
    if factor == "auto":
        factor = max(4, math.ceil(400 / k))
    trials = hyperparameters["local_lloyd_num_trials"]
    if trials == "auto":
        trials = 10
    return factor, trials


def stream(context, model, device, epochs, batch_size, feature_dim):
    progress = logs.Progress("train")
    for epoch in range(epochs):
        for batch in context.batches("train", batch_size, epoch=epoch, feature_dim=feature_dim):
            if sp.issparse(batch.features) and batch.features.shape[1] * batch.features.shape[0] > DENSE_CHUNK_ELEMENTS:
                for chunk in dense_tensors(batch.features, device, DENSE_CHUNK_ELEMENTS):
                    model.partial_fit(chunk)
            else:
                model.partial_fit(dense_tensor(batch.features, device, DENSE_CHUNK_ELEMENTS))
            progress.update(len(batch))
        log.info("Epoch %d of %d done: %d points seen so far", epoch + 1, epochs, model.points_seen)
        if context.stop.is_set():
            break
    progress.done()
    return model.finish()


def evaluate(context, centers, device, batch_size, feature_dim):
    """Sum of squared distances and point count over the test channel."""
    ssd, count = 0.0, 0
    center_norms = (centers * centers).sum(dim=1)
    for batch in context.batches("test", batch_size, feature_dim=feature_dim, sharded=False):
        for chunk in dense_tensors(batch.features, device, DENSE_CHUNK_ELEMENTS):
            _, distances = assign(chunk, centers, center_norms)
            ssd += float(distances.double().sum())
            count += chunk.shape[0]
    return ssd, count


def train(context):
    hp = context.hyperparameters
    k, feature_dim, batch_size = hp["k"], hp["feature_dim"], hp["mini_batch_size"]
    factor, trials = resolve_auto(hp)
    device = pick_device()
    torch.manual_seed(SEED)
    log.info("k=%d, extra_center_factor=%d (K=%d centers while streaming), local_lloyd_num_trials=%d, device=%s",
             k, factor, k * factor, trials, device)
    with context.cluster(device) as cluster:
        train_on(context, hp, cluster, device, k, factor, trials, feature_dim, batch_size)


def train_on(context, hp, cluster, device, k, factor, trials, feature_dim, batch_size):
    model = StreamingKMeans(k * factor, feature_dim, hp["init_method"], hp["half_life_time_size"], device,
                            seed=SEED + cluster.rank)
    with context.timings.stage("streaming"):
        stream(context, model, device, hp["epochs"], batch_size, feature_dim)

    with context.timings.stage("combine"):
        centers = model.centers if model.initialized else torch.zeros(k * factor, feature_dim, device=device)
        centers = cluster.all_gather(centers.float().cpu().contiguous())
        counts = cluster.all_gather(model.counts.cpu().contiguous())
        total = float(counts.sum())
        if total <= 0:
            if context.stop.is_set():
                raise AlgorithmError("Training was stopped (SIGTERM) before any training point was read; "
                                     "no model was saved")
            raise DataError("No training points were read, so there is nothing to cluster")
        if int((counts > 0).sum()) < k:
            log.warning("Only %d distinct centers received points; fewer than k=%d", int((counts > 0).sum()), k)

    with context.timings.stage("reduce"):
        generator = torch.Generator().manual_seed(SEED)
        final, loss = weighted_lloyd(centers, counts, k, hp["local_lloyd_init_method"],
                                     hp["local_lloyd_max_iter"], hp["local_lloyd_tol"], trials, generator,
                                     stop=context.stop)
        if context.stop.is_set():
            log.warning("The reduction was stopped by a signal; saving the best centers it had")
        log.info("Reduced %d weighted centers to k=%d; weighted loss %.6g", int((counts > 0).sum()), k, loss)

    if cluster.is_master:
        KMeansModel(final.numpy()).save(context.paths.model_dir)
        log.info("Saved model_algo-1 with centroids of shape %s", tuple(final.shape))

    if context.has_channel("test") and cluster.is_master and not context.stop.is_set():
        with context.timings.stage("evaluate"):
            ssd, count = evaluate(context, final.to(device), device, batch_size, feature_dim)
        values = {"msd": ssd / max(count, 1), "ssd": ssd}
        context.report_test({metric: values[metric] for metric in hp["eval_metrics"]})
    cluster.barrier()
