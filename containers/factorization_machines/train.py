"""Factorization Machines training: epochs of mini-batches through the FM, hosts in lock step, save, score ``test``.

Several hosts: each reads its share of ``train``; every step the hosts' gradient rows are gathered and summed
(fm.combine), so all apply the same update and hold the same parameters (synchronous data parallelism).
"""

import logging
import math
import os

import numpy as np
import scipy.sparse as sp

from common import logs
from common.errors import AlgorithmError, ClientError, DataError

from .model import FMModel

log = logging.getLogger(__name__)


class Diverged(ClientError):
    """The loss became NaN or infinite: the learning rates (or the data's scale) are too large."""


def diverged(hp, where):
    return Diverged(
        f"Training diverged: the loss became NaN or infinite {where}. Lower the learning rates (bias_lr="
        f"{hp['bias_lr']:g}, linear_lr={hp['linear_lr']:g}, factors_lr={hp['factors_lr']:g}), set clip_gradient, "
        "or scale the features")


def labels_of(batch, binary, channel):
    if batch.labels is None:
        raise DataError(f"Channel {channel!r}: records have no label; Factorization Machines is supervised "
                        "(recordIO: the Record's label 'values'; CSV: the first column; libsvm: the first field)",
                        source=batch.source, record=batch.first_record + 1)
    labels = np.asarray(batch.labels, np.float32).reshape(len(batch), -1)[:, 0]
    bad = ~np.isin(labels, (0.0, 1.0)) if binary else ~np.isfinite(labels)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        rule = "0 or 1 for predictor_type=binary_classifier" if binary else "a finite number"
        raise DataError(f"label {float(labels[row])!r} is not {rule}", source=batch.source,
                        record=batch.first_record + row + 1)
    return labels


def choose_device(first_features):
    """The GPU for dense data when one is present; the CPU for sparse data (the guide's advice)."""
    import torch

    if torch.cuda.is_available() and first_features is not None and not sp.issparse(first_features):
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_threads(features, hp, cores=None):
    """torch's threads on the CPU: one for sparse batches and for dense ones under 16M multiply-adds, all cores
    above. A sparse batch's ops are small (nnz x k): OpenMP's spin-waits cost far more than they save (6x slower
    with 2 threads on a busy 2-core machine, measured; linear_learner found the same)."""
    cores = cores or len(os.sched_getaffinity(0))
    if sp.issparse(features):
        return 1
    return 1 if hp["mini_batch_size"] * hp["feature_dim"] * hp["num_factors"] < (1 << 24) else cores


def run_epoch(context, trainer, cluster, epoch, hp, progress):
    """One pass over this host's share of ``train``; returns (summed loss, rows) over all hosts."""
    import torch

    from . import fm

    d, k, binary = hp["feature_dim"], hp["num_factors"], trainer.binary
    batches = iter(context.batches("train", hp["mini_batch_size"], epoch=epoch, feature_dim=d))
    total_loss, total_rows, step = 0.0, 0, 0
    while True:
        batch = next(batches, None)
        grads, loss = None, 0.0
        if batch is not None and epoch == 0 and step == 0 and trainer.device.type == "cpu":
            torch.set_num_threads(cpu_threads(batch.features, hp))
            log.info("CPU threads for torch: %d (%s batches)", torch.get_num_threads(),
                     "sparse" if sp.issparse(batch.features) else "dense")
        if batch is not None:
            loss, grads = trainer.gradients(batch.features, labels_of(batch, binary, "train"), batch.weights)
            loss = float(loss)
            if not math.isfinite(loss):
                raise diverged(hp, f"in epoch {epoch + 1}, batch {step + 1} (records {batch.first_record + 1}-"
                                   f"{batch.first_record + len(batch)} of {batch.source})")
        if cluster.world_size > 1:
            grads = fm.combine(cluster, grads, d, k, trainer.device)
        if grads is None:
            break
        trainer.apply(grads)
        step += 1
        if batch is not None:
            total_loss += loss
            total_rows += len(batch)
            progress.update(len(batch))
    return total_loss, total_rows


