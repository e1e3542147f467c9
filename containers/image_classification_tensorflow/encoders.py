"""Responses: ``{"probabilities": [...]}``; with ``;verbose`` also ``"labels"`` and ``"predicted_label"``.

These codecs replace common/'s JSON and JSON Lines encoders for this algorithm only (its registry is a
child of common/'s): one image answers with one object, several with a list, as the built-in does.
"""

import numpy as np

from common.contenttypes import JSON, JSONLINES
from common.serving.codecs import Codec
from common.serving.codecs.json import dumps
from common.serving.codecs.jsonlines import join_lines


def _records(prediction, media):
    verbose = media is not None and media.flag("verbose")
    probabilities = np.asarray(prediction.columns["probabilities"], dtype=np.float64)
    for row, predicted in zip(probabilities.tolist(), prediction.columns["predicted_label"]):
        record = {"probabilities": row}
        if verbose:
            record["labels"] = list(prediction.extras["labels"])
            record["predicted_label"] = predicted
        yield record


class ImageJSONCodec(Codec):
    """application/json: one object per image; a list of them when a request held several."""

    content_type = JSON

    def encode(self, prediction, media, options):
        records = list(_records(prediction, media))
        return dumps(records[0] if len(records) == 1 else records)


class ImageJSONLinesCodec(Codec):
    """application/jsonlines (batch transform): one object per line."""

    content_type = JSONLINES

    def encode(self, prediction, media, options):
        return join_lines(_records(prediction, media))
