"""The trained PCA model: ``v``, ``s`` and ``mean`` in ``model_algo-1`` (MXNet NDArray file), and projection.

The layout Amazon SageMaker's PCA writes: a named dict with ``v`` (feature_dim x num_components), ``s``
(num_components,) and ``mean`` (1 x feature_dim), float32, components ordered from least to most significant.
``mean`` is all zeros when training had ``subtract_mean=false``, so inference never needs the flag.
"""

import numpy as np
import scipy.sparse as sp

from common import ndarray, tabular
from common.errors import ClientError

MODEL_FILE = "model_algo-1"


class PCAModel:
    """Projection of rows onto the components: ``(x - mean) v``, one column per component."""

    predict_rows = 1 << 16  # rows per predict() call (common/model.py): one record's answer depends on it alone
    distinct_rows = True  # repeated rows are predicted once (common/repeats.py)

    def __init__(self, v, s, mean=None):
        self.v = np.ascontiguousarray(v, dtype=np.float32)
        if self.v.ndim != 2:
            raise ClientError(f"PCA model 'v' has shape {self.v.shape}; expected (feature_dim, num_components)")
        d, k = self.v.shape
        self.s = np.ascontiguousarray(s, dtype=np.float32).reshape(-1)
        if self.s.size != k:
            raise ClientError(f"PCA model 's' has {self.s.size} values for {k} components in 'v'")
        mean = np.zeros((1, d), np.float32) if mean is None or np.size(mean) == 0 else mean
        self.mean = np.ascontiguousarray(mean, dtype=np.float32).reshape(1, -1)
        if self.mean.shape[1] != d:
            raise ClientError(f"PCA model 'mean' has {self.mean.shape[1]} values; 'v' has {d} rows (feature_dim)")
        for name, array in (("v", self.v), ("s", self.s), ("mean", self.mean)):
            if not np.isfinite(array).all():
                raise ClientError(f"PCA model {name!r} holds NaN or infinite values; this model cannot serve")
        self.mean_projection = self.mean @ self.v  # (1, k): subtracted after projecting sparse rows

    @property
    def feature_dim(self):
        return self.v.shape[0]

    @property
    def num_components(self):
        return self.v.shape[1]

    @classmethod
    def load(cls, model_dir):
        arrays = tabular.load_model_file(model_dir, "PCA", names=("v", "s", "mean"), optional=("mean",))
        return cls(arrays["v"], arrays["s"], arrays.get("mean"))

    def save(self, model_dir):
        ndarray.save(model_dir / MODEL_FILE, {"v": self.v, "s": self.s, "mean": self.mean})

    def project(self, features):
        if sp.issparse(features):
            return np.asarray(features @ self.v, dtype=np.float32) - self.mean_projection
        return (np.asarray(features, dtype=np.float32) - self.mean) @ self.v

    def predict(self, features):
        return {"projection": self.project(features)}
