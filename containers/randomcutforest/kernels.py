"""The scoring kernel compiled with numba: forest.py's score, exactly, for chunks of rows in parallel threads.

``numba.prange`` over chunks of up to 4096 rows (about 128 KB of padded values: the chunk and one tree's boxes
stay in L2; 512-row chunks re-read every tree's boxes from L3 and ran 1.8x slower); per chunk, tree after tree:

descend   8 rows walk down the tree together, their nodes in registers, one step of each per round and no branch
          on the data but the loop's end (1.9x the former 16-row lockstep through an array, measured). A node is
          one uint32 word, (left child - node) << 14 | cut dimension (0 for a leaf, which then stays put), and
          one float32 cut: x > cut adds 1 (the right child is left + 1). Cuts are rounded down to float32, which
          decides every float32 input exactly as the float64 cut does. With one feature, each walk's value is
          held in a register (two loads a step, not three), and the climb's box test and distance are two scalar
          compares: 1.30x on one feature's rows (the hardening tests' model), 1.15x on varied ones, measured.
climb     From the leaf up through parent links while the row lies outside the node's box (6.4 levels for the
          benchmark's rows). Boxes are padded to a multiple of 16 columns for feature_dim 4 to 63 (zeros, which
          every row's padding matches), so that a box is one or more 16-lane vectors: whether the row lies in it
          is two vector compares and one mask test (LLVM intrinsics), and only then, outside, the L1 distance
          (a vector sum) and one division. The climb's end depends on the data, so it mispredicts once per row
          and tree; testing membership with compares, not with the distance's horizontal sum, resolves that
          branch sooner: 13% of the kernel's time, measured (the distance alone as vectors gained 5%).
          Branch-free variants (a fixed number of masked steps, the score carried on the way down, which needs
          a box distance at every level, 8 climbs in lockstep, 4 climbs that each take the next row when done)
          measured slower.
indices   Every array index in the kernel is unsigned (words and parent links are uint32, positions uint64, the
          boxes flat): numba wraps a negative signed index around with a compare and a select at every access,
          which the descent's three loads a step and the climb's box loads paid. 1.2x, scores bit for bit the same.
threads   Threads take chunks one at a time as they finish (numba.parallel_chunksize(1)); numba's default splits
          the chunks evenly up front, so that a core taken by another job stalled half the work. A call runs on no
          more threads than it has chunks: an idle thread still wakes and joins the parallel region, which cost
          8 ms a call of one row on a loaded machine with two threads (15 us on one; OpenMP layer, measured).

Without numba, :func:`score` falls back to forest.score_numpy (same numbers up to float rounding).
"""

import logging
import math
import os
import tempfile
import threading

import numpy as np

from . import forest as forest_math

log = logging.getLogger(__name__)

CHUNK_VALUES = 1 << 15  # a thread's chunk of rows holds about this many padded values (128 KB: in L2 with a tree)
CHUNK_ROWS = (8, 4096)  # and at least 8 rows (one group of walks), at most 4096
WALKS = 8  # rows walked down a tree together, in registers (the kernel spells out 8)
DIM_BITS = 14  # a node's word: (left child - node) << DIM_BITS | cut dimension; 0 for a leaf
DIM_MASK = (1 << DIM_BITS) - 1
PAD = (4, 64)  # feature_dim in [4, 64) is padded to a multiple of 16: one or more 16-lane vectors a box
LANES = 16
U = np.uint64  # the kernel's index type
SHIFT = np.uint32(DIM_BITS)
MASK = np.uint32(DIM_MASK)

if not os.environ.get("NUMBA_CACHE_DIR") and not os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
    # a read-only install (an image run as another user): numba's on-disk cache of the kernel goes to /tmp
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "algobox-numba-cache")

try:  # numba is in this image's requirements; the fallback keeps a bare checkout usable
    import numba
    import numba.extending
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None


def _lanes(context, builder, signature, args):
    """The 16 float32 lanes of the row at x[xo:] and of the box at low[bo:], high[bo:] (LLVM vector loads)."""
    from llvmlite import ir

    vector = ir.VectorType(ir.FloatType(), LANES).as_pointer()

    def load(index, offset):
        array = context.make_array(signature.args[index])(context, builder, args[index])
        return builder.load(builder.bitcast(builder.gep(array.data, [args[offset]], inbounds=True), vector), align=4)

    return load(0, 1), load(2, 4), load(3, 4)


