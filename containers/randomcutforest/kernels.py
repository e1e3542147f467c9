"""The scoring kernel compiled with numba: forest.py's score, exactly, for chunks of rows in parallel threads.

Per chunk of rows (one thread each), tree after tree, so that a tree's nodes and the chunk's rows stay in cache:

descend   ``GROUP`` rows walk down the tree in lockstep, one step of each per round with selects instead of
          branches (a leaf stays put), until all of them are at leaves: independent walks overlap in the CPU
          and no step mispredicts (measured 2x a row-at-a-time walk). The comparison is on float32 (cuts rounded
          down to float32, which decides every float32 input exactly as the float64 cut does).
climb     From the leaf up through parent links while the row lies outside the node's box (a few levels for
          typical rows), the box distance summed over the feature vector (padded to a multiple of 8 columns
          for feature_dim from 4 to 63, so that it is computed in SIMD lanes).

Without numba, :func:`score` falls back to forest.score_numpy (same numbers up to float rounding).
"""

import logging
import math
import os
import tempfile

import numpy as np

from . import forest as forest_math

log = logging.getLogger(__name__)

CHUNK_ROWS = 512
GROUP = 16  # rows walked down a tree in lockstep
PAD = (4, 64)  # feature_dim in [4, 64) and not a multiple of 8 is padded to a multiple of 8

if not os.environ.get("NUMBA_CACHE_DIR") and not os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
    # a read-only install (an image run as another user): numba's on-disk cache of the kernel goes to /tmp
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "algobox-numba-cache")

try:  # numba is in this image's requirements; the fallback keeps a bare checkout usable
    import numba
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None


def _kernel(x, roots, tree_mass, child, cut_dimension, cut_value, parent, depth, mass, box_min, box_max,
            range_sum, out):
    rows, dims = x.shape
    padded = box_min.shape[1]
    trees = roots.shape[0]
    chunks = (rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    for chunk in numba.prange(chunks):
        first = chunk * CHUNK_ROWS
        count = min(rows, first + CHUNK_ROWS) - first
        xp = np.zeros((CHUNK_ROWS, padded), np.float32)
        for i in range(count):
            for j in range(dims):
                xp[i, j] = x[first + i, j]
        total = np.zeros(CHUNK_ROWS, np.float64)
        leaf = np.empty(CHUNK_ROWS, np.int32)
        for t in range(trees):
            root = roots[t]
            size = tree_mass[t]
            scale = math.log2(size + 1.0)
            for group in range(0, count, GROUP):
                width = min(GROUP, count - group)
                for g in range(width):
                    leaf[group + g] = root
                open_walks = width
                while open_walks:  # one step of every walk of the group: no branch on the data
                    open_walks = 0
                    for g in range(width):
                        node = leaf[group + g]
                        below = child[node]
                        step = below + np.int32(xp[group + g, cut_dimension[node]] > cut_value[node])
                        leaf[group + g] = step if below >= 0 else node
                        open_walks += below >= 0
            for i in range(count):
                node = leaf[i]
                level = depth[node]
                difference = np.float32(0.0)
                for j in range(padded):
                    difference += abs(xp[i, j] - box_min[node, j])
                if difference == 0.0:  # the row is this leaf's point
                    seen = mass[node]
                    score = (1.0 - seen / (2.0 * size)) / (level + math.log2(seen + 1.0))
                else:
                    score = 1.0 / (level + 1.0)
                    node = parent[node]
                    level -= 1
                    while node >= 0:
                        outside = np.float32(0.0)  # float32 lanes; the probability is float64
                        for j in range(padded):
                            value = xp[i, j]
                            outside += (max(box_min[node, j] - value, np.float32(0.0))
                                        + max(value - box_max[node, j], np.float32(0.0)))
                        if outside == 0.0:  # inside this box, so inside every box above
                            break
                        probability = outside / (range_sum[node] + outside)
                        score = probability / (level + 1.0) + (1.0 - probability) * score
                        node = parent[node]
                        level -= 1
                total[i] += score * scale
        for i in range(count):
            out[first + i] = total[i] / trees


_compiled = None


def compiled():
    """The jitted kernel: compiled on first use (seconds), then loaded from numba's on-disk cache."""
    global _compiled
    if _compiled is None and numba is not None:
        _compiled = numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)(_kernel)
    return _compiled


def layout(forest):
    """The arrays the kernel reads, derived once per forest (padded boxes only for small feature_dim)."""
    cached = getattr(forest, "_kernel_layout", None)
    if cached is not None:
        return cached
    d = forest.feature_dim
    padded = (d + 7) // 8 * 8 if PAD[0] <= d < PAD[1] else d
    box_min, box_max = forest.box_min, forest.box_max
    if padded != d:
        box_min = np.zeros((forest.num_nodes, padded), np.float32)
        box_max = np.zeros((forest.num_nodes, padded), np.float32)
        box_min[:, :d] = forest.box_min
        box_max[:, :d] = forest.box_max
    cut_value = np.where(forest.left >= 0, forest.cut_value32, np.float32(np.inf)).astype(np.float32)
    forest._kernel_layout = (forest.roots, forest.tree_mass, forest.left, forest.cut_dimension, cut_value,
                             forest.parent, forest.depth, forest.mass, box_min, box_max, forest.range_sum)
    return forest._kernel_layout


def score(forest, x, engine="auto"):
    """Scores of the rows of ``x`` (dense), float64. ``engine``: auto (numba if installed), numba or numpy."""
    x = np.ascontiguousarray(x, np.float32)
    if engine == "numpy" or (engine == "auto" and numba is None):
        return forest_math.score_numpy(forest, x)
    kernel = compiled()
    if kernel is None:
        raise RuntimeError("engine='numba' was asked for but numba is not installed")
    out = np.empty(x.shape[0], np.float64)
    if x.shape[0]:
        kernel(x, *layout(forest), out)
    return out
