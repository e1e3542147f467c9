"""Factorization Machines, declared: channels, content types, metrics, commands. The math is in fm.py."""

from common import contenttypes as ct
from common import tabular
from common.spec import AlgorithmSpec, Metric

# The guide trains on recordIO-protobuf only; CSV (label first) and libsvm are our extensions, because users
# cannot easily produce sparse recordIO (the SDK's record_set refuses CSR matrices, SDK issue #566).
TRAINING_TYPES = (ct.RECORDIO_PROTOBUF, ct.LIBSVM, ct.CSV)

SPEC = AlgorithmSpec(
    name="factorization-machines",
    description="Factorization machines (pairwise interactions, O(nnz k) on sparse data) for binary "
                "classification and regression, the SageMaker built-in's contract",
    channels=tabular.channels(test=True, types=TRAINING_TYPES, label_size=1),
    train_entry="containers.factorization_machines.train:train",
    model_class="containers.factorization_machines.model:FMModel",
    checks="containers.factorization_machines.checks:check",
    request_types=(*tabular.REQUEST_TYPES, ct.LIBSVM),
    response_types=tabular.RESPONSE_TYPES,
    response_key="predictions",
    metrics=(
        Metric.quality("test", "rmse", "Minimize"),
        Metric.quality("test", "binary_classification_accuracy", "Maximize"),
        Metric.quality("test", "binary_classification_cross_entropy", "Minimize"),
        Metric.quality("test", "binary_f_beta", "Maximize"),
    ),
    commands={"export": "containers.factorization_machines.export:main"},
)