def _declared(builder, name, result, *arguments):
    from llvmlite import ir

    found = builder.module.globals.get(name)
    return found if found is not None else ir.Function(builder.module, ir.FunctionType(result, arguments), name=name)


def _box_holds(typingctx, x, xo, low, high, bo):
    """True when low <= x <= high in all 16 lanes: two vector compares and one mask test, so that the climb's
    end is known before the distance's horizontal sum (13% of the kernel's time, measured)."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        value, lo, hi = _lanes(context, builder, signature, args)
        ok = builder.and_(builder.fcmp_ordered(">=", value, lo), builder.fcmp_ordered("<=", value, hi))
        mask = ir.VectorType(ir.IntType(1), LANES)
        return builder.call(_declared(builder, f"llvm.vector.reduce.and.v{LANES}i1", ir.IntType(1), mask), [ok])

    return numba.types.boolean(x, xo, low, high, bo), codegen


def _box_distance(typingctx, x, xo, low, high, bo):
    """sum over 16 lanes of max(low - x, 0) + max(x - high, 0), in vector registers."""
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        value, lo, hi = _lanes(context, builder, signature, args)
        vector = ir.VectorType(ir.FloatType(), LANES)
        maxnum = _declared(builder, f"llvm.maxnum.v{LANES}f32", vector, vector, vector)
        zero = ir.Constant(vector, [0.0] * LANES)
        outside = builder.fadd(builder.call(maxnum, [builder.fsub(lo, value), zero]),
                               builder.call(maxnum, [builder.fsub(value, hi), zero]))
        add = _declared(builder, f"llvm.vector.reduce.fadd.v{LANES}f32", ir.FloatType(), ir.FloatType(), vector)
        return builder.call(add, [ir.Constant(ir.FloatType(), -0.0), outside], fastmath=("reassoc", "nsz"))

    return numba.types.float32(x, xo, low, high, bo), codegen


def _holds(xp, row, box_min, box_max, base, padded):
    """Whether the row lies in the box (for a leaf: equals its point)."""
    if padded == LANES:  # the common case (feature_dim 4-16) without a loop
        return box_holds(xp, row, box_min, box_max, base)
    if padded == 1:
        return box_min[base] <= xp[row] <= box_max[base]
    if padded % LANES == 0:
        inside = True
        for block in range(0, padded, LANES):
            inside &= box_holds(xp, row + U(block), box_min, box_max, base + U(block))
        return inside
    for j in range(padded):
        value = xp[row + U(j)]
        if value < box_min[base + U(j)] or value > box_max[base + U(j)]:
            return False
    return True


def _distance(xp, row, box_min, box_max, base, padded):
    """How far the row lies outside the box, summed over the features (L1)."""
    if padded == LANES:
        return box_distance(xp, row, box_min, box_max, base)
    if padded == 1:
        return max(box_min[base] - xp[row], np.float32(0.0)) + max(xp[row] - box_max[base], np.float32(0.0))
    outside = np.float32(0.0)
    if padded % LANES == 0:
        for block in range(0, padded, LANES):
            outside += box_distance(xp, row + U(block), box_min, box_max, base + U(block))
        return outside
    for j in range(padded):
        value = xp[row + U(j)]
        outside += max(box_min[base + U(j)] - value, np.float32(0.0)) + max(value - box_max[base + U(j)], np.float32(0.0))
    return outside


if numba is not None:
    box_holds = numba.extending.intrinsic(_box_holds)
    box_distance = numba.extending.intrinsic(_box_distance)
    holds = numba.njit(inline="always")(_holds)
    distance = numba.njit(inline="always")(_distance)


def _kernel(x, roots, tree_mass, word, cut, parent, depth, mass, box_min, box_max, range_sum, inverse_depth,
            chunk_rows, padded, out):
    # Every index is unsigned (uint64): numba wraps negative signed indices around with a compare and a select
    # at each access, which the descent's three loads a step and the climb's box loads paid (-10% time, measured).
    rows, dims = x.shape
    trees = roots.shape[0]
    chunks = (rows + chunk_rows - 1) // chunk_rows
    width = U(padded)
    for chunk in numba.prange(chunks):
        first = chunk * chunk_rows
        count = min(rows, first + chunk_rows) - first
        walks = (count + WALKS - 1) // WALKS * WALKS
        xp = np.zeros(walks * padded, np.float32)  # the chunk's rows, padded, contiguous
        for i in range(count):
            for j in range(dims):
                xp[i * padded + j] = x[first + i, j]
        total = np.zeros(walks, np.float64)
        leaf = np.empty(walks, np.uint32)
        for t in range(trees):
            root = U(roots[t])
            size = tree_mass[t]
            scale = math.log2(size + 1.0)
            for group in range(0, walks, WALKS):
                # descend: 8 independent walks in registers, one step each per round (no data-dependent branch
                # but the loop's end); a leaf's word is 0, so a finished walk stays put
                n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = root
                if padded == 1:
                    # one feature: each walk's value stays in a register, so a step is two loads (word, cut), not three
                    v0, v1, v2, v3 = xp[group], xp[group + 1], xp[group + 2], xp[group + 3]
                    v4, v5, v6, v7 = xp[group + 4], xp[group + 5], xp[group + 6], xp[group + 7]
                    while True:
                        w0, w1, w2, w3 = word[n0], word[n1], word[n2], word[n3]
                        w4, w5, w6, w7 = word[n4], word[n5], word[n6], word[n7]
                        if (w0 | w1 | w2 | w3 | w4 | w5 | w6 | w7) == 0:
                            break
                        n0 += U(w0 >> SHIFT) + U(v0 > cut[n0])
                        n1 += U(w1 >> SHIFT) + U(v1 > cut[n1])
                        n2 += U(w2 >> SHIFT) + U(v2 > cut[n2])
                        n3 += U(w3 >> SHIFT) + U(v3 > cut[n3])
                        n4 += U(w4 >> SHIFT) + U(v4 > cut[n4])
                        n5 += U(w5 >> SHIFT) + U(v5 > cut[n5])
                        n6 += U(w6 >> SHIFT) + U(v6 > cut[n6])
                        n7 += U(w7 >> SHIFT) + U(v7 > cut[n7])
                else:
                    b0 = U(group) * width
                    b1, b2, b3 = b0 + width, b0 + U(2) * width, b0 + U(3) * width
                    b4, b5, b6, b7 = b0 + U(4) * width, b0 + U(5) * width, b0 + U(6) * width, b0 + U(7) * width
                    while True:
                        w0, w1, w2, w3 = word[n0], word[n1], word[n2], word[n3]
                        w4, w5, w6, w7 = word[n4], word[n5], word[n6], word[n7]
                        if (w0 | w1 | w2 | w3 | w4 | w5 | w6 | w7) == 0:
                            break
                        n0 += U(w0 >> SHIFT) + U(xp[b0 + U(w0 & MASK)] > cut[n0])
                        n1 += U(w1 >> SHIFT) + U(xp[b1 + U(w1 & MASK)] > cut[n1])
                        n2 += U(w2 >> SHIFT) + U(xp[b2 + U(w2 & MASK)] > cut[n2])
                        n3 += U(w3 >> SHIFT) + U(xp[b3 + U(w3 & MASK)] > cut[n3])
                        n4 += U(w4 >> SHIFT) + U(xp[b4 + U(w4 & MASK)] > cut[n4])
                        n5 += U(w5 >> SHIFT) + U(xp[b5 + U(w5 & MASK)] > cut[n5])
                        n6 += U(w6 >> SHIFT) + U(xp[b6 + U(w6 & MASK)] > cut[n6])
                        n7 += U(w7 >> SHIFT) + U(xp[b7 + U(w7 & MASK)] > cut[n7])
                leaf[group], leaf[group + 1], leaf[group + 2], leaf[group + 3] = n0, n1, n2, n3
                leaf[group + 4], leaf[group + 5], leaf[group + 6], leaf[group + 7] = n4, n5, n6, n7
            for i in range(count):
                node = U(leaf[i])
                level = depth[node]
                row = U(i) * width
                base = node * width
                if holds(xp, row, box_min, box_max, base, padded):  # the row is this leaf's point
                    seen = mass[node]
                    score = (1.0 - seen / (2.0 * size)) / (level + math.log2(seen + 1.0))
                else:
                    score = inverse_depth[level]
                    while level > 0:  # up to the root (depth 0) at most
                        node = U(parent[node])
                        level -= 1
                        base = node * width
                        if holds(xp, row, box_min, box_max, base, padded):  # so inside every box above too
                            break
                        outside = distance(xp, row, box_min, box_max, base, padded)
                        # p / (k + 1) + (1 - p) s with p = e / (r + e), in one division
                        score = (outside * inverse_depth[level] + range_sum[node] * score) / (range_sum[node] + outside)
                total[i] += score * scale
        for i in range(count):
            out[first + i] = total[i] / trees


_compiled = None
# One kernel call at a time per process: numba's workqueue threading layer (what numba falls back to where neither
# libgomp nor tbb is installed, as in a slim image) aborts the whole process when two threads launch parallel
# kernels at once, and a serving worker answers requests on several threads. Each call already uses every core.
_launch = threading.Lock()


def compiled():
    """The jitted kernel: compiled on first use (seconds), then loaded from numba's on-disk cache."""
    global _compiled
    if _compiled is None and numba is not None:
        _compiled = numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)(_kernel)
    return _compiled


