"""Random Cut Forest, declared: channels, content types, metrics. The math is in forest.py and kernels.py."""

from common import contenttypes as ct
from common import tabular
from common.channels import ChannelSpec
from common.spec import CPU_INSTANCE_TYPES, AlgorithmSpec, Metric

# test:f1 is the guide's (tuning) metric; the others are what eval_metrics asks for (anomaly = the positive class)
TEST_METRICS = (("f1", True), ("accuracy", True), ("precision", True), ("recall", True),
                ("precision_normal", False), ("recall_normal", False), ("f1_normal", False))

SPEC = AlgorithmSpec(
    name="randomcutforest",
    description="Random Cut Forest anomaly detection (reservoir sample, random cut trees, RCFA's anomaly score), "
                "the SageMaker built-in's contract",
    channels=(
        ChannelSpec("train", tabular.TRAINING_TYPES, required=True, distributions=("ShardedByS3Key",),
                    description="training data (ShardedByS3Key: each host builds its trees from its own files)"),
        # labelled: text/csv;label_size=1 as the guide says (label_size=1 is also the default here)
        ChannelSpec("test", tabular.TRAINING_TYPES, label_size=1, distributions=("FullyReplicated",),
                    description="labelled test data (1 = anomaly, 0 = normal), scored after training"),
    ),
    train_entry="containers.randomcutforest.train:train",
    model_class="containers.randomcutforest.model:RandomCutForestModel",
    request_types=tabular.REQUEST_TYPES,
    response_types=tabular.RESPONSE_TYPES,
    default_accept=ct.JSON,
    response_key="scores",
    metrics=tuple(Metric.quality("test", name, "Maximize", tunable=tunable) for name, tunable in TEST_METRICS),
    tuning_objective="test:f1",
    instance_types=CPU_INSTANCE_TYPES,
)
