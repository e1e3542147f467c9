"""SIGTERM at every stage of ``algobox kmeans train``: exit well inside the platform's 120 s (findings #6a-c),
the model saved where there is one, and no metric from an evaluation cut short (finding #7).

#6b, #6c and #7 are algorithm-agnostic (the runtime's Pipe reads and report_test); #6a is k-means' reduce.
"""

import re
import signal
import time

import numpy as np

from common import ndarray
import bodies
from emulator import Job
from test_hardening_hosts import Host

EXIT_BOUND_S = 10


def csv_bytes(array):
    return bodies.csv_bytes(array, fmt="%.6g")


def held(resume, seconds):
    """A stalled writer: wait until the test resumes it (``resume`` not empty), ``seconds`` at most."""
    deadline = time.monotonic() + seconds
    while not resume and time.monotonic() < deadline:
        time.sleep(0.1)


def sigterm(host):
    host.process.send_signal(signal.SIGTERM)
    return time.monotonic()


def test_sigterm_during_the_reduce_saves_the_model_quickly(job):
    """#6a: k=2000 (K=8000 weighted centers): the local Lloyd loop took 151 s to notice SIGTERM."""
    rng = np.random.default_rng(0)
    job.add_file("train", "train.csv", csv_bytes(rng.normal(size=(20000, 50))))
    job.write_config({"k": 2000, "feature_dim": 50, "mini_batch_size": 10000},
                     {"train": {"ContentType": "text/csv"}})
    host = Host(job, job.start_train("kmeans"))
    host.wait_for(r"Stage combine took", timeout=240)
    struck = sigterm(host)
    assert host.finish(60) == 0, host.output
    print(f"#6a: exit {host.exited_at - struck:.1f} s after SIGTERM")
    assert host.exited_at - struck < EXIT_BOUND_S, host.output
    assert "The reduction was stopped by a signal" in host.output
    centroids = ndarray.load(job.model_dir / "model_algo-1")[0]
    assert centroids.shape == (2000, 50) and np.isfinite(centroids).all()


def test_sigterm_during_a_stalled_pipe_read_exits_quickly(job):
    """#6b: the writer holds the FIFO open and sends nothing: exit came only when it resumed (41 s)."""
    rng = np.random.default_rng(1)
    resume = []

    def stalled():
        yield csv_bytes(rng.normal(size=(500, 3)))
        held(resume, 60)

    job.add_pipe("train", [stalled()])
    job.write_config({"k": 2, "feature_dim": 3, "mini_batch_size": 100},
                     {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})
    host = Host(job, job.start_train("kmeans"))
    try:
        host.wait_for(r"Channel train: text/csv, Pipe mode", timeout=120)
        deadline = time.monotonic() + 60
        while job.writers[0].written < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # reading, then waiting on the silent writer
        struck = sigterm(host)
        assert host.finish(60) == 0, host.output
        print(f"#6b: exit {host.exited_at - struck:.1f} s after SIGTERM")
        assert host.exited_at - struck < EXIT_BOUND_S, host.output
        assert ndarray.load(job.model_dir / "model_algo-1")[0].shape == (2, 3)
    finally:
        resume.append(True)


def test_sigterm_while_waiting_for_the_fifo_exits_quickly(job):
    """#6c: the FIFO never appears: SIGTERM was ignored for 57 s, then a ClientError after 60 s."""
    job.write_config({"k": 2, "feature_dim": 3}, {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})
    host = Host(job, job.start_train("kmeans", {"ALGOBOX_PIPE_WAIT_SECONDS": "60"}))
    host.wait_for(r"Channel train: text/csv, Pipe mode", timeout=120)
    time.sleep(1)
    struck = sigterm(host)
    host.finish(60)
    print(f"#6c: exit {host.exited_at - struck:.1f} s after SIGTERM")
    assert host.exited_at - struck < EXIT_BOUND_S, host.output
    assert "did not appear" not in host.output
    assert re.search(r"stopped \(SIGTERM\) before (it read any data|any training point was read)",
                     host.failure or ""), host.output


def test_fifo_that_never_appears_is_a_platform_error(job):
    job.write_config({"k": 2, "feature_dim": 3}, {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})
    result = job.train("kmeans", {"ALGOBOX_PIPE_WAIT_SECONDS": "1"}, timeout=120)
    assert result.returncode == 2
    assert result.failure.startswith("PlatformError: Pipe-mode input "), result.failure
    assert "did not appear within 1 s" in result.failure.splitlines()[0]


def test_sigterm_during_evaluation_reports_no_test_metric(job):
    """#7: SIGTERM half-way through the test channel logged msd over the half read (0.19, not ~1e5)."""
    rng = np.random.default_rng(2)
    job.add_file("train", "train.csv", csv_bytes(rng.normal(size=(3000, 3))))
    resume = []

    def test_epoch():
        yield csv_bytes(rng.normal(size=(1000, 3)))
        held(resume, 30)
        yield csv_bytes(rng.normal(size=(1000, 3)) + 100)

    job.add_pipe("test", [test_epoch()])
    job.write_config({"k": 2, "feature_dim": 3, "mini_batch_size": 100},
                     {"train": {"ContentType": "text/csv"},
                      "test": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})
    host = Host(job, job.start_train("kmeans"))
    try:
        host.wait_for(r"Saved model_algo-1", timeout=120)
        deadline = time.monotonic() + 60
        while job.writers[0].written < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        struck = sigterm(host)
        assert host.finish(60) == 0, host.output
        assert host.exited_at - struck < EXIT_BOUND_S
    finally:
        resume.append(True)
    assert not re.search(r"#quality_metric: .*test msd", host.output), host.output
    assert "partial scores are not reported" in host.output
