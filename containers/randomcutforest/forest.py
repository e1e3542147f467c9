"""Random Cut Forest math in numpy: the reservoir sample, the forest's construction, and its scores.

Sample     Reservoir sampling without replacement (Vitter's algorithm R, vectorised per block): after n
           rows every n-subset of size K = num_samples_per_tree x num_trees is equally likely; memory is the
           K rows. The sample is shuffled and split into num_trees disjoint parts. When fewer than K rows were
           seen, each tree draws its own min(n, num_samples_per_tree) rows without replacement from them.
Trees      Every node cuts the bounding box of its points on dimension i with probability
           range_i / sum(range), at a uniform position in [min_i, max_i); points with x_i <= cut go left.
           Cutting stops at single-point leaves (identical points share one leaf, its ``mass`` their count).
           All trees are built together, level by level, with array operations over every open node.
Score      RCFA's (aws/random-cut-forest-by-aws) anomaly score: a point x is temporarily inserted in each
           tree. Walking from its leaf up to the root (depth of the root 0), at a node u of depth k whose box
           does not contain x, a random cut of box(u) + x would separate x there with probability
           p_u = sum_i ext_i / (sum_i range_i + sum_i ext_i), ext_i being how far x lies outside the box in
           dimension i, and x would become a leaf at depth k + 1. So, with s = 1 / (leaf depth + 1) at the
           leaf x reaches, s <- p_u / (k + 1) + (1 - p_u) s at each node up to the first one whose box holds
           x. If x equals the leaf's point (mass c), s = (1 - c / (2 m)) / (depth + log2(c + 1)) instead.
           The tree's score is s log2(m + 1), m being the tree's number of points, and the forest's is the
           mean over trees. A point at the depth a typical point reaches scores about 1; isolated points
           score several times that. The expected depth of the inserted point is the "model complexity" of
           Guha et al. (2016); this score is its inverse (what the guide calls "inversely proportional to the
           resulting depth"), scaled by log2(m + 1) "with respect to the sample size".

The compiled scorer is in kernels.py; :func:`score_numpy` below is its reference and its fallback.
"""

import math

import numpy as np
import scipy.sparse as sp

MODEL_VERSION = 1


def dense_rows(block):
    """A block (float array or scipy sparse) as a C-contiguous float32 array."""
    if sp.issparse(block):
        block = block.toarray()
    return np.ascontiguousarray(block, dtype=np.float32)


class Reservoir:
    """A uniform sample without replacement of ``capacity`` rows of a stream read once, in blocks."""

    def __init__(self, capacity, feature_dim, rng):
        self.capacity = capacity
        self.feature_dim = feature_dim
        self.rng = rng
        self.rows = np.empty((0, feature_dim), np.float32)  # grows up to capacity rows
        self.seen = 0

    def _grow(self, size):
        if size > self.rows.shape[0]:
            grown = np.empty((min(self.capacity, max(size, 2 * self.rows.shape[0])), self.feature_dim), np.float32)
            grown[:self.rows.shape[0]] = self.rows
            self.rows = grown

    def add(self, block):
        """Offer every row of ``block`` (float array or CSR), in order: algorithm R, one draw per row."""
        count = block.shape[0]
        if not count:
            return
        fill = min(max(self.capacity - self.seen, 0), count)
        if fill:
            self._grow(self.seen + fill)
            self.rows[self.seen:self.seen + fill] = dense_rows(block[:fill])
        rest = count - fill
        if rest:
            # row number n (1-based) replaces slot j, uniform in [0, n), when j < capacity
            n = np.arange(self.seen + fill + 1, self.seen + count + 1, dtype=np.float64)
            slots = (self.rng.random(rest) * n).astype(np.int64)
            hits = np.flatnonzero(slots < self.capacity)
            if hits.size:
                # several rows of one block may claim a slot: the last one wins, as if offered one by one
                _, last = np.unique(slots[hits][::-1], return_index=True)
                winners = hits[::-1][last]
                self.rows[slots[winners]] = dense_rows(block[fill + winners])
        self.seen += count

    @property
    def sample(self):
        return self.rows[:min(self.seen, self.capacity)]


