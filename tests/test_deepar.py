"""DeepAR's numerics in-process: lags and date features (GluonTS's lists), the likelihood heads, sampling."""

import numpy as np
import pytest
import torch

from containers.deepar.dataset import Layout, TrainingWindows
from containers.deepar.frequency import Frequency, date_features
from containers.deepar.likelihoods import NAMES
from containers.deepar.model import build_network
from containers.deepar.series import Series
from common.errors import HyperparameterError



@pytest.fixture(autouse=True)
def one_thread():
    """As the entrypoint trains models of this size (train.cpu_threads): OpenMP spin-waits on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# gluonts 0.17's get_lags_for_frequency for these frequencies (printed from the library once)
GLUONTS_LAGS = {
    "30min": [1, 2, 3, 4, 5, 6, 7, 8, 47, 48, 49, 95, 96, 97, 143, 144, 145, 191, 192, 193, 239, 240, 241, 287, 288,
              289, 335, 336, 337, 671, 672, 673, 1007, 1008, 1009],
    "5min": [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 22, 23, 24, 25, 26, 34, 35, 36, 37, 38, 287, 288, 289, 575, 576,
             577, 863, 864, 865, 1151, 1152, 1153],
    "D": [1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 20, 21, 22, 27, 28, 29, 30, 31, 56, 84, 363, 364, 365, 727, 728, 729,
          1091, 1092, 1093],
    "H": [1, 2, 3, 4, 5, 6, 7, 23, 24, 25, 47, 48, 49, 71, 72, 73, 95, 96, 97, 119, 120, 121, 143, 144, 145, 167, 168,
          169, 335, 336, 337, 503, 504, 505, 671, 672, 673, 719, 720, 721],
    "W": [1, 2, 3, 4, 5, 6, 7, 8, 12, 51, 52, 53, 103, 104, 105, 155, 156, 157],
    "M": [1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 23, 24, 25, 35, 36, 37],
}


@pytest.mark.parametrize("freq", sorted(GLUONTS_LAGS))
def test_lags_are_gluonts_lags(freq):
    assert Frequency.parse(freq).lags() == GLUONTS_LAGS[freq]


def test_time_freq_parsing():
    assert Frequency.parse("15min") == Frequency("min", 15) and Frequency.parse("M") == Frequency("M", 1)
    assert Frequency.parse("2H") == Frequency("H", 2)
    for bad in ("3Q", "5s", "0min", "min5", ""):
        with pytest.raises(HyperparameterError, match="time_freq"):
            Frequency.parse(bad)


def test_date_features_of_the_guides_table():
    assert Frequency.parse("5min").features == ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month",
                                                 "day_of_year")
    assert Frequency.parse("W").features == ("day_of_month", "week_of_year")
    stamp = np.array([np.datetime64("2015-01-01T23:59:00")])  # a Thursday, ISO week 1
    values = date_features(Frequency.parse("min"), stamp)[:, 0]
    assert values == pytest.approx([59 / 59 - 0.5, 23 / 23 - 0.5, 3 / 6 - 0.5, 0 / 30 - 0.5, 0 / 365 - 0.5])
    week = date_features(Frequency.parse("W"), np.array([np.datetime64("2014-12-29T00:00:00"),
                                                         np.datetime64("2016-01-03T00:00:00")]))
    assert week[1] == pytest.approx([0 - 0.5, 52 / 52 - 0.5])  # 2014-12-29 is ISO week 1 of 2015, 2016-01-03 week 53
    monthly = Frequency.parse("M").timestamps(np.datetime64("2020-11-15T00:00:00"), 0, 3)
    assert [str(t)[:10] for t in monthly] == ["2020-11-15", "2020-12-15", "2021-01-15"]


def layout_for(likelihood_cardinality=(3,)):
    freq = Frequency.parse("H")
    return Layout(freq, tuple(freq.lags()[:9]), 8, 4, likelihood_cardinality, 0)


def series_for(likelihood, n=6, length=40):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        if likelihood == "beta":
            target = rng.uniform(0.05, 0.95, length)
        elif likelihood == "negative-binomial":
            target = rng.poisson(5 + i, length).astype(float)
        else:
            target = 10 + rng.normal(0, 1, length)
        target[3] = np.nan
        out.append(Series(np.datetime64("2021-01-01T00:00:00"), target.astype(np.float32), np.array([i % 3])))
    return out


@pytest.mark.parametrize("likelihood", NAMES)
def test_every_likelihood_trains_and_samples(likelihood):
    torch.manual_seed(0)
    layout = layout_for()
    series = series_for(likelihood)
    network = build_network(layout, likelihood, {"embedding_dimension": 3, "num_layers": 2, "num_cells": 8,
                                                 "dropout_rate": 0.1})
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    windows = TrainingWindows(series, layout)
    rng = np.random.default_rng(1)
    losses = []
    for _ in range(30):
        loss, count = network.loss(*(torch.from_numpy(a) for a in windows.batch(rng, 16)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses)) and np.mean(losses[-5:]) < np.mean(losses[:5])
    from containers.deepar.forecast import sample_paths

    paths = sample_paths(network, layout, series, 7, seed=0)
    assert paths.shape == (6, 7, 4) and np.isfinite(paths).all()
    if likelihood == "beta":
        assert ((paths >= 0) & (paths <= 1)).all()
    if likelihood == "negative-binomial":
        assert (paths >= 0).all() and np.array_equal(paths, np.round(paths))
    if likelihood == "deterministic-L1":
        assert np.allclose(paths, paths[:, :1, :])  # a point forecast: every path is the same
    else:
        assert paths.std(axis=1).mean() > 0


def test_batched_paths_equal_one_series_at_a_time():
    """All series x samples advance together; a series' paths do not depend on the others in the batch."""
    torch.manual_seed(0)
    layout = layout_for()
    series = series_for("deterministic-L1")
    network = build_network(layout, "deterministic-L1", {"embedding_dimension": 3, "num_layers": 1, "num_cells": 8,
                                                         "dropout_rate": 0.0})
    from containers.deepar.forecast import sample_paths

    together = sample_paths(network, layout, series, 3)
    alone = np.concatenate([sample_paths(network, layout, [s], 3) for s in series])
    assert np.allclose(together, alone, atol=1e-5)
