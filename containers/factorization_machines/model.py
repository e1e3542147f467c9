"""The trained factorization machine for serving: scores of dense or sparse rows in numpy/scipy (no torch).

Binary classifiers answer ``score`` = sigmoid(y) and ``predicted_label`` = score >= 0.5; regressors ``score`` = y.
"""

import numpy as np
import scipy.sparse as sp

from common.errors import ClientError

from . import artifact


class FMModel:
    predict_rows = 1 << 16  # rows per predict() call (common/model.py): one record's answer depends on it alone
    distinct_rows = True  # repeated rows are predicted once (common/repeats.py)

    def __init__(self, w0, w, v, predictor_type):
        if predictor_type not in artifact.PREDICTOR_TYPES:
            raise ClientError(f"Unknown predictor_type {predictor_type!r}")
        self.v = np.ascontiguousarray(v, np.float32)
        self.w = np.ascontiguousarray(w, np.float32).reshape(-1, 1)
        self.w0 = np.asarray(w0, np.float32).reshape(1)
        self.predictor_type = predictor_type
        if self.v.ndim != 2 or self.w.shape[0] != self.v.shape[0]:
            raise ClientError(f"Factorization Machines model has w {self.w.shape} and v {self.v.shape}; expected "
                              "(feature_dim, 1) and (feature_dim, num_factors)")
        if not (np.isfinite(self.v).all() and np.isfinite(self.w).all() and np.isfinite(self.w0).all()):
            raise ClientError("Factorization Machines model holds NaN or infinite parameters; it cannot serve")
        self.v_squared = self.v * self.v

    @property
    def feature_dim(self):
        return self.v.shape[0]

    @property
    def num_factors(self):
        return self.v.shape[1]

    @property
    def binary(self):
        return self.predictor_type == "binary_classifier"

    @classmethod
    def load(cls, model_dir):
        path = model_dir / artifact.MODEL_FILE
        if not path.is_file():
            raise ClientError(f"No Factorization Machines model at {path}")
        return cls.load_file(path)

    @classmethod
    def load_file(cls, path):
        return cls(*artifact.load(path))

    def save(self, model_dir):
        self.save_to(model_dir / artifact.MODEL_FILE)

    def save_to(self, target):
        """Write ``model_algo-1`` to a path or a seekable binary file."""
        artifact.save(target, self.w0, self.w, self.v, self.predictor_type)

    def raw_scores(self, features):
        """y = w0 + x w + 1/2 sum_f ((x V)_f^2 - (x^2 V^2)_f), float64, one per row; sparse rows stay sparse."""
        if sp.issparse(features):
            x = sp.csr_matrix(features, dtype=np.float32)
            squares = x.multiply(x).tocsr()
        else:
            x = np.asarray(features, np.float32)
            squares = x * x
        s = np.asarray(x @ self.v, np.float64)
        pair = 0.5 * ((s * s).sum(1) - np.asarray(squares @ self.v_squared, np.float64).sum(1))
        return float(self.w0[0]) + np.asarray(x @ self.w, np.float64)[:, 0] + pair

    def predict(self, features):
        y = self.raw_scores(features)
        if not self.binary:
            return {"score": y.astype(np.float32)}
        score = 1.0 / (1.0 + np.exp(-np.clip(y, -80, 80)))
        return {"score": score.astype(np.float32), "predicted_label": (score >= 0.5).astype(np.int64)}
