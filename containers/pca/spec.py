"""PCA, declared: channels, content types, encoders, metrics. The math is in pca.py."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.serving.codecs import json, jsonlines, recordio
from common.spec import AlgorithmSpec, MetricDefinition

DATA_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)

SPEC = AlgorithmSpec(
    name="pca",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", DATA_TYPES, required=True),
        ChannelSpec("test", DATA_TYPES),
    ),
    train="containers.pca.train:train",
    model="containers.pca.model:PCAModel",
    request_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    encoders={
        ct.JSON: json.records_encoder("projections"),
        ct.JSONLINES: jsonlines.records_encoder(),
        ct.RECORDIO_PROTOBUF: recordio.records_encoder(),
    },
    default_accept=ct.JSON,
    metrics=(
        MetricDefinition("test:reconstruction_error",
                         r"#quality_metric: host=\S+, test reconstruction_error <loss>=(\S+)"),
        MetricDefinition("test:explained_variance_ratio",
                         r"#quality_metric: host=\S+, test explained_variance_ratio <loss>=(\S+)"),
    ),
)
