"""Image Classification - TensorFlow, declared: channels, content types, encoders, metrics.

Training is in train.py (data.py, backbone.py, network.py); serving in model.py and encoders.py.
"""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, MetricDefinition

from . import encoders

IMAGE_TYPES = (ct.IMAGE, "image/jpeg", "image/png")
MODEL_TYPES = ("application/x-sagemaker-model",)
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _metric(name):
    return MetricDefinition(name, rf"#metric {name}={NUMBER}")


SPEC = AlgorithmSpec(
    name="image-classification-tensorflow",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("training", IMAGE_TYPES, required=True, input_modes=("File",)),
        ChannelSpec("validation", IMAGE_TYPES, input_modes=("File",)),
        ChannelSpec("model", MODEL_TYPES, input_modes=("File",)),
    ),
    train="containers.image_classification_tensorflow.train:train",
    model="containers.image_classification_tensorflow.model:ImageClassifier",
    request_types=IMAGE_TYPES,
    encoders={
        ct.JSON: encoders.json_encoder,
        ct.JSONLINES: encoders.jsonlines_encoder,
    },
    default_accept=ct.JSON,
    metrics=tuple(_metric(name) for name in (
        "train:accuracy", "train:loss", "train:throughput",
        "validation:accuracy", "validation:loss",
        "validation:precision", "validation:recall", "validation:auc", "validation:prc",
    )),
    tuning_objective="validation:accuracy",
)
