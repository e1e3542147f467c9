"""The DeepAR network (Salinas et al.): an LSTM over lagged, scaled targets and covariates, a likelihood head.

Shapes: B series (or windows), H = the longest lag, C = context_length, P = prediction_length. ``history`` holds
H + C (inference) or H + C + P (training) target values, missing ones as 0 with ``observed`` 0, as GluonTS imputes
them; ``covariates`` (B, steps, k) are the date features, the age feature and ``dynamic_feat`` of each step.
The input of step t is the targets at t - lag for every lag, divided by the series' scale (the mean absolute
observed target of the context), the covariates of t, and the static features (an embedding per categorical
feature and log(scale)); its output is the distribution of the target at t.
"""

import torch
from torch import nn

from . import likelihoods

MIN_SCALE = 1e-10


class DeepARNetwork(nn.Module):
    def __init__(self, *, lags, num_covariates, cardinality, embedding_dimension, num_layers, num_cells, dropout_rate,
                 likelihood, context_length, prediction_length):
        super().__init__()
        self.lags = [int(lag) for lag in lags]
        self.max_lag = max(self.lags)
        self.context_length = context_length
        self.prediction_length = prediction_length
        self.embeddings = nn.ModuleList(nn.Embedding(n, embedding_dimension) for n in cardinality)
        static = embedding_dimension * len(cardinality) + 1
        self.input_size = len(self.lags) + num_covariates + static
        self.rnn = nn.LSTM(self.input_size, num_cells, num_layers=num_layers, batch_first=True,
                           dropout=dropout_rate if num_layers > 1 else 0.0)
        self.head = likelihoods.head(likelihood, num_cells)
        self.register_buffer("lag_index", torch.tensor(self.lags, dtype=torch.long))

    # --- pieces ---
    def scale(self, history, observed):
        """Mean |target| over the observed context (the C points before the first forecast step); a series with
        none observed (or all zero) takes the batch's mean scale, as GluonTS's MeanScaler does."""
        if not self.head.scaled:
            return torch.ones(history.shape[0], 1, device=history.device)
        start = self.max_lag
        context = history[:, start:start + self.context_length]
        weights = observed[:, start:start + self.context_length]
        total = (context.abs() * weights).sum(dim=1)
        count = weights.sum(dim=1)
        batch_scale = total.sum() / count.sum().clamp_min(1.0)
        scale = torch.where(count > 0, total / count.clamp_min(1.0), batch_scale)
        scale = torch.where(scale > 0, scale, batch_scale)
        return scale.clamp_min(MIN_SCALE).unsqueeze(1)

    def static_features(self, cat, scale):
        parts = [embedding(cat[:, i]) for i, embedding in enumerate(self.embeddings)]
        parts.append(torch.log(scale))
        return torch.cat(parts, dim=1)

    def lagged(self, values, positions, scale):
        """(B, len(positions), lags): values at position - lag, divided by scale."""
        index = positions.view(-1, 1) - self.lag_index.view(1, -1)  # (T, lags)
        gathered = values[:, index.clamp_min(0).view(-1)].view(values.shape[0], index.shape[0], index.shape[1])
        return gathered / scale.unsqueeze(2)

    def inputs(self, lags, covariates, static):
        steps = lags.shape[1]
        return torch.cat([lags, covariates, static.unsqueeze(1).expand(-1, steps, -1)], dim=2)

    # --- training ---
    def loss(self, history, observed, covariates, cat):
        """Mean negative log-likelihood of the observed targets of the C + P steps, and their count."""
        steps = self.context_length + self.prediction_length
        scale = self.scale(history, observed)
        static = self.static_features(cat, scale)
        positions = torch.arange(self.max_lag, self.max_lag + steps, device=history.device)
        output, _ = self.rnn(self.inputs(self.lagged(history, positions, scale), covariates, static))
        raw = self.head(output)
        target = history[:, self.max_lag:]
        weights = observed[:, self.max_lag:]
        nll = self.head.nll(raw, target, scale) * weights
        count = weights.sum()
        return nll.sum() / count.clamp_min(1.0), count

    # --- inference ---
    @torch.no_grad()
    def sample_paths(self, history, observed, covariates, cat, num_samples):
        """(B, num_samples, P) sample paths: the context unrolled once per series, then all B x num_samples paths
        advanced together, one step at a time, each sampled value fed back as the next step's lag."""
        batch = history.shape[0]
        context = self.context_length
        scale = self.scale(history, observed)
        static = self.static_features(cat, scale)
        positions = torch.arange(self.max_lag, self.max_lag + context, device=history.device)
        inputs = self.inputs(self.lagged(history, positions, scale), covariates[:, :context], static)
        _, (h, c) = self.rnn(inputs)

        repeat = num_samples
        h = h.repeat_interleave(repeat, dim=1)
        c = c.repeat_interleave(repeat, dim=1)
        scale_r = scale.repeat_interleave(repeat, dim=0)
        static_r = static.repeat_interleave(repeat, dim=0)
        future = covariates[:, context:].repeat_interleave(repeat, dim=0)
        # time-major buffer (steps, paths): a lag is one contiguous row, so a step's lags are a row gather
        end = history.shape[1]
        buffer = history.new_zeros(end + self.prediction_length, batch * repeat)
        buffer[:end] = history.T.repeat_interleave(repeat, dim=1)
        inverse = 1.0 / scale_r
        for step in range(self.prediction_length):
            lags = buffer.index_select(0, end + step - self.lag_index).T * inverse
            step_input = torch.cat([lags, future[:, step], static_r], dim=1).unsqueeze(1)
            output, (h, c) = self.rnn(step_input, (h, c))
            buffer[end + step] = self.head.sample(self.head(output[:, 0]), scale_r[:, 0])
        return buffer[end:].T.reshape(batch, repeat, self.prediction_length)
