"""k-NN numerics in-process: sampling, projections, the vote, auto values, model files. The entrypoint and HTTP
are exercised in test_knn_training.py and test_knn_serving.py."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import hadamard
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from common.errors import ClientError, HyperparameterError
from common.spec import load_spec
from containers.knn import checks, knn, line, projection
from containers.knn.model import KNNModel, pairwise_vote, read_metadata, vote
from containers.knn.sampling import Reservoir

SPEC = load_spec("knn")


def hyperparameters(**values):
    raw = {"feature_dim": "64", "k": "5", "predictor_type": "classifier", "sample_size": "5000", **values}
    return SPEC.hyperparameters.parse({k: str(v) for k, v in raw.items()})


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.float32)


def test_reservoir_keeps_every_row_with_the_same_probability():
    rows, capacity, trials = 60, 12, 3000
    kept = np.zeros(rows)
    stream = np.arange(rows, dtype=np.float32)[:, None]
    for seed in range(trials):
        reservoir = Reservoir(capacity, 1, seed)
        for start in range(0, rows, 7):  # batches straddle the end of the fill phase
            reservoir.add(stream[start:start + 7], stream[start:start + 7, 0])
        features, labels = reservoir.sample()
        assert features.shape == (capacity, 1) and np.array_equal(features[:, 0], labels)
        assert len(set(labels.tolist())) == capacity  # no row twice
        kept[labels.astype(int)] += 1
    share = kept / trials  # each row: capacity / rows = 0.2; binomial sd ~0.0073
    assert np.abs(share - capacity / rows).max() < 0.03


def test_reservoir_memory_is_the_sample_not_the_stream():
    reservoir = Reservoir(100, 8, 0)
    for _ in range(50):
        reservoir.add(np.random.rand(1000, 8).astype(np.float32), np.zeros(1000))
    assert reservoir.seen == 50_000 and reservoir.features.shape == (100, 8)
    small = Reservoir(10_000_000, 8, 0)  # a huge sample_size over little data allocates for the data
    small.add(np.ones((5, 8), np.float32), np.arange(5))
    assert small.features.shape[0] <= 1 << 16 and small.size == 5


def test_reservoir_projects_and_densifies_only_the_rows_it_keeps():
    calls = []
    matrix = projection.sign_matrix(50, 4, 1)

    def transform(rows):
        calls.append(rows.shape[0])
        return projection.apply(rows, matrix)

    reservoir = Reservoir(10, 4, 0, transform)
    data = sp.random(5000, 50, density=0.1, format="csr", dtype=np.float32, random_state=0)
    for start in range(0, 5000, 500):
        reservoir.add(data[start:start + 500], np.arange(start, start + 500))
    assert sum(calls) < 200  # ~10 + 10 ln(500) rows, not 5000
    features, labels = reservoir.sample()
    np.testing.assert_allclose(features, data[labels.astype(int)].toarray() @ matrix, rtol=1e-5, atol=1e-6)


def test_fjlt_is_the_subsampled_randomized_hadamard_transform():
    d, target, seed = 20, 10, 3
    matrix = projection.fjlt_matrix(d, target, seed)
    rng = np.random.default_rng(seed)  # the construction, step by step
    signs = rng.integers(0, 2, size=d) * 2 - 1
    chosen = rng.choice(32, size=target, replace=False)
    x = np.random.default_rng(1).normal(size=(6, d))
    padded = np.zeros((6, 32))
    padded[:, :d] = x * signs
    expected = (padded @ (hadamard(32) / np.sqrt(32)).T)[:, chosen] * np.sqrt(32 / target)
    np.testing.assert_allclose(x @ matrix, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["sign", "fjlt"])
def test_projections_preserve_distances_and_are_reproducible(kind):
    x = np.random.default_rng(0).normal(size=(500, 300)).astype(np.float32)
    matrix = projection.matrix(kind, 300, 150, 7)
    np.testing.assert_array_equal(matrix, projection.matrix(kind, 300, 150, 7))
    differences = x[1:] - x[:-1]
    ratio = np.sum((differences @ matrix) ** 2, axis=1) / np.sum(differences ** 2, axis=1)
    assert abs(ratio.mean() - 1) < 0.03 and ratio.std() < 0.2
    dense, sparse = projection.apply(x[:5], matrix), projection.apply(sp.csr_matrix(x[:5]), matrix)
    np.testing.assert_allclose(dense, sparse, rtol=1e-5, atol=1e-5)


def test_vote_is_the_most_frequent_label_ties_to_the_smallest():
    labels = np.array([[3, 1, 3, 2, 1], [7, 7, 7, 1, 1], [5, 4, 9, 9, 4], [2, 2, 2, 2, 2]], dtype=np.float32)
    np.testing.assert_array_equal(vote(labels), [1, 7, 4, 2])


def unique_vote(labels):
    """Each row's most frequent label, the smallest on a tie, from np.unique's counts (a row at a time)."""
    values = []
    for row in labels:
        unique, count = np.unique(row, return_counts=True)
        values.append(unique[count.argmax()])
    return np.array(values, np.float32)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 16, 17, 40])
def test_vote_paths_agree_on_ties(k):
    """The pairwise vote (k <= 16) and the sorting one (larger k) both give the most frequent label, the smallest
    on a tie: against np.unique's counts, over few classes so that ties are common."""
    rng = np.random.default_rng(k)
    for classes in (2, 3, 5, 1000):
        labels = (rng.integers(0, classes, (3000, k)) - 1).astype(np.float32) * 0.5
        expected = unique_vote(labels)
        np.testing.assert_array_equal(vote(labels), expected)
        np.testing.assert_array_equal(pairwise_vote(labels), expected)


