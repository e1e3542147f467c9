"""The trained forest in ``model_algo-1`` and its scores.

File format (ours: the built-in's is not public): an MXNet NDArray file (``mx.nd.load`` reads it; so does
``common.ndarray.load``) holding a dict of named arrays, every tree's nodes contiguous and breadth-first:

    meta           int64 (4,)         format version (1), feature_dim, num_trees, num_samples_per_tree asked for
    tree_offset    int64 (T + 1,)     tree t's nodes are [tree_offset[t], tree_offset[t + 1]); its root first
    left           int32 (nodes,)     left child (the right child is left + 1); -1 for a leaf
    cut_dimension  int32 (nodes,)     internal nodes: the cut's feature (0-based)
    cut_value      float64 (nodes,)   internal nodes: rows with x[cut_dimension] <= cut_value go left
    mass           int32 (nodes,)     points under the node (a leaf: copies of its point)
    point_index    int32 (nodes,)     leaves: their row of leaf_points; -1 for internal nodes
    leaf_points    float32 (leaves, feature_dim)

Bounding boxes, depths and parents are derived at load (forest.Forest), so the file is about the size of the
sample itself.
"""

import logging

import numpy as np
import scipy.sparse as sp

from common import ndarray
from common.errors import ClientError

from . import distinct
from . import forest as forest_math
from . import kernels

log = logging.getLogger(__name__)

MODEL_FILE = "model_algo-1"
DENSE_CHUNK_ELEMENTS = 1 << 22  # sparse requests are densified this many values at a time


class RandomCutForestModel:
    """Anomaly scores of rows: one ``score`` column, higher is more anomalous."""

    # rows per predict() call (common/model.py): one record's answer depends on it alone. 262,144, not 65,536: a
    # slice is deduplicated (distinct.py), and the larger it is the more repeats it finds (898,779 rows of d.dddd:
    # 35% distinct per slice, not 73%), with 4x fewer kernel launches; a slice's temporaries stay ~10 MB
    predict_rows = 1 << 18
    distinct_rows = True  # repeated rows are answered once by the runtime too (common/repeats.py)

    def __init__(self, forest, num_samples_per_tree=None):
        self.forest = forest
        self.num_samples_per_tree = num_samples_per_tree or int(forest.tree_mass.max())

    @property
    def feature_dim(self):
        return self.forest.feature_dim

    @property
    def num_trees(self):
        return self.forest.num_trees

    @classmethod
    def load(cls, model_dir):
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise ClientError(f"No Random Cut Forest model at {path}")
        arrays = ndarray.load(path)
        missing = [] if isinstance(arrays, dict) else list(forest_math.Forest.ARRAYS)
        missing += [name for name in ("meta", *forest_math.Forest.ARRAYS) if isinstance(arrays, dict) and name not in arrays]
        if missing:
            raise ClientError(f"{path} is not a Random Cut Forest model of this image: missing {', '.join(missing)}")
        meta = np.asarray(arrays["meta"]).ravel()
        if meta.size < 4 or int(meta[0]) != forest_math.MODEL_VERSION:
            raise ClientError(f"{path}: unsupported Random Cut Forest model version {meta[:1].tolist()} "
                              f"(this image reads version {forest_math.MODEL_VERSION})")
        try:
            forest = forest_math.Forest(**{name: arrays[name] for name in forest_math.Forest.ARRAYS})
        except ValueError as exc:
            raise ClientError(f"{path} is not a valid Random Cut Forest model: {exc}") from exc
        if forest.feature_dim != int(meta[1]) or forest.num_trees != int(meta[2]):
            raise ClientError(f"{path}: meta says feature_dim={int(meta[1])}, num_trees={int(meta[2])}, "
                              f"the arrays hold {forest.feature_dim} and {forest.num_trees}")
        return cls(forest, int(meta[3]))  # the runtime's warm-up prediction then compiles (or loads) the kernel

    def arrays(self):
        meta = np.array([forest_math.MODEL_VERSION, self.feature_dim, self.num_trees, self.num_samples_per_tree],
                        np.int64)
        return {"meta": meta, **self.forest.arrays()}

    def save(self, model_dir):
        ndarray.save(model_dir / MODEL_FILE, self.arrays())

    def save_to(self, file):
        ndarray.save(file, self.arrays())

    def score(self, features):
        """float64 scores of a dense array or a sparse matrix of rows, once per distinct row where rows repeat."""
        if not sp.issparse(features):
            return self.score_dense(features)
        rows = max(1, DENSE_CHUNK_ELEMENTS // max(1, features.shape[1]))
        features = features.tocsr()
        parts = [self.score_dense(features[start:start + rows].toarray())
                 for start in range(0, features.shape[0], rows)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def score_dense(self, x):
        x = np.ascontiguousarray(x, np.float32)  # what the kernel reads: rows of equal bits get equal scores
        return distinct.score(x, lambda rows: kernels.score(self.forest, rows))

    def predict(self, features):
        return {"score": self.score(features).astype(np.float32)}
