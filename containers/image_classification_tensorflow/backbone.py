"""The ``model`` channel: a backbone to fine-tune, or a model this algorithm trained (incremental training).

Accepted, packed as ``model.tar.gz`` (or any one ``.tar.gz``/``.tgz``/``.tar``) or as the unpacked files:

* a Keras model file (``.keras`` or ``.h5``) that maps float images to a feature vector (or a feature map, which
  gets global average pooling); the value range it expects is read from the model (preprocessing.py);
* a TensorFlow 2 SavedModel, as TF Hub publishes feature-vector models: ``__call__(images, training=...)``,
  images in [0, 1]; or a SavedModel with a ``serving_default`` signature of one image input;
* the model directory of an earlier training job of this algorithm (it holds ``model_info.json``).

An optional ``backbone.json`` next to the model gives ``{"image_size": [height, width], "input_range": [lo, hi]}``
(or ``"preprocessing": "tf" | "torch" | "caffe"`` instead of ``input_range``): the size for models whose input size
is not fixed, and the value range when what the model suggests is wrong; ``scripts/pack_backbone.py`` writes it.
"""

import json
import logging
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import ChannelError
from common.model_dir import safe_extract

from . import preprocessing
from .preprocessing import InputSpec

log = logging.getLogger(__name__)

BACKBONE_INFO = "backbone.json"
MODEL_INFO = "model_info.json"
KERAS_SUFFIXES = (".keras", ".h5")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
DEFAULT_IMAGE_SIZE = (224, 224)
FEATURES_ENDPOINT = "features"  # how this algorithm saves a SavedModel backbone (see save_backbone)
FEATURES_TRAINING_ENDPOINT = "features_training"
PACK_HINT = ("Pack a backbone with `python scripts/pack_backbone.py --architecture MobileNetV2 --image-size 224 "
             "--output model.tar.gz` (or --saved-model DIR for a TF Hub feature-vector model you downloaded) and "
             "pass it as the `model` channel; see containers/image_classification_tensorflow/README.md")


@dataclass
class Backbone:
    """A loaded backbone layer and how to feed it."""

    layer: object
    kind: str  # "keras" or "saved_model"
    image_size: tuple
    input_range: tuple = (0.0, 1.0)
    mode: str | None = None  # a keras.applications preprocess_input mode applied after input_range
    input_reason: str = ""  # why this input range (logged; named by the chance-accuracy warning)
    source: Path | None = None
    previous: dict | None = None  # model_info.json of the earlier job, for incremental training
    head: dict = field(default_factory=dict)  # {"kernel": ..., "bias": ...} of the earlier job's dense layer

    def input_describe(self):
        return InputSpec(self.input_range, self.mode, self.input_reason).describe()


def unpack(channel_dir, scratch=None):
    """The directory holding the model files: the channel itself or its one archive, safely extracted into
    ``scratch`` (the job's ``context.scratch()``, removed when the job ends; a new temporary folder without it)."""
    channel_dir = Path(channel_dir)
    if not channel_dir.is_dir():
        raise ChannelError(f"The model channel has no directory at {channel_dir}")
    entries = [p for p in channel_dir.iterdir() if not p.name.startswith(".")]
    archives = [p for p in entries if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)]
    if len(archives) == 1 and len(entries) == 1:
        target = Path(scratch) if scratch is not None else Path(tempfile.mkdtemp(prefix="algobox-backbone-"))
        log.info("Unpacking %s", archives[0])
        try:
            return safe_extract(archives[0], target)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ChannelError(f"The model channel's {archives[0].name} is not a readable tar archive: {exc}") from None
    if archives:
        raise ChannelError(f"The model channel holds {len(entries)} entries including the archive(s) "
                           f"{[a.name for a in archives]}; give one model.tar.gz alone, or the unpacked files")
    return channel_dir


def _find(root, predicate, depth=3):
    found, frontier = [], [root]
    for _ in range(depth + 1):
        next_frontier = []
        for folder in frontier:
            for path in sorted(folder.iterdir()):
                if path.name.startswith("."):
                    continue
                if predicate(path):
                    found.append(path)
                elif path.is_dir():
                    next_frontier.append(path)
        frontier = next_frontier
    return found