def one_dimensional_cases():
    rng = np.random.default_rng(11)
    spread = lambda n: rng.normal(size=n)  # noqa: E731
    yield "normal", spread(200), rng.normal(size=3000)
    yield "integers, many duplicates", rng.integers(0, 5, 300), rng.integers(-2, 8, 3000)
    yield "halfway ties", np.arange(0, 40, 2.0), np.arange(-3, 43, 0.5)
    yield "one value", np.full(50, 7.0), rng.normal(size=500) + 7
    yield "1000 equal points (windows give up: faiss)", np.full(1000, 7.0), rng.normal(size=500) + 7
    yield "near 1000 (rounding)", np.round(rng.normal(size=500), 1) + 1000, rng.normal(size=3000) + 1000
    yield "magnitudes 1e-30 to 1e30", spread(400) * 10.0 ** rng.integers(-30, 30, 400), \
        spread(3000) * 10.0 ** rng.integers(-30, 30, 3000)
    yield "one point", np.array([0.5]), rng.normal(size=100)
    yield "extremes", np.array([-3e38, -1.0, 0.0, 0.0, 1.0, 3e38]), np.array([3e38, -3e38, 1e-45, 0.0, -0.0, 2.0, 1e38])


@pytest.mark.parametrize("case", list(one_dimensional_cases()), ids=lambda case: case[0])
def test_one_dimensional_search_is_faiss_exactly(case):
    """A one-feature L2 faiss.Flat model searches a window of its sorted points: the same neighbours as faiss's
    own search of the same rows (ids, their order on equal distances, and the float32 distance bits), for
    duplicate points, queries halfway between points, values where float32 rounds, and past float32's range."""
    faiss = pytest.importorskip("faiss")
    _, points, queries = case
    points = np.asarray(points, np.float32).reshape(-1, 1)
    queries = np.concatenate([np.asarray(queries, np.float32), points[:50, 0]]).reshape(-1, 1)
    index = faiss.IndexFlatL2(1)
    index.add(points)
    assert line.applies(index, faiss)
    searched = line.LineIndex(index, index.search)
    for k in (1, 3, 10, 60):
        expected_distances, expected_ids = index.search(queries, min(k, len(points)))
        with np.errstate(over="ignore"):
            distances, ids = searched.search(queries, k)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_array_equal(distances.view(np.uint32), expected_distances.view(np.uint32))


