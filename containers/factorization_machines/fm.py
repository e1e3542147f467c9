"""The factorization machine in PyTorch: forward and gradients on sparse and dense batches, and the optimizer.

    y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j
      = w0 + sum_i w_i x_i + 1/2 sum_f [ (sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2 ]        (Rendle 2010)

Sparse batches (CSR) never become dense: the rows of w and V that the batch touches are gathered once
(``torch.unique`` of its column indices), the sums above are ``index_add`` over its non-zeros, so one batch
costs O(nnz * k), and only the touched rows are updated ("lazy" updates, as MXNet does for row_sparse
gradients). Dense batches use three matrix products and update every row.

Gradients are written out rather than taken by autograd (``tests`` check them against autograd):
dL/dy = g (y - t for squared loss, sigmoid(y) - t for log loss), dy/dw_i = x_i, dy/dv_if = x_i (s_f - v_if x_i)
with s_f = sum_j v_jf x_j. As in MXNet's output layers, the batch's gradient is the sum over its rows, and the
optimizer multiplies it by ``rescale_grad`` (default 1 / rows in the batch, which makes it the mean).

Optimizers follow MXNet's update rules (the names ``clip_gradient``, ``eps``, ``rescale_grad`` and per-group
``lr``/``wd`` are MXNet's): ``adam``, ``adagrad`` and ``sgd``; see README.md for which is the default and why.
"""

import math

import numpy as np
import scipy.sparse as sp
import torch

GROUPS = ("bias", "linear", "factors")
OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd", "sgdw")
DEFAULT_OPTIMIZER = "adam"
DEFAULT_EPS = {"adam": 1e-8, "adamw": 1e-8, "adagrad": 1e-7, "sgd": 0.0, "sgdw": 0.0}
ADAM_BETAS = (0.9, 0.999)
SEED = 0  # no seed hyperparameter in the guide: every host starts from the same parameters


def init_tensor(shape, method, scale=None, sigma=None, value=None, generator=None):
    """``normal`` (0, sigma), ``uniform`` [-scale, scale] or ``constant`` value, as float32."""
    if method == "normal":
        return torch.randn(shape, generator=generator) * float(sigma)
    if method == "uniform":
        return (torch.rand(shape, generator=generator) * 2 - 1) * float(scale)
    if method == "constant":
        return torch.full(shape, float(value))
    raise ValueError(f"unknown init method {method!r}")


class Parameters:
    """w0 (1,), w (d, 1) and V (d, k), float32, on one device."""

    def __init__(self, w0, w, v):
        self.w0 = w0
        self.w = w
        self.v = v

    @classmethod
    def initial(cls, hp, device="cpu", seed=SEED):
        d, k = hp["feature_dim"], hp["num_factors"]
        generator = torch.Generator().manual_seed(seed)
        shapes = {"bias": (1,), "linear": (d, 1), "factors": (d, k)}
        tensors = [init_tensor(shapes[g], hp[f"{g}_init_method"], hp.get(f"{g}_init_scale"),
                               hp.get(f"{g}_init_sigma"), hp.get(f"{g}_init_value"), generator).to(device)
                   for g in GROUPS]
        return cls(*tensors)

    @property
    def tensors(self):
        return {"bias": self.w0, "linear": self.w, "factors": self.v}

    def numpy(self):
        return (self.w0.cpu().numpy().astype(np.float32), self.w.cpu().numpy().astype(np.float32),
                self.v.cpu().numpy().astype(np.float32))

    def finite(self):
        return all(bool(torch.isfinite(t).all()) for t in self.tensors.values())


class SparseBatch:
    """A CSR batch as tensors: the row of each non-zero, its column and its value."""

    def __init__(self, matrix, device="cpu"):
        matrix = sp.csr_matrix(matrix)
        self.n = matrix.shape[0]
        counts = np.diff(matrix.indptr)
        self.rows = torch.from_numpy(np.repeat(np.arange(self.n, dtype=np.int64), counts)).to(device)
        self.cols = torch.from_numpy(matrix.indices.astype(np.int64, copy=False)).to(device)
        self.vals = torch.from_numpy(matrix.data.astype(np.float32, copy=False)).to(device)


def as_batch(features, device="cpu"):
    """A SparseBatch for scipy sparse features, a float32 (n, d) tensor for dense ones."""
    if sp.issparse(features):
        return SparseBatch(features, device)
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)


