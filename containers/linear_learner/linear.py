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

from .losses import LOSSES

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
    """numpy/scipy blocks -> scaled torch tensors on the device (dense (B, D) or sparse CSR)."""

    def __init__(self, scaler, device, dtype=torch.float32):
        self.device = device
        self.inv_scale = (1.0 / scaler.feature_scale).astype(np.float32)
        self.shift = (scaler.feature_mean / scaler.feature_scale).astype(np.float32)  # applied after scaling
        self.has_shift = bool(np.any(self.shift != 0))
        self.shift_t = torch.from_numpy(self.shift).to(device)
        self.inv_scale_t = torch.from_numpy(self.inv_scale).to(device)
        self.label_mean, self.label_scale = scaler.label_mean, scaler.label_scale

    def features(self, x):
        """Scaled features; sparse rows stay sparse (their shift, if any, is applied by the models)."""
        if sp.issparse(x):
            x = x.tocsr()
            data = x.data.astype(np.float32) * self.inv_scale[x.indices]
            return torch.sparse_csr_tensor(torch.from_numpy(x.indptr.astype(np.int64)),
                                           torch.from_numpy(x.indices.astype(np.int64)),
                                           torch.from_numpy(data), size=x.shape).to(self.device)
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        return t * self.inv_scale_t - self.shift_t if self.has_shift else t * self.inv_scale_t

    def labels(self, y, multiclass):
        t = torch.from_numpy(np.asarray(y).reshape(len(y), -1)[:, 0].astype(np.float32)).to(self.device)
        if multiclass:
            return t.long()
        return ((t - self.label_mean) / self.label_scale).view(-1, 1, 1)


def _matmul(x, w):
    return x @ w


