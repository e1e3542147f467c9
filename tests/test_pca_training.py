"""PCA training through the real ``algobox pca train`` subprocess on an emulated platform."""

import gzip
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

import sdk
from common import ndarray
from containers.pca.model import PCAModel
from bodies import csv_bytes
from emulator import Job, free_port

RECORDIO = "application/x-recordio-protobuf"


def model_of(result):
    arrays = ndarray.load(result.model_dir / "model_algo-1")
    assert list(arrays) == ["v", "s", "mean"]
    return arrays


def metric(output, name):
    return float(re.search(rf"#quality_metric: host=algo-1, test {name} <loss>=(\S+)", output).group(1))


def assert_matches_sklearn(arrays, points, k):
    reference = PCA(k, svd_solver="full").fit(points.astype(np.float64))
    components = arrays["v"][:, ::-1].T  # stored least significant first
    signs = np.sign((components * reference.components_).sum(axis=1))
    np.testing.assert_allclose(components * signs[:, None], reference.components_, atol=1e-4)
    variance = arrays["s"][::-1].astype(np.float64) ** 2 / (points.shape[0] - 1)
    np.testing.assert_allclose(variance, reference.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(arrays["mean"][0], reference.mean_, atol=1e-4)
    return reference


def captured_share(points, v):
    centred = points.astype(np.float64) - points.mean(axis=0)
    scatter = centred.T @ centred
    v = v.astype(np.float64)
    return float(np.trace(v.T @ scatter @ v) / np.linalg.eigvalsh(scatter)[-v.shape[1]:].sum())


@pytest.fixture(scope="module")
def digits():
    return load_digits().data.astype(np.float32)


def test_digits_csv_file_mode_matches_sklearn(job, digits):
    train, test = digits[:1400], digits[1400:]
    job.add_file("train", "part-0.csv", csv_bytes(train[:600]))
    job.add_file("train", "nested/part-1.csv", csv_bytes(train[600:]))
    job.add_file("test", "test.csv", csv_bytes(test))
    job.write_config({"feature_dim": 64, "mini_batch_size": 100, "num_components": 10},
                     {"train": {"ContentType": "text/csv"}, "test": {"ContentType": "text/csv;label_size=0"}})
    result = job.train("pca")
    assert result.returncode == 0, result.output
    assert result.failure is None and result.model_files == ["model_algo-1"]
    arrays = model_of(result)
    assert {k: (a.shape, a.dtype) for k, a in arrays.items()} == {
        "v": ((64, 10), np.float32), "s": ((10,), np.float32), "mean": ((1, 64), np.float32)}
    assert np.all(np.diff(arrays["s"]) > 0)  # least significant first: users take the last n
    reference = assert_matches_sklearn(arrays, train, 10)
    # the served projection is scikit-learn's transform, up to each component's sign
    projection = PCAModel.load(result.model_dir).predict(test)["projection"][:, ::-1]
    np.testing.assert_allclose(np.abs(projection), np.abs(reference.transform(test)), atol=2e-3)
    residual = test - reference.inverse_transform(reference.transform(test))
    assert metric(result.output, "reconstruction_error") == pytest.approx((residual ** 2).sum(1).mean(), rel=1e-4)
    assert 0.5 < metric(result.output, "explained_variance_ratio") < 1
    assert "#test_score (algo-1) : ('reconstruction_error'," in result.output


def test_randomized_dense_recordio_gzip_sketch_path(job):
    """d = 300 > 4p, so the d x p sketch is summed; at least 99% of the exact top-k variance is captured."""
    rng = np.random.default_rng(5)
    d, n = 300, 3000
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    points = ((rng.normal(size=(n, d)) * np.arange(1, d + 1) ** -0.75) @ basis.T + 2).astype(np.float32)
    job.add_file("train", "data.pbr.gz", gzip.compress(sdk.dense_recordio(points, np.zeros(n, np.float32))))
    job.write_config({"feature_dim": d, "mini_batch_size": 250, "num_components": 5, "algorithm_mode": "randomized",
                      "subtract_mean": "True"},
                     {"train": {"ContentType": RECORDIO, "CompressionType": "Gzip"}})
    result = job.train("pca")
    assert result.returncode == 0, result.output
    assert "sketch width p=30" in result.output and "the d x p sketch" in result.output
    arrays = model_of(result)
    assert arrays["v"].shape == (d, 5)
    assert captured_share(points, arrays["v"]) >= 0.99
    np.testing.assert_allclose(arrays["mean"][0], points.mean(0), atol=1e-4)


def test_sparse_recordio_pipe_mode_without_mean(job, digits):
    """subtract_mean=false: the top right singular vectors of the raw data; ``mean`` is saved as zeros."""
    matrix = sp.csr_matrix(digits)
    job.add_pipe("train", [sdk.sparse_recordio(matrix)])
    job.add_pipe("test", [sdk.sparse_recordio(matrix[:100])])
    job.write_config({"feature_dim": 64, "mini_batch_size": 300, "num_components": 4, "subtract_mean": "false"},
                     {"train": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"},
                      "test": {"ContentType": RECORDIO, "TrainingInputMode": "Pipe"}})
    result = job.train("pca")
    assert result.returncode == 0, result.output
    arrays = model_of(result)
    assert arrays["mean"].shape == (1, 64) and not arrays["mean"].any()
    _, singular, vt = np.linalg.svd(digits.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(arrays["s"][::-1], singular[:4], rtol=1e-5)
    np.testing.assert_allclose(np.abs(arrays["v"][:, ::-1].T @ vt[:4].T), np.eye(4), atol=1e-4)
    test = digits[:100].astype(np.float64)
    kept = ((test @ arrays["v"]) ** 2).sum()
    assert metric(result.output, "explained_variance_ratio") == pytest.approx(kept / (test ** 2).sum(), rel=1e-5)


def test_two_hosts_combine_to_the_one_host_answer(tmp_path, digits):
    """Two real processes joined by torch.distributed, each with its own files (ShardedByS3Key). Randomized mode,
    whose collectives (the sample's power iterations, Omega from the master, the sums) include regular mode's;
    tests/test_pca.py checks both modes' multi-host sums against scikit-learn exactly, with threads as hosts."""
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    shares = {"algo-1": digits[:500] + 3, "algo-2": digits[500:]}
    jobs = []
    for host, share in shares.items():
        job = Job(tmp_path / host)
        job.add_file("train", f"{host}.csv", csv_bytes(share))
        job.write_config({"feature_dim": 64, "mini_batch_size": 200, "num_components": 8,
                          "algorithm_mode": "randomized"},
                         {"train": {"ContentType": "text/csv", "S3DistributionType": "ShardedByS3Key"}},
                         hosts=tuple(shares), current_host=host)
        jobs.append(job)
    processes = [job.start_train("pca", env) for job in jobs]
    results = [job.result(p, timeout=180) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output + results[1].output
    assert "Joining 2 hosts as rank 1" in results[1].output
    assert "Summaries of 1797 rows combined (500 read by this host)" in results[0].output
    assert results[0].model_files == ["model_algo-1"] and results[1].model_files == []
    together = np.concatenate(list(shares.values()))
    arrays = model_of(results[0])
    assert captured_share(together, arrays["v"]) >= 0.99
    np.testing.assert_allclose(arrays["mean"][0], together.mean(0), atol=1e-4)
    reference = PCA(8, svd_solver="full").fit(together.astype(np.float64))
    np.testing.assert_allclose(arrays["s"][::-1], reference.singular_values_, rtol=0.02)


def test_wrong_feature_dim_names_file_and_record(job, digits):
    job.add_file("train", "a.pbr", sdk.dense_recordio(digits[:50, :60]))
    job.write_config({"feature_dim": 64, "mini_batch_size": 10, "num_components": 2}, {"train": {}})
    result = job.train("pca")
    assert result.returncode == 1
    first_line = result.failure.splitlines()[0]
    assert first_line.startswith("ClientError:")
    assert "feature_dim=64" in first_line and "a.pbr" in first_line and "record 0" in first_line
    assert result.model_files == []


@pytest.mark.parametrize("hyperparameters,message", [
    ({"num_components": 65}, "ClientError: Invalid hyperparameter num_components=65: it must not exceed "
                             "feature_dim=64"),
    ({"algorithm_mode": "fast"}, "ClientError: Invalid hyperparameter algorithm_mode='fast': 'fast' is not one of "
                                 "['regular', 'randomized']. Allowed: regular or randomized"),
])
def test_bad_hyperparameters_failure_file(job, hyperparameters, message):
    job.add_file("train", "a.csv", csv_bytes(np.ones((4, 64))))
    job.write_config({"feature_dim": 64, "mini_batch_size": 10, "num_components": 2, **hyperparameters},
                     {"train": {"ContentType": "text/csv"}})
    result = job.train("pca")
    assert result.returncode == 1
    assert result.failure.startswith(message), result.failure
    assert result.model_files == []
