"""Several hosts: rank, world size and master address from resourceconfig.json, then torch.distributed.

torch is imported only here, only when a job has more than one host.
"""

import json
import logging
import os
import socket
import time

from .errors import AlgorithmError

log = logging.getLogger(__name__)

PORT_ENV = "ALGOBOX_DIST_PORT"
HOST_ADDRESSES_ENV = "ALGOBOX_HOST_ADDRESSES"  # JSON {"algo-1": "10.0.0.1"} for hosts without DNS
DEFAULT_PORT = 7777


def resolve_host(host, attempts=30, delay=1.0):
    """The address of a host; the guide advises retrying, as DNS may lag when a cluster starts."""
    overrides = json.loads(os.environ.get(HOST_ADDRESSES_ENV, "{}"))
    if host in overrides:
        return overrides[host]
    for attempt in range(1, attempts + 1):
        try:
            return socket.gethostbyname(host)
        except socket.gaierror:
            if attempt == attempts:
                raise AlgorithmError(f"Host {host} could not be resolved after {attempts} attempts") from None
            log.info("Waiting for host %s to resolve (attempt %d/%d)", host, attempt, attempts)
            time.sleep(delay)
    raise AssertionError("unreachable")


class Cluster:
    """This host's place among the training hosts, and the collective operations between them."""

    def __init__(self, resource, device="cpu"):
        self.resource = resource
        self.rank = resource.rank
        self.world_size = resource.world_size
        self.device = device
        self.started = False

    @property
    def is_master(self):
        return self.rank == 0

    def start(self, timeout_s=600):
        """Join the process group (gloo on CPU, NCCL on GPU); a no-op for a single host."""
        if self.world_size == 1 or self.started:
            return self
        import datetime

        import torch.distributed as dist

        master = resolve_host(self.resource.hosts[0])
        port = int(os.environ.get(PORT_ENV, DEFAULT_PORT))
        backend = "nccl" if str(self.device).startswith("cuda") else "gloo"
        if self.resource.network_interface_name and backend == "gloo":
            os.environ.setdefault("GLOO_SOCKET_IFNAME", self.resource.network_interface_name)
        log.info("Joining %d hosts as rank %d via %s at %s:%d", self.world_size, self.rank, backend, master, port)
        dist.init_process_group(
            backend, init_method=f"tcp://{master}:{port}", rank=self.rank, world_size=self.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        self.started = True
        return self

    def all_reduce_sum(self, tensor):
        """Sum a tensor over all hosts in place (and return it)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, tensor):
        """The same-shaped tensor from every host, concatenated along dimension 0 in rank order."""
        if self.world_size == 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    def barrier(self):
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def stop(self):
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False
