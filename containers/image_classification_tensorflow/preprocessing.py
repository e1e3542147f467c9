"""What a Keras backbone expects as input, read from the model itself, and the keras.applications preprocessings.

The container decodes images to float [0, 1]. A backbone may expect something else:

* a leading ``Rescaling``/``Normalization`` chain (Keras tutorials' ``Rescaling(1/255)``; the keras.applications
  families that carry their preprocessing inside: EfficientNet, EfficientNetV2, ConvNeXt, MobileNetV3) tells
  the scale it was written for: an overall factor of at most 1/16 means 8-bit values, [0, 255];
* a keras.applications model saved without its preprocessing (MobileNetV2, ResNet50, DenseNet121, ...) is
  recognised by its name and gets that family's ``preprocess_input`` ("tf": [-1, 1]; "torch": ImageNet
  mean/std; "caffe": BGR minus the ImageNet mean, on [0, 255]);
* anything else gets [0, 1] (the TF Hub convention).
"""

import math
import re
from dataclasses import dataclass

import numpy as np

# keras.applications' preprocess_input modes, from images in [0, 1].
MODES = ("tf", "torch", "caffe")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
MODE_TEXT = {
    "tf": "keras.applications 'tf' preprocessing (to [-1, 1])",
    "torch": "keras.applications 'torch' preprocessing (ImageNet mean/std on [0, 1])",
    "caffe": "keras.applications 'caffe' preprocessing (RGB to BGR, minus the ImageNet mean on [0, 255])",
}
# keras.applications architectures whose models do not preprocess by themselves, by preprocess_input mode.
FAMILIES = {
    "tf": ("MobileNet", "MobileNetV2", "NASNetMobile", "NASNetLarge", "Xception", "InceptionV3",
           "InceptionResNetV2", "ResNet50V2", "ResNet101V2", "ResNet152V2"),
    "torch": ("DenseNet121", "DenseNet169", "DenseNet201"),
    "caffe": ("ResNet50", "ResNet101", "ResNet152", "VGG16", "VGG19"),
}
# The names keras.applications gives those models (model.name), by mode.
MODEL_NAMES = {
    "tf": re.compile(r"^(mobilenet(v2)?_[\d.]+_\d+|nasnet_(mobile|large)|xception|inception_v3|"
                     r"inception_resnet_v2|resnet(50|101|152)v2)$"),
    "torch": re.compile(r"^densenet(121|169|201)$"),
    "caffe": re.compile(r"^(resnet(50|101|152)|vgg(16|19))$"),
}
# Layers in front of the scaling that leave the value range as it is.
RANGE_KEEPING = ("InputLayer", "Resizing", "CenterCrop", "RandomCrop", "RandomFlip", "RandomRotation", "RandomZoom",
                 "RandomTranslation", "ZeroPadding2D", "Flip")
EIGHT_BIT_SCALE = 1 / 16  # an overall factor at most this: written for [0, 255] (1/255, 1/127.5, 1/(0.229*255))


@dataclass(frozen=True)
class InputSpec:
    """How to feed a backbone: images rescaled from [0, 1] to ``input_range``, then ``mode`` (if any)."""

    input_range: tuple = (0.0, 1.0)
    mode: str | None = None
    reason: str = ""

    def describe(self):
        what = MODE_TEXT[self.mode] if self.mode else f"images in [{_num(self.input_range[0])}, " \
                                                       f"{_num(self.input_range[1])}]"
        return f"{what}: {self.reason}" if self.reason else what


def _num(value):
    return f"{value:g}"


def family(architecture):
    """The preprocess_input mode of a keras.applications architecture; "own" when its model preprocesses itself."""
    for mode, members in FAMILIES.items():
        if architecture in members:
            return mode
    return "own"