def forward_sparse(params, batch, cols=None, inverse=None):
    """Scores of a SparseBatch and what the gradient needs: ``(y, s, xv, w_rows, v_rows)``."""
    if cols is None:
        cols, inverse = torch.unique(batch.cols, return_inverse=True)
    v_rows = params.v.index_select(0, cols)          # (u, k): the touched rows only
    w_rows = params.w.index_select(0, cols)[:, 0]    # (u,)
    x = batch.vals
    xv = v_rows.index_select(0, inverse) * x[:, None]  # (nnz, k): v_i x_i for every non-zero
    k = params.v.shape[1]
    s = torch.zeros(batch.n, k, device=x.device).index_add_(0, batch.rows, xv)
    squares = torch.zeros(batch.n, device=x.device).index_add_(0, batch.rows, (xv * xv).sum(1))
    linear = torch.zeros(batch.n, device=x.device).index_add_(0, batch.rows, w_rows.index_select(0, inverse) * x)
    y = params.w0 + linear + 0.5 * ((s * s).sum(1) - squares)
    return y, s, xv, cols, inverse


def forward_dense(params, x):
    s = x @ params.v
    squares = ((x * x) @ (params.v * params.v)).sum(1)
    return params.w0 + (x @ params.w)[:, 0] + 0.5 * ((s * s).sum(1) - squares), s


def predict(params, batch):
    """Raw scores y (before the sigmoid) of a batch from :func:`as_batch`."""
    if isinstance(batch, SparseBatch):
        return forward_sparse(params, batch)[0]
    return forward_dense(params, batch)[0]


def loss_and_gradient(y, labels, binary, weights=None):
    """``(summed loss, dL/dy)``: log loss on sigmoid(y) for binary, else 1/2 squared error (MXNet's outputs)."""
    if binary:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(y, labels, reduction="none")
        g = torch.sigmoid(y) - labels
    else:
        diff = y - labels
        loss = 0.5 * diff * diff
        g = diff
    if weights is not None:
        loss, g = loss * weights, g * weights
    return loss.sum(), g


class Gradients:
    """One step's summed gradients: w0, and w and V for ``rows`` (None: every row), over ``n`` examples."""

    def __init__(self, w0, w, v, rows, n):
        self.w0 = w0
        self.w = w
        self.v = v
        self.rows = rows
        self.n = n


def gradients_sparse(params, batch, g):
    y, s, xv, cols, inverse = forward_sparse(params, batch)
    del y
    return _sparse_backward(params, batch, g, s, xv, cols, inverse)


def _sparse_backward(params, batch, g, s, xv, cols, inverse):
    gx = g.index_select(0, batch.rows) * batch.vals                       # (nnz,)
    u, k = cols.shape[0], params.v.shape[1]
    grad_w = torch.zeros(u, device=g.device).index_add_(0, inverse, gx)
    grad_v = torch.zeros(u, k, device=g.device).index_add_(
        0, inverse, gx[:, None] * (s.index_select(0, batch.rows) - xv))
    return Gradients(g.sum().reshape(1), grad_w[:, None], grad_v, cols, batch.n)


def _dense_backward(params, x, g, s):
    grad_w = x.T @ g[:, None]
    grad_v = x.T @ (g[:, None] * s) - params.v * ((x * x).T @ g)[:, None]
    return Gradients(g.sum().reshape(1), grad_w, grad_v, None, x.shape[0])


def step_gradients(params, batch, labels, binary, weights=None):
    """``(summed loss, Gradients)`` of one batch."""
    if isinstance(batch, SparseBatch):
        y, s, xv, cols, inverse = forward_sparse(params, batch)
        loss, g = loss_and_gradient(y, labels, binary, weights)
        return loss, _sparse_backward(params, batch, g, s, xv, cols, inverse)
    y, s = forward_dense(params, batch)
    loss, g = loss_and_gradient(y, labels, binary, weights)
    return loss, _dense_backward(params, batch, g, s)


# ---------------------------------------------------------------------------------------------
# optimizers: MXNet's update rules, applied to the touched rows of a parameter


