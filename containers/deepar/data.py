"""Reading a channel's series and settling what the model uses: categories, dynamic features, lengths.

All the checks name the file and line of the first record at fault.
"""

import logging

import numpy as np

from common.errors import DataError

from .series import cat_problem

log = logging.getLogger(__name__)
READ_BATCH = 4096


def read_series(context, channel):
    """Every series of a channel, in file order (each host reads the whole channel: windows are sampled)."""
    series = []
    for batch in context.batches(channel, READ_BATCH, sharded=False):
        series.extend(batch.features)
    if not series and not context.stop.is_set():
        raise DataError(f"Channel {channel!r} holds no time series")
    return series


def _first_with(series_list, predicate):
    return next((s for s in series_list if predicate(s)), None)


def settle_cardinality(series_list, setting):
    """The cardinality tuple the model uses: () when categories are off or absent."""
    if setting == "":
        return ()
    with_cat = [s for s in series_list if s.cat is not None]
    if setting == "auto" and not with_cat:
        return ()
    if not with_cat:
        raise DataError(f"cardinality={list(setting)} but no record has a 'cat' field (e.g. {series_list[0].where})")
    missing = _first_with(series_list, lambda s: s.cat is None)
    if missing is not None:
        raise DataError(f"{missing.where}: the record has no 'cat' but other records have one; every record "
                        "needs the same number of categorical features")
    count = len(setting) if setting != "auto" else with_cat[0].cat.shape[0]
    wrong = _first_with(series_list, lambda s: s.cat.shape[0] != count)
    if wrong is not None:
        expected = f"cardinality has {count} entries" if setting != "auto" else f"{with_cat[0].where} has {count}"
        raise DataError(f"{wrong.where}: 'cat' has {wrong.cat.shape[0]} values; {expected}")
    if count == 0:
        return ()
    highest = np.max(np.stack([s.cat for s in series_list]), axis=0)
    if setting == "auto":
        return tuple(int(v) + 1 for v in highest)
    over = _first_with(series_list, lambda s: bool((s.cat >= np.asarray(setting)).any()))
    if over is not None:
        i = int(np.flatnonzero(over.cat >= np.asarray(setting))[0])
        raise DataError(f"{over.where}: cat[{i}]={int(over.cat[i])} is not below cardinality[{i}]={setting[i]}")
    return tuple(int(v) for v in setting)


def shared_cardinality(cardinality, cluster):
    """The largest category count of every host (hosts reading different files, ShardedByS3Key)."""
    import torch

    gathered = cluster.all_gather(torch.tensor([list(cardinality)], dtype=torch.int64))
    return tuple(int(v) for v in gathered.max(dim=0).values.tolist())


def settle_dynamic(series_list, setting):
    """The number of dynamic features the model uses (0 when off or absent)."""
    if setting == "":
        for s in series_list:
            s.dynamic_feat = None
        return 0
    with_feat = [s for s in series_list if s.dynamic_feat is not None]
    if setting == "auto" and not with_feat:
        return 0
    if not with_feat:
        raise DataError(f"num_dynamic_feat={setting} but no record has a 'dynamic_feat' field "
                        f"(e.g. {series_list[0].where})")
    missing = _first_with(series_list, lambda s: s.dynamic_feat is None)
    if missing is not None:
        raise DataError(f"{missing.where}: the record has no 'dynamic_feat' but other records have one; every "
                        "record needs the same number of dynamic features")
    count = setting if setting != "auto" else with_feat[0].dynamic_feat.shape[0]
    wrong = _first_with(series_list, lambda s: s.dynamic_feat.shape[0] != count)
    if wrong is not None:
        expected = f"num_dynamic_feat={count}" if setting != "auto" else f"{with_feat[0].where} has {count}"
        raise DataError(f"{wrong.where}: 'dynamic_feat' has {wrong.dynamic_feat.shape[0]} arrays; {expected}")
    return int(count)


def check_against(series_list, layout, channel):
    """Test series must carry what the model was trained with."""
    for s in series_list:
        problem = cat_problem(s.cat, layout.cardinality)
        if problem:
            raise DataError(f"{s.where}: {channel} record{problem}")
        if layout.num_dynamic_feat:
            if s.dynamic_feat is None or s.dynamic_feat.shape[0] != layout.num_dynamic_feat:
                raise DataError(f"{s.where}: {channel} record needs {layout.num_dynamic_feat} 'dynamic_feat' "
                                "array(s), as in training")
        else:
            s.dynamic_feat = None


def long_enough(series_list, prediction_length, channel, minimum):
    """The series of at least ``minimum`` points; the others skipped with a log line."""
    kept = [s for s in series_list if len(s) >= minimum]
    skipped = len(series_list) - len(kept)
    if skipped:
        first = _first_with(series_list, lambda s: len(s) < minimum)
        log.info("Skipped %d %s series shorter than %d points (prediction_length=%d), the first at %s", skipped,
                 channel, minimum, prediction_length, first.where)
    if not kept:
        raise DataError(f"No {channel} series has at least {minimum} points (prediction_length={prediction_length})")
    return kept


def check_beta(series_list):
    bad = _first_with(series_list, lambda s: np.nanmin(s.target, initial=0.0) < 0 or np.nanmax(s.target, initial=0.0) > 1)
    if bad is not None:
        raise DataError(f"{bad.where}: likelihood=beta needs targets between 0 and 1")
