"""Response encoders of the guide: JSON ``predictions``, JSON lines, CSV (recordIO is common/'s ``label`` map).

``score`` is a number (binary: the probability for logistic loss, the raw score for hinge; regression: the
prediction) or, for multiclass, the list of class probabilities; ``predicted_label`` an integer, as the guide
prints it. text/csv answers one line per record: the predicted label for classifiers, the score for regressors.
Requests decode as common/'s codecs do (these classes only change ``encode``).
"""

import numpy as np

from common.serving.codecs.csv import CSVCodec
from common.serving.codecs.json import JSONCodec, dumps
from common.serving.codecs.jsonlines import JSONLinesCodec
from common.serving.codecs.rows import column_list


def records(columns):
    score = column_list(columns["score"], "score")
    if "predicted_label" not in columns:
        return [{"score": s} for s in score]
    labels = np.asarray(columns["predicted_label"]).astype(np.int64).tolist()
    return [{"score": s, "predicted_label": p} for s, p in zip(score, labels)]


class LinearJSONCodec(JSONCodec):
    def encode(self, prediction, media, options):
        return dumps({options.response_key: records(prediction.columns)})


class LinearJSONLinesCodec(JSONLinesCodec):
    def encode(self, prediction, media, options):
        return b"\n".join(dumps(record) for record in records(prediction.columns))


class LinearCSVCodec(CSVCodec):
    def encode(self, prediction, media, options):
        columns = prediction.columns
        if "predicted_label" in columns:
            return "\n".join(str(v) for v in np.asarray(columns["predicted_label"]).astype(np.int64).tolist()).encode()
        return "\n".join(f"{v:.9g}" for v in column_list(columns["score"], "score")).encode()
