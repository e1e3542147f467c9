"""Linear Learner, declared: channels, content types, encoders, metrics. The math is in linear.py/trainer.py."""

from pathlib import Path

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, MetricDefinition

from . import codecs
from .metrics import DECLARED

DATA_TYPES = (ct.RECORDIO_PROTOBUF, ct.CSV)


def metric_definitions():
    """Every metric under its logged key and its other names (the guide's and today's), test and validation."""
    seen, out = set(), []
    for rows in DECLARED.values():
        for key, aliases, _direction in rows:
            for channel in ("test", "validation"):
                for name in (key, *aliases):
                    if (channel, name) in seen:
                        continue
                    seen.add((channel, name))
                    epoch = r"(?:epoch=\d+, )?" if channel == "validation" else ""
                    out.append(MetricDefinition(f"{channel}:{name}",
                                                rf"#quality_metric: host=\S+, {epoch}{channel} {key} <loss>=(\S+)"))
    return tuple(out)


SPEC = AlgorithmSpec(
    name="linear-learner",
    folder=Path(__file__).parent,
    channels=(
        ChannelSpec("train", DATA_TYPES, required=True),
        ChannelSpec("validation", DATA_TYPES),
        ChannelSpec("test", DATA_TYPES),
    ),
    train="containers.linear_learner.train:train",
    model="containers.linear_learner.model:LinearModel",
    request_types=(ct.CSV, ct.JSON, ct.JSONLINES, ct.RECORDIO_PROTOBUF),
    encoders=codecs.ENCODERS,
    default_accept=ct.JSON,
    metrics=metric_definitions(),
    commands={"export": "containers.linear_learner.export:main"},
)
