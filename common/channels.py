"""Channel declarations and their validation against inputdataconfig.json."""

from dataclasses import dataclass

from . import contenttypes
from .config import ChannelConfig
from .errors import ChannelError


@dataclass(frozen=True)
class ChannelSpec:
    """What an algorithm accepts on one channel. The first content type is the default."""

    name: str
    content_types: tuple
    required: bool = False
    input_modes: tuple = ("File", "Pipe")

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


def resolve_channels(specs, configs):
    """Match the job's channels to the algorithm's declarations; raise ChannelError on any mismatch."""
    declared = {spec.name: spec for spec in specs}
    unknown = sorted(set(configs) - set(declared))
    if unknown:
        raise ChannelError(
            f"Unknown channel {', '.join(repr(n) for n in unknown)}; this algorithm accepts "
            + "; ".join(spec.describe() for spec in specs)
        )
    missing = [spec.name for spec in specs if spec.required and spec.name not in configs]
    if missing:
        raise ChannelError(
            f"Required channel {', '.join(repr(n) for n in missing)} is missing from inputdataconfig.json; "
            "this algorithm accepts " + "; ".join(spec.describe() for spec in specs)
        )
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
        if config.compression not in ("None", "Gzip"):
            raise ChannelError(f"Channel {name!r} has CompressionType {config.compression!r}; use None or Gzip")
        if config.record_wrapper not in ("None", "RecordIO"):
            raise ChannelError(
                f"Channel {name!r} has RecordWrapperType {config.record_wrapper!r}; use None or RecordIO"
            )
        channels[name] = Channel(spec, config, media)
    return channels