@pytest.mark.parametrize("predictor_type", ["classifier", "regressor"])
def test_one_feature_model_predicts_as_faiss_does_across_slices(predictor_type):
    """predict() of a one-feature model (the window search, slices of 65,536 rows written into columns allocated
    once) equals the same model searched by faiss, column by column, bit for bit, on 70,000 distinct rows."""
    rng = np.random.default_rng(3)
    plan = checks.plan(hyperparameters(feature_dim=1, k=4, predictor_type=predictor_type, sample_size=300))
    model = knn.build_model(plan, rng.integers(-20, 20, (300, 1)).astype(np.float32) / 4,
                            rng.integers(0, 4, 300).astype(np.float32), None)
    assert model.line is not None
    rows = np.concatenate([rng.normal(size=(69_000, 1)) * 4, rng.integers(-25, 25, (1000, 1)) / 8]).astype(np.float32)
    answer = model.predict(rows)
    model.line = None  # faiss's own search
    expected = model.predict(rows)
    assert answer["distances"].shape == (70_000, 4)
    for column in ("predicted_label", "distances", "labels"):
        np.testing.assert_array_equal(answer[column].view(np.uint32), expected[column].view(np.uint32), column)


def test_auto_values_and_pq_padding():
    plan = checks.plan(hyperparameters(index_type="faiss.IVFFlat", sample_size=1000))
    assert plan.nlists == "auto" and plan.index_dim == 64
    assert checks.auto_nlists(1000) == 32 and checks.auto_nlists(1_000_000) == 1000
    plan = checks.plan(hyperparameters(index_type="faiss.IVFPQ"))
    assert plan.pq_m == 16 and plan.index_dim == 64  # auto: the largest divisor with >= 4 dims per code
    padded = checks.plan(hyperparameters(index_type="faiss.IVFPQ", faiss_index_pq_m=24))
    assert padded.reduced_dim == 64 and padded.index_dim == 72  # zero-padded to a multiple of 24
    raised = checks.plan(hyperparameters(index_type="faiss.IVFPQ", faiss_index_pq_m=8,
                                         dimension_reduction_type="sign", dimension_reduction_target=30))
    assert raised.reduced_dim == raised.index_dim == 32  # the target raised to a multiple of 8
    assert checks.plan(hyperparameters()).host_sample_size(0, 3) == 1667
    assert sum(checks.plan(hyperparameters()).host_sample_size(r, 3) for r in range(3)) == 5000


@pytest.mark.parametrize("values, message", [
    ({"index_type": "faiss.IVFPQ", "index_metric": "COSINE"}, "index_metric=COSINE is not supported with"),
    ({"index_type": "faiss.IVFPQ", "index_metric": "INNER_PRODUCT"}, "use index_metric=L2"),
    ({"dimension_reduction_type": "sign"}, "requires dimension_reduction_target"),
    ({"dimension_reduction_type": "fjlt", "dimension_reduction_target": 64}, "less than feature_dim=64"),
    ({"index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": 6000}, "must not exceed sample_size=5000"),
])
def test_checks_reject_what_the_guide_rules_out(values, message):
    with pytest.raises(HyperparameterError, match=message):
        checks.check(hyperparameters(**values))


def boundary_ties(train, queries, k):
    """Queries whose k-th and (k+1)-th nearest training points are equally far (digits' pixels are integers):
    there the k nearest are not unique and any choice is exact."""
    squared = ((queries[:, None, :].astype(np.float64) - train[None, :, :]) ** 2).sum(axis=2)
    ordered = np.sort(squared, axis=1)
    return ordered[:, k - 1] == ordered[:, k]


@pytest.mark.parametrize("k", [1, 5, 12])
def test_flat_predictions_equal_sklearn_brute_force(digits, k):
    x, y = digits
    train, labels, queries = x[:1300], y[:1300], x[1300:]
    tied = boundary_ties(train, queries, k)
    plan = checks.plan(hyperparameters(k=k))
    out = knn.build_model(plan, train, labels, None).predict(queries)
    reference = KNeighborsClassifier(k, algorithm="brute").fit(train, labels)
    np.testing.assert_array_equal(out["predicted_label"][~tied], reference.predict(queries)[~tied])
    distances, _ = reference.kneighbors(queries)
    np.testing.assert_allclose(out["distances"], distances, rtol=1e-5, atol=1e-4)  # ties included
    regressor = knn.build_model(checks.plan(hyperparameters(k=k, predictor_type="regressor")), train, labels, None)
    expected = KNeighborsRegressor(k, algorithm="brute").fit(train, labels).predict(queries)
    np.testing.assert_allclose(regressor.predict(queries)["predicted_label"][~tied], expected[~tied], rtol=1e-6)
    assert tied.mean() < 0.05


