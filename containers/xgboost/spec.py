"""XGBoost (the built-in's algorithm mode), declared: channels, content types, codecs, metrics. No xgboost import."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, Metric

from .params import MAXIMIZE

PARQUET = "application/x-parquet"
TRAINING_TYPES = (ct.LIBSVM, ct.CSV, ct.RECORDIO_PROTOBUF, PARQUET)  # libsvm first: the default
# The metrics xgboost computes that the built-in declares (validation:<name>); the library prints the line
# ``[12]\ttrain-rmse:0.1\tvalidation-rmse:0.2`` and CloudWatch shows the tabs as #011.
METRIC_NAMES = ("auc", "aucpr", "map", "ndcg", "pre", "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro",
                "precision", "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
                "rmse", "rmsle", "mae", "mape", "mphe", "mse", "logloss", "error", "merror", "mlogloss",
                "poisson-nloglik", "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik",
                "aft-nloglik", "interval-regression-accuracy")


def metric_regex(name):
    return r".*\[[0-9]+\].*#011validation-" + name + r":(\S+)"


def _channel(name, required):
    return ChannelSpec(name, TRAINING_TYPES, required=required, label_size=1, missing_values=True,
                       description=f"{name} data: label first (libsvm: label[:weight]); missing values allowed")


SPEC = AlgorithmSpec(
    name="xgboost",
    description="XGBoost (today's library) in the SageMaker built-in's algorithm mode: libsvm, CSV, recordIO-"
                "protobuf and parquet, File and Pipe mode, several hosts, checkpoints, every model format",
    folder=Path(__file__).parent,
    channels=(_channel("train", True), _channel("validation", False)),
    train_entry="containers.xgboost.train:train",
    model_class="containers.xgboost.model:XGBoostModel",
    checks="containers.xgboost.checks:check",
    readers=("containers.xgboost.readers:ParquetReader",),
    codecs=("containers.xgboost.codecs:CSVCodec", "containers.xgboost.codecs:LibSVMCodec",
            "containers.xgboost.codecs:JSONCodec", "containers.xgboost.codecs:JSONLinesCodec",
            "containers.xgboost.codecs:RecordIOCodec"),
    request_types=(ct.CSV, ct.LIBSVM, ct.RECORDIO_PROTOBUF, ct.JSON, ct.JSONLINES),
    response_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    default_accept=ct.CSV,
    metrics=tuple(Metric(f"validation:{name}", "Maximize" if name in MAXIMIZE else "Minimize", line=None,
                         regex=metric_regex(name)) for name in METRIC_NAMES),
)
