"""The PCA math in PyTorch: streaming summaries that add up across mini-batches and hosts, then a small solve.

regular     Sum_i (x_i - c)^T (x_i - c), Sum_i (x_i - c) and n: the d x d scatter of the data (float64 sums of
            float32 block products; c is a shift taken from the first block, which keeps the float32 products
            free of cancellation). Its top ``num_components`` eigenvectors are the model.
randomized  The same sums multiplied on the right by a d x p test matrix Omega: Y = Sum_i (x_i - c)^T
            (x_i - c) Omega, in the guide's terms B = Sum_t H_t X_t with H_t = Omega^T X_t^T, h = Omega^T s.
            Memory is O(p x d), p = 2 l. Omega's first l columns are adapted to a sample (the first block(s)
            of every host, at least 20 l rows: two power iterations), the other l columns are random; the top
            components then come from the Nystrom approximation Y (Omega^T Y)^-1 Y^T of the scatter, solved
            through one d x p SVD.

Every summary is a plain sum, so hosts combine theirs with an all-reduce (after re-centring each on the global
mean, so no precision is lost to large means).
"""

import math

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from common.accel import dense_tensors

READ_ELEMENTS = 1 << 22     # rows read per block: at least mini_batch_size, and about this many values (16 MB)
DENSE_CHUNK_ELEMENTS = 1 << 22  # sparse blocks are densified this many values at a time
DENSIFY_DENSITY = 0.1       # sparse blocks denser than this go through the dense (BLAS) path
SKETCH_FACTOR = 2           # randomized: sketch width p = 2 l (l adapted columns + l random ones)
SAMPLE_FACTOR = 20          # randomized: the sample that adapts Omega has about 20 l rows
SAMPLE_POWER_ITERATIONS = 2
GRAM_FACTOR = 4             # randomized with d <= 4 p: sum X^T X (d^2 <= 4 p d values) and apply Omega once
SEED = 17


def extra_components(num_components, extra):
    """What ``extra_components=-1`` means (the guide: the maximum of 10 and num_components)."""
    return max(10, num_components) if extra == -1 else extra


def sketch_sizes(feature_dim, num_components, extra):
    """``(l, p)``: l = num_components + extra_components, and the sketch width p = 2 l, both at most d."""
    l = min(feature_dim, num_components + extra_components(num_components, extra))
    return l, min(feature_dim, SKETCH_FACTOR * l)


def read_rows(feature_dim, mini_batch_size):
    """Rows per block read from a channel; the result does not depend on it (the summaries are sums)."""
    return max(mini_batch_size, math.ceil(READ_ELEMENTS / max(1, feature_dim)))


def is_sparse_block(features):
    """Sparse blocks sparse enough to gain from sparse products (others go through dense BLAS)."""
    if not sp.issparse(features):
        return False
    cells = features.shape[0] * features.shape[1]
    return cells > 0 and features.nnz < DENSIFY_DENSITY * cells


class _Part:
    """Sums over some rows relative to a shift c: n, s = Sum (x - c), M = Sum (x - c)^T (x - c) P."""

    def __init__(self, shift, columns, device):
        d = shift.shape[0]
        self.shift = shift.to(device=device, dtype=torch.float64)
        self.n = 0
        self.s = torch.zeros(d, dtype=torch.float64, device=device)
        self.m = torch.zeros(d, columns, dtype=torch.float64, device=device)

    def recentred(self, mean, projector):
        """M relative to ``mean`` instead of the shift: M + s^T (delta P) + delta^T (s P) + n delta^T (delta P)."""
        delta = self.shift - mean
        if not self.n or not bool(delta.any()):
            return self.m
        s_p = self.s if projector is None else self.s @ projector
        delta_p = delta if projector is None else delta @ projector
        return (self.m + torch.outer(self.s, delta_p) + torch.outer(delta, s_p)
                + self.n * torch.outer(delta, delta_p))