def _read_json(path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ChannelError(f"The model channel's {path.name} is not valid JSON: {exc}") from None


def _size(value, where):
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ChannelError(f"{where}: image_size must be [height, width]; got {value!r}") from None
    if height < 1 or width < 1:
        raise ChannelError(f"{where}: image_size must be positive; got {value!r}")
    return height, width


def _info(folder):
    """backbone.json settings next to a model (or in the channel root)."""
    for candidate in (folder / BACKBONE_INFO, folder.parent / BACKBONE_INFO):
        if candidate.is_file():
            info = _read_json(candidate)
            result = {}
            if "image_size" in info:
                result["image_size"] = _size(info["image_size"], str(candidate))
            if "input_range" in info:
                result["input_range"], problem = preprocessing.valid_range(info["input_range"], str(candidate))
                if problem:
                    raise ChannelError(problem)
            if "preprocessing" in info:
                mode = info["preprocessing"]
                if mode not in preprocessing.MODES:
                    raise ChannelError(f"{candidate}: preprocessing must be one of {list(preprocessing.MODES)}; "
                                       f"got {mode!r}")
                if result.get("input_range", (0.0, 1.0)) != (0.0, 1.0):
                    raise ChannelError(f"{candidate}: preprocessing {mode!r} works on images in [0, 1]; give "
                                       "either preprocessing or input_range, not both")
                result["mode"] = mode
            if "input_range" in result or "mode" in result:
                result["input_from"] = f"set in {candidate.name}"
            return result
    return {}


def load(channel_dir, scratch=None):
    """Load the backbone (and, for incremental training, the earlier head) from the model channel (an archive is
    unpacked into ``scratch``)."""
    root = unpack(channel_dir, scratch)
    info_files = _find(root, lambda p: p.name == MODEL_INFO and p.is_file(), depth=1)
    if info_files:
        return _load_previous(info_files[0].parent)
    keras_files = _find(root, lambda p: p.is_file() and p.name.lower().endswith(KERAS_SUFFIXES))
    saved_models = _find(root, lambda p: p.is_dir() and (p / "saved_model.pb").is_file())
    if keras_files:
        if len(keras_files) > 1:
            raise ChannelError(f"The model channel holds several Keras model files "
                               f"{[str(p.relative_to(root)) for p in keras_files]}; give exactly one")
        if saved_models:
            log.warning("The model channel holds both %s and a SavedModel; using the Keras file", keras_files[0].name)
        return load_keras(keras_files[0], **_info(keras_files[0].parent))
    if len(saved_models) > 1:
        raise ChannelError(f"The model channel holds several SavedModels "
                           f"{[str(p.relative_to(root)) for p in saved_models]}; give exactly one")
    if saved_models:
        return load_saved_model(saved_models[0], **_info(saved_models[0]))
    raise ChannelError("The model channel holds neither a Keras model file (.keras, .h5) nor a TensorFlow "
                       f"SavedModel (saved_model.pb). {PACK_HINT}")


def _load_previous(folder):
    previous = _read_json(folder / MODEL_INFO)
    try:
        backbone_path = folder / previous["backbone"]
        head_path = folder / previous["head"]
        settings = {"image_size": _size(previous["image_size"], MODEL_INFO),
                    "input_range": tuple(previous.get("input_range", (0.0, 1.0))),
                    "mode": previous.get("preprocessing"),
                    "input_from": "as the earlier job of this algorithm fed it"}
        labels = list(previous["labels"])
    except (KeyError, TypeError) as exc:
        raise ChannelError(f"The model channel's {MODEL_INFO} lacks {exc}; is it from this algorithm?") from None
    if not labels:
        raise ChannelError(f"The model channel's {MODEL_INFO} has no labels")
    if backbone_path.is_file():
        backbone = load_keras(backbone_path, **settings)
    else:
        backbone = load_saved_model(backbone_path, **settings)
    with np.load(head_path) as head:
        backbone.head = {"kernel": head["kernel"], "bias": head["bias"]}
    backbone.previous = previous
    log.info("Incremental training from a model this algorithm trained: %d classes %s", len(labels), labels)
    return backbone


def load_keras(path, image_size=None, input_range=None, mode=None, input_from=None):
    """A Keras backbone; without ``input_from`` (backbone.json, model_info.json) its input is inferred."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # a wrong or custom-layer file: the user's to fix
        raise ChannelError(f"Cannot load the Keras model {path.name} from the model channel: "
                           f"{type(exc).__name__}: {exc}") from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[-1] not in (3, None):
        raise ChannelError(f"The Keras model {path.name} must take one batch of (height, width, 3) images; "
                           f"its input shape is {model.input_shape}")
    output_shape = model.output_shape
    if isinstance(output_shape, list) or len(output_shape) not in (2, 4):
        raise ChannelError(f"The Keras model {path.name} must output one feature vector (batch, features) or "
                           f"feature map (batch, h, w, channels); its output shape is {model.output_shape}")
    size = _resolve_size(shape[1:3], image_size, path.name)
    inferred = preprocessing.infer(model)
    if input_from is None:
        chosen = inferred
    else:
        chosen = InputSpec(tuple(float(v) for v in (input_range or (0.0, 1.0))), mode, input_from)
        if (chosen.input_range, chosen.mode) != (inferred.input_range, inferred.mode):
            log.warning("The backbone's input is %s, which overrides what %s suggests by itself: %s", input_from,
                        path.name, inferred.describe())
    log.info("Backbone %s input: %s", path.name, chosen.describe())
    return Backbone(model, "keras", size, chosen.input_range, chosen.mode, chosen.reason, path)


def _resolve_size(fixed, configured, name):
    if fixed[0] and fixed[1]:
        fixed = (int(fixed[0]), int(fixed[1]))
        if configured and tuple(configured) != fixed:
            log.warning("%s takes %s images; ignoring image_size %s from %s", name, fixed, configured, BACKBONE_INFO)
        return fixed
    if configured:
        return tuple(configured)
    log.warning("%s accepts any image size and no %s gives one; using %s", name, BACKBONE_INFO, DEFAULT_IMAGE_SIZE)
    return DEFAULT_IMAGE_SIZE


def _saved_model_style(loaded):
    if hasattr(loaded, FEATURES_ENDPOINT) and hasattr(loaded, FEATURES_TRAINING_ENDPOINT):
        return "algobox", FEATURES_ENDPOINT
    if hasattr(loaded, "__call__") and getattr(loaded.__call__, "concrete_functions", None):
        return "hub", "__call__"
    if "serving_default" in loaded.signatures:
        return "signature", "serving_default"
    raise ChannelError("The SavedModel in the model channel has neither a __call__ function (TF Hub TF2 "
                       "format) nor a serving_default signature")


def _input_spec(function):
    concrete = function.concrete_functions if hasattr(function, "concrete_functions") else [function]
    for fn in concrete:
        args, kwargs = fn.structured_input_signature
        specs = [a for a in list(args) + list(kwargs.values()) if hasattr(a, "shape") and hasattr(a, "dtype")]
        if specs:
            return specs[0], any(isinstance(a, bool) for a in args) or "training" in kwargs
    return None, False


def load_saved_model(path, image_size=None, input_range=None, mode=None, input_from=None):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ChannelError(f"Cannot load the SavedModel {path} from the model channel: {type(exc).__name__}: "
                           f"{exc}") from None
    style, endpoint = _saved_model_style(loaded)
    function = getattr(loaded, endpoint) if style != "signature" else loaded.signatures[endpoint]
    spec, takes_training = _input_spec(function)
    if spec is None or spec.shape.rank != 4:
        raise ChannelError(f"The SavedModel {path} must take one batch of (height, width, 3) images; its "
                           f"input is {spec}")
    size = _resolve_size(tuple(spec.shape)[1:3], image_size, f"The SavedModel {path.name}")
    layer = saved_model_layer(path, style, endpoint, takes_training)
    chosen = (InputSpec(tuple(float(v) for v in (input_range or (0.0, 1.0))), mode, input_from) if input_from else
              InputSpec((0.0, 1.0), None, f"a SavedModel says nothing about it; [0, 1] is the TF Hub convention "
                                          f"(set input_range in {BACKBONE_INFO} if it expects another)"))
    log.info("Backbone %s input: %s", path.name, chosen.describe())
    return Backbone(layer, "saved_model", size, chosen.input_range, chosen.mode, chosen.reason, path)


def saved_model_layer(path, style, endpoint, takes_training):
    import keras

    class SavedModelBackbone(keras.layers.TFSMLayer):
        """A SavedModel as a Keras layer whose weights train; ``training`` reaches TF Hub ``__call__``s."""

        def _add_existing_weight(self, weight):
            # TFSMLayer keeps the ":0" of TF variable names, which optimizers refuse in their slot names.
            variable = keras.Variable(initializer=weight, trainable=weight.trainable, dtype=weight.dtype,
                                      shape=weight.shape, name=re.sub(r"[^A-Za-z0-9_.-]", "_", weight.name))
            self._track_variable(variable)

        def call(self, inputs, training=False):
            if style == "hub":
                outputs = (self.call_endpoint_fn(inputs, training=bool(training)) if takes_training
                           else self.call_endpoint_fn(inputs))
            else:
                outputs = super().call(inputs, training=training)
            if isinstance(outputs, dict):
                outputs = outputs[sorted(outputs)[0]] if len(outputs) == 1 else _feature_output(outputs)
            return outputs

    training_endpoint = FEATURES_TRAINING_ENDPOINT if style == "algobox" else None
    return SavedModelBackbone(str(path), call_endpoint=endpoint, call_training_endpoint=training_endpoint,
                              name="backbone")


def _feature_output(outputs):
    for key in sorted(outputs):
        if "feature" in key.lower() or "pool" in key.lower():
            return outputs[key]
    raise ChannelError(f"The SavedModel's serving_default signature has outputs {sorted(outputs)}; "
                       "cannot tell which one is the feature vector")


def save_backbone(backbone, model_dir):
    """Save the fine-tuned backbone next to the serving model; returns its name inside ``model_dir``."""
    if backbone.kind == "keras":
        name = "backbone.keras"
        backbone.layer.save(model_dir / name)
        return name
    import keras
    import tensorflow as tf

    name = "backbone"
    layer = backbone.layer
    spec = tf.TensorSpec((None, *backbone.image_size, 3), tf.float32, name="images")
    archive = keras.export.ExportArchive()
    archive.track(layer)
    archive.add_endpoint(FEATURES_ENDPOINT, lambda x: layer(x, training=False), input_signature=[spec])
    archive.add_endpoint(FEATURES_TRAINING_ENDPOINT, lambda x: layer(x, training=True), input_signature=[spec])
    archive.write_out(str(model_dir / name), verbose=False)
    return name
