"""The classifier (backbone + dropout + dense head), its optimizer, loss and metrics, and the serving export."""

import keras
import tensorflow as tf

from . import preprocessing
from .data import decode_and_resize

SERVING_INPUT = "image_bytes"
SERVING_OUTPUT = "probabilities"


class DropAll(keras.layers.Layer):
    """dropout_rate 1.0: every feature is dropped while training (keras.layers.Dropout refuses rate 1)."""

    def call(self, inputs, training=False):
        return inputs * 0.0 if training else inputs


def augmentation(hp):
    """The training-only augmentation layers: RandomFlip, RandomRotation, RandomZoom (Keras semantics)."""
    steps = []
    if hp["augmentation_random_flip"] != "None":
        steps.append(keras.layers.RandomFlip(hp["augmentation_random_flip"], name="random_flip"))
    rotation = abs(hp["augmentation_random_rotation"])
    if rotation > 0:
        steps.append(keras.layers.RandomRotation(rotation, name="random_rotation"))
    zoom = abs(hp["augmentation_random_zoom"])
    if zoom > 0:
        # RandomZoom refuses a lower bound of -1 (zooming in 100% leaves no image): cap zooming in at 99%.
        steps.append(keras.layers.RandomZoom((-min(zoom, 0.99), zoom), name="random_zoom"))
    return steps


def build(backbone, num_outputs, hp, train_backbone, augment=()):
    """``image`` (float, [0, 1]) -> [augmentation] -> [rescale to the backbone's input range] -> [its
    keras.applications preprocessing] -> backbone -> [pooling] -> dropout -> dense softmax (or sigmoid) head.

    Returns the classifier, its head and its body: the same layers from after the augmentation to the
    backbone's features (what re-estimating the batch-norm statistics runs)."""
    height, width = backbone.image_size
    inputs = keras.Input((height, width, 3), name="image")
    x = inputs
    for layer in augment:
        x = layer(x)
    body_input = x
    low, high = backbone.input_range
    if (low, high) != (0.0, 1.0):
        x = keras.layers.Rescaling(high - low, offset=low, name="input_range")(x)
    if backbone.mode:
        x = preprocessing.apply(x, backbone.mode)
    backbone.layer.trainable = train_backbone
    x = backbone.layer(x, training=False) if not train_backbone else backbone.layer(x)
    body = keras.Model(body_input, x, name="body")
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    rate = hp["dropout_rate"]
    x = DropAll(name="dropout")(x) if rate >= 1.0 else keras.layers.Dropout(rate, name="dropout")(x)
    head = keras.layers.Dense(num_outputs, activation="sigmoid" if num_outputs == 1 else "softmax",
                              kernel_regularizer=keras.regularizers.L2(hp["regularizers_l2"]), name="head")
    outputs = head(x)
    return keras.Model(inputs, outputs, name="image_classifier"), head, body


def optimizer(hp):
    name, rate = hp["optimizer"], hp["learning_rate"]
    if name == "adam":
        return keras.optimizers.Adam(rate, beta_1=hp["beta_1"], beta_2=hp["beta_2"], epsilon=hp["epsilon"])
    if name in ("sgd", "nesterov"):
        return keras.optimizers.SGD(rate, momentum=hp["momentum"], nesterov=name == "nesterov")
    if name == "rmsprop":
        return keras.optimizers.RMSprop(rate, rho=hp["rho"], momentum=hp["momentum"], epsilon=hp["epsilon"])
    if name == "adagrad":
        return keras.optimizers.Adagrad(rate, initial_accumulator_value=hp["initial_accumulator_value"],
                                        epsilon=hp["epsilon"])
    if name == "adadelta":
        return keras.optimizers.Adadelta(rate, rho=hp["rho"], epsilon=hp["epsilon"])
    raise ValueError(f"unknown optimizer {name!r}")


def loss_and_metrics(hp, binary):
    smoothing = hp["label_smoothing"]
    if not binary:
        return (keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
                [keras.metrics.CategoricalAccuracy(name="accuracy")])
    metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
    extra = {
        "precision": lambda: keras.metrics.Precision(name="precision"),
        "recall": lambda: keras.metrics.Recall(name="recall"),
        "auc": lambda: keras.metrics.AUC(name="auc"),
        "prc": lambda: keras.metrics.AUC(curve="PR", name="prc"),
    }
    if hp["eval_metric"] in extra:
        metrics.append(extra[hp["eval_metric"]]())
    return keras.losses.BinaryCrossentropy(label_smoothing=smoothing), metrics


def export_serving(classifier, path, image_size, method):
    """A SavedModel whose ``serving_default`` takes encoded images (tf.string) and returns probabilities."""
    image_size = tuple(int(v) for v in image_size)
    image_spec = tf.TensorSpec((*image_size, 3), tf.float32)

    def serve(image_bytes):
        images = tf.map_fn(lambda encoded: decode_and_resize(encoded, image_size, method), image_bytes,
                           fn_output_signature=image_spec)
        return {SERVING_OUTPUT: classifier(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None,), tf.string, name=SERVING_INPUT)])
    archive.write_out(str(path), verbose=False)
