"""Random Cut Forest numerics, in-process: the reservoir, the trees, the score (hand-computed), the model file."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from common import ndarray
from common.errors import ClientError
from common import repeats
from containers.randomcutforest import distinct
from containers.randomcutforest import forest as F
from containers.randomcutforest import kernels
from containers.randomcutforest.model import MODEL_FILE, RandomCutForestModel


def gaussian_with_outliers(rows=4000, dim=5, outliers=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)).astype(np.float32)
    x[:outliers] += 7
    return x


def forest_of(x, trees=50, per_tree=128, seed=0):
    rng = np.random.default_rng(seed)
    reservoir = F.Reservoir(trees * per_tree, x.shape[1], rng)
    for start in range(0, x.shape[0], 700):
        reservoir.add(x[start:start + 700])
    return F.build_forest(F.split_sample(reservoir.sample, trees, per_tree, rng), rng)


def test_reservoir_is_uniform_without_replacement_and_bounded():
    rng = np.random.default_rng(3)
    n, k, trials = 40, 8, 3000
    counts = np.zeros(n)
    stream = np.arange(n, dtype=np.float32).reshape(-1, 1)
    for _ in range(trials):
        reservoir = F.Reservoir(k, 1, rng)
        for start in range(0, n, 7):  # blocks of uneven size
            reservoir.add(stream[start:start + 7])
        picked = reservoir.sample[:, 0]
        assert reservoir.rows.shape[0] == k and picked.size == k
        assert np.unique(picked).size == k  # without replacement
        counts[picked.astype(int)] += 1
    expected = trials * k / n
    assert np.abs(counts - expected).max() < 5 * math.sqrt(expected)  # every row equally likely
    assert counts[:k].mean() == pytest.approx(expected, rel=0.1)  # the first rows are not favoured
    assert counts[-k:].mean() == pytest.approx(expected, rel=0.1)


def test_reservoir_takes_sparse_blocks():
    rng = np.random.default_rng(0)
    reservoir = F.Reservoir(5, 4, rng)
    reservoir.add(sp.csr_matrix(np.eye(4, dtype=np.float32)))
    assert reservoir.seen == 4
    np.testing.assert_array_equal(reservoir.sample, np.eye(4))


def test_split_sample_is_disjoint_when_big_enough_and_per_tree_otherwise():
    rng = np.random.default_rng(0)
    rows = np.arange(1000, dtype=np.float32).reshape(-1, 1)
    parts = F.split_sample(rows, 4, 250, rng)
    assert parts.shape == (4, 250, 1) and np.unique(parts).size == 1000
    small = F.split_sample(rows[:100], 4, 250, rng)
    assert small.shape == (4, 100, 1)
    assert all(np.unique(tree).size == 100 for tree in small)


def test_trees_are_random_cut_trees_down_to_single_points():
    x = gaussian_with_outliers(600, 3)
    x[100:110] = x[99]  # duplicates share one leaf
    forest = F.build_forest(F.split_sample(x, 2, 300, np.random.default_rng(1)), np.random.default_rng(2))
    leaves = forest.left < 0
    for t in range(forest.num_trees):
        nodes = np.arange(forest.tree_offset[t], forest.tree_offset[t + 1])
        assert forest.mass[nodes[0]] == 300 and forest.mass[nodes[leaves[nodes]]].sum() == 300
    inner = np.flatnonzero(~leaves)
    left, right = forest.left[inner], forest.left[inner] + 1
    assert np.array_equal(forest.mass[inner], forest.mass[left] + forest.mass[right])
    dim = forest.cut_dimension[inner]
    cut = forest.cut_value[inner]
    assert np.all(forest.box_min[inner, dim] <= cut) and np.all(cut < forest.box_max[inner, dim])
    assert np.all(forest.box_max[left, dim] <= cut) and np.all(forest.box_min[right, dim] > cut)
    for t in range(forest.num_trees):  # within a tree, leaves hold distinct points
        nodes = np.arange(forest.tree_offset[t], forest.tree_offset[t + 1])
        tree_points = forest.leaf_points[forest.point_index[nodes[leaves[nodes]]]]
        assert np.unique(tree_points, axis=0).shape[0] == tree_points.shape[0]
    # routing every sample point from its root ends at the leaf holding that very point
    for t in range(forest.num_trees):
        node = np.full(x.shape[0], forest.roots[t])
        while np.any(forest.left[node] >= 0):
            inner_rows = forest.left[node] >= 0
            n = node[inner_rows]
            node[inner_rows] = forest.left[n] + (x[inner_rows, forest.cut_dimension[n]] > forest.cut_value[n])
        nodes = np.arange(forest.tree_offset[t], forest.tree_offset[t + 1])
        sample = {tuple(p) for p in forest.leaf_points[forest.point_index[nodes[leaves[nodes]]]]}
        in_tree = np.array([tuple(row) in sample for row in x])
        reached = forest.leaf_points[forest.point_index[node]]
        assert in_tree.sum() >= 290 and np.all((reached == x).all(axis=1)[in_tree])


def test_cut_dimension_is_chosen_in_proportion_to_range():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 2)).astype(np.float32)
    x[:, 0] *= 3
    x[0] = [0, 0]
    x[1] = [3, 1]  # ranges exactly 3 and 1
    forest = F.build_forest(np.broadcast_to(x, (4000, 64, 2)).copy(), rng)
    root_dims = forest.cut_dimension[forest.roots]
    assert np.mean(root_dims == 0) == pytest.approx(0.75, abs=0.025)
    cuts = forest.cut_value[forest.roots]
    chosen = root_dims == 0
    assert np.mean(cuts[chosen] < 1.5) == pytest.approx(0.5, abs=0.04)  # uniform in [0, 3)


def test_score_matches_the_formula_on_a_two_point_tree():
    forest = F.build_forest(np.array([[[0.0], [1.0]]] * 50, np.float32), np.random.default_rng(0))
    scale = math.log2(3)
    far = (2 / 3) * 1 + (1 / 3) * (1 / 2)  # separated at the root with p = 2/3, else a leaf at depth 1
    seen = (1 - 1 / 4) / (1 + math.log2(2))  # the leaf's own point: damp 1 - 1/(2*2), depth 1, mass 1
    inside = 1 / 2  # inside the root box: a leaf at depth 1
    expected = np.array([far, seen, inside]) * scale
    for engine in ("numpy", "numba"):
        scores = kernels.score(forest, np.array([[3.0], [1.0], [0.5]], np.float32), engine)
        np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_kernel_equals_numpy_reference_and_anomalies_score_higher():
    x = gaussian_with_outliers()
    forest = forest_of(x)
    fast = kernels.score(forest, x, "numba")
    np.testing.assert_allclose(fast, kernels.score(forest, x, "numpy"), rtol=1e-5)
    typical = np.median(fast[20:])
    assert 0.5 < typical < 1.5  # typical points score near 1
    assert fast[:20].min() > 2 * typical  # the outliers clearly higher
    assert np.mean(fast[20:] > fast[:20].min()) < 0.01


def test_wide_features_are_scored_alike(tmp_path):
    x = gaussian_with_outliers(1500, 70, 5)  # not padded: a different code path in the kernel
    forest = forest_of(x, per_tree=64)
    np.testing.assert_allclose(kernels.score(forest, x, "numba"), kernels.score(forest, x, "numpy"), rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 7, 9, 2047, 2049, 4100])
def test_kernel_equals_numpy_reference_on_ragged_chunks_and_repeated_points(rows):
    # rows not a multiple of the 8 walks nor of the 2048-row chunks (feature_dim 10 -> 16 padded columns), and
    # repeated training points (leaves of mass > 1, scored by the seen formula) among the scored rows
    rng = np.random.default_rng(rows)
    base = rng.normal(size=(300, 10)).astype(np.float32)
    train = np.concatenate([base, base[:40], base[:40]])  # 40 points three times
    forest = forest_of(train, trees=50, per_tree=256)
    assert forest.mass[forest.left < 0].max() >= 2
    x = np.concatenate([base[:40], rng.normal(size=(max(rows - 40, 0), 10)).astype(np.float32) * 2])[:rows]
    np.testing.assert_allclose(kernels.score(forest, x, "numba"), kernels.score(forest, x, "numpy"), rtol=1e-5)


def reference_score(forest, row):
    """The README's formula, one row and one node at a time, in float64: the straightforward reading of it."""
    row = np.asarray(row, np.float64)
    total = 0.0
    for t in range(forest.num_trees):
        node, path = int(forest.roots[t]), []
        while True:  # descend by the cuts
            path.append(node)
            if forest.left[node] < 0:
                break
            node = int(forest.left[node]) + int(row[forest.cut_dimension[node]] > forest.cut_value[node])
        m = float(forest.mass[forest.roots[t]])
        leaf_point = forest.leaf_points[forest.point_index[node]].astype(np.float64)
        depth = len(path) - 1
        if np.array_equal(row, leaf_point):
            c = float(forest.mass[node])
            s = (1 - c / (2 * m)) / (depth + math.log2(c + 1))
        else:
            s = 1 / (depth + 1)
            for k in range(depth - 1, -1, -1):  # climb while the row lies outside the box
                low = forest.box_min[path[k]].astype(np.float64)
                high = forest.box_max[path[k]].astype(np.float64)
                ext = (np.maximum(low - row, 0) + np.maximum(row - high, 0)).sum()
                if ext == 0:
                    break
                p = ext / ((high - low).sum() + ext)
                s = p / (k + 1) + (1 - p) * s
        total += s * math.log2(m + 1)
    return total / forest.num_trees


