"""``train``: config -> hyperparameters -> checks -> channels -> the algorithm's train(context) -> model files.

``prepare(spec, paths)`` does the setup stage and returns the TrainingContext (tests and benchmarks call
``train(context)`` in-process with it); ``run(spec)`` is what ``algobox <algorithm> train`` runs: prepare,
train, and on any failure the failure file, the other hosts told, and the exit code.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import logs
from .atomic import atomic_write
from .batches import read_batches
from .channels import resolve_channels
from .config import TrainingConfig
from .distributed import SingleHost
from .errors import ChannelError, ClientError, HyperparameterError, PeerError, PlatformError
from .failure import write_failure
from .paths import MLPaths
from .signals import install_stop_handler

log = logging.getLogger(__name__)

EXIT_CLIENT_ERROR = 1
EXIT_ALGORITHM_ERROR = 2
TUNING_OBJECTIVE = "_tuning_objective_metric"


def exit_code(exc):
    category = getattr(exc, "category", "AlgorithmError")
    return EXIT_CLIENT_ERROR if category == "ClientError" else EXIT_ALGORITHM_ERROR


class Checkpoints:
    """Checkpoint files in ``/opt/ml/checkpoints`` (or checkpointconfig.json's LocalPath), written atomically.

    The platform syncs the folder with S3, so a job restarted with the same CheckpointConfig finds them."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def path(self, name):
        return self.directory / name

    @contextmanager
    def write(self, name, mode="wb"):
        """``with checkpoints.write("state-3") as f: ...``: the file appears whole or not at all."""
        with atomic_write(self.path(name), mode) as handle:
            yield handle

    def save_bytes(self, name, data):
        with self.write(name) as handle:
            handle.write(data)
        return self.path(name)

    def names(self, prefix=""):
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_file() and p.name.startswith(prefix) and not p.name.startswith("."))

    def latest(self, prefix, key=None):
        """The newest checkpoint named ``<prefix><n>`` by its number n (or by ``key``), or None."""
        def number(name):
            tail = name[len(prefix):]
            return int(tail) if tail.isdigit() else -1

        candidates = [n for n in self.names(prefix) if (key or number)(n) >= 0]
        return self.path(max(candidates, key=key or number)) if candidates else None


@dataclass
class TrainingContext:
    """What an algorithm's ``train(context)`` gets: typed inputs and the means to read and report."""

    hyperparameters: dict
    channels: dict
    paths: MLPaths
    config: TrainingConfig
    stop: object
    timings: logs.Timings = field(default_factory=logs.Timings)
    spec: object = None
    tuning_objective: str | None = None
    cluster_in_use: object = None
    scratch_dirs: list = field(default_factory=list)

    @property
    def host(self):
        return self.config.resource.current_host

    @property
    def resource(self):
        return self.config.resource

    @property
    def is_tuning(self):
        """A hyperparameter tuning job runs this training (it set ``_tuning_objective_metric``)."""
        return self.tuning_objective is not None

    def scratch(self, prefix="algobox-"):
        """A new temporary folder for the job's working files (an unpacked archive, spill files), removed when
        the job ends (``remove_scratch``; ``algobox train`` leaves by os._exit, so atexit would never run)."""
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.scratch_dirs.append(path)
        return path

    def remove_scratch(self):
        while self.scratch_dirs:
            shutil.rmtree(self.scratch_dirs.pop(), ignore_errors=True)

    def has_channel(self, name):
        return name in self.channels

    def started(self):
        """Mark the start of work worth saving on SIGTERM (reading a channel marks it too); before it, SIGTERM
        ends the job at once."""
        if hasattr(self.stop, "started"):
            self.stop.started()

    def shard(self, name):
        """``(rank, world_size)`` when this host must take a disjoint slice of a replicated channel."""
        resource = self.config.resource
        channel = self.channels[name]
        if resource.world_size == 1 or channel.config.distribution == "ShardedByS3Key":
            return None
        return resource.rank, resource.world_size

    def batches(self, name, batch_size, *, epoch=0, feature_dim=None, sharded=True, allow_nonfinite=None,
                weights=None, strings=None, label_size=None):
        """Mini-batches of one epoch of a channel (this host's share when ``sharded``).

        Options default to the channel's declaration; ``weights=True`` reads a CSV weight column after the
        labels, ``strings=True`` reads CSV rows as strings, ``allow_nonfinite`` overrides missing values."""
        if name not in self.channels:
            raise ChannelError(f"Channel {name!r} was not given to this job")
        channel = self.channels[name]
        options = channel.read_options(batch_size, feature_dim=feature_dim, weights=weights, strings=strings,
                                       label_size=label_size, missing_values=allow_nonfinite)
        return read_batches(channel, self.paths, batch_size, epoch=epoch, shard=self.shard(name) if sharded else None,
                            stop=self.stop, options=options)

    # --- several hosts ---
    def cluster(self, device="cpu"):
        """The cluster (torch.distributed for several hosts), as a context manager that always stops it."""
        if self.resource.world_size == 1:
            cluster = SingleHost(self.resource, device)
        else:
            from .torch_cluster import TorchCluster

            cluster = TorchCluster(self.resource, device, on_peer_failure=self._peer_failed)
        self.cluster_in_use = cluster
        return cluster

    def _peer_failed(self, error):
        """Called from the cluster's watchdog: a peer failed while this host may be blocked; end now."""
        message = write_failure(self.paths, error)
        log.error(message)
        sys.stdout.flush()
        os._exit(exit_code(error))

    # --- metrics ---
    def log_metric(self, name, value, **fields):
        """The declared metric's line(s), one per name it is published under."""
        metric = self.spec.metric(name) if self.spec is not None else None
        lines = metric.lines(value, host=self.host, **fields) if metric else [f"#metric {name}={value}"]
        for line in lines:
            logs.log.info(line)

    def report_test(self, values, channel="test"):
        """Final scores on a channel: ``#test_score`` lines and each declared metric's line. Nothing is
        reported for an evaluation cut short by SIGTERM (a partial score must never become an objective)."""
        if self.stop.is_set():
            log.warning("The %s evaluation was stopped by a signal before the end of the channel; its partial "
                        "scores are not reported", channel)
            return False
        declared = set(self.spec.metric_names()) if self.spec is not None else set()
        for name, value in values.items():
            logs.test_score(self.host, name, value)
            if f"{channel}:{name}" in declared or not declared:
                self.log_metric(f"{channel}:{name}", value)
        return True

    # --- files ---
    @property
    def checkpoints(self):
        local = self.config.checkpoint.local_path
        return Checkpoints(local if local else self.paths.default_checkpoint_dir)

    def model_file(self, name, mode="wb"):
        """``with context.model_file("model_algo-1") as f: ...``, written atomically into the model dir."""
        return atomic_write(self.paths.model_dir / name, mode)


