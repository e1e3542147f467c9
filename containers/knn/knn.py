"""The k-NN training math, apart from the runtime: sample, reduce, gather, index; and the test scores.

Each host keeps a reservoir of its share of sample_size (rows projected as they are chosen); the hosts' samples
are gathered on the first host, which builds the faiss index over all of them.
"""

import logging

import numpy as np

from common.errors import DataError

from . import index as knn_index
from . import projection
from .model import KNNModel, PROJECTION_FILE, normalize_rows
from .sampling import Reservoir

log = logging.getLogger(__name__)

SEED = 3  # the projection's seed (the same on every host); host r samples with SEED + 1 + r


def projection_matrix(plan, seed=SEED):
    if plan.reduction is None:
        return None
    return projection.matrix(plan.reduction, plan.feature_dim, plan.reduced_dim, seed)


def row_transform(matrix):
    """What the reservoir applies to the rows it keeps: the projection, or densifying sparse rows."""
    if matrix is None:
        return None
    return lambda rows: projection.apply(rows, matrix)


def batch_labels(batch):
    """A batch's labels as float32 (n,): k-NN needs exactly one label per record."""
    labels = batch.labels
    where = f"file {batch.source}, records from {batch.first_record + 1}"
    if labels is None:
        raise DataError("k-NN needs a label for every training and test record (recordIO-protobuf label "
                        f"'values', or CSV with label_size=1); these records have none ({where})")
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim > 1 and labels.shape[1] != 1:
        raise DataError(f"k-NN takes one label per record; these records have {labels.shape[1]} ({where})")
    labels = labels.reshape(-1)
    if not np.isfinite(labels).all():
        bad = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise DataError("label is NaN or infinite", source=batch.source, record=batch.first_record + bad + 1)
    return labels


def sample(batches, capacity, dim, matrix, seed, progress=None, stop=None):
    """One streaming pass over this host's batches into a reservoir of ``capacity`` rows."""
    reservoir = Reservoir(capacity, dim, seed, row_transform(matrix))
    for batch in batches:
        reservoir.add(batch.features, batch_labels(batch))
        if progress is not None:
            progress.update(len(batch))
        if stop is not None and stop.is_set():
            break
    return reservoir


def index_vectors(plan, features):
    """Sampled rows (already reduced) as the index stores them: normalized for COSINE, zero-padded for pq_m."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    if plan.normalize:
        x = normalize_rows(x.copy())
    if x.shape[1] < plan.index_dim:
        x = np.hstack([x, np.zeros((x.shape[0], plan.index_dim - x.shape[1]), np.float32)])
    return x


def build_model(plan, features, labels, matrix, seed=SEED):
    if not features.shape[0]:
        raise DataError("No training records were sampled: the train channel holds no records")
    vectors = index_vectors(plan, features)
    index = knn_index.build(plan.index_type, plan.metric, vectors, nlists=plan.nlists, pq_m=plan.pq_m, seed=seed)
    nprobe = knn_index.ivf_of(index).nprobe if knn_index.ivf_of(index) is not None else None
    reduction = None
    if matrix is not None:
        reduction = {"type": plan.reduction, "seed": seed, "target_dim": plan.reduced_dim,
                     "input_dim": plan.feature_dim, "matrix": PROJECTION_FILE}
    return KNNModel(index, labels, plan.k, plan.predictor_type, feature_dim=plan.feature_dim,
                    projection_matrix=matrix, normalize=plan.normalize, metric=plan.metric,
                    index_type=plan.index_type, reduction=reduction, nprobe=nprobe)


class Score:
    """The test score over mini-batches: accuracy (classifier) or mean squared error (regressor)."""

    def __init__(self, predictor_type):
        self.name = "accuracy" if predictor_type == "classifier" else "mse"
        self.total = 0.0
        self.count = 0

    def add(self, predicted, truth):
        """Adds one mini-batch; returns that batch's own score."""
        predicted = np.asarray(predicted, np.float64)
        truth = np.asarray(truth, np.float64)
        if self.name == "accuracy":
            batch = float(np.sum(predicted == truth))
        else:
            batch = float(np.sum((predicted - truth) ** 2))
        self.total += batch
        self.count += truth.size
        return batch / max(truth.size, 1)

    @property
    def value(self):
        return self.total / max(self.count, 1)
