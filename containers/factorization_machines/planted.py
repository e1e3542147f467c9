"""The planted benchmark's data: categorical fields one-hot encoded, labels from a known FM (k=8) + logistic noise.

Used by benchmarks/bench_factorization_machines.py and, at a tiny size, by the tests. Row i of field f is the
one-hot column ``offsets[f] + value``; every row has exactly one non-zero per field.
"""

import numpy as np
import scipy.sparse as sp

FIELDS = (50_000, 20_000, 1000, 700, 500, 300, 200, 100)  # users, items, six fields of up to 1,000: 72,800 columns
# Per field: the standard deviations of the planted linear terms and factors. The users' and items' are small, so
# the oracle's edge over logistic regression lies in interactions the data can teach (see README.md).
LINEAR_SCALES = (0.1, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
FACTOR_SCALES = (0.1, 0.1, 0.35, 0.35, 0.35, 0.35, 0.35, 0.35)


class PlantedFM:
    """The oracle: a known FM whose log-odds give the labels."""

    def __init__(self, fields=FIELDS, k=8, seed=0, factor_scales=FACTOR_SCALES, linear_scales=LINEAR_SCALES, bias=-0.2):
        rng = np.random.default_rng(seed)
        self.fields = tuple(fields)
        self.offsets = np.concatenate([[0], np.cumsum(self.fields)[:-1]]).astype(np.int64)
        self.feature_dim = int(sum(self.fields))
        self.w0 = np.float32(bias)
        self.w = (rng.normal(0, 1, self.feature_dim) * np.repeat(linear_scales, self.fields)).astype(np.float32)
        scales = np.repeat(np.asarray(factor_scales, np.float64), self.fields)[:, None]
        self.v = (rng.normal(0, 1, (self.feature_dim, k)) * scales).astype(np.float32)
        # skewed popularity, as in real click logs: value j of a field drawn with weight 1 / (j + 10)
        self.popularity = []
        for size in self.fields:
            p = 1.0 / (np.arange(size) + 10.0)
            self.popularity.append(p / p.sum())

    def rows(self, n, seed):
        """``(X csr (n, feature_dim), logits, labels)`` for n fresh rows."""
        rng = np.random.default_rng(seed)
        cols = np.empty((n, len(self.fields)), np.int64)
        for f, size in enumerate(self.fields):
            cols[:, f] = self.offsets[f] + rng.choice(size, size=n, p=self.popularity[f])
        x = sp.csr_matrix((np.ones(cols.size, np.float32), cols.reshape(-1),
                           np.arange(0, cols.size + 1, len(self.fields))), shape=(n, self.feature_dim))
        logits = self.logits(cols)
        labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return x, logits, labels

    def logits(self, cols):
        """The FM on one-hot rows given as their column indices (n, fields)."""
        s = self.v[cols].sum(1, dtype=np.float64)
        squares = (self.v[cols].astype(np.float64) ** 2).sum((1, 2))
        return self.w0 + self.w[cols].sum(1, dtype=np.float64) + 0.5 * ((s * s).sum(1) - squares)


def log_loss(p, labels):
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def oracle_log_loss(logits, labels):
    return log_loss(1.0 / (1.0 + np.exp(-logits)), labels)