def evaluate(context, model, hp):
    """The guide's test metrics over the whole ``test`` channel (streamed; exact sums)."""
    binary = model.binary
    squared = log_loss = 0.0
    count = correct = true_pos = false_pos = false_neg = 0
    for batch in context.batches("test", hp["mini_batch_size"], feature_dim=model.feature_dim, sharded=False):
        labels = labels_of(batch, binary, "test").astype(np.float64)
        y = model.raw_scores(batch.features)
        count += len(labels)
        if not binary:
            squared += float(((y - labels) ** 2).sum())
            continue
        # log(1 + e^-y) for positives, log(1 + e^y) for negatives, computed stably
        log_loss += float((np.logaddexp(0, -y) * labels + np.logaddexp(0, y) * (1 - labels)).sum())
        predicted = y >= 0  # sigmoid(y) >= 0.5
        positive = labels == 1
        correct += int((predicted == positive).sum())
        true_pos += int((predicted & positive).sum())
        false_pos += int((predicted & ~positive).sum())
        false_neg += int((~predicted & positive).sum())
    if count == 0:
        raise DataError("Channel 'test' holds no records")
    if not binary:
        return {"rmse": math.sqrt(squared / count)}
    f1_denominator = 2 * true_pos + false_pos + false_neg
    return {"binary_classification_accuracy": correct / count,
            "binary_classification_cross_entropy": log_loss / count,
            "binary_f_beta": 2 * true_pos / f1_denominator if f1_denominator else 0.0}


def peek(context, hp):
    """The first training batch's features (to choose the device), or None."""
    for batch in context.batches("train", min(hp["mini_batch_size"], 64), feature_dim=hp["feature_dim"]):
        return batch.features
    return None


def train(context):
    from . import fm

    hp = context.hyperparameters
    device = choose_device(peek(context, hp) if context.channels["train"].input_mode == "File" else None)
    log.info("Factorization Machines: predictor_type=%s, feature_dim=%d, num_factors=%d, optimizer=%s, epochs=%d, "
             "mini_batch_size=%d, lr_decay=%g, device=%s", hp["predictor_type"], hp["feature_dim"], hp["num_factors"],
             hp["optimizer"], hp["epochs"], hp["mini_batch_size"], hp["lr_decay"], device)
    trainer = fm.Trainer(hp, device)
    with context.cluster("cpu") as cluster:
        if cluster.world_size > 1:
            log.info("Host %d of %d: gradients of every step are summed over the hosts", cluster.rank + 1,
                     cluster.world_size)
        train_on(context, hp, trainer, cluster)


def train_on(context, hp, trainer, cluster):
    rows_seen = 0
    with context.timings.stage("training"):
        for epoch in range(hp["epochs"]):
            progress = logs.Progress(f"train epoch {epoch + 1}")
            loss, rows = run_epoch(context, trainer, cluster, epoch, hp, progress)
            progress.done()
            rows_seen += rows
            if rows:
                objective = "log loss" if trainer.binary else "squared error / 2"
                log.info("Epoch %d of %d: %d rows on this host, mean training %s %.6g", epoch + 1, hp["epochs"],
                         rows, objective, loss / rows)
            if context.stop.is_set():
                log.warning("Stopped by a signal in epoch %d; saving the model as it is", epoch + 1)
                break
            trainer.end_epoch()
    trainer.finish()
    if not trainer.params.finite():
        raise diverged(hp, "(the parameters hold NaN or infinite values)")
    if rows_seen == 0 and context.stop.is_set():
        raise AlgorithmError("Training was stopped (SIGTERM) before any training record was read; no model saved")
    model = FMModel(*trainer.params.numpy(), hp["predictor_type"])
    if cluster.is_master:
        with context.model_file("model_algo-1") as handle:
            model.save_to(handle)
        log.info("Saved model_algo-1: w0_weight (1,), w1_weight %s, v %s", model.w.shape, model.v.shape)
        if context.has_channel("test") and not context.stop.is_set():
            with context.timings.stage("evaluate"):
                scores = evaluate(context, model, hp)
            context.report_test(scores)
    cluster.barrier()