def split_sample(sample, num_trees, samples_per_tree, rng):
    """``(num_trees, m, d)`` points per tree: disjoint parts of the shuffled sample when it is big enough,
    otherwise m = min(n, samples_per_tree) rows per tree drawn without replacement from all n rows."""
    n = sample.shape[0]
    if n >= num_trees * samples_per_tree:
        index = rng.permutation(n)[:num_trees * samples_per_tree].reshape(num_trees, samples_per_tree)
    else:
        m = min(n, samples_per_tree)
        index = np.argsort(rng.random((num_trees, n)), axis=1)[:, :m]
    return sample[index]


def build_forest(points, rng):
    """Build one tree per ``points[t]`` (``(T, m, d)`` float32), all trees together, one level at a time.

    Returns the flat node arrays of :class:`Forest` (each tree's nodes contiguous, in breadth-first order, its
    root first; a node's right child is ``left + 1``; ``left == -1`` marks a leaf).
    """
    num_trees, m, d = points.shape
    flat = np.ascontiguousarray(points.reshape(num_trees * m, d), dtype=np.float32)
    capacity = num_trees * max(2 * m - 1, 1)
    left = np.full(capacity, -1, np.int64)
    cut_dimension = np.zeros(capacity, np.int32)
    cut_value = np.zeros(capacity, np.float64)
    mass = np.zeros(capacity, np.int32)
    tree = np.zeros(capacity, np.int32)
    leaf_row = np.full(capacity, -1, np.int64)

    # the open nodes of the current level, each owning a contiguous segment of ``order``
    order = np.arange(num_trees * m)
    segment_start = np.arange(num_trees) * m
    segment_length = np.full(num_trees, m)
    segment_node = np.arange(num_trees)
    tree[:num_trees] = np.arange(num_trees)
    nodes = num_trees
    while segment_node.size:
        rows = flat[order]
        low = np.minimum.reduceat(rows, segment_start, axis=0)
        high = np.maximum.reduceat(rows, segment_start, axis=0)
        ranges = high.astype(np.float64) - low.astype(np.float64)
        cumulative = np.cumsum(ranges, axis=1)
        total = cumulative[:, -1]
        mass[segment_node] = segment_length
        leaf = total <= 0  # one point, or identical points
        leaf_row[segment_node[leaf]] = order[segment_start[leaf]]
        split = ~leaf
        if not split.any():
            break
        # dimension with probability range_i / total, position uniform within it (RCFA's cut)
        cumulative, ranges, total, low_split = cumulative[split], ranges[split], total[split], low[split]
        draw = rng.random(total.size) * total
        dimension = np.minimum((cumulative <= draw[:, None]).sum(axis=1), d - 1)
        pick = np.arange(total.size)
        cut = low_split[pick, dimension].astype(np.float64) + draw - (cumulative[pick, dimension] - ranges[pick, dimension])
        upper = low_split[pick, dimension].astype(np.float64) + ranges[pick, dimension]
        cut = np.minimum(cut, np.nextafter(upper, -np.inf))  # rounding must never put the cut at the maximum
        parents = segment_node[split]
        children = nodes + 2 * np.arange(parents.size)
        left[parents] = children
        cut_dimension[parents] = dimension
        cut_value[parents] = cut
        tree[children] = tree[parents]
        tree[children + 1] = tree[parents]
        nodes += 2 * parents.size

        # route the points of split nodes: (rank of their node, went right) orders the next level's segments
        owner = np.repeat(np.arange(segment_node.size), segment_length)
        rank = np.cumsum(split) - 1
        moving = split[owner]
        owner_split = rank[owner[moving]]
        right = rows[moving, dimension[owner_split]] > cut[owner_split]
        key = 2 * owner_split + right
        regroup = np.argsort(key, kind="stable")
        order = order[moving][regroup]
        segment_length = np.bincount(key, minlength=2 * parents.size)
        assert segment_length.all(), "a cut left one side empty"
        segment_start = np.concatenate(([0], np.cumsum(segment_length)[:-1]))
        segment_node = np.arange(children[0], nodes)

    # renumber so that each tree's nodes are contiguous (stable: breadth-first order and sibling pairs kept)
    renumber = np.argsort(tree[:nodes], kind="stable")
    new_id = np.empty(nodes, np.int64)
    new_id[renumber] = np.arange(nodes)
    old_left = left[renumber]
    left = np.where(old_left >= 0, new_id[np.maximum(old_left, 0)], -1)
    leaf_rows = leaf_row[renumber]
    is_leaf = left < 0
    point_index = np.full(nodes, -1, np.int32)
    point_index[is_leaf] = np.arange(int(is_leaf.sum()))
    offsets = np.concatenate(([0], np.cumsum(np.bincount(tree[:nodes], minlength=num_trees))))
    return Forest(
        tree_offset=offsets.astype(np.int64),
        left=left.astype(np.int32),
        cut_dimension=cut_dimension[renumber],
        cut_value=cut_value[renumber],
        mass=mass[renumber],
        point_index=point_index,
        leaf_points=flat[leaf_rows[is_leaf]],
    )