class RowOptimizer:
    """One parameter group's optimizer state and update, in MXNet's conventions.

    ``clip_gradient`` None or negative: no clipping (MXNet's convention). ``rescale_grad`` None: 1 / n.
    """

    def __init__(self, kind, param, lr, wd, eps=None, clip_gradient=None, rescale_grad=None):
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.lr = float(lr)
        self.wd = float(wd)
        self.eps = DEFAULT_EPS[kind] if eps is None else float(eps)
        self.clip = None if clip_gradient is None or clip_gradient < 0 else float(clip_gradient)
        self.rescale = rescale_grad
        self.steps = 0
        self.ndim = param.dim()
        self.first = torch.zeros_like(param) if kind in ("adam", "adamw") else None
        self.second = torch.zeros_like(param) if kind in ("adam", "adamw", "adagrad") else None
        # adamw: decoupled decay w *= (1 - lr wd) every step for every row, applied lazily: each row keeps the
        # step it was last brought up to date, and catches up when touched (and all rows at the end)
        self.stamp = (torch.zeros(param.shape[0], dtype=torch.int64, device=param.device)
                      if kind in ("adamw", "sgdw") else None)

    def _clip(self, grad):
        return grad.clamp_(-self.clip, self.clip) if self.clip is not None else grad

    def step(self, param, rows, grad, n):
        """Update ``param`` (rows ``rows``, or all when None) with the summed gradient ``grad`` of n examples."""
        self.steps += 1
        rescale = 1.0 / max(n, 1) if self.rescale is None else float(self.rescale)
        weight = param if rows is None else param.index_select(0, rows)
        if self.kind in ("adam", "adamw"):
            if self.kind == "adam":  # MXNet adam_update: wd joins the gradient before clipping
                grad = self._clip(grad * rescale + self.wd * weight)
            else:
                weight = weight * self._decay(rows)
                grad = self._clip(grad * rescale)
            b1, b2 = ADAM_BETAS
            first = self._rows(self.first, rows).mul_(b1).add_(grad, alpha=1 - b1)
            second = self._rows(self.second, rows).mul_(b2).addcmul_(grad, grad, value=1 - b2)
            lr = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
            weight = weight - lr * first / (second.sqrt() + self.eps)
            self._store(self.first, rows, first)
            self._store(self.second, rows, second)
        elif self.kind == "adagrad":  # MXNet AdaGrad: wd outside the adaptive step
            grad = self._clip(grad * rescale)
            history = self._rows(self.second, rows).addcmul_(grad, grad)
            weight = weight - self.lr * (grad / (history + self.eps).sqrt() + self.wd * weight)
            self._store(self.second, rows, history)
        elif self.kind == "sgd":  # MXNet sgd_update without momentum
            weight = weight - self.lr * (self._clip(grad * rescale) + self.wd * weight)
        else:  # sgdw: decoupled decay of every row every step (applied lazily), then the plain gradient step
            weight = weight * self._decay(rows) - self.lr * self._clip(grad * rescale)
        self._store(param, rows, weight)

    def _decay(self, rows, upto=None):
        """(1 - lr wd)^(steps since each row was last decayed), shaped to broadcast over a row."""
        upto = self.steps if upto is None else upto
        stamp = self.stamp if rows is None else self.stamp.index_select(0, rows)
        factor = (1 - self.lr * self.wd) ** (upto - stamp).double()
        if rows is None:
            self.stamp.fill_(upto)
        else:
            self.stamp.index_fill_(0, rows, upto)
        return factor.float().view(-1, *[1] * (self.ndim - 1))

    def finish(self, param):
        """Bring every row's lazy decay up to date (adamw); a no-op for the others."""
        if self.stamp is not None:
            param.mul_(self._decay(None))

    @staticmethod
    def _rows(state, rows):
        return state.clone() if rows is None else state.index_select(0, rows)

    @staticmethod
    def _store(target, rows, values):
        if rows is None:
            target.copy_(values)
        else:
            target.index_copy_(0, rows, values)


