"""Response encoders of the guide: JSON ``predictions``, JSON lines, CSV (recordIO is common/'s ``label`` map).

``score`` is a number (binary: the probability for logistic loss, the raw score for hinge; regression: the
prediction) or, for multiclass, the list of class probabilities; ``predicted_label`` an integer, as the guide
prints it. text/csv answers one line per record: the predicted label for classifiers, the score for regressors.
Requests decode as common/'s codecs do (these classes only change ``encode``).
"""

import numpy as np

from common.serving.codecs.csv import CSVCodec, csv_lines
from common.serving.codecs.json import JSONCodec, json_document, json_lines
from common.serving.codecs.jsonlines import JSONLinesCodec


def answer_columns(columns):
    """``score`` and, for classifiers, ``predicted_label`` as an integer column (in that order)."""
    answer = {"score": columns["score"]}
    if "predicted_label" in columns:
        answer["predicted_label"] = np.asarray(columns["predicted_label"]).astype(np.int64)
    return answer


class LinearJSONCodec(JSONCodec):
    def encode_chunks(self, prediction, media, options):
        return json_document(answer_columns(prediction.columns), options.response_key)


class LinearJSONLinesCodec(JSONLinesCodec):
    def encode_chunks(self, prediction, media, options):
        return json_lines(answer_columns(prediction.columns))


class LinearCSVCodec(CSVCodec):
    def encode_chunks(self, prediction, media, options):
        columns = answer_columns(prediction.columns)
        return csv_lines(columns, ["predicted_label" if "predicted_label" in columns else "score"])
