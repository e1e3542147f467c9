"""``train``: config -> hyperparameters -> channels -> the algorithm's train(context) -> model files."""

import json
import logging
import os
import sys
from dataclasses import dataclass, field

from . import logs
from .batches import read_batches
from .channels import resolve_channels
from .config import TrainingConfig
from .errors import ChannelError, ClientError
from .failure import write_failure
from .paths import MLPaths
from .signals import install_stop_handler

log = logging.getLogger(__name__)

EXIT_CLIENT_ERROR = 1
EXIT_ALGORITHM_ERROR = 2


@dataclass
class TrainingContext:
    """What an algorithm's ``train(context)`` gets: typed inputs and the means to read and report."""

    hyperparameters: dict
    channels: dict
    paths: MLPaths
    config: TrainingConfig
    stop: object
    timings: logs.Timings = field(default_factory=logs.Timings)

    @property
    def host(self):
        return self.config.resource.current_host

    @property
    def resource(self):
        return self.config.resource

    def has_channel(self, name):
        return name in self.channels

    def shard(self, name):
        """``(rank, world_size)`` when this host must take a disjoint slice of a replicated channel."""
        resource = self.config.resource
        channel = self.channels[name]
        if resource.world_size == 1 or channel.config.distribution == "ShardedByS3Key":
            return None
        return resource.rank, resource.world_size

    def batches(self, name, batch_size, *, epoch=0, feature_dim=None, sharded=True, allow_nonfinite=False):
        """Mini-batches of one epoch of a channel (this host's share when ``sharded``)."""
        if name not in self.channels:
            raise ChannelError(f"Channel {name!r} was not given to this job")
        return read_batches(
            self.channels[name], self.paths, batch_size, epoch=epoch, feature_dim=feature_dim,
            shard=self.shard(name) if sharded else None, stop=self.stop, allow_nonfinite=allow_nonfinite,
        )


def run(spec, paths=None):
    """Run training for one algorithm; return the process exit code."""
    logs.configure()
    paths = paths or MLPaths.from_env()
    stop = install_stop_handler()
    timings = logs.Timings()
    try:
        if paths.failure_file.exists():
            paths.failure_file.unlink()
        with timings.stage("setup"):
            config = TrainingConfig.load(paths)
            hyperparameters = spec.hyperparameters.parse(config.hyperparameters)
            channels = resolve_channels(spec.channels, config.channels)
        log.info("Algorithm %s, job %r, host %s of %s", spec.name, config.job_name, config.resource.current_host,
                 list(config.resource.hosts))
        log.info("Reading default configuration and user hyperparameters: %s",
                 json.dumps(config.hyperparameters, sort_keys=True))
        log.info("Final configuration: %s", json.dumps(hyperparameters, sort_keys=True))
        for channel in channels.values():
            log.info("Channel %s: %s, %s mode, %s, compression %s", channel.name, channel.media_type,
                     channel.input_mode, channel.config.distribution, channel.config.compression)
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        context = TrainingContext(hyperparameters, channels, paths, config, stop, timings)
        train = spec.load_train()
        with timings.stage("train"):
            train(context)
        timings.report()
        if stop.is_set():
            log.warning("Training stopped early by a signal; the model saved reflects the data read so far")
        log.info("Training finished; model files: %s", sorted(os.listdir(paths.model_dir)))
        return 0
    except Exception as exc:  # every failure ends in the failure file and a non-zero exit
        message = write_failure(paths, exc)
        log.error(message, exc_info=not isinstance(exc, ClientError))
        return EXIT_CLIENT_ERROR if isinstance(exc, ClientError) else EXIT_ALGORITHM_ERROR
    finally:
        sys.stdout.flush()



