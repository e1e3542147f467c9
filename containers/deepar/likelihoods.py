"""The guide's five likelihoods as heads over the LSTM's output: parameters, scaling, log-likelihood, sampling.

Targets enter the network divided by the series' scale; each head maps its distribution back to the data's
scale (GluonTS's rule): location-scale families multiply loc and scale, negative-binomial multiplies its mean
(and divides the shape parameter alpha by sqrt(scale), as GluonTS's MXNet DeepAR), beta is not scaled (its
targets are in [0, 1] already).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Beta, NegativeBinomial, Normal, StudentT

NAMES = ("gaussian", "beta", "negative-binomial", "student-T", "deterministic-L1")
EPS = 1e-6


def _positive(x):
    return F.softplus(x) + EPS


class Head(nn.Module):
    """A linear projection to the distribution's raw parameters."""

    args = 1
    scaled = True

    def __init__(self, hidden):
        super().__init__()
        self.projection = nn.Linear(hidden, self.args)

    def forward(self, output):
        return self.projection(output)

    def nll(self, raw, target, scale):
        """Negative log-likelihood of target (data scale) per point; scale broadcasts over time."""
        raise NotImplementedError

    def sample(self, raw, scale):
        raise NotImplementedError

    def mean(self, raw, scale):
        raise NotImplementedError


class DistributionHead(Head):
    """A head whose points follow a torch distribution: ``_dist`` builds it, ``_support`` maps targets into it."""

    def _dist(self, raw, scale):
        raise NotImplementedError

    def _support(self, target):
        return target

    def nll(self, raw, target, scale):
        return -self._dist(raw, scale).log_prob(self._support(target))

    def sample(self, raw, scale):
        return self._dist(raw, scale).sample()


class Gaussian(DistributionHead):
    args = 2

    def _dist(self, raw, scale):
        return Normal(raw[..., 0] * scale, _positive(raw[..., 1]) * scale)


class StudentTHead(DistributionHead):
    args = 3

    def _dist(self, raw, scale):
        return StudentT(2.0 + _positive(raw[..., 2]), raw[..., 0] * scale, _positive(raw[..., 1]) * scale)


class NegativeBinomialHead(DistributionHead):
    """Mean mu and shape alpha (variance mu + alpha mu^2), as the DeepAR paper parameterises it."""

    args = 2

    def _dist(self, raw, scale):
        mu = _positive(raw[..., 0]) * scale
        alpha = _positive(raw[..., 1]) / torch.sqrt(scale)
        total_count = 1.0 / alpha
        return NegativeBinomial(total_count=total_count, logits=torch.log(mu * alpha))

    def _support(self, target):
        return target.clamp_min(0.0).round()


class BetaHead(DistributionHead):
    args = 2
    scaled = False

    def _dist(self, raw, scale):
        return Beta(_positive(raw[..., 0]), _positive(raw[..., 1]))

    def _support(self, target):
        return target.clamp(EPS, 1.0 - EPS)


class L1Head(Head):
    """A point forecast trained with the absolute error; its 'samples' are the point itself."""

    args = 1

    def nll(self, raw, target, scale):
        return (raw[..., 0] * scale - target).abs()

    def sample(self, raw, scale):
        return raw[..., 0] * scale


HEADS = {"gaussian": Gaussian, "beta": BetaHead, "negative-binomial": NegativeBinomialHead,
         "student-T": StudentTHead, "deterministic-L1": L1Head}


def head(name, hidden):
    return HEADS[name](hidden)
