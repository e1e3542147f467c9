"""Image Classification - TensorFlow, declared: channels, content types, encoders, metrics.

Training is in train.py (data.py, backbone.py, network.py); serving in model.py and encoders.py.
"""

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, Metric

IMAGE_TYPES = (ct.IMAGE, "image/jpeg", "image/png")  # common/'s image codec also knows bmp and gif
MODEL_TYPES = ("application/x-sagemaker-model",)

SPEC = AlgorithmSpec(
    name="image-classification-tensorflow",
    description="Image classification by fine-tuning a Keras backbone (TensorFlow), the SageMaker "
                "Image Classification - TensorFlow contract",
    channels=(
        ChannelSpec("training", IMAGE_TYPES, required=True, input_modes=("File",),
                    description="one folder of images per class"),
        ChannelSpec("validation", IMAGE_TYPES, input_modes=("File",), description="the same class folders"),
        ChannelSpec("model", MODEL_TYPES, input_modes=("File",),
                    description="the backbone (scripts/pack_backbone.py) or an earlier model to train further"),
    ),
    train_entry="containers.image_classification_tensorflow.train:train",
    model_class="containers.image_classification_tensorflow.model:ImageClassifier",
    request_types=IMAGE_TYPES,
    response_types=(ct.JSON, ct.JSONLINES),
    codecs=("containers.image_classification_tensorflow.encoders:ImageJSONCodec",
            "containers.image_classification_tensorflow.encoders:ImageJSONLinesCodec"),
    metrics=(
        Metric("train:accuracy", "Maximize"),
        Metric("train:loss", "Minimize"),
        Metric("train:throughput", "Maximize", tunable=False),
        Metric("validation:accuracy", "Maximize"),
        Metric("validation:loss", "Minimize"),
        Metric("validation:precision", "Maximize"),
        Metric("validation:recall", "Maximize"),
        Metric("validation:auc", "Maximize"),
        Metric("validation:prc", "Maximize"),
    ),
    tuning_objective="validation:accuracy",
    instance_types=("ml.m5.xlarge", "ml.m5.2xlarge", "ml.c5.2xlarge", "ml.p3.2xlarge", "ml.p3.8xlarge",
                    "ml.g5.xlarge", "ml.g5.2xlarge"),
    distributed=False,
    # importing TensorFlow is most of a worker's cold start: once in the master (without the Keras it drags in),
    # shared by the forked workers (TensorFlow survives a fork after its import, not after running ops: the
    # model still loads per worker); see serving.py
    serving_preload=("containers.image_classification_tensorflow.serving",),
)
