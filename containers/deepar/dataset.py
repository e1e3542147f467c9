"""From Series to the network's arrays: training windows and forecast inputs (numpy, float32).

Covariates of a point are the guide's date features of its timestamp, GluonTS's age feature log10(2 + i) and
the ``dynamic_feat`` values; positions before a series' start are zeros (targets not observed), as GluonTS pads.
"""

from dataclasses import dataclass

import numpy as np

from .frequency import age_feature, date_features


@dataclass(frozen=True)
class Layout:
    """What the arrays look like, fixed by the trained model."""

    freq: object                 # frequency.Frequency
    lags: tuple
    context_length: int
    prediction_length: int
    cardinality: tuple           # () when categories are not used
    num_dynamic_feat: int        # 0 when dynamic features are not used

    @property
    def max_lag(self):
        return max(self.lags)

    @property
    def num_covariates(self):
        return len(self.freq.features) + 1 + self.num_dynamic_feat

    def covariates(self, series, offset, length):
        """(k, length) covariates of points offset..offset+length-1 of ``series`` (offset may be negative; those
        points are zeros)."""
        out = np.zeros((self.num_covariates, length), np.float32)
        first = max(0, -offset)
        if first >= length:
            return out
        n = length - first
        stamps = self.freq.timestamps(series.start, offset + first, n)
        width = len(self.freq.features)
        out[:width, first:] = date_features(self.freq, stamps)
        out[width, first:] = age_feature(offset + first, n)
        if self.num_dynamic_feat:
            out[width + 1:, first:] = series.dynamic_feat[:, offset + first:offset + length]
        return out

    def cats(self, series_list):
        if not self.cardinality:
            return np.zeros((len(series_list), 0), np.int64)
        return np.stack([s.cat for s in series_list]).astype(np.int64)


def padded_history(target, end, length):
    """``(values, observed)`` of the ``length`` points before ``end`` (NaN and points before 0 are 0, unobserved)."""
    values = np.zeros(length, np.float32)
    observed = np.zeros(length, np.float32)
    start = end - length
    first = max(0, -start)
    part = target[start + first:end]
    mask = ~np.isnan(part)
    values[first:][mask] = part[mask]
    observed[first:] = mask
    return values, observed


class TrainingWindows:
    """Random training windows: a split point s of a series (uniform over every series' valid split points), the
    C + P steps around it and the H points before them for the lags."""

    def __init__(self, series_list, layout):
        self.series = series_list
        self.layout = layout
        self.covariates = []
        for series in series_list:
            self.covariates.append(layout.covariates(series, 0, len(series)))
        p = layout.prediction_length
        self.splits = np.array([len(s) - p + 1 for s in series_list], np.int64)  # split points 0 .. n - P
        self.cumulative = np.cumsum(self.splits)
        self.observations = int(sum(np.count_nonzero(~np.isnan(s.target)) for s in series_list))

    @property
    def total_points(self):
        return int(sum(len(s) for s in self.series))

    def batch(self, rng, size):
        layout = self.layout
        c, p, h = layout.context_length, layout.prediction_length, layout.max_lag
        picks = rng.integers(0, int(self.cumulative[-1]), size=size)
        index = np.searchsorted(self.cumulative, picks, side="right")
        before = np.where(index > 0, self.cumulative[index - 1], 0)
        splits = picks - before
        history = np.zeros((size, h + c + p), np.float32)
        observed = np.zeros((size, h + c + p), np.float32)
        covariates = np.zeros((size, c + p, layout.num_covariates), np.float32)
        for row, (i, s) in enumerate(zip(index, splits)):
            series = self.series[i]
            history[row], observed[row] = padded_history(series.target, s + p, h + c + p)
            first = s - c
            lo = max(0, first)
            covariates[row, lo - first:, :] = self.covariates[i][:, lo:s + p].T
        cats = layout.cats([self.series[i] for i in index])
        return history, observed, covariates, cats


def forecast_inputs(series_list, layout, cut=0):
    """Arrays to forecast the P points after each series' target (without its last ``cut`` points)."""
    c, p, h = layout.context_length, layout.prediction_length, layout.max_lag
    size = len(series_list)
    history = np.zeros((size, h + c), np.float32)
    observed = np.zeros((size, h + c), np.float32)
    covariates = np.zeros((size, c + p, layout.num_covariates), np.float32)
    for row, series in enumerate(series_list):
        end = len(series) - cut
        history[row], observed[row] = padded_history(series.target, end, h + c)
        covariates[row] = layout.covariates(series, end - c, c + p).T
    return history, observed, covariates, layout.cats(series_list)
