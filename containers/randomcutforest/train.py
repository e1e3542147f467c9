"""Random Cut Forest training: one streaming pass into a reservoir, build this host's trees, gather them on the
first host, save, and score the labelled ``test`` channel (F1 at the 3-sigma cutoff)."""

import io
import logging
import math

import numpy as np

from common import logs, ndarray
from common.errors import ChannelError, DataError

from . import forest as forest_math
from .model import RandomCutForestModel

log = logging.getLogger(__name__)

SEED = 17
READ_ELEMENTS = 1 << 21  # rows read per block: at least mini_batch_size, and about this many values
SIGMAS = 3.0


def read_rows(feature_dim, mini_batch_size):
    return max(mini_batch_size, math.ceil(READ_ELEMENTS / max(1, feature_dim)))


def trees_of_host(num_trees, rank, world_size):
    """This host's share of the trees: as equal as possible, the first hosts taking one more."""
    return num_trees // world_size + (1 if rank < num_trees % world_size else 0)


def sample(context, feature_dim, capacity, rows, rng):
    """This host's reservoir after one pass over its share of ``train``."""
    reservoir = forest_math.Reservoir(capacity, feature_dim, rng)
    progress = logs.Progress("train")
    for batch in context.batches("train", rows, feature_dim=feature_dim):
        reservoir.add(batch.features)
        progress.update(len(batch))
        if context.stop.is_set():
            log.info("Stop requested: building the forest from the %d rows read so far", reservoir.seen)
            break
    progress.done()
    return reservoir


def to_bytes(forest):
    buffer = io.BytesIO()
    if forest is not None:
        ndarray.save(buffer, forest.arrays())
    return buffer.getvalue()


def from_bytes(payload):
    if not payload:
        return None
    return forest_math.Forest(**ndarray.load(payload))


def classification_metrics(labels, predicted):
    """Accuracy, and precision, recall and F1 of both classes (anomaly = 1 is the positive class)."""
    values = {"accuracy": float(np.mean(labels == predicted)) if labels.size else 0.0}
    for name, positive in (("", True), ("_normal", False)):
        truth, guess = labels == positive, predicted == positive
        hits = float(np.sum(truth & guess))
        precision = hits / guess.sum() if guess.any() else 0.0
        recall = hits / truth.sum() if truth.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        values.update({f"precision{name}": precision, f"recall{name}": recall, f"f1{name}": f1})
    return values


def evaluate(context, model, rows):
    """Scores of every ``test`` row; anomalies are scores above mean + 3 std of these scores."""
    scores, labels, seen = [], [], 0
    for batch in context.batches("test", rows, feature_dim=model.feature_dim, sharded=False):
        if batch.labels is None:
            raise ChannelError("Channel 'test' has no labels: use text/csv;label_size=1 (first column: 1 = anomaly, "
                               "0 = normal) or recordIO-protobuf records with a label")
        label = np.asarray(batch.labels, np.float64).reshape(len(batch), -1)[:, 0]
        bad = np.flatnonzero((label != 0) & (label != 1))
        if bad.size:
            raise DataError(f"Channel 'test': labels must be 1 (anomaly) or 0 (normal); found {label[bad[0]]:g} "
                            f"in record {seen + int(bad[0])}")
        scores.append(model.score(batch.features))
        labels.append(label.astype(bool))
        seen += len(batch)
    if not scores:
        raise DataError("Channel 'test' holds no records")
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    cutoff = float(scores.mean() + SIGMAS * scores.std())
    log.info("Test: %d records (%d labelled anomalies), scores mean %.4f, std %.4f, 3-sigma cutoff %.4f",
             scores.size, int(labels.sum()), scores.mean(), scores.std(), cutoff)
    return classification_metrics(labels, scores > cutoff)


METRICS_OF = {
    "accuracy": ("accuracy",),
    "precision_recall_fscore": ("precision", "recall", "f1", "precision_normal", "recall_normal", "f1_normal"),
}


def eval_metrics(value):
    """The list of eval_metrics, from a JSON list or a comma-separated string."""
    names = value.split(",") if isinstance(value, str) else value
    return list(dict.fromkeys(name.strip() for name in names))


def train(context):
    hp = dict(context.hyperparameters)
    hp["eval_metrics"] = eval_metrics(hp["eval_metrics"])
    d, per_tree, num_trees = hp["feature_dim"], hp["num_samples_per_tree"], hp["num_trees"]
    resource = context.resource
    share = trees_of_host(num_trees, resource.rank, resource.world_size)
    log.info("Random Cut Forest: num_trees=%d (%d on this host), num_samples_per_tree=%d, feature_dim=%d, "
             "eval_metrics=%s", num_trees, share, per_tree, d, ",".join(hp["eval_metrics"]))
    rng = np.random.default_rng([SEED, resource.rank])
    rows = read_rows(d, hp["mini_batch_size"])

    with context.timings.stage("sampling"):
        reservoir = sample(context, d, max(share, 1) * per_tree, rows, rng)
    log.info("Reservoir: %d of %d rows read by this host", reservoir.sample.shape[0], reservoir.seen)
    forest = None
    if share and reservoir.seen:
        with context.timings.stage("building"):
            points = forest_math.split_sample(reservoir.sample, share, per_tree, rng)
            forest = forest_math.build_forest(points, rng)
        log.info("Built %d trees of %d points each: %d nodes, depth %d", forest.num_trees, points.shape[1],
                 forest.num_nodes, forest.max_depth)
    elif share:
        log.warning("This host read no training rows, so it contributes none of its %d trees", share)
    del reservoir

    with context.timings.stage("gathering"), context.cluster() as cluster:  # torch.distributed, several hosts only
        parts = cluster.all_gather_bytes(to_bytes(forest))
    if not resource.is_master:  # its trees are now in the first host's forest
        return
    forest = forest_math.merge_forests([from_bytes(part) for part in parts])
    if forest is None or not forest.num_trees:
        raise DataError("No training rows were read, so there are no trees to build")
    if forest.num_trees < num_trees:
        log.warning("The forest has %d of num_trees=%d trees: some hosts read no rows", forest.num_trees, num_trees)
    model = RandomCutForestModel(forest, per_tree)
    with context.model_file("model_algo-1") as file:  # atomic: a half-written model never appears
        model.save_to(file)
    log.info("Saved model_algo-1: %d trees, %d nodes, %d leaf points", forest.num_trees, forest.num_nodes,
             forest.leaf_points.shape[0])

    if context.has_channel("test") and not context.stop.is_set():
        with context.timings.stage("evaluate"):
            values = evaluate(context, model, rows)
        names = ["f1"] + [name for metric in hp["eval_metrics"] for name in METRICS_OF[metric] if name != "f1"]
        context.report_test({name: values[name] for name in names})
