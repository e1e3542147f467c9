"""Fine-tune a backbone + dense head on class folders; save a SavedModel that classifies encoded images."""

import json
import logging
import math
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from common.logs import metric  # noqa: E402
from common.errors import AlgorithmError, ChannelError, HyperparameterError  # noqa: E402

from . import backbone as backbones  # noqa: E402
from . import batchnorm  # noqa: E402
from . import data  # noqa: E402

log = logging.getLogger(__name__)

SEED = 7
CHANCE_EPOCHS = 3  # epochs in a row at chance before the warning
CHANCE_MARGIN = 0.05  # "at chance": training accuracy at most this (or two standard errors) above chance
LABELS_FILE = "labels_info.json"
INDEX_FILE = "class_label_to_prediction_index.json"


def check_hyperparameters(hp):
    for name, value in hp.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise HyperparameterError(f"Invalid hyperparameter {name}={value!r}: must be a finite number")


def read_images(context):
    class_names, train = data.scan_training(context.paths.channel_dir("training"))
    if context.has_channel("validation"):
        validation = data.scan_validation(context.paths.channel_dir("validation"), class_names)
        source = "the validation channel"
    else:
        train, validation = data.hold_out(train)
        source = f"{data.VALIDATION_FRACTION:.0%} of each class held out of training (no validation channel)"
    log.info("%d classes %s; %d training images %s; %d validation images from %s", len(class_names), class_names,
             len(train), train.counts(len(class_names)), len(validation), source)
    if not len(validation):
        log.warning("No validation images (classes too small to hold any out); validation metrics are skipped")
    return class_names, train, validation


def strategy():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        chosen = tf.distribute.MirroredStrategy()
        log.info("Training on %d GPUs with MirroredStrategy; batch_size is the global batch", len(gpus))
        return chosen
    log.info("Training on %s", "1 GPU" if gpus else "the CPU")
    return tf.distribute.get_strategy()


def keep_head(hp, loaded, class_names, binary):
    """Incremental training: same classes required; whether the earlier dense head is kept."""
    previous = loaded.previous
    if previous is None:
        return False
    if list(previous["labels"]) != list(class_names):
        raise ChannelError(
            f"Incremental training needs the same classes as the model in the model channel: it was trained on "
            f"{previous['labels']}, the training channel has {class_names}. Train from a backbone instead to "
            "change the class set"
        )
    was_binary = bool(previous.get("binary_mode", False))
    choice = hp["reinitialize_top_layer"]
    if was_binary != binary:
        if choice == "False":
            raise HyperparameterError(
                f"reinitialize_top_layer='False' keeps the earlier dense layer, but it was trained with "
                f"binary_mode={was_binary} and this job has binary_mode={binary}; set it to 'True' or 'Auto'"
            )
        log.warning("binary_mode changed since the earlier job, so the top layer is re-initialized")
        return False
    return choice != "True"


class ChanceWatch:
    """Warns once when training accuracy stays at chance (the largest class's share) for CHANCE_EPOCHS epochs.

    "At chance" is at most CHANCE_MARGIN above it, or two standard errors of an epoch's accuracy when guessing
    (sqrt(p (1 - p) / n) for n images): small training sets make it noisy."""

    def __init__(self, counts, hp, loaded):
        total = sum(counts)
        self.chance = max(counts) / total if total else 0.0
        noise = 2 * math.sqrt(self.chance * (1 - self.chance) / total) if total else 0.0
        self.limit = self.chance + max(CHANCE_MARGIN, noise)
        self.hp = hp
        self.loaded = loaded
        self.streak = 0
        self.warned = False

    def update(self, accuracy):
        """The warning's text when this epoch completes a streak at chance, else None."""
        if accuracy is None or self.warned:
            return None
        self.streak = self.streak + 1 if accuracy <= self.limit else 0
        if self.streak < CHANCE_EPOCHS:
            return None
        self.warned = True
        hp, loaded = self.hp, self.loaded
        frozen = hp["train_only_on_top_layer"] == "True"
        return (
            f"Training accuracy has stayed at chance ({self.chance:.3f}, the largest class's share) for "
            f"{self.streak} epochs: the model is not learning. Likely causes: (1) the input range: the backbone "
            f"gets {loaded.input_describe()}; if it expects another, set \"input_range\" in "
            f"{backbones.BACKBONE_INFO} next to it; (2) "
            + ("a frozen backbone (train_only_on_top_layer='True'): only the top layer trains, on features that may "
               "not tell these classes apart; try 'False'" if frozen else
               "the backbone trains too (train_only_on_top_layer='False'); a randomly initialised backbone needs "
               "far more data and epochs than a pretrained one")
            + f"; (3) the learning rate ({hp['learning_rate']:g} with {hp['optimizer']}): too small to move the "
              "weights, or so large that training diverges"
        )