def below_float32(values):
    """The largest float32 <= each float64 value: for a float32 x, x > value exactly when x > below_float32(value)."""
    rounded = values.astype(np.float32)
    return np.where(rounded.astype(np.float64) > values, np.nextafter(rounded, np.float32(-np.inf)), rounded)


class Forest:
    """A forest as flat node arrays. Stored: the structure and the leaves' points; derived: depths and boxes."""

    ARRAYS = ("tree_offset", "left", "cut_dimension", "cut_value", "mass", "point_index", "leaf_points")

    def __init__(self, tree_offset, left, cut_dimension, cut_value, mass, point_index, leaf_points):
        self.tree_offset = np.ascontiguousarray(tree_offset, np.int64)
        self.left = np.ascontiguousarray(left, np.int32)
        self.cut_dimension = np.ascontiguousarray(cut_dimension, np.int32)
        self.cut_value = np.ascontiguousarray(cut_value, np.float64)
        self.mass = np.ascontiguousarray(mass, np.int32)
        self.point_index = np.ascontiguousarray(point_index, np.int32)
        self.leaf_points = np.ascontiguousarray(leaf_points, np.float32)
        self.check()
        self.roots = self.tree_offset[:-1]
        self.tree_mass = self.mass[self.roots].astype(np.float64)
        self.depth = self._depths()
        self.box_min, self.box_max = self._boxes()
        self.range_sum = (self.box_max.astype(np.float64) - self.box_min.astype(np.float64)).sum(axis=1)
        self.max_depth = int(self.depth.max()) if self.depth.size else 0
        self.parent = self._parents()
        self.cut_value32 = below_float32(self.cut_value)

    @property
    def num_trees(self):
        return self.roots.size

    @property
    def feature_dim(self):
        return self.leaf_points.shape[1]

    @property
    def num_nodes(self):
        return self.left.size

    def check(self):
        """Structural checks, so that a corrupt model fails at load with a clear message, not while scoring."""
        nodes = self.left.size
        problems = []
        if self.tree_offset.ndim != 1 or self.tree_offset.size < 2 or self.tree_offset[0] != 0 \
                or self.tree_offset[-1] != nodes or np.any(np.diff(self.tree_offset) <= 0):
            problems.append("tree_offset does not partition the nodes")
        for name in ("cut_dimension", "cut_value", "mass", "point_index"):
            if getattr(self, name).shape != (nodes,):
                problems.append(f"{name} has shape {getattr(self, name).shape}, expected ({nodes},)")
        if self.leaf_points.ndim != 2:
            problems.append(f"leaf_points has shape {self.leaf_points.shape}, expected (leaves, feature_dim)")
        if problems:
            raise ValueError("; ".join(problems))
        internal = self.left >= 0
        leaves = ~internal
        if np.any(self.left[internal] + 1 >= nodes) or np.any(self.left[internal] <= np.flatnonzero(internal)):
            problems.append("a child index is out of range")
        if np.any(self.point_index[leaves] < 0) or np.any(self.point_index[leaves] >= self.leaf_points.shape[0]):
            problems.append("a leaf's point_index is out of range")
        if np.any(self.cut_dimension[internal] < 0) or np.any(self.cut_dimension[internal] >= self.leaf_points.shape[1]):
            problems.append("a cut_dimension is out of range")
        if np.any(self.mass < 1):
            problems.append("a node has no mass")
        if problems:
            raise ValueError("; ".join(problems))

    def _depths(self):
        depth = np.full(self.num_nodes, -1, np.int32)
        level, frontier = 0, self.tree_offset[:-1]
        while frontier.size:
            if np.any(depth[frontier] >= 0):
                raise ValueError("the nodes do not form trees (a node is reached twice)")
            depth[frontier] = level
            inner = frontier[self.left[frontier] >= 0]
            frontier = np.concatenate((self.left[inner], self.left[inner] + 1)).astype(np.int64)
            level += 1
        if np.any(depth < 0):
            raise ValueError("the nodes do not form trees (a node is unreachable)")
        return depth

    def _parents(self):
        parent = np.full(self.num_nodes, -1, np.int32)
        inner = np.flatnonzero(self.left >= 0)
        parent[self.left[inner]] = inner
        parent[self.left[inner] + 1] = inner
        return parent

    def _boxes(self):
        """Bounding boxes from the leaves up, one level at a time."""
        low = np.empty((self.num_nodes, self.feature_dim), np.float32)
        leaves = np.flatnonzero(self.left < 0)
        low[leaves] = self.leaf_points[self.point_index[leaves]]
        high = low.copy()
        for level in range(int(self.depth.max()) - 1, -1, -1):
            inner = np.flatnonzero((self.depth == level) & (self.left >= 0))
            children = self.left[inner]
            low[inner] = np.minimum(low[children], low[children + 1])
            high[inner] = np.maximum(high[children], high[children + 1])
        return low, high

    def arrays(self):
        return {name: getattr(self, name) for name in self.ARRAYS}


