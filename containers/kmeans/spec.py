"""k-means, declared: channels, content types, metrics. The math is in kmeans.py."""

from common import tabular
from common.spec import AlgorithmSpec, Metric

SPEC = AlgorithmSpec(
    name="kmeans",
    description="k-means clustering (web-scale mini-batch k-means with a local Lloyd reduction), the SageMaker "
                "built-in's contract",
    channels=tabular.channels(test=True),
    train_entry="containers.kmeans.train:train",
    model_class="containers.kmeans.model:KMeansModel",
    checks="containers.kmeans.checks:check",
    request_types=tabular.REQUEST_TYPES,
    response_types=tabular.RESPONSE_TYPES,
    response_key="predictions",
    metrics=(
        Metric.quality("test", "msd", "Minimize"),
        Metric.quality("test", "ssd", "Minimize"),
    ),
    tuning_objective="test:msd",
)