def callbacks(context, hp, validation_data, num_train, batch_size, watch=None, precise=None):
    import keras

    class Report(keras.callbacks.Callback):
        """Per epoch: validation, images/s and metric lines; stops at the next batch after SIGTERM."""

        def on_epoch_begin(self, epoch, logs=None):
            self.batches = 0
            self.start = self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if precise is not None:
                precise.fresh = False
            self.last = time.perf_counter()
            if context.stop.is_set():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            images = min(self.batches * batch_size, num_train)
            seconds = max(self.last - self.start, 1e-9)
            line = (f"Epoch {epoch + 1}/{hp['epochs']}: {images} training images in {seconds:.1f} s "
                    f"({images / seconds:.1f} images/s); train "
                    + ", ".join(f"{k} {v:.4f}" for k, v in logs.items() if not k.startswith("val_")))
            metric("train:throughput", images / seconds, epoch=epoch + 1)
            for name, value in list(logs.items()):
                if not name.startswith("val_") and name != "learning_rate":
                    metric(f"train:{name}", value, epoch=epoch + 1)
            if validation_data is not None and not context.stop.is_set():
                if precise is not None:
                    line += f"; batch-norm statistics re-estimated ({precise.estimate():.1f} s)"
                started = time.perf_counter()
                results = self.model.evaluate(validation_data, verbose=0, return_dict=True)
                line += f"; validation ({time.perf_counter() - started:.1f} s) " + ", ".join(
                    f"{k} {v:.4f}" for k, v in results.items())
                for name, value in results.items():
                    logs[f"val_{name}"] = value
                    metric(f"validation:{name}", value, epoch=epoch + 1)
            log.info("%s", line)
            warning = watch.update(logs.get("accuracy")) if watch is not None else None
            if warning:
                log.warning("%s", warning)
            if context.stop.is_set():
                self.model.stop_training = True

    chosen = [Report()]
    if hp["early_stopping"] == "True" and validation_data is not None:
        chosen.append(keras.callbacks.EarlyStopping(monitor="val_loss", mode="min",
                                                    min_delta=hp["early_stopping_min_delta"],
                                                    patience=hp["early_stopping_patience"],
                                                    restore_best_weights=True))
    return chosen


def save(context, classifier, head, loaded, class_names, binary, hp):
    import numpy as np

    from .network import export_serving

    model_dir = context.paths.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    export_serving(classifier, model_dir, loaded.image_size, hp["image_resize_interpolation"])
    backbone_name = backbones.save_backbone(loaded, model_dir)
    kernel, bias = head.get_weights()
    np.savez(model_dir / "head.npz", kernel=kernel, bias=bias)
    (model_dir / LABELS_FILE).write_text(json.dumps({"labels": class_names}))
    (model_dir / INDEX_FILE).write_text(json.dumps({name: i for i, name in enumerate(class_names)}))
    info = {
        "algorithm": "image-classification-tensorflow",
        "labels": class_names,
        "binary_mode": binary,
        "image_size": list(loaded.image_size),
        "input_range": list(loaded.input_range),
        "preprocessing": loaded.mode,
        "image_resize_interpolation": hp["image_resize_interpolation"],
        "backbone": backbone_name,
        "head": "head.npz",
    }
    (model_dir / backbones.MODEL_INFO).write_text(json.dumps(info, indent=2))
    log.info("Saved the serving SavedModel, %s, %s and %s to %s", backbone_name, LABELS_FILE, INDEX_FILE, model_dir)


def stop_if_asked(context, stage):
    """SIGTERM before any training step: nothing to save, so end now rather than after the next stage."""
    if context.stop.is_set():
        raise AlgorithmError(f"Training was stopped (SIGTERM) {stage}, before the first training step; "
                             "no model was saved")


def precise_batch_norm(body, loaded, train_backbone, train_data, num_train, batch_size):
    """The PreciseBatchNorm of a trained backbone with BatchNormalization layers, else None; logs which."""
    if not train_backbone:
        log.info("Batch-norm statistics: the backbone is frozen (train_only_on_top_layer='True') and runs in "
                 "inference mode, so its statistics stay as they are")
        return None
    layers = batchnorm.batch_norm_layers(loaded.layer)
    if not layers:
        if loaded.kind == "saved_model":
            log.info("Batch-norm statistics: the SavedModel backbone's are its own (not Keras layers this container "
                     "can re-estimate); they follow its moving averages")
        return None
    precise = batchnorm.PreciseBatchNorm(body, layers, train_data, num_train, batch_size)
    log.info("Batch-norm statistics: %s", precise.describe())
    return precise


