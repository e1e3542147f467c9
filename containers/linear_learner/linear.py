"""All ``num_models`` linear models trained at once: one weight tensor, one matmul per mini-batch.

The weights of M models with K outputs over D features are one (D, M*K) tensor ``W`` (``weights`` views it as
(M, D, K)); scores of a batch are ``X @ W + b``, (B, M*K), and the gradient is ``X^T G``: two matmuls per
batch, whatever M. Learning rate, wd and l1 are per-model tensors broadcast over the columns. Features and
label are scaled by the scaler before the models see them; ``folded`` turns the trained weights back into a
linear function of the raw features.
"""

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .losses import GRADIENTS, LOSSES

warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")


class Scaler:
    """Shift and scale of features and label, from a sample (``num_point_for_scaler`` rows)."""

    def __init__(self, feature_mean, feature_scale, label_mean=0.0, label_scale=1.0):
        self.feature_mean = np.asarray(feature_mean, np.float64)
        self.feature_scale = np.asarray(feature_scale, np.float64)
        self.label_mean = float(label_mean)
        self.label_scale = float(label_scale)

    @classmethod
    def identity(cls, d):
        return cls(np.zeros(d), np.ones(d))

    @staticmethod
    def moments(features, labels):
        """Sufficient statistics of a sample: count, feature sums and sums of squares, label sums (float64)."""
        n = features.shape[0]
        if sp.issparse(features):
            s1 = np.asarray(features.sum(axis=0, dtype=np.float64)).ravel()
            s2 = np.asarray(features.multiply(features).sum(axis=0, dtype=np.float64)).ravel()
        else:
            x = features.astype(np.float64)
            s1, s2 = x.sum(axis=0), np.einsum("ij,ij->j", x, x)
        y = np.asarray(labels, np.float64).reshape(n, -1)[:, 0]
        return np.concatenate([[n], s1, s2, [y.sum(), (y * y).sum()]])

    @classmethod
    def from_moments(cls, moments, d, shift_features, scale_features, shift_label, scale_label):
        n = max(moments[0], 1.0)
        mean = moments[1:1 + d] / n
        var = np.maximum(moments[1 + d:1 + 2 * d] / n - mean * mean, 0.0)
        std = np.sqrt(var)
        ly, ly2 = moments[1 + 2 * d] / n, moments[2 + 2 * d] / n
        lstd = math.sqrt(max(ly2 - ly * ly, 0.0))
        return cls(mean if shift_features else np.zeros(d),
                   np.where(std > 1e-12, std, 1.0) if scale_features else np.ones(d),
                   ly if shift_label else 0.0,
                   lstd if scale_label and lstd > 1e-12 else 1.0)

    def to_dict(self):
        return {"feature_mean": self.feature_mean.tolist(), "feature_scale": self.feature_scale.tolist(),
                "label_mean": self.label_mean, "label_scale": self.label_scale}


class Batcher:
    """numpy/scipy blocks -> torch tensors on the device: raw features (dense (B, D) float32 or sparse CSR; the
    models apply the scaler), labels scaled for regression."""

    def __init__(self, scaler, device, dtype=torch.float32):
        self.device = device
        self.dtype = dtype
        self.label_mean, self.label_scale = scaler.label_mean, scaler.label_scale

    def features(self, x):
        if sp.issparse(x):
            x = x.tocsr()
            return torch.sparse_csr_tensor(torch.from_numpy(x.indptr.astype(np.int64)),
                                           torch.from_numpy(x.indices.astype(np.int64)),
                                           torch.from_numpy(x.data.astype(np.float32)), size=x.shape).to(self.device)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def labels(self, y, multiclass):
        y = np.asarray(y)
        if y.ndim > 1:
            y = y.reshape(len(y), -1)[:, 0]
        t = torch.from_numpy(y.astype(np.float32, copy=False)).to(self.device)
        if multiclass:
            return t.long()
        if self.label_mean or self.label_scale != 1.0:
            t = (t - self.label_mean) / self.label_scale
        return t.view(-1, 1, 1)


