"""Responses: ``{"probabilities": [...]}``; with ``;verbose`` also ``"labels"`` and ``"predicted_label"``."""

import json

import numpy as np


def _records(outputs, media):
    verbose = media is not None and media.flag("verbose")
    probabilities = np.asarray(outputs["probabilities"], dtype=np.float64)
    for row, predicted in zip(probabilities.tolist(), outputs["predicted_label"]):
        record = {"probabilities": row}
        if verbose:
            record["labels"] = list(outputs["labels"])
            record["predicted_label"] = predicted
        yield record


def json_encoder(outputs, media):
    """application/json: one object per image; a list of them when a request held several."""
    records = list(_records(outputs, media))
    return json.dumps(records[0] if len(records) == 1 else records).encode()


def jsonlines_encoder(outputs, media):
    """application/jsonlines (batch transform): one object per line."""
    return "".join(json.dumps(record) + "\n" for record in _records(outputs, media)).encode()
