"""k-means training through the real ``algobox kmeans train`` subprocess on an emulated platform."""

import gzip
import re
import signal
import threading
import time

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import train_test_split

import sdk
from common import ndarray
from bodies import csv_bytes
from emulator import Job, free_port

QUALITY_REGEX = re.compile(r"#quality_metric: host=\S+, test msd <loss>=(\S+)")


def centroids(result):
    arrays = ndarray.load(result.model_dir / "model_algo-1")
    assert isinstance(arrays, list) and len(arrays) == 1
    return arrays[0]


def test_msd(centers, points):
    return float(((points[:, None, :] - centers[None]) ** 2).sum(-1).min(1).mean())


test_msd.__test__ = False


@pytest.fixture(scope="module")
def digits():
    data = load_digits().data.astype(np.float32)
    return train_test_split(data, test_size=0.25, random_state=0)


def test_digits_csv_file_mode_matches_sklearn(job, digits):
    train, test = digits
    job.add_file("train", "part-0.csv", csv_bytes(train[:700]))
    job.add_file("train", "nested/part-1.csv", csv_bytes(train[700:]))
    job.add_file("test", "test.csv", csv_bytes(test))
    job.write_config({"k": 10, "feature_dim": 64, "eval_metrics": '["msd","ssd"]'},
                     {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv;label_size=0"}})
    result = job.train("kmeans")
    assert result.returncode == 0, result.output
    assert result.failure is None
    assert result.model_files == ["model_algo-1"]
    centers = centroids(result)
    assert centers.shape == (10, 64) and centers.dtype == np.float32
    logged = float(QUALITY_REGEX.search(result.output).group(1))
    ours = test_msd(centers, test)
    assert logged == pytest.approx(ours, rel=1e-4)
    assert "#test_score (algo-1) : ('ssd'," in result.output
    assert "#quality_metric: host=algo-1, test ssd <loss>=" in result.output
    reference = KMeans(10, n_init=10, random_state=0).fit(train).cluster_centers_
    assert ours <= 1.02 * test_msd(reference, test)


def test_recordio_dense_with_labels_file_mode_gzip(job):
    points, labels = make_blobs(3000, 5, centers=4, cluster_std=0.3, random_state=3)
    points = points.astype(np.float32)
    job.add_file("train", "data.pbr.gz", gzip.compress(sdk.dense_recordio(points, labels.astype(np.float32))))
    job.write_config({"k": 4, "feature_dim": 5, "mini_batch_size": 500},
                     {"train": {"ContentType": "application/x-recordio-protobuf", "CompressionType": "Gzip"}})
    result = job.train("kmeans")
    assert result.returncode == 0, result.output
    truth = np.stack([points[labels == i].mean(0) for i in range(4)])
    found = centroids(result)
    distance = np.sqrt(((truth[:, None] - found[None]) ** 2).sum(-1))
    assert distance.min(axis=1).max() < 0.1  # every true center recovered


def test_sparse_recordio_pipe_mode_two_epochs(job):
    points, _ = make_blobs(2000, 30, centers=3, cluster_std=0.5, random_state=1)
    points[np.abs(points) < 2] = 0
    matrix = sp.csr_matrix(points.astype(np.float32))
    data = sdk.sparse_recordio(matrix)
    job.add_pipe("train", [data, data])
    job.write_config({"k": 3, "feature_dim": 30, "epochs": 2, "mini_batch_size": 300},
                     {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"}})
    result = job.train("kmeans")
    assert result.returncode == 0, result.output
    assert "Epoch 2 of 2 done: 4000 points seen" in result.output
    assert centroids(result).shape == (3, 30)


def test_wrong_feature_dim_names_file_and_record(job):
    points = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    job.add_file("train", "a.pbr", sdk.dense_recordio(points))
    job.write_config({"k": 2, "feature_dim": 5}, {"train": {}})
    result = job.train("kmeans")
    assert result.returncode == 1
    first_line = result.failure.splitlines()[0]
    assert first_line.startswith("ClientError:")
    assert "feature_dim=5" in first_line and "a.pbr" in first_line and "record 0" in first_line


def test_bad_hyperparameter_failure_file(job):
    job.add_file("train", "a.csv", b"1,2\n3,4\n")
    job.write_config({"k": "abc", "feature_dim": 2}, {"train": {"ContentType": "text/csv"}})
    result = job.train("kmeans")
    assert result.returncode == 1
    assert result.failure.startswith("ClientError: Invalid hyperparameter k='abc'")
    assert result.model_files == []


def test_missing_config_file(job):
    job.write_config({"k": 2, "feature_dim": 2})
    result = job.train("kmeans")
    assert result.returncode == 1
    assert result.failure.startswith("ClientError: Config file") and "inputdataconfig.json is missing" in result.failure


@pytest.mark.parametrize("case,files,message", [
    ("empty channel", {}, "is empty: no data files"),
    ("empty file", {"a.csv": b""}, "holds no records"),
    ("truncated recordio", {"a.pbr": None}, "a.pbr"),
    ("NaN", {"a.csv": b"1,2\n3,nan\n"}, "NaN or infinite feature value (file"),
    ("ragged csv", {"a.csv": b"1,2\n3\n"}, "a.csv"),
])
def test_bad_data(job, case, files, message):
    (job.root / "input/data/train").mkdir(parents=True)
    for name, data in files.items():
        if data is None:
            data = sdk.dense_recordio(np.ones((10, 2), dtype=np.float32))[:-7]
        job.add_file("train", name, data)
    content_type = "application/x-recordio-protobuf" if case == "truncated recordio" else "text/csv"
    job.write_config({"k": 1, "feature_dim": 2}, {"train": {"ContentType": content_type}})
    result = job.train("kmeans")
    assert result.returncode == 1, result.output
    assert result.failure.startswith("ClientError:")
    assert message in result.failure.splitlines()[0]


def test_sigterm_mid_training_saves_a_model(job):
    rng = np.random.default_rng(0)
    chunk = sdk.dense_recordio(rng.normal(size=(1000, 8)).astype(np.float32))

    def slow_chunks():
        for _ in range(600):  # up to 60 s of data; SIGTERM comes long before
            yield chunk
            time.sleep(0.1)

    job.add_pipe("train", [slow_chunks()])
    job.write_config({"k": 3, "feature_dim": 8, "mini_batch_size": 1000},
                     {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "Pipe"}})
    process = job.start_train("kmeans")
    deadline = time.monotonic() + 120
    while job.writers[0].written < 10 and time.monotonic() < deadline:  # training has read ~10 batches
        time.sleep(0.05)
    assert job.writers[0].written >= 10
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    result = job.result(process, timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 0, result.output
    assert "Received SIGTERM" in result.output
    assert centroids(result).shape == (3, 8)


def test_two_hosts_combine_as_well_as_one(tmp_path, digits):
    train, test = digits
    port = free_port()
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(port)}
    hp = {"k": 10, "feature_dim": 64, "mini_batch_size": 200}
    channels = {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv"}}
    jobs = []
    for host in ("algo-1", "algo-2"):
        job = Job(tmp_path / host)
        job.add_file("train", "train.csv", csv_bytes(train))
        job.add_file("test", "test.csv", csv_bytes(test))
        job.write_config(hp, channels, hosts=("algo-1", "algo-2"), current_host=host)
        jobs.append(job)
    processes = [job.start_train("kmeans", env) for job in jobs]
    results = [job.result(p, timeout=180) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output + results[1].output
    assert "Joining 2 hosts as rank 1" in results[1].output
    assert results[0].model_files == ["model_algo-1"] and results[1].model_files == []
    single = Job(tmp_path / "single")
    single.add_file("train", "train.csv", csv_bytes(train))
    single.add_file("test", "test.csv", csv_bytes(test))
    single.write_config(hp, channels)
    one = single.train("kmeans")
    assert one.returncode == 0, one.output
    two_msd = test_msd(centroids(results[0]), test)
    assert two_msd <= 1.02 * test_msd(centroids(one), test)


def test_pipe_mode_reader_stopping_early_does_not_hang(job):
    """A FIFO whose reader closes early must not block the platform's writer or the next epoch."""
    data = csv_bytes(np.random.default_rng(1).normal(size=(20000, 3)))  # well over a pipe buffer
    job.add_pipe("train", [data])
    job.write_config({"k": 2, "feature_dim": 3, "mini_batch_size": 50},
                     {"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}})
    from common.batches import read_batches
    from common.channels import ChannelSpec, resolve_channels
    from common.config import TrainingConfig
    from common.paths import MLPaths

    paths = MLPaths(job.root)
    config = TrainingConfig.load(paths)
    channel = resolve_channels((ChannelSpec("train", ("text/csv",), required=True),), config.channels)["train"]
    batches = read_batches(channel, paths, 50)
    first = next(batches)
    batches.close()
    assert len(first) == 50
    writer = job.writers[0]
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert threading.active_count() >= 1
