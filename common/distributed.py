"""Several hosts: who they are (resourceconfig.json), where the first one listens, and the cluster protocol.

The protocol an algorithm's training code relies on is small, so that any engine can satisfy it:

``rank``, ``world_size``, ``is_master``
``all_reduce_sum(tensor)``, ``all_gather(tensor)``, ``all_gather_bytes(data) -> [bytes per host]``, ``barrier()``
``stop()`` (also ``with cluster: ...``, which always stops it); ``finish()`` at the end of the job, which the
runtime calls after ``train`` returns: the other hosts wait there until the first host has finished too

``common/torch_cluster.py`` implements it with torch.distributed (gloo on CPU, NCCL on GPU); ``SingleHost``
is the one-host case (every operation is the identity). XGBoost uses its own collective and TensorFlow
its own strategy; they take ``master_address()`` and ``port()`` from here.

torch is imported only in torch_cluster.py, only when a job has more than one host.
"""

import json
import logging
import os
import socket
import time

from .errors import ConfigError, PlatformError

log = logging.getLogger(__name__)

PORT_ENV = "ALGOBOX_DIST_PORT"
HOST_ADDRESSES_ENV = "ALGOBOX_HOST_ADDRESSES"  # JSON {"algo-1": "10.0.0.1"} for hosts without DNS
JOIN_TIMEOUT_ENV = "ALGOBOX_DIST_JOIN_TIMEOUT"  # seconds every host may take to join (default 300)
PEER_TIMEOUT_ENV = "ALGOBOX_DIST_PEER_TIMEOUT"  # seconds of silence after which a peer counts as failed (20)
DEFAULT_PORT = 7777


def _seconds(name, default, environ=None):
    environ = os.environ if environ is None else environ
    value = environ.get(name, "").strip()
    if not value:
        return float(default)
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} must be a number of seconds") from None
    if not seconds > 0:
        raise ConfigError(f"{name}={value!r} must be a positive number of seconds")
    return seconds


def join_timeout():
    return _seconds(JOIN_TIMEOUT_ENV, 300)


def peer_timeout():
    return _seconds(PEER_TIMEOUT_ENV, 20)


def port(environ=None):
    environ = os.environ if environ is None else environ
    value = environ.get(PORT_ENV, str(DEFAULT_PORT))
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{PORT_ENV}={value!r} must be a port number") from None
    if not 0 < number < 65536:
        raise ConfigError(f"{PORT_ENV}={value!r} must be a port number")
    return number


def resolve_host(host, attempts=30, delay=1.0):
    """The address of a host; the guide advises retrying, as DNS may lag when a cluster starts."""
    try:
        overrides = json.loads(os.environ.get(HOST_ADDRESSES_ENV, "{}"))
    except ValueError:
        raise ConfigError(f"{HOST_ADDRESSES_ENV} must be a JSON object of host -> address") from None
    if host in overrides:
        return overrides[host]
    for attempt in range(1, attempts + 1):
        try:
            return socket.gethostbyname(host)
        except socket.gaierror:
            if attempt == attempts:
                raise PlatformError(f"Host {host} could not be resolved after {attempts} attempts") from None
            log.info("Waiting for host %s to resolve (attempt %d/%d)", host, attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")


def master_address(resource):
    return resolve_host(resource.hosts[0])


class SingleHost:
    """The cluster protocol for one host: every collective is the identity."""

    rank = 0
    world_size = 1
    is_master = True

    def __init__(self, resource=None, device="cpu"):
        self.resource = resource
        self.device = device

    def start(self):
        return self

    def all_reduce_sum(self, tensor):
        return tensor

    def all_gather(self, tensor):
        return tensor

    def all_gather_bytes(self, data):
        return [bytes(data)]

    def broadcast(self, tensor, source=0):
        return tensor

    def barrier(self):
        pass

    def report_failure(self, exc):
        pass

    def stop(self):
        pass

    def finish(self):
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