class Optimizer:
    """The three groups' optimizers, from the hyperparameters."""

    def __init__(self, params, hp, kind=DEFAULT_OPTIMIZER):
        self.kind = kind
        self.groups = {
            group: RowOptimizer(kind, tensor, hp[f"{group}_lr"], hp[f"{group}_wd"], hp.get("eps"),
                                hp.get("clip_gradient"), hp.get("rescale_grad"))
            for group, tensor in params.tensors.items()}

    def finish(self, params):
        for group, tensor in params.tensors.items():
            self.groups[group].finish(tensor)

    def scale_lr(self, params, factor):
        """Multiply every group's learning rate by ``factor``; lazily applied decay is first brought up to date
        at the old rate (the decoupled decay's factor 1 - lr wd changes with the rate)."""
        self.finish(params)
        for optimizer in self.groups.values():
            optimizer.lr *= float(factor)

    def step(self, params, grads):
        self.groups["bias"].step(params.w0, None, grads.w0, grads.n)
        self.groups["linear"].step(params.w, grads.rows, grads.w, grads.n)
        self.groups["factors"].step(params.v, grads.rows, grads.v, grads.n)


# ---------------------------------------------------------------------------------------------
# several hosts: every step, each host's gradient rows are gathered and summed, so all apply the same update


def combine(cluster, grads, feature_dim, k, device="cpu"):
    """The sum over hosts of each host's ``Gradients`` (a host without data passes None); None if all had none.

    Row sets differ between hosts, so rows and values are all-gathered (padded to the largest host's count)
    and summed per row: exact synchronous data parallelism at O(touched rows * k) traffic per step.
    """
    import torch.distributed as dist

    if grads is not None and grads.rows is None:
        grads = Gradients(grads.w0, grads.w, grads.v, torch.arange(feature_dim, device=device), grads.n)
    count = 0 if grads is None else grads.rows.shape[0]
    header = torch.zeros(3, dtype=torch.float64, device=device)
    if grads is not None:
        header[0], header[1], header[2] = count, grads.n, float(grads.w0[0])
    headers = [torch.empty_like(header) for _ in range(cluster.world_size)]
    dist.all_gather(headers, header)
    headers = torch.stack(headers).cpu()
    total_n = int(headers[:, 1].sum())
    if total_n == 0:
        return None
    width = max(int(headers[:, 0].max()), 1)
    rows = torch.full((width,), -1, dtype=torch.int64, device=device)
    values = torch.zeros(width, 1 + k, device=device)
    if grads is not None:
        rows[:count] = grads.rows
        values[:count, 0] = grads.w[:, 0]
        values[:count, 1:] = grads.v
    all_rows = [torch.empty_like(rows) for _ in range(cluster.world_size)]
    all_values = [torch.empty_like(values) for _ in range(cluster.world_size)]
    dist.all_gather(all_rows, rows)
    dist.all_gather(all_values, values)
    all_rows, all_values = torch.cat(all_rows), torch.cat(all_values)
    keep = all_rows >= 0
    unique, inverse = torch.unique(all_rows[keep], return_inverse=True)
    summed = torch.zeros(unique.shape[0], 1 + k, device=device).index_add_(0, inverse, all_values[keep])
    w0 = torch.tensor([float(headers[:, 2].sum())], device=device)
    return Gradients(w0, summed[:, :1].contiguous(), summed[:, 1:].contiguous(), unique, total_n)


class Trainer:
    """Parameters, optimizer and the loss; one call per mini-batch."""

    def __init__(self, hp, device="cpu", optimizer=None, seed=SEED):
        self.hp = hp
        optimizer = optimizer or hp.get("optimizer", DEFAULT_OPTIMIZER)
        self.device = torch.device(device)
        self.binary = hp["predictor_type"] == "binary_classifier"
        self.params = Parameters.initial(hp, self.device, seed)
        self.optimizer = Optimizer(self.params, hp, optimizer)

    def gradients(self, features, labels, weights=None):
        """``(summed loss, Gradients)`` of one batch of numpy/scipy features and numpy labels."""
        batch = as_batch(features, self.device)
        labels = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32).reshape(-1)).to(self.device)
        if weights is not None:
            weights = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32).reshape(-1)).to(self.device)
        return step_gradients(self.params, batch, labels, self.binary, weights)

    def apply(self, grads):
        self.optimizer.step(self.params, grads)

    def finish(self):
        """Bring lazily applied state up to date (the end of training)."""
        self.optimizer.finish(self.params)

    def end_epoch(self):
        """The learning rates' schedule: multiplied by ``lr_decay`` (default 1) after each epoch."""
        decay = self.hp.get("lr_decay", 1)
        if decay != 1:
            self.optimizer.scale_lr(self.params, decay)

    def train_batch(self, features, labels, weights=None):
        loss, grads = self.gradients(features, labels, weights)
        self.apply(grads)
        return float(loss)
