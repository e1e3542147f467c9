"""Random Cut Forest, declared: channels, content types, encoders, metrics. The math is in forest.py."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.serving.codecs import json, jsonlines, recordio
from common.spec import AlgorithmSpec, MetricDefinition

DATA_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)
TEST_METRICS = ("f1", "accuracy", "precision", "recall", "precision_normal", "recall_normal", "f1_normal")

SPEC = AlgorithmSpec(
    name="randomcutforest",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", DATA_TYPES, required=True),
        ChannelSpec("test", DATA_TYPES),
    ),
    train="containers.randomcutforest.train:train",
    model="containers.randomcutforest.model:RandomCutForestModel",
    request_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    encoders={
        ct.JSON: json.records_encoder("scores"),
        ct.JSONLINES: jsonlines.records_encoder(),
        ct.RECORDIO_PROTOBUF: recordio.records_encoder(),
    },
    default_accept=ct.JSON,
    metrics=tuple(MetricDefinition(f"test:{name}", rf"#quality_metric: host=\S+, test {name} <loss>=(\S+)")
                  for name in TEST_METRICS),
    tuning_objective="test:f1",
)