def tree_scores_numpy(forest, x, t):
    """One tree's scores of the rows of ``x`` (float32), every row descended together, then climbed back."""
    rows = x.shape[0]
    root = int(forest.roots[t])
    left, cut_dimension, cut_value = forest.left, forest.cut_dimension, forest.cut_value
    node = np.full(rows, root, np.int64)
    depth = np.zeros(rows, np.int64)
    path = [node.copy()]
    active = np.arange(rows)
    while True:
        current = node[active]
        inner = left[current] >= 0
        active, current = active[inner], current[inner]
        if not active.size:
            break
        goes_right = x[active, cut_dimension[current]] > cut_value[current]
        node[active] = left[current] + goes_right
        depth[active] += 1
        path.append(node.copy())
    path = np.stack(path)
    leaf_mass = forest.mass[node].astype(np.float64)
    seen = np.all(x == forest.box_min[node], axis=1)
    score = np.where(seen, (1.0 - leaf_mass / (2.0 * forest.tree_mass[t])) / (depth + np.log2(leaf_mass + 1.0)),
                     1.0 / (depth + 1.0))
    level = depth.copy()
    active = np.flatnonzero(~seen & (depth > 0))
    while active.size:
        level[active] -= 1
        current = path[level[active], active]
        point = x[active].astype(np.float64)
        outside = (np.maximum(forest.box_min[current] - point, 0.0)
                   + np.maximum(point - forest.box_max[current], 0.0)).sum(axis=1)
        out = outside > 0  # inside a box means inside every box above it: the climb ends there
        active, current, outside = active[out], current[out], outside[out]
        probability = outside / (forest.range_sum[current] + outside)
        score[active] = probability / (level[active] + 1.0) + (1.0 - probability) * score[active]
        active = active[level[active] > 0]
    return score * math.log2(forest.tree_mass[t] + 1.0)


def score_numpy(forest, x):
    """Forest scores of the rows of ``x`` (dense float32), tree after tree."""
    x = np.ascontiguousarray(x, np.float32)
    total = np.zeros(x.shape[0])
    for t in range(forest.num_trees):
        total += tree_scores_numpy(forest, x, t)
    return total / forest.num_trees


def merge_forests(forests):
    """One forest holding the trees of ``forests`` in order (the hosts' shares on the first host)."""
    forests = [f for f in forests if f is not None and f.num_trees]
    if len(forests) == 1:
        return forests[0]
    node_base = np.cumsum([0] + [f.num_nodes for f in forests])
    point_base = np.cumsum([0] + [f.leaf_points.shape[0] for f in forests])
    offsets = [forests[0].tree_offset[:1]] + [f.tree_offset[1:] + base for f, base in zip(forests, node_base)]
    return Forest(
        tree_offset=np.concatenate(offsets),
        left=np.concatenate([np.where(f.left >= 0, f.left + base, -1) for f, base in zip(forests, node_base)]),
        cut_dimension=np.concatenate([f.cut_dimension for f in forests]),
        cut_value=np.concatenate([f.cut_value for f in forests]),
        mass=np.concatenate([f.mass for f in forests]),
        point_index=np.concatenate([np.where(f.point_index >= 0, f.point_index + base, -1)
                                    for f, base in zip(forests, point_base)]),
        leaf_points=np.concatenate([f.leaf_points for f in forests]),
    )
