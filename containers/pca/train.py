"""PCA training: stream blocks into a summary, add the hosts' summaries, solve, save (master), score ``test``.

Cross-hyperparameter rules are in checks.py (run at setup); torch (and pca.py, which needs it) is imported
only inside ``train``.
"""

import logging

import numpy as np
import scipy.sparse as sp

from common import logs
from common.accel import pick_device
from common.errors import DataError

from .model import PCAModel

log = logging.getLogger(__name__)


def read_sample(batches, rows_wanted, progress):
    """The first blocks of this host's share, until ``rows_wanted`` rows (or the data ends)."""
    blocks, rows = [], 0
    for batch in batches:
        blocks.append(batch.features)
        rows += len(batch)
        progress.update(len(batch))
        if rows >= rows_wanted:
            break
    return blocks


def stream(context, hp, device, cluster):
    """This host's summary of ``train`` (and, in randomized mode, the test matrix Omega)."""
    from . import pca

    d, k, subtract_mean = hp["feature_dim"], hp["num_components"], hp["subtract_mean"]
    rows = pca.read_rows(d, hp["mini_batch_size"])
    batches = iter(context.batches("train", rows, feature_dim=d))
    progress = logs.Progress("train")
    blocks, omega, gram = [], None, True
    if hp["algorithm_mode"] == "randomized":
        l, p = pca.sketch_sizes(d, k, hp["extra_components"])
        gram = d <= pca.GRAM_FACTOR * p
        with context.timings.stage("sample"):
            blocks = read_sample(batches, pca.SAMPLE_FACTOR * l, progress)
            omega = pca.adapted_test_matrix(pca.stack_sample(blocks, device), d, l, p, subtract_mean, cluster,
                                            device)
        log.info("Randomized: l=num_components+extra_components=%d, sketch width p=%d (%d adapted to the first "
                 "%d rows, %d random), summing %s", l, p, l, sum(b.shape[0] for b in blocks), p - l,
                 "X^T X (feature_dim <= 4p) and applying Omega once" if gram else "the d x p sketch X^T X Omega")
    summary = pca.Summary(d, device, subtract_mean, omega=omega, gram=gram)
    for block in blocks:
        summary.add(block)
    del blocks
    for batch in batches:
        summary.add(batch.features)
        progress.update(len(batch))
    progress.done()
    return summary, omega


def evaluate(context, model, rows):
    """Over ``test``: the mean squared reconstruction error per record, and the share of variance captured.

    With orthonormal components, |x - mean|^2 = |(x - mean) v|^2 + |residual|^2; sparse rows stay sparse.
    """
    mean = model.mean.astype(np.float64).ravel()
    total = captured = 0.0
    count = 0
    for batch in context.batches("test", rows, feature_dim=model.feature_dim, sharded=False):
        x = batch.features
        if sp.issparse(x):
            squares = x.multiply(x).sum(dtype=np.float64) - 2 * float((x @ mean).sum()) + x.shape[0] * mean @ mean
        else:
            centred = x.astype(np.float64) - mean
            squares = float(np.einsum("ij,ij->", centred, centred))
        projection = model.project(x).astype(np.float64)
        total += float(squares)
        captured += float(np.einsum("ij,ij->", projection, projection))
        count += x.shape[0]
    error = max(total - captured, 0.0) / max(count, 1)
    ratio = min(captured / total, 1.0) if total > 0 else 1.0
    return {"reconstruction_error": error, "explained_variance_ratio": ratio}


def train(context):
    hp = context.hyperparameters
    from . import pca

    d, k = hp["feature_dim"], hp["num_components"]
    device = pick_device()
    log.info("PCA: num_components=%d, feature_dim=%d, algorithm_mode=%s, subtract_mean=%s, device=%s",
             k, d, hp["algorithm_mode"], hp["subtract_mean"], device)
    with context.cluster(device) as cluster:
        train_on(context, hp, cluster, device, d, k)


def train_on(context, hp, cluster, device, d, k):
    from . import pca

    with context.timings.stage("streaming"):
        summary, omega = stream(context, hp, device, cluster)
    with context.timings.stage("combine"):
        n, mean, combined = summary.combine(cluster)
    log.info("Summaries of %d rows combined (%d read by this host)", n, summary.rows)
    if n == 0:
        raise DataError("No training rows were read, so there are no components to compute")
    if n <= k:
        log.warning("Only %d rows for num_components=%d: the smallest components have singular value 0", n, k)

    with context.timings.stage("solve"):
        if omega is None:
            values, vectors = pca.solve_regular(combined, k)
        else:
            sketch = combined @ omega if summary.gram else combined
            values, vectors = pca.solve_nystrom(sketch, omega, k)
    model = PCAModel(vectors.cpu().numpy(), values.sqrt().cpu().numpy(), mean.cpu().numpy().reshape(1, -1))
    log.info("Singular values, least to most significant: %s", " ".join(f"{x:.6g}" for x in model.s))

    if cluster.is_master:
        model.save(context.paths.model_dir)
        log.info("Saved model_algo-1: v %s, s %s, mean %s", model.v.shape, model.s.shape, model.mean.shape)
        if context.has_channel("test") and not context.stop.is_set():
            with context.timings.stage("evaluate"):
                scores = evaluate(context, model, pca.read_rows(d, hp["mini_batch_size"]))
            context.report_test(scores)
    cluster.barrier()
