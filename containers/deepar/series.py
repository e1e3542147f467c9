"""One time series record (``start``, ``target``, ``cat``, ``dynamic_feat``), parsed and checked.

Used by the training readers (records of JSON Lines or Parquet files) and by the serving codecs (instances of
a request); every malformed record raises ``RecordError`` with what was wrong, which the caller turns into a
data error naming the file and line, or a 400 naming the instance.
"""

import math
import re
from dataclasses import dataclass

import numpy as np

_START = re.compile(r"^\s*\d{4}-\d{2}-\d{2}([ T]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?\s*$")


class RecordError(ValueError):
    """What is wrong with one record (no location: the caller adds the file and line)."""


@dataclass
class Series:
    start: np.datetime64          # datetime64[s]
    target: np.ndarray            # float32 (n,), NaN where missing
    cat: np.ndarray | None = None          # int64 (c,)
    dynamic_feat: np.ndarray | None = None  # float32 (f, n or n + horizon)
    where: str = ""               # "file F, line N" (training) or "instance N" (serving), for messages

    def __len__(self):
        return self.target.shape[0]


def parse_start(value):
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[s]")
    if hasattr(value, "isoformat") and not isinstance(value, str):  # datetime / pandas Timestamp
        if getattr(value, "tzinfo", None) is not None:
            raise RecordError(f"'start' {value!s} has a time zone; the guide's start has none")
        return np.datetime64(value.replace(tzinfo=None) if hasattr(value, "replace") else value, "s")
    if not isinstance(value, str) or not _START.match(value):
        raise RecordError(f"'start' must be a string 'YYYY-MM-DD HH:MM:SS' without time zone, not {_shown(value)}")
    try:
        return np.datetime64(value.strip().replace(" ", "T"), "s")
    except ValueError:
        raise RecordError(f"'start' {value!r} is not a valid date and time") from None


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_target(value):
    if isinstance(value, np.ndarray):
        values = value
    elif isinstance(value, (list, tuple)):
        values = value
    else:
        raise RecordError(f"'target' must be an array of numbers, not {_shown(value)}")
    try:
        array = np.array([math.nan if v is None or (isinstance(v, str) and v.strip().lower() == "nan") else v
                          for v in values] if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    except (TypeError, ValueError):
        bad = next((v for v in values if not _is_number(v)), None)
        raise RecordError(f"'target' holds {_shown(bad)}; values must be numbers, null or \"NaN\"") from None
    if array.ndim != 1:
        raise RecordError("'target' must be a flat array of numbers")
    if np.isinf(array).any():
        raise RecordError("'target' holds an infinite value")
    if not isinstance(values, np.ndarray) and any(isinstance(v, bool) for v in values):
        raise RecordError("'target' holds true/false; values must be numbers, null or \"NaN\"")
    return array.astype(np.float32)


def _is_number(v):
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) or \
        (isinstance(v, str) and v.strip().lower() == "nan")


def parse_cat(value):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise RecordError(f"'cat' must be an array of non-negative integers, not {_shown(value)}")
    out = []
    for v in (value.tolist() if isinstance(value, np.ndarray) else value):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise RecordError(f"'cat' holds {_shown(v)}; categories are 0-based non-negative integers")
        out.append(v)
    return np.asarray(out, dtype=np.int64)


def parse_dynamic_feat(value):
    if isinstance(value, np.ndarray) and value.dtype != object:
        rows = value
    elif isinstance(value, (list, tuple, np.ndarray)) and all(isinstance(r, (list, tuple, np.ndarray)) for r in value):
        lengths = {len(r) for r in value}
        if len(lengths) > 1:
            raise RecordError(f"'dynamic_feat' arrays have different lengths {sorted(lengths)}")
        rows = [list(r) for r in value]
    else:
        raise RecordError("'dynamic_feat' must be an array of arrays of numbers")
    try:
        array = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordError("'dynamic_feat' holds a value that is not a number") from None
    if array.ndim != 2:
        raise RecordError("'dynamic_feat' must be an array of arrays of numbers")
    if not np.isfinite(array).all():
        raise RecordError("'dynamic_feat' holds a missing or infinite value; missing values are not supported in "
                          "the features")
    return array.astype(np.float32)


def parse_record(document, *, use_cat=True, use_dynamic=True, dynamic_extra=0):
    """A Series from a decoded JSON object (or a Parquet row as a dict).

    ``dynamic_extra``: how many points longer than ``target`` each ``dynamic_feat`` array must be (0 in training,
    ``prediction_length`` at inference).
    """
    if not isinstance(document, dict):
        raise RecordError(f"a record must be a JSON object with 'start' and 'target', not {_shown(document)}")
    for key in ("start", "target"):
        if key not in document or document[key] is None:
            raise RecordError(f"the record has no {key!r}")
    series = Series(parse_start(document["start"]), parse_target(document["target"]))
    if use_cat and document.get("cat") is not None:
        series.cat = parse_cat(document["cat"])
    if use_dynamic and document.get("dynamic_feat") is not None:
        feat = parse_dynamic_feat(document["dynamic_feat"])
        wanted = len(series) + dynamic_extra
        if feat.shape[0] and feat.shape[1] != wanted:
            what = "the target's length" if not dynamic_extra else "len(target) + prediction_length"
            raise RecordError(f"'dynamic_feat' arrays have {feat.shape[1]} values; they must have {what} ({wanted})")
        series.dynamic_feat = feat
    return series


def cat_problem(cat, cardinality):
    """What is wrong with a series' ``cat`` for a model trained with ``cardinality``, or None. The message
    follows the series' name: "<where> has no 'cat'; ...", "<where>: cat[0]=7 was not seen in training ..."."""
    if not cardinality:
        return None
    if cat is None or cat.shape[0] != len(cardinality):
        found = "no 'cat'" if cat is None else f"{cat.shape[0]} 'cat' values"
        return f" has {found}; the model has {len(cardinality)} categorical feature(s)"
    over = np.flatnonzero(cat >= np.asarray(cardinality))
    if over.size:
        i = int(over[0])
        return f": cat[{i}]={int(cat[i])} was not seen in training (cardinality {cardinality[i]})"
    return None
