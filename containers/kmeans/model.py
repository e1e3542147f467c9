"""The trained k-means model: k centroids in ``model_algo-1`` (MXNet NDArray file), and inference."""

import numpy as np
import scipy.sparse as sp

from common import ndarray
from common.errors import ClientError

MODEL_FILE = "model_algo-1"


class KMeansModel:
    """Centroids of shape (k, feature_dim); ``predict`` gives each row's closest cluster and its distance."""

    predict_rows = 1 << 16  # rows per predict() call (common/model.py): one record's answer depends on it alone
    distinct_rows = True  # repeated rows are predicted once (common/repeats.py)

    def __init__(self, centroids):
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if self.centroids.ndim != 2 or self.centroids.shape[0] == 0 or self.centroids.shape[1] == 0:
            raise ClientError(f"k-means centroids have shape {self.centroids.shape}; expected (k, feature_dim) with "
                              "k >= 1 and feature_dim >= 1")
        if not np.isfinite(self.centroids).all():
            raise ClientError("k-means centroids hold NaN or infinite values; this model cannot serve")
        self.centroids64 = self.centroids.astype(np.float64)
        self.sq_norms = (self.centroids64 ** 2).sum(axis=1)

    @property
    def k(self):
        return self.centroids.shape[0]

    @property
    def feature_dim(self):
        return self.centroids.shape[1]

    @classmethod
    def load(cls, model_dir):
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise ClientError(f"No k-means model at {path}")
        arrays = ndarray.load(path)
        if isinstance(arrays, dict):
            raise ClientError(f"{path} holds named arrays {sorted(arrays)[:5]}; a k-means model is one unnamed "
                              "(k, feature_dim) array")
        if len(arrays) != 1:
            raise ClientError(f"{path} holds {len(arrays)} arrays; a k-means model is one (k, feature_dim) array")
        centroids = arrays[0]
        if centroids.ndim != 2:
            raise ClientError(f"{path} holds an array of shape {centroids.shape}; expected (k, feature_dim)")
        return cls(centroids)

    def save(self, model_dir):
        ndarray.save(model_dir / MODEL_FILE, [self.centroids])

    def squared_distances(self, features):
        """Squared Euclidean distance of every row to every centroid, shape (n, k), computed in float64 (so
        features near the float32 limit still give finite distances)."""
        features = features.astype(np.float64)
        cross = np.asarray(features @ self.centroids64.T, dtype=np.float64)
        if sp.issparse(features):
            row_norms = np.asarray(features.multiply(features).sum(axis=1), dtype=np.float64).ravel()
        else:
            row_norms = np.einsum("ij,ij->i", features, features)
        return np.maximum(row_norms[:, None] - 2.0 * cross + self.sq_norms[None, :], 0.0)

    def predict(self, features):
        distances = self.squared_distances(features)
        closest = distances.argmin(axis=1)
        nearest = distances.min(axis=1)
        return {
            "closest_cluster": closest.astype(np.float32),
            "distance_to_cluster": np.sqrt(nearest).astype(np.float32),
        }
