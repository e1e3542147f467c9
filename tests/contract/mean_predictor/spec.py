from common import contenttypes as ct
from common import tabular
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, Metric

SPEC = AlgorithmSpec(
    name="mean-predictor",
    description="Predicts the weighted mean of the training labels (a test algorithm)",
    channels=(ChannelSpec("train", (ct.LIBSVM, ct.CSV), required=True, label_size=1),
              ChannelSpec("test", (ct.LIBSVM, ct.CSV), label_size=1)),
    train_entry="mean_predictor.train:train",
    model_class="mean_predictor.model:MeanModel",
    checks="mean_predictor.checks:check",
    request_types=(ct.LIBSVM, ct.CSV, ct.JSON),
    response_types=(ct.JSON, ct.JSONLINES, ct.CSV),
    metrics=(Metric.quality("test", "mse", "Minimize"),),
    tuning_objective="test:mse",
    distributed=False,
)
