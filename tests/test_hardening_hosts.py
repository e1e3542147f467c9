"""Hosts that fail together: two real ``algobox kmeans train`` processes, one of them failing.

Each case: every host exits within 30 s of the failure, and host 1's failure file names the failed host
and its reason (findings #2, #2b, #2c). A host that never joins is named within ALGOBOX_DIST_JOIN_TIMEOUT.
These cases only need an algorithm that uses ``context.cluster()``; k-means is the one run here.
"""

import os
import re
import signal
import threading
import time

import numpy as np
import pytest

import sdk
from emulator import Job, free_port

HOSTS = ("algo-1", "algo-2")
HP = {"k": 3, "feature_dim": 5, "mini_batch_size": 100}
CHANNELS = {"train": {"ContentType": "application/x-recordio-protobuf"}}
EXIT_BOUND_S = 30


def blobs(seed=0, n=600):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5, size=(3, 5))
    return (centers[rng.integers(0, 3, n)] + rng.normal(size=(n, 5))).astype(np.float32)


class Host:
    """One host's training process with its output collected as it comes (to wait for a log line)."""

    def __init__(self, job, process):
        self.job = job
        self.process = process
        self.lines = []
        self.seen = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.exited_at = None

    def _read(self):
        for line in self.process.stdout:
            with self.seen:
                self.lines.append(line)
                self.seen.notify_all()
        self.process.wait()
        self.exited_at = time.monotonic()

    def wait_for(self, pattern, timeout=120):
        deadline = time.monotonic() + timeout
        with self.seen:
            while not any(re.search(pattern, line) for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(f"no {pattern!r} in:\n{self.output}")
                self.seen.wait(min(left, 0.5))

    def finish(self, timeout):
        self.reader.join(timeout)
        if self.reader.is_alive():
            self.process.kill()
            self.reader.join(10)
            raise AssertionError(f"host still running after {timeout} s:\n{self.output}")
        return self.process.returncode

    @property
    def output(self):
        return "".join(self.lines)

    @property
    def failure(self):
        path = self.job.root / "output/failure"
        return path.read_text() if path.exists() else None


def start_hosts(tmp_path, data2=None, hp2=None, pipe2=None, env=None):
    """algo-1 and algo-2 on 127.0.0.1; algo-2 may get its own data, hyperparameters or a Pipe channel."""
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port()), **(env or {})}
    hosts = []
    for rank, name in enumerate(HOSTS):
        job = Job(tmp_path / name)
        channels = CHANNELS
        if rank == 1 and pipe2 is not None:
            job.add_pipe("train", [pipe2])
            channels = {"train": {**CHANNELS["train"], "TrainingInputMode": "Pipe"}}
        else:
            job.add_file("train", "train.pbr", sdk.dense_recordio(data2 if rank == 1 and data2 is not None
                                                                 else blobs(rank)))
        job.write_config(hp2 if rank == 1 and hp2 is not None else HP, channels, hosts=HOSTS, current_host=name)
        hosts.append(job)
    return [Host(job, job.start_train("kmeans", env)) for job in hosts]


def stalled_chunks(release):
    """A Pipe-mode epoch that sends some records, then holds the FIFO open until ``release`` is set."""
    yield sdk.dense_recordio(blobs(1, 200))
    release.wait(120)


def first_line(failure):
    assert failure is not None
    return failure.splitlines()[0]


def test_host_failing_before_joining_is_named_by_its_peer(tmp_path):
    start = time.monotonic()
    one, two = start_hosts(tmp_path, hp2={**HP, "k": "abc"})
    assert two.finish(EXIT_BOUND_S) == 1, two.output
    assert one.finish(EXIT_BOUND_S) == 1, one.output
    print(f"#2: both exited {max(one.exited_at, two.exited_at) - start:.1f} s after the start; "
          f"host 1: {first_line(one.failure)[:120]}")
    assert max(one.exited_at, two.exited_at) - start < EXIT_BOUND_S
    assert first_line(two.failure).startswith("ClientError: Invalid hyperparameter k='abc'")
    assert first_line(one.failure).startswith("ClientError: host algo-2 failed: ClientError: Invalid hyperparameter k")


