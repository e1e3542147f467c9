"""k-means, declared: channels, content types, encoders, metrics. The math is in kmeans.py."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.serving.codecs import json, jsonlines, recordio
from common.spec import AlgorithmSpec, MetricDefinition

DATA_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)

SPEC = AlgorithmSpec(
    name="kmeans",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", DATA_TYPES, required=True),
        ChannelSpec("test", DATA_TYPES),
    ),
    train="containers.kmeans.train:train",
    model="containers.kmeans.model:KMeansModel",
    request_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    encoders={
        ct.JSON: json.records_encoder("predictions"),
        ct.JSONLINES: jsonlines.records_encoder(),
        ct.RECORDIO_PROTOBUF: recordio.records_encoder(),
    },
    default_accept=ct.JSON,
    metrics=(
        MetricDefinition("test:msd", r"#quality_metric: host=\S+, test msd <loss>=(\S+)"),
        MetricDefinition("test:ssd", r"#quality_metric: host=\S+, test ssd <loss>=(\S+)"),
    ),
    tuning_objective="test:msd",
)
