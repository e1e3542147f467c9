"""PCA math, model file and hyperparameters, in process (fast): scikit-learn as the reference."""

import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

import sdk
from common import ndarray
from common.errors import ClientError, HyperparameterError
from common.spec import load_spec
from containers.pca import pca
from containers.pca.model import PCAModel

FIXTURES = Path(__file__).parent / "fixtures" / "mxnet"
SCHEMA = load_spec("pca").hyperparameters


class OneHost:
    world_size, rank, is_master = 1, 0, True

    @staticmethod
    def all_reduce_sum(tensor):
        return tensor


class ThreadHosts:
    """``world_size`` in-process hosts (threads) whose all_reduce_sum really sums across them."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size)
        self.slots = [None] * world_size

    def host(self, rank):
        hosts = self

        class Host:
            world_size, is_master = hosts.world_size, rank == 0

            @staticmethod
            def all_reduce_sum(tensor):
                hosts.slots[rank] = tensor.clone()
                hosts.barrier.wait()
                total = sum(hosts.slots)
                hosts.barrier.wait()
                tensor.copy_(total)
                return tensor

        Host.rank = rank
        return Host()


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data.astype(np.float32), data.target


def fit(points, k, mode="regular", subtract_mean=True, block=100, gram=None, cluster=None, extra=-1, d=None):
    """The train.py flow in process: (optional) sample -> Omega, blocks -> summary, combine, solve."""
    cluster = cluster or OneHost()
    d = d or (points.shape[1] if not isinstance(points, list) else points[0].shape[1])
    blocks = points if isinstance(points, list) else [points[i:i + block] for i in range(0, points.shape[0], block)]
    omega = None
    if mode == "randomized":
        l, p = pca.sketch_sizes(d, k, extra)
        gram = d <= pca.GRAM_FACTOR * p if gram is None else gram
        sample, rows = [], 0
        for b in blocks:
            if rows >= pca.SAMPLE_FACTOR * l:
                break
            sample.append(b)
            rows += b.shape[0]
        omega = pca.adapted_test_matrix(pca.stack_sample(sample, "cpu"), d, l, p, subtract_mean, cluster, "cpu")
    summary = pca.Summary(d, "cpu", subtract_mean, omega=omega, gram=gram if gram is not None else True)
    for b in blocks:
        summary.add(b)
    n, mean, combined = summary.combine(cluster)
    if omega is None:
        values, vectors = pca.solve_regular(combined, k)
    else:
        values, vectors = pca.solve_nystrom(combined @ omega if summary.gram else combined, omega, k)
    return n, mean.numpy(), values.numpy(), vectors.numpy()


def captured_share(points, vectors, k):
    centred = points.astype(np.float64) - points.mean(axis=0)
    scatter = centred.T @ centred
    exact = np.linalg.eigvalsh(scatter)[-k:].sum()
    return float(np.trace(vectors.T @ scatter @ vectors) / exact)


def assert_matches_sklearn(points, n, mean, values, vectors, k):
    reference = PCA(k, svd_solver="full").fit(points.astype(np.float64))
    components = vectors[:, ::-1].T  # ours: least significant first
    signs = np.sign((components * reference.components_).sum(axis=1))
    np.testing.assert_allclose(components * signs[:, None], reference.components_, atol=1e-4)
    np.testing.assert_allclose(values[::-1] / (n - 1), reference.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(values[::-1]), reference.singular_values_, rtol=1e-5)
    np.testing.assert_allclose(mean, reference.mean_, atol=1e-5)


@pytest.mark.parametrize("k", [1, 10, 30])
def test_regular_matches_sklearn_on_digits(digits, k):
    points, _ = digits
    n, mean, values, vectors = fit(points, k)
    assert n == points.shape[0] and values.shape == (k,) and vectors.shape == (64, k)
    assert np.all(np.diff(values) >= 0)  # least to most significant
    assert_matches_sklearn(points, n, mean, values, vectors, k)


def test_regular_sparse_and_dense_blocks_mixed(digits):
    """Sparse blocks (exact float64, unshifted) and dense ones (shifted float32) add up to the same answer."""
    points, _ = digits
    blocks = [points[i:i + 200] for i in range(0, points.shape[0], 200)]
    blocks = [sp.csr_matrix(b) if i % 2 else b for i, b in enumerate(blocks)]
    with mock.patch.object(pca, "DENSIFY_DENSITY", 1.0):  # digits are 50% non-zero: force the sparse path
        n, mean, values, vectors = fit(blocks, 10)
    assert_matches_sklearn(points, n, mean, values, vectors, 10)


def test_large_mean_costs_no_precision(digits):
    """The float32 block products are taken around a shift, so an offset of 1e4 changes nothing."""
    points, _ = digits
    n, mean, values, vectors = fit(points + np.float32(1e4), 10)
    assert_matches_sklearn(points + 1e4, n, mean, values, vectors, 10)


@pytest.mark.parametrize("order", ["given", "sorted by label"])
@pytest.mark.parametrize("gram", [True, False], ids=["gram", "sketch"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_randomized_captures_99_percent_on_digits(digits, order, gram, k):
    points, target = digits
    if order != "given":
        points = points[np.argsort(target, kind="stable")]
    _, _, values, vectors = fit(points, k, "randomized", gram=gram)
    assert captured_share(points, vectors, k) >= 0.99
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), atol=1e-6)
    assert np.all(np.diff(values) >= 0)


def test_randomized_sketch_in_high_dimension():
    """d = 400 > 4p: the d x p sketch path; a slowly decaying spectrum, where one random sketch falls short."""
    rng = np.random.default_rng(3)
    d, n = 400, 4000
    scales = np.arange(1, d + 1, dtype=np.float64) ** -0.75
    basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    points = ((rng.normal(size=(n, d)) * scales) @ basis.T + 3).astype(np.float32)
    l, p = pca.sketch_sizes(d, 10, -1)
    assert d > pca.GRAM_FACTOR * p
    _, _, _, vectors = fit(points, 10, "randomized", block=500)
    assert captured_share(points, vectors, 10) >= 0.99


def test_extra_components_sizes():
    assert pca.sketch_sizes(1000, 5, -1) == (15, 30)
    assert pca.sketch_sizes(1000, 30, -1) == (60, 120)
    assert pca.sketch_sizes(1000, 5, 0) == (5, 10)
    assert pca.sketch_sizes(20, 5, 50) == (20, 20)
    assert pca.read_rows(200, 500) >= 20_000 and pca.read_rows(10**6, 500) == 500


def test_subtract_mean_false_gives_uncentred_singular_vectors(digits):
    points, _ = digits
    for mode in ("regular", "randomized"):
        n, mean, values, vectors = fit(points, 5, mode, subtract_mean=False)
        _, singular, vt = np.linalg.svd(points.astype(np.float64), full_matrices=False)
        assert not mean.any()
        np.testing.assert_allclose(np.sqrt(values[::-1]), singular[:5], rtol=1e-4 if mode == "regular" else 2e-2)
        if mode == "regular":
            np.testing.assert_allclose(np.abs(vectors[:, ::-1].T @ vt[:5].T), np.eye(5), atol=1e-4)


@pytest.mark.parametrize("mode", ["regular", "randomized"])
def test_four_hosts_combine_exactly(digits, mode):
    """Each host its own shift, rows and sparse/dense blocks, one host with no rows at all (a replicated channel
    with fewer blocks than hosts); the all-reduced answer is the one-host answer, on every host."""
    points, _ = digits
    shares = [np.array_split(points[:300] + 50, 2),
              np.array_split(points[300:1100], 4),
              [sp.csr_matrix(points[1100:])],
              []]
    hosts = ThreadHosts(len(shares))
    results = [None] * len(shares)

    def run(rank):
        results[rank] = fit(shares[rank], 10, mode, cluster=hosts.host(rank), d=64)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(len(shares))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    together = np.concatenate([points[:300] + 50, points[300:]])
    for n, mean, values, vectors in results:
        assert n == points.shape[0]
        np.testing.assert_array_equal(vectors, results[0][3])  # every host solves the same summary
    if mode == "regular":
        assert_matches_sklearn(together, *results[0], 10)
    else:
        assert captured_share(together, results[0][3], 10) >= 0.99


def test_constant_data_and_fewer_rows_than_components():
    points = np.ones((3, 6), np.float32)
    for mode in ("regular", "randomized"):
        n, mean, values, vectors = fit(points, 4, mode)
        assert n == 3 and np.all(values == 0) and np.allclose(mean, 1)
        assert np.isfinite(vectors).all() and vectors.shape == (6, 4)


def test_signs_are_deterministic():
    vectors = torch.tensor([[0.1, -0.9], [-0.8, 0.2]], dtype=torch.float64)
    fixed = pca.fix_signs(vectors)
    assert fixed.tolist() == [[-0.1, 0.9], [0.8, -0.2]]


# --- the model file ---

def test_model_file_layout(tmp_path):
    v = np.arange(12, dtype=np.float32).reshape(4, 3)
    PCAModel(v, [1, 2, 3], np.array([[1, 2, 3, 4]])).save(tmp_path)
    arrays = ndarray.load(tmp_path / "model_algo-1")
    assert list(arrays) == ["v", "s", "mean"]
    assert {k: (a.shape, a.dtype) for k, a in arrays.items()} == {
        "v": ((4, 3), np.float32), "s": ((3,), np.float32), "mean": ((1, 4), np.float32)}
    # the same bytes MXNet 1.9.1 writes for a dict of v, s, mean (fixture written by mx.nd.save)
    fixture = ndarray.load(FIXTURES / "pca_model_algo-1")
    PCAModel(fixture["v"], fixture["s"], fixture["mean"]).save(tmp_path)
    assert (tmp_path / "model_algo-1").read_bytes() == (FIXTURES / "pca_model_algo-1").read_bytes()


def test_projection_dense_sparse_and_zero_mean():
    model = PCAModel(np.array([[1, 0], [0, 1], [1, 1]], np.float32), [1, 2], [[1, 1, 1]])
    rows = np.array([[1, 2, 3], [0, 0, 0]], np.float32)
    expected = (rows - 1) @ model.v
    np.testing.assert_allclose(model.predict(rows)["projection"], expected)
    np.testing.assert_allclose(model.predict(sp.csr_matrix(rows))["projection"], expected)
    no_mean = PCAModel(model.v, model.s, np.zeros((1, 0), np.float32))  # a missing/empty mean: zeros
    np.testing.assert_allclose(no_mean.predict(rows)["projection"], rows @ model.v)


def test_model_load_errors(tmp_path):
    with pytest.raises(ClientError, match="No PCA model"):
        PCAModel.load(tmp_path)
    ndarray.save(tmp_path / "model_algo-1", [np.zeros((2, 2), np.float32)])
    with pytest.raises(ClientError, match="expected arrays named 'v', 's' and 'mean'"):
        PCAModel.load(tmp_path)
    ndarray.save(tmp_path / "model_algo-1", {"v": np.zeros((4, 2), np.float32), "s": np.zeros(3, np.float32)})
    with pytest.raises(ClientError, match="3 values for 2 components"):
        PCAModel.load(tmp_path)


# --- hyperparameters ---

def sdk_pca_hyperparameters(**kwargs):
    from sagemaker import PCA as SDKPCA

    return sdk.estimator_hyperparameters(SDKPCA, 64, 500, **kwargs)


def test_sdk_estimator_hyperparameters_parse():
    sent = sdk_pca_hyperparameters(num_components=5, algorithm_mode="randomized", subtract_mean=False,
                                   extra_components=-1)
    assert sent["subtract_mean"] == "False"
    assert SCHEMA.parse(sent) == {"feature_dim": 64, "mini_batch_size": 500, "num_components": 5,
                                  "algorithm_mode": "randomized", "subtract_mean": False, "extra_components": -1}
    assert SCHEMA.parse(sdk_pca_hyperparameters(num_components=3))["subtract_mean"] is True


@pytest.mark.parametrize("value", ["true", "True", "TRUE", '"true"'])
def test_subtract_mean_spellings(value):
    assert SCHEMA.parse({"feature_dim": "4", "mini_batch_size": "1", "num_components": "2",
                         "subtract_mean": value})["subtract_mean"] is True


@pytest.mark.parametrize("extra,message", [
    ({"num_components": "0"}, "Invalid hyperparameter num_components='0': 0 is less than the minimum of 1"),
    ({"algorithm_mode": "fast"}, "Invalid hyperparameter algorithm_mode='fast'"),
    ({"subtract_mean": "yes"}, "Invalid hyperparameter subtract_mean='yes'"),
    ({"extra_components": "-2"}, "Invalid hyperparameter extra_components='-2'"),
    ({"mini_batch_size": None}, "'mini_batch_size' is a required property"),
    ({"num_components": None}, "'num_components' is a required property"),
    ({"k": "3"}, "Additional properties are not allowed ('k' was unexpected)"),
])
def test_bad_hyperparameters(extra, message):
    values = {"feature_dim": "64", "mini_batch_size": "500", "num_components": "5", **extra}
    with pytest.raises(HyperparameterError) as error:
        SCHEMA.parse({k: v for k, v in values.items() if v is not None})
    assert message in str(error.value)


def test_test_channel_scores_dense_and_sparse_alike(digits):
    from common.batches import Batch
    from containers.pca.train import evaluate

    points, _ = digits
    n, mean, values, vectors = fit(points[:1000], 5)
    model = PCAModel(vectors, np.sqrt(values), mean.reshape(1, -1))

    class Context:
        def __init__(self, blocks):
            self.blocks = blocks

        def batches(self, name, rows, feature_dim=None, sharded=True):
            assert name == "test" and not sharded and feature_dim == 64
            return [Batch(block) for block in self.blocks]

    test = points[1000:]
    dense = evaluate(Context([test[:400], test[400:]]), model, 1000)
    sparse = evaluate(Context([sp.csr_matrix(test[:400]), sp.csr_matrix(test[400:])]), model, 1000)
    centred = test.astype(np.float64) - mean
    residual = centred - centred @ vectors @ vectors.T
    assert dense["reconstruction_error"] == pytest.approx((residual ** 2).sum(1).mean(), rel=1e-5)
    assert dense["explained_variance_ratio"] == pytest.approx(1 - (residual ** 2).sum() / (centred ** 2).sum(),
                                                              rel=1e-5)
    assert sparse == pytest.approx(dense, rel=1e-5)
