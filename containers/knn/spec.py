"""k-NN, declared: channels, content types, codecs, metrics. The math is in knn.py, index.py, sampling.py."""

from common import tabular
from common.spec import NUMBER, AlgorithmSpec, Metric


def test_score(metric, direction):
    """``test:<metric>`` as the guide's ``#test_score (algo-1) : ('accuracy', 0.98)`` line (report_test writes it)."""
    return Metric(f"test:{metric}", direction, line=None, regex=rf"#test_score \(\S+\) : \('{metric}', {NUMBER}\)")


SPEC = AlgorithmSpec(
    name="knn",
    description="k-nearest neighbors (faiss Flat, IVFFlat and IVFPQ indexes over a reservoir sample, with optional "
                "sign or FJLT dimension reduction), the SageMaker built-in's contract",
    channels=tabular.channels(test=True, label_size=1),
    train_entry="containers.knn.train:train",
    model_class="containers.knn.model:KNNModel",
    checks="containers.knn.checks:check",
    request_types=tabular.REQUEST_TYPES,
    response_types=tabular.RESPONSE_TYPES,
    response_key="predictions",
    codecs=("containers.knn.codecs:VerboseJSON", "containers.knn.codecs:VerboseJSONLines",
            "containers.knn.codecs:VerboseRecordIO"),
    metrics=(test_score("accuracy", "Maximize"), test_score("mse", "Minimize")),
)