class Summary:
    """One host's streaming summary.

    ``omega`` (float64, d x p) is None in regular mode. ``gram`` chooses what is summed: the d x d scatter
    (regular mode, or randomized with a small d, where Omega is applied once at the end) or the d x p sketch.
    Dense blocks are shifted by the first block's mean; sparse blocks keep their sparsity (no shift) and are
    multiplied by scipy in float64.
    """

    def __init__(self, feature_dim, device, subtract_mean=True, omega=None, gram=True):
        self.d = feature_dim
        self.device = torch.device(device)
        self.subtract_mean = subtract_mean
        self.omega = omega.to(self.device, torch.float64) if omega is not None else None
        self.gram = gram or omega is None
        self.columns = feature_dim if self.gram else omega.shape[1]
        self.omega32 = self.omega.float() if self.omega is not None else None
        self.omega_np = self.omega.cpu().numpy() if self.omega is not None else None
        self.dense = None  # _Part, created at the first dense block (its mean is the shift)
        self.sparse = None  # sums of sparse blocks (shift 0), in numpy float64
        self.rows = 0

    def _project(self, x32):
        """(x^T x) for the gram summary, x^T (x Omega) for the sketch, in float32."""
        if self.gram:
            # torch's gemm, not numpy's syrk: syrk does half the flops, but OpenBLAS's threads made it 2-8x slower
            # than this whenever another process shared the cores (measured); MKL/OpenMP stays steady
            return x32.T @ x32
        return x32.T @ (x32 @ self.omega32)

    def add_dense(self, x):
        """A float32 tensor (rows x d) on the device."""
        if not x.shape[0]:
            return
        if self.dense is None:
            shift = x.mean(dim=0) if self.subtract_mean else torch.zeros(self.d, device=self.device)
            self.dense = _Part(shift, self.columns, self.device)
            self.shift32 = shift.float()
        if self.subtract_mean:
            x = x - self.shift32
            self.dense.s += x.sum(dim=0).double()
        self.dense.m += self._project(x).double()
        self.dense.n += x.shape[0]
        self.rows += x.shape[0]

    def add_sparse(self, matrix):
        """A scipy CSR block with few non-zeros: exact float64 sums with no shift."""
        if not matrix.shape[0]:
            return
        if self.sparse is None:
            self.sparse = {"n": 0, "s": np.zeros(self.d), "m": np.zeros((self.d, self.columns))}
        x = matrix.astype(np.float64)
        if self.subtract_mean:
            self.sparse["s"] += np.asarray(x.sum(axis=0)).ravel()
        if self.gram:
            product = x.T @ x
            self.sparse["m"] += product.toarray() if sp.issparse(product) else product
        else:
            self.sparse["m"] += np.asarray(x.T @ (x @ self.omega_np))
        self.sparse["n"] += matrix.shape[0]
        self.rows += matrix.shape[0]

    def add(self, features):
        """One block from ``context.batches``: a float32 array or a CSR matrix."""
        if is_sparse_block(features):
            self.add_sparse(features.tocsr())
        else:
            for chunk in dense_tensors(features, self.device, DENSE_CHUNK_ELEMENTS):
                self.add_dense(chunk)

    def _parts(self):
        parts = [self.dense] if self.dense is not None else []
        if self.sparse is not None:
            part = _Part(torch.zeros(self.d, dtype=torch.float64), self.columns, self.device)
            part.n = self.sparse["n"]
            part.s = torch.from_numpy(self.sparse["s"]).to(self.device)
            part.m = torch.from_numpy(self.sparse["m"]).to(self.device)
            parts.append(part)
        return parts

    def combine(self, cluster):
        """Global ``(n, mean, M)`` over every host: M relative to the global mean (zero if not subtracting)."""
        parts = self._parts()
        totals = torch.zeros(self.d + 1, dtype=torch.float64, device=self.device)
        for part in parts:
            totals[0] += part.n
            totals[1:] += part.s + part.n * part.shift
        cluster.all_reduce_sum(totals)
        n = int(round(float(totals[0])))
        mean = totals[1:] / max(n, 1) if self.subtract_mean else torch.zeros_like(totals[1:])
        projector = None if self.gram else self.omega
        m = torch.zeros(self.d, self.columns, dtype=torch.float64, device=self.device)
        for part in parts:
            m += part.recentred(mean, projector)
        cluster.all_reduce_sum(m)
        return n, mean, m


def fix_signs(vectors):
    """Make the largest-magnitude entry of every column positive (deterministic signs, as scikit-learn)."""
    index = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[index, torch.arange(vectors.shape[1], device=vectors.device)])
    signs[signs == 0] = 1
    return vectors * signs


def solve_regular(scatter, k):
    """Top-k eigenpairs of the d x d scatter, ascending: ``(eigenvalues (k,), vectors (d, k))``, float64."""
    scatter = (scatter + scatter.T) / 2
    d = scatter.shape[0]
    if scatter.device.type == "cpu":
        values, vectors = scipy.linalg.eigh(scatter.numpy(), subset_by_index=[d - k, d - 1], driver="evr")
        values, vectors = torch.from_numpy(values), torch.from_numpy(np.ascontiguousarray(vectors))
    else:
        values, vectors = torch.linalg.eigh(scatter)
        values, vectors = values[-k:], vectors[:, -k:]
    return values.clamp_min(0.0), fix_signs(vectors)