def layout(forest):
    """The arrays the kernel reads, derived once per forest: one uint32 word and one float32 cut per node for the
    descent; uint32 parent links and the float32 boxes, flat (padded to a multiple of 8 columns for feature_dim
    4-63), for the climb."""
    cached = getattr(forest, "_kernel_layout", None)
    if cached is not None:
        return cached
    d = forest.feature_dim
    padded = (d + LANES - 1) // LANES * LANES if PAD[0] <= d < PAD[1] else d
    box_min, box_max = forest.box_min, forest.box_max  # (nodes, feature_dim) float32: no copy unless padded
    if padded != d:
        box_min = np.zeros((forest.num_nodes, padded), np.float32)
        box_max = np.zeros((forest.num_nodes, padded), np.float32)
        box_min[:, :d] = forest.box_min
        box_max[:, :d] = forest.box_max
    internal = forest.left >= 0
    offset = np.where(internal, forest.left.astype(np.int64) - np.arange(forest.num_nodes), 0)
    if d > DIM_MASK + 1 or offset.max(initial=0) >= 1 << (31 - DIM_BITS):
        raise ValueError(f"a forest of feature_dim {d} with {forest.num_nodes} nodes does not fit the kernel's words")
    word = ((offset << DIM_BITS) | np.where(internal, forest.cut_dimension, 0)).astype(np.uint32)
    cut = np.where(internal, forest.cut_value32, np.float32(np.inf)).astype(np.float32)
    parent = forest.parent.view(np.uint32)  # the roots' -1 is never read: the climb stops at depth 0
    inverse_depth = 1.0 / np.arange(1, forest.max_depth + 3, dtype=np.float64)  # [k] = 1 / (k + 1)
    chunk_rows = int(min(CHUNK_ROWS[1], max(CHUNK_ROWS[0], CHUNK_VALUES // padded)))
    forest._kernel_layout = (forest.roots.astype(np.int64), forest.tree_mass, word, cut, parent, forest.depth,
                             forest.mass, np.ascontiguousarray(box_min).ravel(), np.ascontiguousarray(box_max).ravel(),
                             forest.range_sum, inverse_depth, chunk_rows, padded)
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
        arrays = layout(forest)
        chunks = -(-x.shape[0] // arrays[-2])  # arrays[-2]: rows a chunk
        with _launch, numba.parallel_chunksize(1):  # threads take chunks as they finish: a busy core stalls none
            threads = numba.get_num_threads()
            try:
                # no more threads than chunks: a thread with no chunk still has to wake and join, which cost 8 ms a
                # call of one row on a loaded machine (OpenMP layer, two threads), 15 us on one thread
                numba.set_num_threads(min(threads, chunks))
                kernel(x, *arrays, out)
            finally:
                numba.set_num_threads(threads)
    return out
