"""The cluster protocol (``distributed.py``) over torch.distributed, with hosts that fail together.

Hosts meet at a TCPStore on the first host. The store also carries each host's state:

``joined/<rank>``   set on joining; a host missing after ``ALGOBOX_DIST_JOIN_TIMEOUT`` s is named in the error
``failed/<rank>``   "<category>: <message>" written by a host that fails (also before it joined)
``beat/<rank>``     a counter a heartbeat thread bumps every second
``done/<rank>``     set on a clean stop, so a finished host is not mistaken for a frozen one

A watchdog thread on every host reads the others' state: a peer that reported a failure, or whose heartbeat
stopped for ``ALGOBOX_DIST_PEER_TIMEOUT`` s (frozen or killed), ends this host too, within seconds, with a
failure file that names the peer ("host algo-2 failed: ClientError: ..."). A collective broken by a dead
peer is reported the same way instead of gloo's "Connection closed by peer".
"""

import datetime
import logging
import os
import threading
import time

from . import distributed
from .errors import AlgoboxError, PeerError, PlatformError

log = logging.getLogger(__name__)
BEAT_SECONDS = 1.0
POLL_SECONDS = 0.2
REPORT_SECONDS = 20.0  # how long a failing host tries to tell the others (the first host keeps the store up)


def _summary(exc):
    category = getattr(exc, "category", "AlgorithmError")
    return f"{category}: {exc}" if isinstance(exc, AlgoboxError) else f"AlgorithmError: {type(exc).__name__}: {exc}"