def solve_nystrom(sketch, omega, k):
    """Top-k eigenpairs of the Nystrom approximation Y (Omega^T Y)^+ Y^T of the scatter, ascending.

    The stable form of Tropp, Yurtsever, Udell and Cevher (2017): shift by nu, Cholesky, one thin SVD.
    """
    d, p = sketch.shape
    norm = float(torch.linalg.matrix_norm(sketch, ord=2)) if sketch.numel() else 0.0
    if norm == 0.0:  # every row identical: no variance in any direction
        return torch.zeros(k, dtype=torch.float64, device=sketch.device), fix_signs(omega[:, :k].clone())
    nu = math.sqrt(d) * torch.finfo(torch.float32).eps * norm  # the products were float32
    shifted = sketch + nu * omega
    core = omega.T @ shifted
    core = (core + core.T) / 2
    lower, info = torch.linalg.cholesky_ex(core)
    if int(info) == 0:
        factor = torch.linalg.solve_triangular(lower, shifted.T, upper=False).T  # Y_nu L^-T
    else:  # not numerically positive definite: a pseudo-inverse square root instead
        values, vectors = torch.linalg.eigh(core)
        keep = values > values.max() * 1e-12
        factor = shifted @ (vectors[:, keep] / values[keep].sqrt())
    left, singular, _ = torch.linalg.svd(factor, full_matrices=False)
    values = (singular[:k] ** 2 - nu).clamp_min(0.0)
    return values.flip(0), fix_signs(left[:, :k].flip(1))


def _sample_times(sample, q, subtract_mean, device):
    """Sum over the sample of (x - mean)^T (x - mean) q (float64 result), the sample centred on its own mean."""
    d = q.shape[0]
    out = torch.zeros_like(q)
    if sample is None or not sample.shape[0]:
        return out
    if sp.issparse(sample):
        x = sample.astype(np.float64)
        qn = q.cpu().numpy()
        product = np.asarray(x.T @ (x @ qn))
        if subtract_mean:
            mean = np.asarray(x.mean(axis=0)).ravel()
            product -= sample.shape[0] * np.outer(mean, mean @ qn)
        return torch.from_numpy(product).to(device)
    rows = max(1, DENSE_CHUNK_ELEMENTS // max(1, d))
    mean = sample.mean(dim=0, dtype=torch.float64).float() if subtract_mean else None
    q32 = q.float()
    for start in range(0, sample.shape[0], rows):
        x = sample[start:start + rows]
        if mean is not None:
            x = x - mean
        out += (x.T @ (x @ q32)).double()  # float32 products: Omega needs no more precision
    return out


def adapted_test_matrix(sample, d, l, p, subtract_mean, cluster, device, seed=SEED):
    """Omega (d x p, orthonormal, float64, identical on every host): l columns adapted to the hosts' samples
    by ``SAMPLE_POWER_ITERATIONS`` power iterations, p - l random ones. Collective: every host calls it once.
    """
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(d, l, generator=generator, dtype=torch.float64).to(device)
    random_part = torch.randn(d, p - l, generator=generator, dtype=torch.float64).to(device)
    q = start
    for _ in range(SAMPLE_POWER_ITERATIONS):
        product = cluster.all_reduce_sum(_sample_times(sample, q, subtract_mean, device))
        if not bool(product.any()):
            break
        q = torch.linalg.qr(product).Q
    omega = torch.linalg.qr(torch.cat([q, random_part], dim=1)).Q
    if cluster.world_size > 1:  # the master's copy, bit for bit, on every host
        if not cluster.is_master:
            omega.zero_()
        cluster.all_reduce_sum(omega)
    return omega.float().double()  # the float32 values the blocks are multiplied by


def stack_sample(blocks, device):
    """The sample blocks as one float32 tensor on ``device`` (dense) or a CSR matrix (if all are sparse)."""
    if not blocks:
        return None
    if all(is_sparse_block(b) for b in blocks):
        return sp.vstack([sp.csr_matrix(b) for b in blocks], format="csr")
    dense = [b.toarray() if sp.issparse(b) else b for b in blocks]
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(dense), dtype=np.float32)).to(device)