def apply(x, mode):
    """keras.applications' preprocess_input of ``mode`` as Keras layers, on images in [0, 1]."""
    import keras

    if mode == "tf":
        return keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)
    if mode == "torch":
        return keras.layers.Normalization(mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD],
                                          name="imagenet_mean_std")(x)
    if mode == "caffe":
        x = keras.layers.Rescaling(255.0, name="to_0_255")(x)
        x = keras.ops.flip(x, axis=-1)  # RGB -> BGR
        return keras.layers.Normalization(mean=list(CAFFE_BGR_MEAN), variance=[1.0, 1.0, 1.0],
                                          name="imagenet_bgr_mean")(x)
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def _leading(model):
    """The operations from the input up to the first one that is neither scaling nor range-keeping, entering
    nested models; yields (operation, class name)."""
    for operation in getattr(model, "operations", None) or model.layers:
        name = type(operation).__name__
        if hasattr(operation, "operations") and hasattr(operation, "inputs"):  # a nested Functional/Sequential
            stopped = yield from _leading(operation)
            if stopped:
                return True
            continue
        yield operation, name
        if name not in RANGE_KEEPING + ("Rescaling", "Normalization"):
            return True
    return False


def _affine(operation, name):
    """(scale, offset) per channel of a Rescaling or Normalization layer."""
    if name == "Rescaling":
        scale = np.broadcast_to(np.asarray(operation.scale, np.float64).reshape(-1), (3,))
        offset = np.broadcast_to(np.asarray(operation.offset, np.float64).reshape(-1), (3,))
        return scale, offset
    from keras import ops

    mean = np.asarray(ops.convert_to_numpy(operation.mean), np.float64).reshape(-1)
    variance = np.asarray(ops.convert_to_numpy(operation.variance), np.float64).reshape(-1)
    std = np.sqrt(np.maximum(variance, 1e-12))
    return np.broadcast_to(1 / std, (3,)), np.broadcast_to(-mean / std, (3,))


def _app_mode(model):
    """The preprocess_input mode of a keras.applications model (or one nested first in ``model``)."""
    names = [model.name]
    for operation in getattr(model, "operations", None) or []:
        if type(operation).__name__ == "InputLayer":
            continue
        if hasattr(operation, "operations"):
            names.append(operation.name)
        break
    for name in names:
        for mode, pattern in MODEL_NAMES.items():
            if pattern.match(name):
                return mode, name
    return None, None


def infer(model):
    """The InputSpec a Keras backbone was written for, with the reason in words."""
    scale = np.ones(3)
    seen = []
    for operation, name in _leading(model):
        if name in ("Rescaling", "Normalization"):
            layer_scale, _ = _affine(operation, name)
            scale = scale * layer_scale
            seen.append(f"{name} {operation.name!r}")
        elif name == "Flip":
            scale = scale[::-1]
    if seen:
        factor = float(np.mean(np.abs(scale)))
        layers = " and ".join(seen) + (" multiply" if len(seen) > 1 else " multiplies")
        if factor <= EIGHT_BIT_SCALE:
            return InputSpec((0.0, 255.0), None, f"its leading {layers} values by {factor:.4g} overall "
                                                 f"(1/{1 / factor:.4g}), which is written for 8-bit values")
        return InputSpec((0.0, 1.0), None, f"its leading {layers} values by {factor:.4g} overall, which is written "
                                           "for values in [0, 1]")
    mode, name = _app_mode(model)
    if mode:
        return InputSpec((0.0, 1.0), mode, f"it is the keras.applications model {name!r}, which does not "
                                           "preprocess by itself")
    return InputSpec((0.0, 1.0), None, "it has no leading Rescaling or Normalization layer and is not a known "
                                       "keras.applications model, so the TF Hub convention")


def valid_range(value, where):
    """``input_range`` from backbone.json or model_info.json: two finite numbers, low < high."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return None, f"{where}: input_range must be [low, high]; got {value!r}"
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        return None, f"{where}: input_range must be two finite numbers with low < high; got {value!r}"
    return (low, high), None