@pytest.mark.parametrize("dim", [1, 3, 10, 20, 48, 70])
def test_kernel_equals_a_plain_per_row_reference(dim):
    # the kernel's three box paths: feature_dim 1-3 and 70 (a loop over the features), 10 (padded to one 16-lane
    # vector), 20 and 48 (padded to 32, or 48 as is: a loop over 16-lane blocks); rows inside and outside the
    # training range and repeated training points (leaves of mass > 1)
    rng = np.random.default_rng(dim)
    base = rng.normal(size=(200, dim)).astype(np.float32)
    train = np.concatenate([base, base[:20], base[:20]])
    forest = forest_of(train, trees=20, per_tree=128)
    x = np.concatenate([base[:30], rng.normal(size=(60, dim)).astype(np.float32) * 3])
    expected = np.array([reference_score(forest, row) for row in x])
    np.testing.assert_allclose(kernels.score(forest, x, "numba"), expected, rtol=1e-5)
    np.testing.assert_allclose(kernels.score(forest, x, "numpy"), expected, rtol=1e-5)


@pytest.mark.parametrize("dim", [1, 2, 3, 10, 20])
def test_repeated_rows_are_scored_once_each_with_the_same_bits(dim, monkeypatch):
    # a request of few distinct rows (the hardening tests' 3,000,000 x "0"): the model scores each distinct row once
    # (by its float32 bits: 0.0 and -0.0 are kept apart) and its answer is the kernel's on every row, bit for bit
    rng = np.random.default_rng(dim)
    model = RandomCutForestModel(forest_of(rng.normal(size=(2000, dim)).astype(np.float32), per_tree=64))
    values = rng.normal(size=(6, dim)).astype(np.float32)
    values[0], values[1] = 0.0, -0.0
    x = values[rng.integers(0, 6, 70_000)].astype(np.float64)  # float64 rows: compared as the kernel's float32
    expected = kernels.score(model.forest, x)
    calls = []
    real = kernels.score
    monkeypatch.setattr(kernels, "score", lambda forest, rows: calls.append(len(rows)) or real(forest, rows))
    got = model.score(x)
    assert calls == [6]
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    sparse = model.score(sp.csr_matrix(x))
    assert np.array_equal(sparse, expected)


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
def test_distinct_rows_are_scored_as_they_are_or_sorted(dim, monkeypatch):
    # rows that (mostly) differ pay only the sample's check: one kernel call on all of them, the same scores;
    # rows of one or two features are always deduplicated and sorted (the kernel's walks then take nearly the same paths)
    rng = np.random.default_rng(dim)
    model = RandomCutForestModel(forest_of(rng.normal(size=(2000, dim)).astype(np.float32), per_tree=64))
    x = rng.normal(size=(65_536, dim)).astype(np.float32)
    x[:1000] = x[1000:2000]  # a few repeats
    assert not repeats.worth_it(x)
    calls = []
    real = kernels.score
    monkeypatch.setattr(kernels, "score", lambda forest, rows: calls.append(rows.copy()) or real(forest, rows))
    assert np.array_equal(model.score(x), real(model.forest, x))
    assert len(calls) == 1
    if dim <= distinct.ORDERED_DIMS:
        assert len(calls[0]) == len(np.unique(x, axis=0)) < 65_536
        bits = repeats.keys(calls[0])
        assert np.all(bits[1:] > bits[:-1])  # sorted by their bits
    else:
        assert np.array_equal(calls[0], x)


