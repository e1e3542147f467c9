"""Dimension reduction: a feature_dim x target matrix R, applied as ``x @ R`` (dense or sparse x).

sign  R[j, s] = +-1/sqrt(target), independent random signs (Achlioptas' random projection): O(n d target).
fjlt  The subsampled randomized Hadamard transform form of the fast Johnson-Lindenstrauss transform:
      x -> sqrt(D/target) (H diag(signs) x_padded)[S], with D = feature_dim rounded up to a power of two, H the
      orthonormal Walsh-Hadamard matrix, signs random +-1 and S `target` coordinates drawn without replacement.
      As a matrix R[j, s] = signs[j] (-1)^popcount(j & S[s]) / sqrt(target).

Both preserve L2 distances and inner products in expectation (E[R R^T] = I). The matrix is written with the model
(model_algo-1.projection), so a model serves identically on any machine and numpy version; the seed in
model_algo-1.json only says how it was drawn. With BLAS the dense product is as fast as a Python-level fast
Walsh-Hadamard transform for the dimensions k-NN sees (see README), so both types are applied the same way.
"""

import numpy as np
import scipy.sparse as sp


def sign_matrix(input_dim, target_dim, seed):
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(input_dim, target_dim), dtype=np.int8) * 2 - 1
    return (signs / np.sqrt(target_dim)).astype(np.float32)


def _popcount_parity(values):
    """(-1)^popcount for non-negative int64 values, elementwise."""
    parity = np.zeros(values.shape, dtype=np.int64)
    v = values.copy()
    while v.any():
        parity ^= v & 1
        v >>= 1
    return 1 - 2 * parity


def fjlt_matrix(input_dim, target_dim, seed):
    rng = np.random.default_rng(seed)
    padded = 1 << max(0, (input_dim - 1).bit_length())
    if target_dim > padded:
        raise ValueError(f"fjlt target {target_dim} exceeds the padded dimension {padded}")
    signs = rng.integers(0, 2, size=input_dim, dtype=np.int64) * 2 - 1
    chosen = rng.choice(padded, size=target_dim, replace=False).astype(np.int64)
    hadamard = _popcount_parity(np.arange(input_dim, dtype=np.int64)[:, None] & chosen[None, :])
    # (H D x)[s] = sum_j H[S_s, j] D_j x_j, with H = +-1/sqrt(padded); times sqrt(padded/target)
    return (signs[:, None] * hadamard / np.sqrt(target_dim)).astype(np.float32)


MATRICES = {"sign": sign_matrix, "fjlt": fjlt_matrix}


def matrix(kind, input_dim, target_dim, seed):
    return MATRICES[kind](input_dim, target_dim, seed)


def apply(features, matrix):
    """``features @ matrix`` as C-contiguous float32 (a CSR input stays sparse until the product)."""
    if sp.issparse(features):
        return np.ascontiguousarray(np.asarray(features.astype(np.float32) @ matrix), dtype=np.float32)
    return np.ascontiguousarray(np.asarray(features, dtype=np.float32) @ matrix)
