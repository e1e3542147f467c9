"""k-NN, declared: channels, content types, encoders, metrics. The math is in knn.py, index.py, sampling.py."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.serving.codecs import json, jsonlines, recordio
from common.spec import AlgorithmSpec, MetricDefinition

from .codecs import verbose_aware

DATA_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)

SPEC = AlgorithmSpec(
    name="knn",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", DATA_TYPES, required=True),
        ChannelSpec("test", DATA_TYPES),
    ),
    train="containers.knn.train:train",
    model="containers.knn.model:KNNModel",
    request_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    encoders={
        ct.JSON: verbose_aware(json.records_encoder("predictions")),
        ct.JSONLINES: verbose_aware(jsonlines.records_encoder()),
        ct.RECORDIO_PROTOBUF: verbose_aware(recordio.records_encoder()),
    },
    default_accept=ct.JSON,
    metrics=(
        MetricDefinition("test:accuracy", r"#test_score \(\S+\) : \('accuracy', ([-+0-9.eEinfa]+)\)"),
        MetricDefinition("test:mse", r"#test_score \(\S+\) : \('mse', ([-+0-9.eEinfa]+)\)"),
    ),
)
