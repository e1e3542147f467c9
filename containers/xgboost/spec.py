"""XGBoost (the built-in's algorithm mode), declared: channels, content types, codecs, metrics. No xgboost import."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.serving.codecs import register_decoder
from common.spec import AlgorithmSpec, MetricDefinition

from . import codecs
from .data import CONTENT_TYPES
from .params import MAXIMIZE, MINIMIZE

# Metrics as the built-in declares them (validation:<name>); xgboost prints tabs, CloudWatch shows them as #011.
METRIC_NAMES = ("auc", "aucpr", "map", "ndcg", "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro",
                "precision", "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
                "rmse", "rmsle", "mae", "mape", "mphe", "mse", "logloss", "error", "merror", "mlogloss",
                "poisson-nloglik", "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik",
                "aft-nloglik", "interval-regression-accuracy")
DIRECTIONS = {name: "Maximize" if name in MAXIMIZE else "Minimize" for name in METRIC_NAMES}
assert all(name in MAXIMIZE or name in MINIMIZE for name in METRIC_NAMES)


def metric_regex(name):
    return r".*\[[0-9]+\].*#011validation-" + name.replace("-", r"\-") + r":(\S+)"


for _mime in codecs.LIBSVM_TYPES:
    register_decoder(_mime)(codecs.decode_libsvm)

SPEC = AlgorithmSpec(
    name="xgboost",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", CONTENT_TYPES, required=True),
        ChannelSpec("validation", CONTENT_TYPES),
    ),
    train="containers.xgboost.train:train",
    model="containers.xgboost.model:XGBoostModel",
    request_types=(ct.CSV, "text/libsvm", "text/x-libsvm", ct.RECORDIO_PROTOBUF, ct.JSON, ct.JSONLINES),
    encoders={
        ct.CSV: codecs.encode_csv,
        ct.JSON: codecs.encode_json,
        ct.JSONLINES: codecs.encode_jsonlines,
        ct.RECORDIO_PROTOBUF: codecs.encode_recordio,
    },
    default_accept=ct.CSV,
    metrics=tuple(MetricDefinition(f"validation:{name}", metric_regex(name)) for name in METRIC_NAMES),
)
