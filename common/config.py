"""Reads the platform's config files: hyperparameters, input data config, resource config."""

import json
import os
from dataclasses import dataclass, field

from .errors import ConfigError


def read_json(path, *, required=True, default=None):
    """One config file as a dict; a clear ConfigError when it is missing or not a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(f"Config file {path} is missing") from None
        return default
    except OSError as exc:
        raise ConfigError(f"Config file {path} cannot be read: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text: {exc}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, and ints past Python's digit limit
        raise ConfigError(f"Config file {path} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a JSON object, found {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ChannelConfig:
    """One channel's entry in inputdataconfig.json (every key but TrainingInputMode may be missing)."""

    name: str
    content_type: str | None = None
    input_mode: str = "File"
    distribution: str | None = None  # None: not stated (the SDK's local mode writes no S3DistributionType)
    record_wrapper: str = "None"
    compression: str = "None"

    @classmethod
    def from_json(cls, name, entry):
        if not isinstance(entry, dict):
            raise ConfigError(f"inputdataconfig.json: channel {name!r} must be an object")
        mode = entry.get("TrainingInputMode") or "File"
        if mode not in ("File", "Pipe", "FastFile"):
            raise ConfigError(
                f"inputdataconfig.json: channel {name!r} has TrainingInputMode {mode!r}; expected File or Pipe"
            )
        return cls(
            name=name,
            content_type=entry.get("ContentType"),
            input_mode="File" if mode == "FastFile" else mode,
            distribution=entry.get("S3DistributionType") or None,
            record_wrapper=entry.get("RecordWrapperType") or "None",
            compression=entry.get("CompressionType") or "None",
        )


@dataclass(frozen=True)
class ResourceConfig:
    """Which host this is and which hosts take part (resourceconfig.json)."""

    current_host: str = "algo-1"
    hosts: tuple = ("algo-1",)
    network_interface_name: str | None = None

    @classmethod
    def from_json(cls, data):
        current = data.get("current_host") or "algo-1"
        hosts = data.get("hosts") or [current]
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise ConfigError("resourceconfig.json: 'hosts' must be a list of host names")
        if current not in hosts:
            raise ConfigError(f"resourceconfig.json: current_host {current!r} is not among hosts {hosts}")
        return cls(current, tuple(hosts), data.get("network_interface_name"))

    @property
    def rank(self):
        return self.hosts.index(self.current_host)

    @property
    def world_size(self):
        return len(self.hosts)

    @property
    def is_master(self):
        return self.rank == 0


@dataclass(frozen=True)
class CheckpointConfig:
    """checkpointconfig.json: where checkpoints live locally (and the S3 URI the platform syncs them with)."""

    local_path: str | None = None
    s3_uri: str | None = None

    @classmethod
    def from_json(cls, data):
        local, s3 = data.get("LocalPath"), data.get("S3Uri")
        for key, value in (("LocalPath", local), ("S3Uri", s3)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"checkpointconfig.json: {key} must be a string")
        return cls(local, s3)


@dataclass
class TrainingConfig:
    """Everything the platform tells a training container, read once at start."""

    hyperparameters: dict
    channels: dict
    resource: ResourceConfig
    job_name: str = field(default="")
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    @classmethod
    def load(cls, paths, environ=None):
        environ = os.environ if environ is None else environ
        hyperparameters = read_json(paths.hyperparameters, required=False, default={})
        input_config = read_json(paths.input_data_config)
        channels = {name: ChannelConfig.from_json(name, entry) for name, entry in input_config.items()}
        resource = ResourceConfig.from_json(read_json(paths.resource_config, required=False, default={}))
        checkpoint = CheckpointConfig.from_json(read_json(paths.checkpoint_config, required=False, default={}))
        return cls(hyperparameters, channels, resource, environ.get("TRAINING_JOB_NAME", ""), checkpoint)
