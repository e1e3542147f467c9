"""``SAGEMAKER_INFERENCE_OUTPUT``: the open container's selectable outputs, per objective, computed for all rows.

Keys valid for an objective are computed; keys that are not get NaN, as the open container answers (with a
warning in the log). Its rules, kept as they are: binary raw_scores are [1 - s, s] of the raw score s.
"""

import logging

import numpy as np

from common.errors import RequestError

log = logging.getLogger(__name__)

PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES = "predicted_label", "labels", "probability", "probabilities"
RAW_SCORE, RAW_SCORES, PREDICTED_SCORE = "raw_score", "raw_scores", "predicted_score"
ALL_KEYS = (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES, PREDICTED_SCORE)
CLASSIFY = [PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES]
VALID = {
    "reg:squarederror": [PREDICTED_SCORE], "reg:logistic": [PREDICTED_SCORE], "reg:gamma": [PREDICTED_SCORE],
    "reg:absoluteerror": [PREDICTED_SCORE], "reg:tweedie": [PREDICTED_SCORE],
    "reg:pseudohubererror": [PREDICTED_SCORE], "reg:squaredlogerror": [PREDICTED_SCORE],
    "count:poisson": [PREDICTED_SCORE], "survival:cox": [PREDICTED_SCORE], "survival:aft": [PREDICTED_SCORE],
    "rank:pairwise": [PREDICTED_SCORE], "rank:ndcg": [PREDICTED_SCORE], "rank:map": [PREDICTED_SCORE],
    "binary:logistic": CLASSIFY + [PROBABILITY, PROBABILITIES],
    "binary:logitraw": CLASSIFY, "binary:hinge": CLASSIFY, "multi:softmax": CLASSIFY,
    "multi:softprob": CLASSIFY + [PROBABILITY, PROBABILITIES],
}


def check_keys(keys):
    unknown = [k for k in keys if k not in ALL_KEYS]
    if unknown:
        raise RequestError(f"SAGEMAKER_INFERENCE_OUTPUT has unknown key(s) {unknown}; use {', '.join(ALL_KEYS)}")


def outputs_for(keys, objective, raw, num_class):
    """Columns ``{key: n or n x k array}`` for the selected keys, in the order given."""
    check_keys(keys)
    if objective not in VALID:
        raise RequestError(f"Objective {objective} has no selectable inference outputs ({', '.join(VALID)} do)")
    valid = VALID[objective]
    invalid = [k for k in keys if k not in valid]
    if invalid:
        log.warning("Selected key(s) %s do not apply to objective %s (use %s); they are answered with NaN", invalid,
                    objective, valid)
    raw = np.asarray(raw, dtype=np.float64)
    n = raw.shape[0]
    columns = {}
    for key in keys:
        if key not in valid:
            columns[key] = np.full(n, np.nan)
        elif key == PREDICTED_SCORE:
            columns[key] = raw.reshape(n)
        elif key == PREDICTED_LABEL:
            if objective in ("binary:hinge", "multi:softmax"):
                columns[key] = raw.reshape(n)
            elif objective == "binary:logistic":
                columns[key] = (raw > 0.5).astype(np.float64)
            elif objective == "binary:logitraw":
                columns[key] = (raw > 0).astype(np.float64)
            else:
                columns[key] = raw.reshape(n, -1).argmax(axis=1).astype(np.float64)
        elif key == LABELS:
            classes = 2 if objective.startswith("binary:") else max(num_class, 1)
            columns[key] = np.tile(np.arange(classes, dtype=np.float64), (n, 1))
        elif key == PROBABILITY:
            columns[key] = raw.reshape(n, -1).max(axis=1) if objective == "multi:softprob" else raw.reshape(n)
        elif key == PROBABILITIES:
            columns[key] = raw.reshape(n, -1) if objective == "multi:softprob" else \
                np.column_stack([1.0 - raw.reshape(n), raw.reshape(n)])
        elif key == RAW_SCORE:
            columns[key] = raw.reshape(n, -1).max(axis=1) if objective == "multi:softprob" else raw.reshape(n)
        elif key == RAW_SCORES:
            columns[key] = raw.reshape(n, -1) if objective == "multi:softprob" else \
                np.column_stack([1.0 - raw.reshape(n), raw.reshape(n)])
    return columns
