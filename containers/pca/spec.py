"""PCA, declared: channels, content types, metrics. The math is in pca.py."""

from common import tabular
from common.spec import AlgorithmSpec, Metric

SPEC = AlgorithmSpec(
    name="pca",
    description="Principal component analysis (regular: exact scatter; randomized: a sketch), the SageMaker "
                "built-in's contract",
    channels=tabular.channels(test=True),
    train_entry="containers.pca.train:train",
    model_class="containers.pca.model:PCAModel",
    checks="containers.pca.checks:check",
    request_types=tabular.REQUEST_TYPES,
    response_types=tabular.RESPONSE_TYPES,
    response_key="projections",
    metrics=(
        Metric.quality("test", "reconstruction_error", "Minimize"),
        Metric.quality("test", "explained_variance_ratio", "Maximize"),
    ),
)
