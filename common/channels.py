"""Channel declarations and their validation against inputdataconfig.json."""

from dataclasses import dataclass

from . import contenttypes
from .config import ChannelConfig
from .errors import ChannelError
from .readers import ReadOptions

DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
COMPRESSIONS = ("None", "Gzip")


@dataclass(frozen=True)
class ChannelSpec:
    """What an algorithm accepts on one channel. The first content type is the default.

    ``label_size``: leading CSV label columns when the content type names none (supervised algorithms: 1,
    the label in the first column, as the guide says). ``missing_values``: empty CSV fields and NaN are
    missing values (XGBoost), instead of a data error naming the file and record.
    """

    name: str
    content_types: tuple
    required: bool = False
    input_modes: tuple = ("File", "Pipe")
    label_size: int = 0
    missing_values: bool = False
    distributions: tuple = DISTRIBUTIONS
    description: str = ""

    def describe(self):
        return f"{self.name} ({'required' if self.required else 'optional'}: {', '.join(self.content_types)})"


@dataclass(frozen=True)
class Channel:
    """A validated channel of this training job: its declaration, its config and its location."""

    spec: ChannelSpec
    config: ChannelConfig
    media_type: contenttypes.MediaType

    @property
    def name(self):
        return self.spec.name

    @property
    def input_mode(self):
        return self.config.input_mode

    @property
    def label_size(self):
        """The content type's ``label_size`` parameter, else the declaration's default."""
        try:
            return self.media_type.int_param("label_size", self.spec.label_size)
        except ValueError as exc:
            raise ChannelError(f"Channel {self.name!r}: {exc}") from None

    def read_options(self, batch_size, **overrides):
        options = {"batch_size": batch_size, "label_size": self.label_size,
                   "missing_values": self.spec.missing_values}
        options.update({k: v for k, v in overrides.items() if v is not None})
        return ReadOptions(**options)


def resolve_channels(specs, configs, paths=None):
    """Match the job's channels to the algorithm's declarations; raise ChannelError on any mismatch.

    With ``paths``, a File-mode channel named in inputdataconfig.json must also exist on disk (checked now, at
    setup, not after training)."""
    declared = {spec.name: spec for spec in specs}
    accepts = "; ".join(spec.describe() for spec in specs)
    unknown = sorted(set(configs) - set(declared))
    if unknown:
        raise ChannelError(f"Unknown channel {', '.join(repr(n) for n in unknown)}; this algorithm accepts {accepts}")
    missing = [spec.name for spec in specs if spec.required and spec.name not in configs]
    if missing:
        raise ChannelError(f"Required channel {', '.join(repr(n) for n in missing)} is missing from "
                           f"inputdataconfig.json; this algorithm accepts {accepts}")
    channels = {}
    for name, config in configs.items():
        spec = declared[name]
        media = contenttypes.parse(config.content_type, default=spec.content_types[0])
        if media.mime not in spec.content_types:
            raise ChannelError(
                f"Channel {name!r} has content type {config.content_type!r}, which this algorithm does not "
                f"support; use one of: {', '.join(spec.content_types)}"
            )
        if config.input_mode not in spec.input_modes:
            raise ChannelError(
                f"Channel {name!r} uses TrainingInputMode {config.input_mode}; this algorithm supports "
                f"{' or '.join(spec.input_modes)} for it"
            )
        if config.distribution is not None and config.distribution not in spec.distributions:
            raise ChannelError(
                f"Channel {name!r} has S3DistributionType {config.distribution}; this algorithm needs "
                f"{' or '.join(spec.distributions)} for it"
            )
        if config.compression not in COMPRESSIONS:
            raise ChannelError(f"Channel {name!r} has CompressionType {config.compression!r}; use None or Gzip")
        if config.record_wrapper not in ("None", "RecordIO"):
            raise ChannelError(
                f"Channel {name!r} has RecordWrapperType {config.record_wrapper!r}; use None or RecordIO"
            )
        channel = Channel(spec, config, media)
        channel.label_size  # a malformed label_size parameter fails now
        if paths is not None and config.input_mode == "File" and not paths.channel_dir(name).is_dir():
            raise ChannelError(f"Channel {name!r} is named in inputdataconfig.json but has no directory "
                               f"{paths.channel_dir(name)}")
        channels[name] = channel
    return channels