class ParallelModels:
    """M linear models of K outputs over D features, trained together; per-model lr, wd and l1."""

    def __init__(self, settings, d, device, seed=0, shift=None):
        m, k = settings.num_models, settings.outputs
        self.s = settings
        self.d, self.m, self.k = d, m, k
        self.device = device
        generator = torch.Generator().manual_seed(seed)
        if settings.init_method == "normal":
            w = torch.randn(d, m * k, generator=generator) * settings.init_sigma
        else:
            w = (torch.rand(d, m * k, generator=generator) * 2 - 1) * settings.init_scale
        self.W = w.to(device)
        self.b = torch.full((m * k,), float(settings.init_bias) if settings.use_bias else 0.0, device=device)
        col = lambda values: torch.tensor(values, dtype=torch.float32, device=device).repeat_interleave(k)
        self.lr0 = col(settings.learning_rates)
        self.wd = col(settings.wds)
        self.l1 = col(settings.l1s)
        self.any_l1 = bool(np.any(np.asarray(settings.l1s) > 0))
        self.any_wd = bool(np.any(np.asarray(settings.wds) > 0))
        self.loss_fn = LOSSES[settings.loss]
        self.params = {"margin": settings.margin, "quantile": settings.quantile,
                       "loss_insensitivity": settings.loss_insensitivity, "huber_delta": settings.huber_delta}
        self.shift = None if shift is None or not np.any(shift) else torch.as_tensor(shift, device=device)
        self.step_count = 0
        self.state = [torch.zeros_like(self.W), torch.zeros_like(self.W), torch.zeros_like(self.b),
                      torch.zeros_like(self.b)]  # adam m/v or rmsprop v / sgd momentum, for W then b
        self.lr = self.lr0.clone()

    def set_label_scale(self, scale):
        """Regression thresholds keep the label's units while training on the scaled label."""
        for name in ("loss_insensitivity", "huber_delta"):
            self.params[name] = getattr(self.s, name) / scale

    # -- forward ---------------------------------------------------------------------------------

    def scores(self, x):
        """(B, M, K) raw scores of scaled features ``x``."""
        out = _matmul(x, self.W)
        if self.shift is not None:  # sparse rows with an explicit feature shift: (x - mu) W = x W - mu W
            out = out - self.shift @ self.W
        if self.s.use_bias:
            out = out + self.b
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

    def gradients(self, x, y, weights):
        """Gradients of the weighted mean loss and the per-model loss sums (M,) of this batch."""
        scores = self.scores(x)
        loss, grad = self.loss_fn(scores, y, self.params)
        total = weights.sum()
        g = (grad * (weights / total).view(-1, 1, 1)).reshape(-1, self.m * self.k)
        gw = x.t() @ g  # sparse CSR rows: a CSC transpose times dense
        if self.shift is not None:
            gw = gw - torch.outer(self.shift, g.sum(0))
        gb = g.sum(0)
        batch_loss = (loss.sum(2) * weights.view(-1, 1)).sum(0)
        return gw, gb, batch_loss, total

    def apply(self, gw, gb):
        """One optimizer step from (already combined) gradients, with wd, l1 and the lr schedule."""
        s = self.s
        self.step_count += 1
        if self.any_wd:
            gw = gw + self.wd * self.W
            if s.bias_wd_mult:
                gb = gb + (self.wd * s.bias_wd_mult) * self.b
        if self.any_l1:
            gw = gw + self.l1 * torch.sign(self.W)
            before = torch.sign(self.W)
        lr, blr = self.lr, self.lr * s.bias_lr_mult
        mw, vw, mb, vb = self.state
        if s.optimizer == "adam":
            b1, b2, t = s.beta_1, s.beta_2, self.step_count
            c1, c2 = 1 - b1 ** t, 1 - b2 ** t
            mw.mul_(b1).add_(gw, alpha=1 - b1)
            vw.mul_(b2).addcmul_(gw, gw, value=1 - b2)
            self.W.sub_(lr * (mw / c1) / ((vw / c2).sqrt_().add_(1e-8)))
            if s.use_bias:
                mb.mul_(b1).add_(gb, alpha=1 - b1)
                vb.mul_(b2).addcmul_(gb, gb, value=1 - b2)
                self.b.sub_(blr * (mb / c1) / ((vb / c2).sqrt_().add_(1e-8)))
        elif s.optimizer == "rmsprop":
            rho = s.beta_2 if s.beta_2 != 0.999 else 0.9  # beta_2=auto: MXNet's RMSProp gamma1 0.9
            vw.mul_(rho).addcmul_(gw, gw, value=1 - rho)
            step_w = gw / (vw.sqrt() + 1e-8)
            if s.momentum:
                mw.mul_(s.momentum).add_(step_w)
                step_w = mw
            self.W.sub_(lr * step_w)
            if s.use_bias:
                vb.mul_(rho).addcmul_(gb, gb, value=1 - rho)
                step_b = gb / (vb.sqrt() + 1e-8)
                if s.momentum:
                    mb.mul_(s.momentum).add_(step_b)
                    step_b = mb
                self.b.sub_(blr * step_b)
        else:
            if s.momentum:
                mw.mul_(s.momentum).add_(gw)
                gw = mw
                mb.mul_(s.momentum).add_(gb)
                gb = mb
            self.W.sub_(lr * gw)
            if s.use_bias:
                self.b.sub_(blr * gb)
        if self.any_l1:  # an l1 step that crosses zero stops at zero (truncated gradient)
            crossed = (torch.sign(self.W) != before) & (before != 0) & (self.l1 > 0)
            self.W.masked_fill_(crossed, 0.0)
        self._schedule()

    def step(self, x, y, weights):
        gw, gb, batch_loss, total = self.gradients(x, y, weights)
        self.apply(gw, gb)
        return batch_loss, total

    # -- state, for multi-host averaging, snapshots and saving ----------------------------------

    def tensors(self):
        return [self.W, self.b, *self.state]

    def weights_of(self, index):
        """Model ``index``'s (D, K) weights and (K,) bias, in the scaled space."""
        cols = slice(index * self.k, (index + 1) * self.k)
        return self.W[:, cols].clone(), self.b[cols].clone()


def folded(weights, bias, scaler, use_bias):
    """(D, K) weights and (K,) bias of the same function of raw features (and raw label, for regression)."""
    w = weights.astype(np.float64) / scaler.feature_scale[:, None]
    b = bias.astype(np.float64) - (scaler.feature_mean @ w) if use_bias or np.any(scaler.feature_mean) else \
        bias.astype(np.float64)
    w, b = w * scaler.label_scale, b * scaler.label_scale + scaler.label_mean
    return w.astype(np.float32), b.astype(np.float32)