def _check_tuning_objective(spec, raw):
    injected = spec.hyperparameters.injected(raw)
    objective = injected.get(TUNING_OBJECTIVE)
    if objective is None:
        return None
    allowed = [name for name, _ in spec.tunable_metrics()]
    if objective not in allowed:
        raise HyperparameterError(f"Invalid hyperparameter {TUNING_OBJECTIVE}={objective!r}: {spec.name} does not "
                                  f"emit it. Allowed: {', '.join(allowed) or 'none (no tunable metrics)'}")
    return objective


def prepare(spec, paths=None, stop=None, timings=None):
    """The setup stage: read and validate everything the job says, before any heavy import."""
    paths = paths or MLPaths.from_env()
    timings = timings or logs.Timings()
    with timings.stage("setup"):
        config = TrainingConfig.load(paths)
        hyperparameters = spec.hyperparameters.parse(config.hyperparameters)
        objective = _check_tuning_objective(spec, config.hyperparameters)
        checks = spec.load_checks()
        if checks is not None:
            checks(hyperparameters)
        spec.load_readers()
        channels = resolve_channels(spec.channels, config.channels, paths)
    if stop is None:
        import threading

        stop = threading.Event()
    return TrainingContext(hyperparameters, channels, paths, config, stop, timings, spec, objective)


def _tell_peers(context, config, exc):
    """Multi-host: let the others know (the cluster's store), also when this host failed before joining."""
    if isinstance(exc, PeerError) or config is None or config.resource.world_size == 1:
        return
    cluster = context.cluster_in_use if context is not None else None
    if cluster is None:
        try:
            from .torch_cluster import TorchCluster
        except ImportError:
            return
        try:
            import torch.distributed  # noqa: F401
        except ImportError:
            return
        cluster = TorchCluster(config.resource)
    cluster.report_failure(exc)


def run(spec, paths=None):
    """Run training for one algorithm; return the process exit code."""
    logs.configure()
    paths = paths or MLPaths.from_env()
    stop = install_stop_handler()
    timings = logs.Timings()
    context = config = None
    try:
        if paths.failure_file.exists():
            paths.failure_file.unlink()
        try:
            config = TrainingConfig.load(paths)
        except ClientError:
            config = None
        context = prepare(spec, paths, stop, timings)
        config = context.config
        log.info("Algorithm %s, job %r, host %s of %s", spec.name, config.job_name, config.resource.current_host,
                 list(config.resource.hosts))
        log.info("Reading default configuration and user hyperparameters: %s",
                 json.dumps(config.hyperparameters, sort_keys=True))
        log.info("Final configuration: %s", json.dumps(context.hyperparameters, sort_keys=True))
        if context.is_tuning:
            log.info("Tuning job: objective metric %s", context.tuning_objective)
        for channel in context.channels.values():
            log.info("Channel %s: %s, %s mode, %s, compression %s", channel.name, channel.media_type,
                     channel.input_mode, channel.config.distribution or "S3DistributionType not stated",
                     channel.config.compression)
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        train = spec.load_train()
        with timings.stage("train"):
            train(context)
            if context.cluster_in_use is not None:
                context.cluster_in_use.finish()  # the other hosts wait for the first one's last steps
        timings.report()
        if stop.is_set():
            log.warning("Training stopped early by a signal; the model saved reflects the data read so far")
        log.info("Training finished; model files: %s", sorted(os.listdir(paths.model_dir)))
        return 0
    except Exception as exc:  # every failure ends in the failure file and a non-zero exit
        message = write_failure(paths, exc)
        log.error(message, exc_info=not isinstance(exc, (ClientError, PeerError, PlatformError)))
        _tell_peers(context, config, exc)
        return exit_code(exc)
    finally:
        if context is not None:
            context.remove_scratch()
        sys.stdout.flush()