def test_host_with_bad_data_after_joining_is_named_by_its_peer(tmp_path):
    bad = blobs(1)
    bad[7, 2] = np.nan
    start = time.monotonic()
    one, two = start_hosts(tmp_path, data2=bad)
    assert two.finish(EXIT_BOUND_S) == 1, two.output
    assert one.finish(EXIT_BOUND_S) == 1, one.output
    print(f"#2c NaN: both exited {max(one.exited_at, two.exited_at) - start:.1f} s after the start; "
          f"host 1: {first_line(one.failure)[:160]}")
    assert max(one.exited_at, two.exited_at) - start < EXIT_BOUND_S
    assert "Joining 2 hosts as rank 1" in two.output
    assert first_line(two.failure).startswith("ClientError: record has a NaN or infinite feature value")
    line = first_line(one.failure)
    assert line.startswith("ClientError: host algo-2 failed: ClientError: record has a NaN"), line
    assert "record 7" in line and "Connection closed" not in line  # (gloo's words may stay in the cause chain below)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_host_killed_or_frozen_after_joining_is_named_by_its_peer(tmp_path, how):
    release = threading.Event()
    one, two = start_hosts(tmp_path, pipe2=stalled_chunks(release), env={"ALGOBOX_DIST_PEER_TIMEOUT": "10"})
    try:
        one.wait_for(r"Stage streaming took")  # host 1 is done with its data and waits for host 2
        two.wait_for(r"Joining 2 hosts as rank 1")
        time.sleep(2)  # its heartbeat runs
        os.kill(two.process.pid, getattr(signal, how))
        struck = time.monotonic()
        assert one.finish(EXIT_BOUND_S) == 2, one.output
        assert one.exited_at - struck < EXIT_BOUND_S
        line = first_line(one.failure)
        print(f"#2b/2c {how}: host 1 exited {one.exited_at - struck:.1f} s after it; {line[:160]}")
        assert line.startswith("AlgorithmError: host algo-2 failed: "), line
        assert "Connection closed" not in line and "GLHF" not in one.failure
        if how == "SIGSTOP":
            assert "stopped responding for 10 s" in line
            os.kill(two.process.pid, signal.SIGCONT)  # thawed, it finds host 1 gone and exits too
            release.set()
            assert two.finish(EXIT_BOUND_S) != 0, two.output
        else:  # gloo may notice the closed connection first, or the heartbeat stops
            assert "exited without reporting a reason" in line or "stopped responding for 10 s" in line, line
    finally:
        release.set()
        for host in (one, two):
            if host.process.poll() is None:
                host.process.kill()


def test_host_that_never_joins_is_named_within_the_join_timeout(tmp_path):
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port()), "ALGOBOX_DIST_JOIN_TIMEOUT": "8"}
    job = Job(tmp_path / "algo-1")
    job.add_file("train", "train.pbr", sdk.dense_recordio(blobs()))
    job.write_config(HP, CHANNELS, hosts=HOSTS, current_host="algo-1")
    one = Host(job, job.start_train("kmeans", env))
    one.wait_for(r"Joining 2 hosts as rank 0 .*join timeout 8 s")
    joining = time.monotonic()
    assert one.finish(60) == 2, one.output
    print(f"never joins: host 1 exited {one.exited_at - joining:.1f} s after joining (timeout 8 s)")
    assert one.exited_at - joining < 8 + 5
    assert first_line(one.failure) == ("PlatformError: host algo-2 did not join within 8 s "
                                       "(ALGOBOX_DIST_JOIN_TIMEOUT sets the wait)")


def test_other_hosts_wait_until_the_first_host_has_finished(tmp_path):
    """The SDK's local mode stops every container as soon as one exits (compose --abort-on-container-exit), so
    a host that has done its share must not exit while the first host still evaluates the test channel and
    writes the model. Random Cut Forest: the first host gathers the trees, then scores a large test channel."""
    import io

    rng = np.random.default_rng(0)
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    hp = {"feature_dim": 4, "num_trees": 50, "num_samples_per_tree": 64}
    test = rng.normal(size=(150_000, 4)).astype(np.float32)
    labels = np.zeros(len(test), np.float32)
    test[:50] += 9
    labels[:50] = 1
    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([labels, test]), delimiter=",", fmt="%.5g")
    hosts = []
    for rank, name in enumerate(HOSTS):
        job = Job(tmp_path / name)
        train = io.StringIO()
        np.savetxt(train, rng.normal(size=(2000, 4)), delimiter=",", fmt="%.5g")
        job.add_file("train", f"part-{rank}.csv", train.getvalue().encode())
        job.add_file("test", "test.csv", buffer.getvalue().encode())
        job.write_config(hp, {"train": {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"},
                              "test": {"ContentType": "text/csv;label_size=1"}}, hosts=HOSTS, current_host=name)
        hosts.append(job)
    one, two = [Host(job, job.start_train("randomcutforest", env)) for job in hosts]
    one.wait_for(r"Stage evaluate took", timeout=240)
    evaluated_at = time.monotonic()
    assert one.finish(60) == 0, one.output
    assert two.finish(60) == 0, two.output
    assert "Waiting for algo-1 to finish the job" in two.output
    assert two.exited_at >= evaluated_at, (f"algo-2 exited {evaluated_at - two.exited_at:.1f} s before algo-1 "
                                           f"finished evaluating:\n{two.output[-2000:]}")
    assert "#quality_metric: host=algo-1, test f1 <loss>=" in one.output
