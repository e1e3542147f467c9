"""Linear Learner training: resolve the autos, train every model at once, select, save (master), score test.

torch (and trainer.py, which needs it) is imported only after the settings resolve, so a bad hyperparameter
fails in a moment.
"""

import logging

from common import logs
from common.distributed import Cluster

from .model import LinearModel
from .settings import resolve

log = logging.getLogger(__name__)

READ_ROWS = 8192  # rows per block read from a channel; the shuffle buffer cuts mini-batches from them
TUNING_KEY = "_tuning_objective_metric"


def pick_device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def check(hp):
    """Cross-hyperparameter rules the schema cannot express (HyperparameterError)."""
    resolve(hp)


def blocks(context, channel, feature_dim, sharded):
    def epoch_blocks(epoch):
        for batch in context.batches(channel, READ_ROWS, epoch=epoch, feature_dim=feature_dim, sharded=sharded):
            yield batch.features, batch.labels, getattr(batch, "weights", None)

    return epoch_blocks


def evaluate(context, trainer, model, channel, epoch):
    from .metrics import Evaluator

    evaluator = Evaluator(model, trainer.objective(), f_beta=trainer.s.f_beta, top_k=trainer.s.accuracy_top_k)
    for features, labels, _weights in blocks(context, channel, model.feature_dim, sharded=False)(epoch):
        if labels is None:
            from common.errors import DataError

            raise DataError(f"Channel {channel!r}: records have no labels, so the model cannot be scored")
        trainer._check_labels(labels, channel)
        evaluator.add(features, labels)
    return evaluator.result()


def report(context, channel, scores, settings):
    for name, value in scores.items():
        logs.quality_metric(context.host, channel, name, value)
        if channel == "test":
            logs.test_score(context.host, name, value)
        else:
            log.info("#validation_score (%s) : ('%s', %s)", context.host, name, f"{value:.6g}")
    if settings.predictor_type == "binary_classifier":  # Amazon's key for F-beta, e.g. binary_f_1.000
        logs.quality_metric(context.host, channel, f"binary_f_{settings.f_beta:.3f}", scores["binary_f_beta"])


def train(context):
    hp = context.hyperparameters
    tuning = TUNING_KEY in context.config.hyperparameters
    settings = resolve(hp, tuning=tuning, has_validation=context.has_channel("validation"))
    for note in settings.notes:
        log.info(note)
    from .trainer import Trainer

    device = pick_device()
    feature_dim = None if settings.feature_dim == "auto" else settings.feature_dim
    log.info("Linear Learner: predictor_type=%s, loss=%s, num_models=%d, optimizer=%s, epochs=%d, "
             "mini_batch_size=%d, device=%s", settings.predictor_type, settings.loss, settings.num_models,
             settings.optimizer, settings.epochs, settings.mini_batch_size, device)
    cluster = Cluster(context.resource, device).start()
    trainer = Trainer(settings, device, cluster, stop=context.stop)
    validation = blocks(context, "validation", feature_dim, sharded=False) \
        if context.has_channel("validation") else None
    with context.timings.stage("training"):
        model = trainer.fit(blocks(context, "train", feature_dim, sharded=True), validation, feature_dim)
    if cluster.is_master:
        model.save(context.paths.model_dir)
        log.info("Saved model_algo-1: %d features, %d outputs, threshold %s", model.feature_dim, model.outputs,
                 model.threshold if settings.predictor_type == "binary_classifier" else "n/a")
        if not context.stop.is_set():
            if validation is not None:
                with context.timings.stage("validation"):
                    report(context, "validation", evaluate(context, trainer, model, "validation",
                                                           len(trainer.history)), settings)
            if context.has_channel("test"):
                with context.timings.stage("evaluate"):
                    report(context, "test", evaluate(context, trainer, model, "test", 0), settings)
    cluster.barrier()
    cluster.stop()


__all__ = ["LinearModel", "train", "check"]
