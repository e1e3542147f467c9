"""``time_freq``: its parsing, the date features of the guide's table, and the lags (GluonTS's rule).

Timestamps are numpy ``datetime64[s]``; a series' i-th point is ``start + i * step`` (months: calendar months).
"""

import re
from dataclasses import dataclass

import numpy as np

from common.errors import HyperparameterError

_FREQ = re.compile(r"^\s*(\d*)\s*(min|T|H|h|D|W|M)\s*$")
_UNIT = {"min": "min", "T": "min", "H": "H", "h": "H", "D": "D", "W": "W", "M": "M"}
_SECONDS = {"min": 60, "H": 3600, "D": 86400, "W": 7 * 86400}
LAG_UPPER_BOUND = 1200
DEFAULT_LAGS = 7

# The guide's table of derived features per basic frequency (plus the series' age, as GluonTS adds it)
DATE_FEATURES = {
    "min": ("minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "H": ("hour_of_day", "day_of_week", "day_of_month", "day_of_year"),
    "D": ("day_of_week", "day_of_month", "day_of_year"),
    "W": ("day_of_month", "week_of_year"),
    "M": ("month_of_year",),
}


@dataclass(frozen=True)
class Frequency:
    unit: str       # min, H, D, W or M
    multiple: int

    @classmethod
    def parse(cls, text):
        match = _FREQ.match(str(text))
        if not match or (match.group(1) and int(match.group(1)) < 1):
            raise HyperparameterError(
                f"Invalid hyperparameter time_freq={text!r}: use an optional positive integer followed by M, W, D, H "
                "or min (for example 5min, 2H, D)")
        return cls(_UNIT[match.group(2)], int(match.group(1) or 1))

    def __str__(self):
        return f"{self.multiple}{self.unit}" if self.multiple != 1 else self.unit

    @property
    def features(self):
        return DATE_FEATURES[self.unit]

    def timestamps(self, start, offset, length):
        """``start + (offset + i) * step`` for i < length, as datetime64[s]."""
        steps = (np.arange(length, dtype=np.int64) + int(offset)) * self.multiple
        if self.unit == "M":
            month = np.datetime64(start, "M")
            within = np.datetime64(start, "s") - np.datetime64(month, "s")
            return (month + steps).astype("datetime64[s]") + within
        return np.datetime64(start, "s") + steps * _SECONDS[self.unit]

    def shift(self, start, points):
        return self.timestamps(start, points, 1)[0]

    def lags(self):
        """GluonTS's ``get_lags_for_frequency`` (same arithmetic): 1..7, then the same season +/- a delta in earlier
        cycles (hours, days, weeks, years as the frequency allows), all up to 1200 steps back."""
        n = self.multiple
        if self.unit == "M":
            groups = _months(n)
        elif self.unit == "W":
            groups = _weeks(n)
        elif self.unit == "D":
            groups = _days(n) + _weeks(n / 7.0)
        elif self.unit == "H":
            groups = _hours(n) + _days(n / 24) + _weeks(n / (24 * 7))
        else:
            groups = _minutes(n) + _hours(n / 60) + _days(n / (60 * 24)) + _weeks(n / (60 * 24 * 7))
        found = {int(lag) for group in groups for lag in group if DEFAULT_LAGS < lag <= LAG_UPPER_BOUND}
        return list(range(1, DEFAULT_LAGS + 1)) + sorted(found)


def _around(middle, delta):
    return np.arange(middle - delta, middle + delta + 1).tolist()


def _minutes(multiple):
    return [_around(k * 60 // multiple, 2) for k in range(1, 4)]


def _hours(multiple):
    return [_around(k * 24 // multiple, 1) for k in range(1, 8)]


def _days(multiple, days_in_week=7, days_in_month=30):
    return [_around(k * days_in_week // multiple, 1) for k in range(1, 5)] + [_around(days_in_month // multiple, 1)]


def _weeks(multiple):
    return [_around(k * 52 // multiple, 1) for k in range(1, 4)] + [[4 // multiple, 8 // multiple, 12 // multiple]]


def _months(multiple):
    return [_around(k * 12 // multiple, 1) for k in range(1, 4)]


def date_features(freq, timestamps):
    """(len(freq.features), n) float32 in [-0.5, 0.5], GluonTS's encodings of the guide's features."""
    ts = np.asarray(timestamps, dtype="datetime64[s]")
    days = ts.astype("datetime64[D]")
    rows = []
    for name in freq.features:
        if name == "minute_of_hour":
            rows.append(((ts - ts.astype("datetime64[h]")).astype("timedelta64[m]").astype(np.int64)) / 59.0)
        elif name == "hour_of_day":
            rows.append(((ts - days).astype("timedelta64[h]").astype(np.int64)) / 23.0)
        elif name == "day_of_week":
            rows.append(((days.astype(np.int64) + 3) % 7) / 6.0)  # 1970-01-01 was a Thursday; Monday is 0
        elif name == "day_of_month":
            rows.append((days - days.astype("datetime64[M]")).astype(np.int64) / 30.0)
        elif name == "day_of_year":
            rows.append((days - days.astype("datetime64[Y]")).astype(np.int64) / 365.0)
        elif name == "month_of_year":
            rows.append((days.astype("datetime64[M]").astype(np.int64) % 12) / 11.0)
        elif name == "week_of_year":
            rows.append((_iso_week(days) - 1) / 52.0)
    return (np.stack(rows) - 0.5).astype(np.float32)


def _iso_week(days):
    """ISO 8601 week numbers of datetime64[D] values."""
    weekday = (days.astype(np.int64) + 3) % 7                 # Monday 0
    thursday = days - weekday + 3                              # the Thursday of the same ISO week
    year_start = thursday.astype("datetime64[Y]").astype("datetime64[D]")
    return (thursday - year_start).astype(np.int64) // 7 + 1


def age_feature(offset, length):
    """GluonTS's age feature: log10(2 + i) for the i-th point of the series."""
    return np.log10(2.0 + np.arange(offset, offset + length, dtype=np.float64)).astype(np.float32)
