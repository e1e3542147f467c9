"""BlazingText, declared: channels, content types, codecs, metrics. Training is in train.py, serving in model.py."""

from functools import cached_property

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, Metric

from .modes import ModeSchema
from .text import TEXT


class BlazingTextSpec(AlgorithmSpec):
    """The guide's two hyperparameter tables, chosen by ``mode`` (see modes.py)."""

    @cached_property
    def hyperparameters(self):
        import json
        from pathlib import Path

        return ModeSchema(json.loads((Path(self.folder) / "hyperparameters.json").read_text(encoding="utf-8")))


SPEC = BlazingTextSpec(
    name="blazingtext",
    description="Word2Vec (cbow, skipgram: fastText; batch_skipgram: PyTorch, several hosts) and fastText text "
                "classification (supervised), the SageMaker BlazingText contract with fastText-compatible .bin models",
    channels=(
        ChannelSpec("train", (TEXT,), required=True, description="one sentence per line, space-separated tokens"),
        ChannelSpec("validation", (TEXT,), input_modes=("File", "Pipe"),
                    description="supervised mode: labelled sentences, as train"),
    ),
    train_entry="containers.blazingtext.train:train",
    model_class="containers.blazingtext.model:BlazingTextModel",
    request_types=(ct.JSON, ct.JSONLINES),
    response_types=(ct.JSON, ct.JSONLINES),
    accept_follows_content_type=True,
    readers=("containers.blazingtext.text:TextLinesReader",),
    codecs=("containers.blazingtext.text:TextJSONCodec", "containers.blazingtext.text:TextJSONLinesCodec"),
    checks="containers.blazingtext.checks:check",
    metrics=(
        Metric.quality("train", "mean_rho", "Maximize"),
        Metric.quality("validation", "accuracy", "Maximize"),
    ),
)