class ParallelModels:
    """M linear models of K outputs over D features, trained together; per-model lr, wd and l1.

    The parameters are one (D + 1, M*K) tensor ``P``: ``W`` (D, M*K) is its first D rows and the bias ``b`` its
    last, so one optimizer update (a dozen tensor operations) steps every weight and bias of every model; the
    bias row's learning rate and wd carry ``bias_lr_mult``/``bias_wd_mult`` (and lr 0 without ``use_bias``).
    ``W`` and ``b`` live in the scaled space (features shifted by ``mean`` and divided by ``scale``); the scaler
    is folded into the weights of each batch instead of being applied to the batch's rows:
    ``((x - mean) / scale) @ W + b = x @ (W / scale) + (b - (mean / scale) @ W)``, and the gradient of ``W`` is
    ``(x^T G) / scale - (mean / scale) (1^T G)``: O(D x M*K) work per batch instead of O(B x D). (In float32 the
    folded product rounds like the raw features themselves: its error is that of x's own representation.)
    """

    def __init__(self, settings, d, device, seed=0, scaler=None, groups=1):
        """``groups`` > 1: that many copies of the ``num_models`` models side by side (group-major columns), for
        cross-validated selection: group 0 trains on every row, group g > 0 on the rows whose fold is not g - 1
        (``gradients(..., folds=)``)."""
        self.groups = groups
        m, k = settings.num_models * groups, settings.outputs
        self.s = settings
        self.d, self.m, self.k = d, m, k
        self.device = device
        generator = torch.Generator().manual_seed(seed)
        if settings.init_method == "normal":
            w = torch.randn(d, m * k, generator=generator) * settings.init_sigma
        else:
            w = (torch.rand(d, m * k, generator=generator) * 2 - 1) * settings.init_scale
        self.P = torch.empty(d + 1, m * k, device=device)
        self.P[:d] = w.to(device)
        self.P[d] = float(settings.init_bias) if settings.use_bias else 0.0
        self.grad = torch.zeros_like(self.P)
        col = lambda values: torch.tensor(list(values) * groups, dtype=torch.float32, device=device
                                          ).repeat_interleave(k)
        self.lr0 = col(settings.learning_rates)
        rows = lambda weight, bias: torch.cat([torch.full((d, 1), weight), torch.full((1, 1), bias)]).to(device)
        self.lr_rows = rows(1.0, settings.bias_lr_mult if settings.use_bias else 0.0)
        self.group_of_model = torch.arange(groups, device=device).repeat_interleave(settings.num_models)
        self.any_wd = bool(np.any(np.asarray(settings.wds) > 0))
        self.wd = col(settings.wds) * rows(1.0, settings.bias_wd_mult) if self.any_wd else None
        self.any_l1 = bool(np.any(np.asarray(settings.l1s) > 0))
        self.l1 = col(settings.l1s) * rows(1.0, 0.0) if self.any_l1 else None  # no l1 on the bias
        self.l1_on = (self.l1 > 0).to(torch.float32) if self.any_l1 else None
        self.loss_fn = LOSSES[settings.loss]
        gradient_fn = GRADIENTS.get(settings.loss)
        self.gradient_fn = gradient_fn or (lambda s, y, p: self.loss_fn(s, y, p)[1])
        self.params = {"margin": settings.margin, "quantile": settings.quantile,
                       "loss_insensitivity": settings.loss_insensitivity, "huber_delta": settings.huber_delta}
        self.step_count = 0
        self.state = [torch.zeros_like(self.P), torch.zeros_like(self.P)]  # adam m/v, rmsprop v/momentum, sgd momentum
        self.lr = self.lr0.clone()
        self._set_lr_matrix()
        self.inv_scale = self.shift = None  # the scaler: (D, 1) 1/scale and (D,) mean/scale, None for identity
        if scaler is not None:
            self.set_scaler(scaler)

    @property
    def W(self):
        return self.P[:self.d]

    @property
    def b(self):
        return self.P[self.d]

    def set_scaler(self, scaler):
        inv = 1.0 / np.asarray(scaler.feature_scale, np.float64)
        shift = np.asarray(scaler.feature_mean, np.float64) * inv
        self.inv_scale = torch.from_numpy(inv.astype(np.float32)).view(-1, 1).to(self.device) \
            if np.any(inv != 1.0) else None
        self.shift = torch.from_numpy(shift.astype(np.float32)).to(self.device) if np.any(shift != 0) else None

    def set_label_scale(self, scale):
        """Regression thresholds keep the label's units while training on the scaled label."""
        for name in ("loss_insensitivity", "huber_delta"):
            self.params[name] = getattr(self.s, name) / scale

    # -- forward ---------------------------------------------------------------------------------

    def raw_weights(self, P=None):
        """(D, M*K) weights and (M*K,) bias of the raw (unscaled) features, from scaled-space parameters."""
        P = self.P if P is None else P
        w, b = P[:self.d], P[self.d]
        if not self.s.use_bias:
            b = torch.zeros_like(b)
        if self.shift is not None:
            b = b - self.shift @ w
        if self.inv_scale is not None:
            w = w * self.inv_scale
        return w, b

    def scores(self, x, P=None):
        """(B, M, K) raw scores of raw features ``x`` (dense or sparse CSR)."""
        w, b = self.raw_weights(P)
        out = torch.addmm(b, x, w) if x.layout == torch.strided else x @ w + b
        return out.view(-1, self.m, self.k)

    def losses(self, x, y):
        """(B, M) per-example losses."""
        loss, _ = self.loss_fn(self.scores(x), y, self.params)
        return loss.sum(2)

    # -- one step --------------------------------------------------------------------------------

    def _schedule(self):
        if not self.s.use_lr_scheduler or self.step_count % self.s.lr_scheduler_step:
            return
        decays = self.step_count // self.s.lr_scheduler_step
        factor = self.s.lr_scheduler_factor ** decays
        self.lr = torch.maximum(self.lr0 * factor, torch.minimum(self.lr0, torch.tensor(
            self.s.lr_scheduler_minimum_lr, device=self.device)))
        self._set_lr_matrix()

    def _set_lr_matrix(self):
        """Per-element learning rates (and for adam their inverse, and eps over them; a learning rate of 0, the
        bias without ``use_bias``, gives steps of ~1e-30, and the bias is not used)."""
        self.lr_matrix = self.lr_rows * self.lr
        if self.s.optimizer == "adam":
            self.inverse_lr = 1.0 / self.lr_matrix.clamp_min(1e-30)
            self.eps_over_lr = self.inverse_lr * 1e-8

    def gradients(self, x, y, weights=None, folds=None, with_loss=True):
        """Weighted sums over the batch: the (D + 1, M*K) gradient of the loss (weights' rows then the bias),
        the per-model loss sums (M,) (None unless ``with_loss``), and the total weight (a float, or per model (M,)
        with ``folds``). ``weights`` None: every row weighs 1. ``folds`` (B,) long: the rows' folds; group g > 0
        skips fold g - 1."""
        scores = self.scores(x)
        if with_loss:
            loss, grad = self.loss_fn(scores, y, self.params)
        else:
            loss, grad = None, self.gradient_fn(scores, y, self.params)
        batch_loss = None
        if folds is not None:
            rows = (folds.view(-1, 1) + 1 != self.group_of_model.view(1, -1)).to(grad.dtype)  # (B, M)
            if weights is not None:
                rows.mul_(weights.view(-1, 1))
            g = (grad * rows.unsqueeze(2)).reshape(-1, self.m * self.k)
            total = rows.sum(0)
            if with_loss:
                batch_loss = (loss.sum(2) * rows).sum(0)
        elif weights is None:
            g = grad.reshape(-1, self.m * self.k)
            total = float(g.shape[0])
            if with_loss:
                batch_loss = loss.sum((0, 2))
        else:
            total = float(weights.sum())
            g = grad.reshape(-1, self.m * self.k) * weights.view(-1, 1)
            if with_loss:
                batch_loss = (loss.sum(2) * weights.view(-1, 1)).sum(0)
        gw, gb = self.grad[:self.d], self.grad[self.d]
        torch.sum(g, 0, out=gb)
        if x.layout == torch.strided:
            torch.mm(x.t(), g, out=gw)
        else:
            gw.copy_(x.t() @ g)  # sparse CSR rows: a CSC transpose times dense
        if self.inv_scale is not None:
            gw.mul_(self.inv_scale)
        if self.shift is not None:
            gw.addr_(self.shift, gb, alpha=-1.0)
        return self.grad, batch_loss, total

    def apply(self, grad):
        """One optimizer step from the (already combined and normalised) gradient, with wd, l1 and the lr
        schedule."""
        s, P = self.s, self.P
        self.step_count += 1
        if self.any_wd:  # the gradient buffer is the step's own: wd and l1 are added in place
            grad.addcmul_(P, self.wd)
        if self.any_l1:
            before = torch.sign(P)
            grad.addcmul_(before, self.l1)  # l1 is 0 where it is off ...
            before.mul_(self.l1_on)  # ... where the truncation below must not act either
        lr = self.lr_matrix
        first, second = self.state
        if s.optimizer == "adam":
            b1, b2, t = s.beta_1, s.beta_2, self.step_count
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            first.lerp_(grad, 1 - b1)
            second.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            # lr m / (c1 (sqrt(v / c2) + eps)) as m / ((1 / lr) (sqrt(v) / sqrt(c2) + eps)) / c1: the denominator
            # in one operation (the inverse learning rates are kept with the schedule)
            denominator = torch.addcmul(self.eps_over_lr, second.sqrt(), self.inverse_lr, value=1.0 / math.sqrt(c2))
            P.addcdiv_(first, denominator, value=-1.0 / c1)
        elif s.optimizer == "rmsprop":
            rho = s.beta_2 if s.beta_2 != 0.999 else 0.9  # beta_2=auto: MXNet's RMSProp gamma1 0.9
            second.mul_(rho).addcmul_(grad, grad, value=1 - rho)
            step = grad / second.sqrt().add_(1e-8)
            if s.momentum:
                first.mul_(s.momentum).add_(step)
                step = first
            P.addcmul_(lr, step, value=-1.0)
        else:
            if s.momentum:
                first.mul_(s.momentum).add_(grad)
                grad = first
            P.addcmul_(lr, grad, value=-1.0)
        if self.any_l1:  # an l1 step that crosses zero stops at zero (truncated gradient)
            P.masked_fill_(P * before < 0, 0.0)
        self._schedule()

    def normalise(self, grad, total):
        """The gradient sums divided by their total weight (a float, or per model)."""
        if isinstance(total, torch.Tensor):
            return grad.div_(total.clamp_min(1e-30).repeat_interleave(self.k))
        return grad.mul_(1.0 / max(total, 1e-30))

    def step(self, x, y, weights=None, folds=None, with_loss=True):
        grad, batch_loss, total = self.gradients(x, y, weights, folds, with_loss)
        self.apply(self.normalise(grad, total))
        return batch_loss, total

    # -- state, for multi-host averaging, snapshots and saving ----------------------------------

    def tensors(self):
        return [self.P, *self.state]


def folded(weights, bias, scaler, use_bias):
    """(D, K) weights and (K,) bias of the same function of raw features (and raw label, for regression)."""
    w = weights.astype(np.float64) / scaler.feature_scale[:, None]
    b = bias.astype(np.float64) - (scaler.feature_mean @ w) if use_bias or np.any(scaler.feature_mean) else \
        bias.astype(np.float64)
    w, b = w * scaler.label_scale, b * scaler.label_scale + scaler.label_mean
    return w.astype(np.float32), b.astype(np.float32)
