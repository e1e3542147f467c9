"""Forecasts of many series at once: sample paths, their mean and quantiles, and the guide's test metrics."""

import numpy as np

from .dataset import forecast_inputs

MAX_PATHS_PER_CHUNK = 20_000  # series x samples advanced together (memory: ~ this x (history + 4 x cells) floats)


def sample_paths(network, layout, series_list, num_samples, device="cpu", cut=0, seed=None):
    """(n, num_samples, P) float32 sample paths for every series, in chunks of about MAX_PATHS_PER_CHUNK paths."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    network.eval()
    per_chunk = max(1, MAX_PATHS_PER_CHUNK // max(1, num_samples))
    out = np.empty((len(series_list), num_samples, layout.prediction_length), np.float32)
    for start in range(0, len(series_list), per_chunk):
        part = series_list[start:start + per_chunk]
        arrays = forecast_inputs(part, layout, cut=cut)
        history, observed, covariates, cats = (torch.from_numpy(a).to(device) for a in arrays)
        paths = network.sample_paths(history, observed, covariates, cats, num_samples)
        out[start:start + len(part)] = paths.cpu().numpy()
    return out


def quantiles(paths, levels):
    """{level: (n, P)} from (n, S, P) paths (linear interpolation between order statistics, numpy's default)."""
    values = np.quantile(paths, np.asarray(levels, np.float64), axis=1)
    return {level: values[i] for i, level in enumerate(levels)}


class Scores:
    """The guide's RMSE and weighted quantile losses, summed over observed (non-NaN) points as series come."""

    def __init__(self, levels):
        self.levels = list(levels)
        self.squares = 0.0
        self.count = 0
        self.absolute = 0.0
        self.losses = {level: 0.0 for level in self.levels}

    def add(self, truth, mean, quantile_values):
        mask = ~np.isnan(truth)
        y = truth[mask].astype(np.float64)
        self.squares += float(((mean[mask] - y) ** 2).sum())
        self.count += int(mask.sum())
        self.absolute += float(np.abs(y).sum())
        for level in self.levels:
            q = quantile_values[level][mask].astype(np.float64)
            self.losses[level] += float(np.where(q > y, (1 - level) * (q - y), level * (y - q)).sum())

    def results(self):
        rmse = float(np.sqrt(self.squares / self.count)) if self.count else float("nan")
        denominator = self.absolute if self.absolute > 0 else float("nan")
        weighted = {level: 2.0 * self.losses[level] / denominator for level in self.levels}
        out = {"RMSE": rmse, "mean_wQuantileLoss": float(np.mean(list(weighted.values())))}
        out.update({f"wQuantileLoss[{level:g}]": value for level, value in weighted.items()})
        return out