def train(context):
    hp = context.hyperparameters
    check_hyperparameters(hp)
    hosts = list(context.resource.hosts)
    if len(hosts) > 1 and context.host != hosts[0]:
        log.warning("Image classification trains on one instance (its GPUs); %s leaves the work to %s",
                    context.host, hosts[0])
        return
    if not context.has_channel("model"):
        raise ChannelError(f"The model channel is required: it holds the backbone to fine-tune (this algorithm "
                           f"downloads nothing). {backbones.PACK_HINT}")
    binary = hp["binary_mode"] == "True"
    with context.timings.stage("read"):
        class_names, train_images, val_images = read_images(context)
    if binary and len(class_names) != 2:
        raise HyperparameterError(f"binary_mode='True' needs exactly 2 classes; the training channel has "
                                  f"{len(class_names)}: {class_names}")

    stop_if_asked(context, "while reading the images")
    import keras

    from . import network

    stop_if_asked(context, "while importing TensorFlow")
    keras.utils.set_random_seed(SEED)
    distribution = strategy()
    with context.timings.stage("build"), distribution.scope():
        loaded = backbones.load(context.paths.channel_dir("model"), context.scratch("algobox-backbone-"))
        keep = keep_head(hp, loaded, class_names, binary)
        train_backbone = hp["train_only_on_top_layer"] != "True"
        augment = network.augmentation(hp) if hp["augmentation"] == "True" else []
        classifier, head, body = network.build(loaded, 1 if binary else len(class_names), hp, train_backbone, augment)
        if keep:
            head.set_weights([loaded.head["kernel"], loaded.head["bias"]])
            log.info("Kept the top layer of the earlier model (reinitialize_top_layer=%s)",
                     hp["reinitialize_top_layer"])
        loss, metrics = network.loss_and_metrics(hp, binary)
        classifier.compile(optimizer=network.optimizer(hp), loss=loss, metrics=metrics)
    trainable = sum(int(w.shape.num_elements() or 0) for w in classifier.trainable_weights)
    log.info("Backbone %s (%s) takes %s images in %s%s; %d trainable parameters (%s)", loaded.source.name,
             loaded.kind, loaded.image_size, list(loaded.input_range),
             f" with {loaded.mode!r} preprocessing" if loaded.mode else "", trainable,
             "backbone and top layer" if train_backbone else "top layer only")

    method, batch_size = hp["image_resize_interpolation"], hp["batch_size"]
    train_data = data.dataset(train_images, len(class_names), loaded.image_size, method, batch_size,
                              training=True, binary=binary)
    val_data = (data.dataset(val_images, len(class_names), loaded.image_size, method, batch_size,
                             training=False, binary=binary) if len(val_images) else None)
    watch = ChanceWatch(train_images.counts(len(class_names)), hp, loaded)
    with distribution.scope():
        precise = precise_batch_norm(body, loaded, train_backbone, train_data, len(train_images), batch_size)
    chosen = callbacks(context, hp, val_data, len(train_images), batch_size, watch, precise)
    stop_if_asked(context, "while building the network")
    context.started()  # from here a SIGTERM saves the model of the epochs trained so far
    with context.timings.stage("fit"), warnings.catch_warnings():
        # The pipeline's length is unknown until its first pass (corrupt files are skipped); Keras says so.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        classifier.fit(train_data, epochs=hp["epochs"], verbose=0, shuffle=False, callbacks=chosen)
    for callback in chosen:
        if isinstance(callback, keras.callbacks.EarlyStopping):
            if callback.stopped_epoch:
                log.info("Early stopping after epoch %d: validation loss has not improved by %g for %d epochs",
                         callback.stopped_epoch + 1, hp["early_stopping_min_delta"], hp["early_stopping_patience"])
            if callback.best_weights is not None:
                log.info("Keeping the weights of epoch %d (lowest validation loss %.4f)", callback.best_epoch + 1,
                         callback.best)
    if precise is not None and not precise.fresh:  # trained on since the last estimate (no validation, SIGTERM)
        with context.timings.stage("batch_norm"):
            seconds = precise.estimate()
        log.info("Batch-norm statistics re-estimated for the weights to save on %d training images in %.1f s",
                 precise.images, seconds)
    with context.timings.stage("save"):
        save(context, classifier, head, loaded, class_names, binary, hp)
