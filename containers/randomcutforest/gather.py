"""Several hosts: every host sends its trees (bytes) to the first host over one TCP connection; no torch.

The first host listens on ``ALGOBOX_DIST_PORT`` (default 7777) and waits for the others, up to
``ALGOBOX_DIST_JOIN_TIMEOUT`` (300 s); each other host connects (retrying while the first host starts) and
sends ``rank (u32) | length (u64) | bytes``; the first host answers one byte once it holds every part, so no
host exits before the forest is complete. The runtime's cluster protocol is torch.distributed only, which this
image does not otherwise need.
"""

import logging
import socket
import struct
import time

from common import distributed
from common.errors import AlgorithmError, PlatformError

log = logging.getLogger(__name__)

HEADER = struct.Struct("<IQ")


def _receive(connection, size):
    parts, left = [], size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            raise PlatformError(f"A host closed its connection with {left} of {size} bytes still to send")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def gather(resource, payload, timeout_s=None):
    """Every host's ``payload`` in rank order on the first host; None on the others."""
    if resource.world_size == 1:
        return [payload]
    port = distributed.port()
    timeout_s = timeout_s or distributed.join_timeout()
    if resource.rank == 0:
        return _collect(resource.world_size, payload, port, timeout_s)
    _send(distributed.master_address(resource), port, resource.rank, payload, timeout_s)
    return None


def _collect(world_size, payload, port, timeout_s):
    parts = {0: payload}
    connections = []
    with socket.create_server(("", port), reuse_port=False) as server:
        server.settimeout(timeout_s)
        log.info("Waiting on port %d for the trees of %d other host(s)", port, world_size - 1)
        try:
            while len(parts) < world_size:
                connection, address = server.accept()
                connection.settimeout(timeout_s)
                rank, size = HEADER.unpack(_receive(connection, HEADER.size))
                if rank in parts or not 0 < rank < world_size:
                    connection.close()
                    raise AlgorithmError(f"Host at {address[0]} sent trees as rank {rank}, which is invalid or taken")
                parts[rank] = _receive(connection, size)
                connections.append(connection)
                log.info("Received %d bytes of trees from rank %d", size, rank)
        except socket.timeout:
            raise PlatformError(f"Only {len(parts)} of {world_size} hosts sent their trees within {timeout_s} s") \
                from None
        for connection in connections:
            with connection:
                connection.sendall(b"\1")
    return [parts[rank] for rank in range(world_size)]


def _send(master, port, rank, payload, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection = socket.create_connection((master, port), timeout=30)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PlatformError(f"Could not reach the first host at {master}:{port}: {exc}") from None
            time.sleep(0.5)
    with connection:
        connection.settimeout(timeout_s)
        log.info("Sending %d bytes of trees to the first host %s:%d as rank %d", len(payload), master, port, rank)
        connection.sendall(HEADER.pack(rank, len(payload)) + payload)
        if connection.recv(1) != b"\1":
            raise PlatformError("The first host closed the connection before confirming it had the trees")