def test_the_sample_finds_repeats_that_pay():
    rng = np.random.default_rng(0)
    for values, rows, expected in ((10, 65_536, True), (10_000, 65_536, True), (100_000, 65_536, False),
                                   (10, 2_000, False)):  # under MIN_ROWS: scored as they are
        x = rng.integers(0, values, (rows, 1)).astype(np.float32)
        assert repeats.worth_it(x) == expected, (values, rows)


def test_merged_forest_scores_are_the_tree_weighted_mean():
    x = gaussian_with_outliers(2000, 4)
    a, b = forest_of(x[:1000], trees=50, seed=1), forest_of(x[1000:], trees=60, seed=2)
    merged = F.merge_forests([a, b])
    assert merged.num_trees == 110
    expected = (50 * kernels.score(a, x) + 60 * kernels.score(b, x)) / 110
    np.testing.assert_allclose(kernels.score(merged, x), expected, rtol=1e-9)


def test_model_file_round_trip_and_format(tmp_path):
    x = gaussian_with_outliers(1000, 3)
    model = RandomCutForestModel(forest_of(x), 128)
    model.save(tmp_path)
    arrays = ndarray.load(tmp_path / MODEL_FILE)
    assert list(arrays) == ["meta", *F.Forest.ARRAYS]
    assert arrays["meta"].tolist() == [1, 3, 50, 128]
    assert arrays["left"].dtype == np.int32 and arrays["cut_value"].dtype == np.float64
    loaded = RandomCutForestModel.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict(x)["score"], model.predict(x)["score"])
    np.testing.assert_array_equal(loaded.forest.box_max, model.forest.box_max)
    sparse = loaded.predict(sp.csr_matrix(x))["score"]
    np.testing.assert_array_equal(sparse, model.predict(x)["score"])


def test_corrupt_model_is_a_clear_error(tmp_path):
    model = RandomCutForestModel(forest_of(gaussian_with_outliers(500, 2)), 128)
    arrays = {"meta": np.array([1, 2, 50, 128]), **model.forest.arrays()}
    arrays["left"] = arrays["left"].copy()
    arrays["left"][0] = 10 ** 6
    ndarray.save(tmp_path / MODEL_FILE, arrays)
    with pytest.raises(ClientError, match="not a valid Random Cut Forest model: a child index is out of range"):
        RandomCutForestModel.load(tmp_path)
    ndarray.save(tmp_path / MODEL_FILE, {"v": np.zeros(2, np.float32)})
    with pytest.raises(ClientError, match="missing meta"):
        RandomCutForestModel.load(tmp_path)
