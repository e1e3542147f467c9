"""The losses of the guide, each as ``(loss, d loss / d score)`` of scores ``s`` (B, M, K) and labels ``y``.

``y`` is (B, 1, 1) float for regression and binary (0/1) labels, (B,) int64 class ids for softmax. Thresholds
(margin, loss_insensitivity, huber_delta) are in the units the scores are trained in; training divides the
regression ones by the label's scale, so that they keep the label's units.
"""

import torch
import torch.nn.functional as F


def logistic(s, y, p):
    sign = 2 * y - 1
    z = s * sign
    return F.softplus(-z), -sign * torch.sigmoid(-z)


def hinge(s, y, p):
    sign = 2 * y - 1
    gap = p["margin"] - s * sign
    return gap.clamp_min(0), -sign * (gap > 0).to(s.dtype)


def squared(s, y, p):
    r = s - y
    return r * r, 2 * r


def absolute(s, y, p):
    r = s - y
    return r.abs(), torch.sign(r)


def eps_squared(s, y, p):
    r = s - y
    excess = (r.abs() - p["loss_insensitivity"]).clamp_min(0)
    return excess * excess, 2 * excess * torch.sign(r)


def eps_absolute(s, y, p):
    r = s - y
    excess = r.abs() - p["loss_insensitivity"]
    return excess.clamp_min(0), torch.sign(r) * (excess > 0).to(s.dtype)


def quantile(s, y, p):
    q = p["quantile"]
    r = s - y  # over-prediction costs (1 - q), under-prediction q: P(label < prediction) -> q
    return torch.where(r > 0, (1 - q) * r, -q * r), torch.where(r > 0, 1 - q, -q).to(s.dtype) * (r != 0)


def huber(s, y, p):
    d = p["huber_delta"]
    r = s - y
    a = r.abs()
    return torch.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), r.clamp(-d, d)


def softmax(s, y, p):
    logp = torch.log_softmax(s, dim=2)
    index = y.view(-1, 1, 1).expand(-1, s.shape[1], 1)
    loss = -logp.gather(2, index)
    grad = logp.exp()
    grad.scatter_add_(2, index, -torch.ones_like(loss))
    return loss, grad


def logistic_gradient(s, y, p):
    """d loss / d score alone (training steps whose loss is not recorded): sigmoid(s) - y, two passes, where the
    loss and gradient together take seven."""
    return torch.sigmoid(s).sub_(y)


def softmax_gradient(s, y, p):
    grad = torch.softmax(s, dim=2)
    index = y.view(-1, 1, 1).expand(-1, s.shape[1], 1)
    grad.scatter_add_(2, index, torch.full(index.shape, -1.0, dtype=s.dtype, device=s.device))
    return grad


# Gradient-only forms where they are cheaper than the pair (the other losses: the pair's gradient)
GRADIENTS = {"logistic": logistic_gradient, "softmax_loss": softmax_gradient}

LOSSES = {
    "logistic": logistic, "hinge_loss": hinge, "squared_loss": squared, "absolute_loss": absolute,
    "eps_insensitive_squared_loss": eps_squared, "eps_insensitive_absolute_loss": eps_absolute,
    "quantile_loss": quantile, "huber_loss": huber, "softmax_loss": softmax,
}
