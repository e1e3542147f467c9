"""Linear Learner training: resolve the autos, train every model at once, select, save (master), score test.

Cross-hyperparameter rules are settings.check (run at setup); torch (and trainer.py, which needs it) is imported
only inside ``train``.
"""

import logging
import os

from common import logs
from common.accel import pick_device
from common.errors import DataError

from .model import MODEL_FILE
from .settings import resolve

log = logging.getLogger(__name__)

READ_ROWS = 8192  # rows per block read from a channel; the shuffle buffer cuts mini-batches from them
# Several hosts: "gradients" (the default: every mini-batch's gradients are all-reduced, so all hosts take the
# same steps) or "average" (each host trains on its share; models and optimizer states are averaged after every
# epoch). Measured on two real processes (README): equal test AUC, gradients as fast or faster, so it is kept.
SYNC_ENV = "ALGOBOX_LINEAR_LEARNER_SYNC"


def blocks(context, channel, feature_dim, sharded):
    def epoch_blocks(epoch):
        for batch in context.batches(channel, READ_ROWS, epoch=epoch, feature_dim=feature_dim, sharded=sharded):
            yield batch.features, batch.labels, batch.weights

    return epoch_blocks


def evaluate(context, trainer, model, channel, epoch):
    from .metrics import Evaluator

    evaluator = Evaluator(model, trainer.objective(), f_beta=trainer.s.f_beta, top_k=trainer.s.accuracy_top_k)
    for features, labels, _weights in blocks(context, channel, model.feature_dim, sharded=False)(epoch):
        if labels is None:
            raise DataError(f"Channel {channel!r}: records have no labels, so the model cannot be scored")
        trainer._check_labels(labels, channel)
        evaluator.add(features, labels)
    return evaluator.result()


def report(context, channel, scores, settings, epochs_run):
    if settings.predictor_type == "binary_classifier":  # Amazon's key for F-beta, e.g. binary_f_1.000
        logs.quality_metric(context.host, channel, f"binary_f_{settings.f_beta:.3f}", scores["binary_f_beta"])
    if channel == "test":
        context.report_test(scores)
        return
    if context.stop.is_set():
        return
    for name, value in scores.items():
        log.info("#validation_score (%s) : ('%s', %s)", context.host, name, f"{value:.6g}")
        if name == "objective_loss":  # the selected model's, after the per-epoch lines
            context.log_metric("validation:objective_loss", value, epoch=epochs_run)
        else:
            context.log_metric(f"validation:{name}", value)


def train(context):
    settings = resolve(context.hyperparameters, tuning=context.is_tuning)
    for note in settings.notes:
        log.info(note)
    feature_dim = None if settings.feature_dim == "auto" else settings.feature_dim
    train_blocks = blocks(context, "train", feature_dim, sharded=True)
    early = None, None
    if context.resource.world_size == 1:  # (several hosts first agree on the selection split, through torch)
        from .rows import start_rows

        early = start_rows(settings, train_blocks, context.has_channel("validation"), context.stop)
    with context.timings.stage("import torch"):  # while the first epoch is read and shuffled in the background
        from .trainer import Trainer

        device = pick_device()
    log.info("Linear Learner: predictor_type=%s, loss=%s, num_models=%d, optimizer=%s, epochs=%d, "
             "mini_batch_size=%d, device=%s", settings.predictor_type, settings.loss, settings.num_models,
             settings.optimizer, settings.epochs, settings.mini_batch_size, device)
    with context.cluster(device) as cluster:
        sync = os.environ.get(SYNC_ENV, "gradients")
        if sync not in ("average", "gradients"):
            raise DataError(f"{SYNC_ENV}={sync!r}: use average or gradients")
        if cluster.world_size > 1:
            log.info("%d hosts: %s", cluster.world_size, "models averaged after every epoch" if sync == "average"
                     else "gradients all-reduced every mini-batch")
        trainer = Trainer(settings, device, cluster, stop=context.stop, sync=sync, rows=early[0])
        validation = blocks(context, "validation", feature_dim, sharded=False) \
            if context.has_channel("validation") else None
        with context.timings.stage("training"):
            model = trainer.fit(train_blocks, validation, feature_dim, first_epoch=early[1])
        if cluster.is_master:
            model.save(context.paths.model_dir)
            log.info("Saved %s: %d features, %d outputs, threshold %s", MODEL_FILE, model.feature_dim,
                     model.outputs, model.threshold if settings.predictor_type == "binary_classifier" else "n/a")
            if not context.stop.is_set():
                epochs_run = len(trainer.history)
                if validation is not None:
                    with context.timings.stage("validation"):
                        report(context, "validation", evaluate(context, trainer, model, "validation", epochs_run),
                               settings, epochs_run)
                if context.has_channel("test"):
                    with context.timings.stage("evaluate"):
                        report(context, "test", evaluate(context, trainer, model, "test", 0), settings, epochs_run)
        cluster.barrier()
