"""Precise batch-norm statistics: re-estimate a trained backbone's BatchNormalization moving statistics.

Validation and serving run the network in inference mode, on each BatchNormalization layer's moving mean and
variance. Those are exponential averages (momentum 0.99 to 0.9997 in keras.applications) of the batch statistics
seen while the weights were still changing, so after a few dozen steps they are still near their initial values
(mean 0, variance 1), and long after they lag the weights. pycls and Detectron ("precise BN") instead compute
them for the current weights, from the training images: the average over batches of each batch's mean, and the
average of its variance plus its squared mean minus the squared average mean (the variance over all images).
"""

import logging
import math
import time

log = logging.getLogger(__name__)

PRECISE_BN_IMAGES = 1024  # training images per estimate (pycls uses 8,192 on ImageNet; Detectron2 200 batches)


def batch_norm_layers(layer):
    """The trainable keras BatchNormalization layers in ``layer`` and its nested models."""
    import keras

    found = []
    for inner in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(inner, keras.layers.BatchNormalization) and inner.trainable and not inner.renorm:
            found.append(inner)
    return found


class PreciseBatchNorm:
    """Re-estimates the moving statistics of ``layers`` by running ``body`` (the classifier from its input to the
    backbone's features, without augmentation or the head) in training mode over up to PRECISE_BN_IMAGES
    images of ``dataset``."""

    def __init__(self, body, layers, dataset, num_images, batch_size):
        self.body = body
        self.layers = layers
        self.dataset = dataset
        self.images = min(num_images, PRECISE_BN_IMAGES)
        self.batches = max(1, math.ceil(self.images / batch_size))
        self.fresh = False  # whether the statistics were estimated for the current weights
        self.count = 0
        self.step = None

    def describe(self):
        momenta = sorted({float(layer.momentum) for layer in self.layers})
        shown = f"{momenta[0]:g}" if len(momenta) == 1 else f"{momenta[0]:g} to {momenta[-1]:g}"
        return (f"the backbone trains and has {len(self.layers)} BatchNormalization layers (moving-average momentum "
                f"{shown}): their statistics are re-estimated for the current weights on {self.images} training "
                f"images ({self.batches} batches, no augmentation) before each validation and before saving "
                "(precise BN), so validation and serving use those instead of the moving averages")

    def _forward(self):
        import tensorflow as tf

        layers, body = self.layers, self.body

        @tf.function(reduce_retracing=True)
        def step(images):
            body(images, training=True)
            return ([tf.identity(layer.moving_mean) for layer in layers],
                    [tf.identity(layer.moving_variance) for layer in layers])

        return step

    def estimate(self):
        """Set every layer's moving mean and variance to those of up to PRECISE_BN_IMAGES training images; returns
        the seconds it took."""
        import numpy as np

        started = time.perf_counter()
        if self.step is None:
            self.step = self._forward()
        saved = [(layer.momentum, layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in self.layers]
        means = [np.zeros(layer.moving_mean.shape, np.float64) for layer in self.layers]
        squares = [np.zeros(layer.moving_variance.shape, np.float64) for layer in self.layers]
        batches = 0
        try:
            for layer in self.layers:
                layer.momentum = 0.0  # the moving statistics become the batch's (read when the step is traced)
            for images, _ in self.dataset.take(self.batches):
                batch_means, batch_variances = self.step(images)
                for i, (mean, variance) in enumerate(zip(batch_means, batch_variances)):
                    mean = mean.numpy().astype(np.float64)
                    means[i] += mean
                    squares[i] += variance.numpy().astype(np.float64) + mean * mean
                batches += 1
        finally:
            for layer, (momentum, _, _) in zip(self.layers, saved):
                layer.momentum = momentum
        if not batches:  # no readable training image: keep what there was
            for layer, (_, mean, variance) in zip(self.layers, saved):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
            return time.perf_counter() - started
        for layer, mean, square in zip(self.layers, means, squares):
            mean /= batches
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(np.maximum(square / batches - mean * mean, 0.0).astype(np.float32))
        self.fresh = True
        self.count += 1
        return time.perf_counter() - started