def test_cosine_and_inner_product_distances_ascend(digits):
    x, y = digits
    for metric in ("COSINE", "INNER_PRODUCT"):
        model = knn.build_model(checks.plan(hyperparameters(index_metric=metric)), x[:500], y[:500], None)
        distances = model.predict(x[500:520])["distances"]
        assert (np.diff(distances, axis=1) >= -1e-5).all()
    cosine = knn.build_model(checks.plan(hyperparameters(index_metric="COSINE", k=1)), x[:500], y[:500], None)
    unit = x[:500] / np.linalg.norm(x[:500], axis=1, keepdims=True)
    query = x[600] / np.linalg.norm(x[600])
    assert cosine.predict(x[600:601])["distances"][0, 0] == pytest.approx(1 - (unit @ query).max(), abs=1e-5)


def test_model_files_round_trip_and_json_is_read_leniently(tmp_path, digits):
    x, y = digits
    plan = checks.plan(hyperparameters(index_type="faiss.IVFPQ", faiss_index_pq_m=8, sample_size=1000,
                                       dimension_reduction_type="fjlt", dimension_reduction_target=20))
    matrix = knn.projection_matrix(plan)
    model = knn.build_model(plan, projection.apply(x[:1000], matrix), y[:1000], matrix)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_algo-1", "model_algo-1.json", "model_algo-1.labels",
                                                          "model_algo-1.projection"]
    assert np.fromfile(tmp_path / "model_algo-1.labels", "<f4").tolist() == y[:1000].tolist()
    meta = json.loads((tmp_path / "model_algo-1.json").read_text())
    assert meta["dimension_reduction"] == {"type": "fjlt", "seed": 3, "target_dim": 24, "input_dim": 64,
                                           "matrix": "model_algo-1.projection"}
    assert (meta["k"], meta["predictor_type"], meta["normalize"], meta["version"]) == (5, "classifier", False, "1.0")
    loaded = KNNModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(x[1000:])["predicted_label"], model.predict(x[1000:])["predicted_label"])
    # the guide's own example is a Python literal; a user edits k and predictor_type there
    (tmp_path / "model_algo-1.json").write_text(
        "{'k': 1, 'predictor_type': 'regressor', 'dimension_reduction': %r, 'normalize': False, 'version': '1.0'}"
        % meta["dimension_reduction"])
    assert read_metadata(tmp_path / "model_algo-1.json")["normalize"] is False
    edited = KNNModel.load(tmp_path)
    assert (edited.k, edited.predictor_type) == (1, "regressor")
    assert edited.predict(x[1000:1010])["labels"].shape == (10, 1)
    (tmp_path / "model_algo-1.json").write_text(json.dumps({**meta, "nprobe": "many"}))
    with pytest.raises(ClientError, match="nprobe='many' in model_algo-1.json must be a positive integer"):
        KNNModel.load(tmp_path)
    (tmp_path / "model_algo-1.json").write_text(json.dumps({**meta, "nprobe": 2}))
    assert KNNModel.load(tmp_path).nprobe == 2
    (tmp_path / "model_algo-1.projection").unlink()
    with pytest.raises(ClientError, match="model_algo-1.projection is missing"):
        KNNModel.load(tmp_path)


def test_a_model_with_non_finite_labels_is_refused_at_load(tmp_path, digits):
    x, y = digits
    knn.build_model(checks.plan(hyperparameters()), x[:50], y[:50], None).save(tmp_path)
    labels = np.fromfile(tmp_path / "model_algo-1.labels", "<f4")
    labels[7] = np.nan
    labels.tofile(tmp_path / "model_algo-1.labels")
    with pytest.raises(ClientError, match=r"model_algo-1.labels holds a label that is NaN or infinite \(point 7\)"):
        KNNModel.load(tmp_path)


def test_fewer_points_than_k_answers_with_what_there_is(caplog, digits):
    x, y = digits
    model = knn.build_model(checks.plan(hyperparameters(k=10, predictor_type="regressor")), x[:3], y[:3], None)
    assert "fewer than k=10" in caplog.text
    out = model.predict(x[10:14])
    assert out["labels"].shape == (4, 3)
    np.testing.assert_allclose(out["predicted_label"], np.full(4, y[:3].mean()), rtol=1e-6)