class TorchCluster:
    """This host's place among the training hosts, and the collective operations between them."""

    def __init__(self, resource, device="cpu", on_peer_failure=None):
        self.resource = resource
        self.rank = resource.rank
        self.world_size = resource.world_size
        self.device = device
        self.started = False
        self.store = None
        self.on_peer_failure = on_peer_failure  # called with a PeerError from the watchdog thread
        self._stopping = threading.Event()
        self._threads = []
        self._only_joined = False
        self._work_done = False  # stop() ran; finish() is still due

    @property
    def is_master(self):
        return self.rank == 0

    @property
    def hosts(self):
        return self.resource.hosts

    # --- joining ---
    def _connect(self, timeout, serve=None):
        """The job's TCPStore: served by the first host (``serve``), a client connection elsewhere."""
        import torch.distributed as dist

        master = distributed.master_address(self.resource)
        serve = self.is_master if serve is None else serve
        return dist.TCPStore(master, distributed.port(), self.world_size, is_master=serve,
                             timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False)

    def _failed_peer(self, ranks=None):
        """The first peer (of ``ranks``, default all) that reported a failure, as a PeerError, or None."""
        for rank, host in enumerate(self.hosts):
            if rank != self.rank and (ranks is None or rank in ranks) and self.store.check([f"failed/{rank}"]):
                category, _, message = self.store.get(f"failed/{rank}").decode("utf-8", "replace").partition(": ")
                return PeerError(host, category, message)
        return None

    def start(self):
        """Join the other hosts (gloo on CPU, NCCL on GPU); a no-op for a single host."""
        if self.world_size == 1 or self.started:
            return self
        import torch.distributed as dist

        timeout = distributed.join_timeout()
        backend = "nccl" if str(self.device).startswith("cuda") else "gloo"
        if self.resource.network_interface_name and backend == "gloo":
            os.environ.setdefault("GLOO_SOCKET_IFNAME", self.resource.network_interface_name)
        log.info("Joining %d hosts as rank %d via %s at %s:%d (join timeout %.0f s)", self.world_size, self.rank,
                 backend, self.hosts[0], distributed.port(), timeout)
        try:
            self.store = self._connect(timeout)
        except (RuntimeError, OSError) as exc:
            raise PlatformError(f"host {self.hosts[0]} (the first host) did not start listening on port "
                                f"{distributed.port()} within {timeout:.0f} s ({distributed.JOIN_TIMEOUT_ENV}): {exc}") from exc
        self.store.set(f"joined/{self.rank}", self.resource.current_host)
        deadline = time.monotonic() + timeout
        keys = [f"joined/{rank}" for rank in range(self.world_size)]
        while not self.store.check(keys):
            failed = self._failed_peer()
            if failed is not None:
                self._mark_seen()
                raise failed
            if time.monotonic() > deadline:
                missing = [h for r, h in enumerate(self.hosts) if not self.store.check([f"joined/{r}"])]
                self._only_joined = True  # no point waiting for hosts that never came to read the reason
                raise PlatformError(f"host {', '.join(missing)} did not join within {timeout:.0f} s "
                                    f"({distributed.JOIN_TIMEOUT_ENV} sets the wait)")
            time.sleep(POLL_SECONDS)
        dist.init_process_group(backend, store=dist.PrefixStore("pg", self.store), rank=self.rank,
                                world_size=self.world_size, timeout=datetime.timedelta(seconds=timeout))
        self.started = True
        self._start_watchdog()
        return self

    # --- watching the others ---
    def _start_watchdog(self):
        peer_timeout = distributed.peer_timeout()
        watch_store = self._connect(peer_timeout, serve=False)  # its own connection, with its own timeout

        def beat():
            while not self._stopping.wait(BEAT_SECONDS):
                try:
                    watch_store.add(f"beat/{self.rank}", 1)
                except Exception:  # noqa: BLE001 - the watchdog reports a lost store
                    return

        def watch():
            last = {rank: (-1, time.monotonic()) for rank in range(self.world_size) if rank != self.rank}
            while not self._stopping.wait(POLL_SECONDS * 5):
                try:
                    for rank in list(last):
                        host = self.hosts[rank]
                        if watch_store.check([f"failed/{rank}"]):
                            category, _, message = watch_store.get(f"failed/{rank}").decode(
                                "utf-8", "replace").partition(": ")
                            self._mark_seen(watch_store)
                            return self._peer_failed(PeerError(host, category, message))
                        if watch_store.check([f"done/{rank}"]):
                            del last[rank]
                            continue
                        count = watch_store.add(f"beat/{rank}", 0)
                        if count != last[rank][0]:
                            last[rank] = (count, time.monotonic())
                        elif time.monotonic() - last[rank][1] > peer_timeout:
                            return self._peer_failed(PeerError(
                                host, "AlgorithmError",
                                f"it stopped responding for {peer_timeout:.0f} s ({distributed.PEER_TIMEOUT_ENV}): "
                                "frozen, killed (out of memory?) or its machine failed"))
                except Exception as exc:  # noqa: BLE001 - the store itself is gone: the first host died
                    if self._stopping.is_set():
                        return None
                    return self._peer_failed(PeerError(self.hosts[0], "AlgorithmError",
                                                       f"its coordination store is unreachable ({exc})"))
            return None

        for target in (beat, watch):
            thread = threading.Thread(target=target, name=f"algobox-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _peer_failed(self, error):
        if self._stopping.is_set():
            return
        log.error("%s", error)
        if self.on_peer_failure is not None:
            self.on_peer_failure(error)

    def _mark_seen(self, store=None):
        """Tell a failing first host that this one has read its reason (it keeps the store up until then)."""
        try:
            (store or self.store).set(f"seen/{self.rank}", "1")
        except Exception:  # noqa: BLE001 - best effort
            pass

    def report_failure(self, exc):
        """Tell the other hosts why this one fails (best effort, never raises)."""
        if self.world_size == 1:
            return
        try:
            wait = min(REPORT_SECONDS, distributed.join_timeout())
            if self.store is None:  # failed before joining: the first host may still be starting
                self.store = self._connect(wait)
            self.store.set(f"failed/{self.rank}", _summary(exc)[:900])
            if self.is_master:  # the store lives here: keep it up until the others have read the reason
                deadline = time.monotonic() + wait
                waiting = [r for r in range(1, self.world_size)
                           if not self._only_joined or self.store.check([f"joined/{r}"])]
                while time.monotonic() < deadline and not all(
                        self.store.check([f"failed/{r}"]) or self.store.check([f"seen/{r}"]) for r in waiting):
                    time.sleep(POLL_SECONDS)
        except Exception as err:  # noqa: BLE001
            log.warning("Could not tell the other hosts about this failure: %s", err)

    def _beats(self):
        return {rank: self.store.add(f"beat/{rank}", 0) for rank in range(self.world_size)
                if rank != self.rank and not self.store.check([f"done/{rank}"])}

    def _translate(self, exc):
        """A collective broken by a peer: the peer's own reason, as a PeerError; a peer that reported none
        and whose heartbeat stopped is named as having exited without a reason."""
        start = time.monotonic()
        beats = None
        while True:
            try:
                failed = self._failed_peer()
                if failed is not None:
                    self._mark_seen()
                    return failed
                now_beats = self._beats()
            except Exception:  # noqa: BLE001 - the store died with the first host
                return PeerError(self.hosts[0], "AlgorithmError",
                                 f"it exited without reporting a reason; the connection to it was lost ({exc})")
            if beats is None:
                beats = now_beats
            elapsed = time.monotonic() - start
            if elapsed > 4 * BEAT_SECONDS:  # a living peer beats every second
                silent = [self.hosts[r] for r, count in now_beats.items() if count == beats.get(r)]
                if silent:
                    return PeerError(", ".join(silent), "AlgorithmError",
                                     "it exited without reporting a reason (killed, out of memory?) during a "
                                     "collective operation")
            if elapsed > 10:
                return PeerError("(another host)", "AlgorithmError", f"a collective operation failed: {exc}")
            time.sleep(POLL_SECONDS)

    def _collective(self, function, *args):
        try:
            return function(*args)
        except RuntimeError as exc:
            raise self._translate(exc) from exc

    # --- the protocol ---
    def all_reduce_sum(self, tensor):
        """Sum a tensor over all hosts in place (and return it)."""
        if self.world_size > 1:
            import torch.distributed as dist

            self._collective(dist.all_reduce, tensor, dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, tensor):
        """The same-shaped tensor from every host, concatenated along dimension 0 in rank order."""
        if self.world_size == 1:
            return tensor
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._collective(dist.all_gather, parts, tensor.contiguous())
        return torch.cat(parts)

    def all_gather_bytes(self, data):
        """Every host's bytes (of any length), in rank order: lengths first, then one padded all_gather."""
        if self.world_size == 1:
            return [bytes(data)]
        import numpy as np
        import torch

        lengths = self.all_gather(torch.tensor([len(data)], dtype=torch.int64)).tolist()
        block = torch.zeros(max(lengths), dtype=torch.uint8)
        if data:
            block[:len(data)] = torch.from_numpy(np.frombuffer(bytes(data), dtype=np.uint8).copy())
        gathered = self.all_gather(block.reshape(1, -1)).numpy()
        return [gathered[rank, :length].tobytes() for rank, length in enumerate(lengths)]

    def broadcast(self, tensor, source=0):
        if self.world_size > 1:
            import torch.distributed as dist

            self._collective(dist.broadcast, tensor, source)
        return tensor

    def barrier(self):
        if self.world_size > 1:
            import torch.distributed as dist

            self._collective(dist.barrier)

    def stop(self):
        """The collective work is over (the ``with`` block ends): wait until every host got here, then close the
        process group. The store and the heartbeats stay up until ``finish`` (the end of the job)."""
        if not self.started:
            return
        import torch.distributed as dist

        try:
            self.store.set(f"done/{self.rank}", "1")
            deadline = time.monotonic() + distributed.peer_timeout()
            keys = [f"done/{rank}" for rank in range(self.world_size)]
            while not self.store.check(keys) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a clean stop is best effort once the work is done
            log.warning("While leaving the cluster: %s", exc)
        dist.destroy_process_group()
        self.started = False
        self._work_done = True

    def finish(self):
        """The end of the job (``train`` returned): the other hosts wait until the first host is done too.

        What the first host still does after the collective work (a test evaluation, writing the model) must not
        be cut short: the SDK's local mode stops every container as soon as one exits. The wait lasts as long as
        the first host's heartbeat goes on; a failure it reports is raised here."""
        if not self._work_done:
            return
        self._work_done = False
        try:
            if self.is_master:
                self.store.set("finished/0", "1")
                deadline = time.monotonic() + distributed.peer_timeout()
                left = [f"left/{rank}" for rank in range(1, self.world_size)]
                while not self.store.check(left) and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
                return
            self._wait_for_master()
            self._stopping.set()  # before saying so: the first host may exit, taking the store with it
            self.store.set(f"left/{self.rank}", "1")
        except PeerError:
            raise
        except Exception as exc:  # noqa: BLE001 - the first host left: nothing more to wait for
            log.warning("While waiting for %s to finish: %s", self.hosts[0], exc)
        finally:
            self._stopping.set()

    def _wait_for_master(self):
        if self.store.check(["finished/0"]):
            return
        log.info("Waiting for %s to finish the job", self.hosts[0])
        peer_timeout = distributed.peer_timeout()
        beat, seen = -1, time.monotonic()
        while not self.store.check(["finished/0"]):
            failed = self._failed_peer(ranks=(0,))
            if failed is not None:
                self._mark_seen()
                raise failed
            count = self.store.add("beat/0", 0)
            if count != beat:
                beat, seen = count, time.monotonic()
            elif time.monotonic() - seen > peer_timeout:
                log.warning("%s stopped responding for %.0f s before it finished; leaving", self.hosts[0],
                            peer_timeout)
                return
            time.sleep(POLL_SECONDS)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            self.report_failure(exc)
            self._stopping.set()
            return False
        self.stop()
        return False


# the old name: algorithms that say Cluster get the torch implementation
Cluster = TorchCluster
