"""Response encoders of the guide: JSON ``predictions``, JSON lines, recordIO ``label`` map, CSV labels.

``score`` is a number (binary: the probability for logistic loss; regression: the prediction) or, for
multiclass, the list of class probabilities; ``predicted_label`` an integer. text/csv answers one line per record:
the predicted label for classifiers, the score for regressors.
"""

import io
import json

import numpy as np

from common import contenttypes as ct
from common.serving.codecs import recordio


def records(columns):
    score = np.asarray(columns["score"], np.float64).tolist()
    if "predicted_label" not in columns:
        return [{"score": s} for s in score]
    labels = np.asarray(columns["predicted_label"]).astype(np.int64).tolist()
    return [{"score": s, "predicted_label": p} for s, p in zip(score, labels)]


def encode_json(columns, media):
    return json.dumps({"predictions": records(columns)}).encode()


def encode_jsonlines(columns, media):
    return "".join(json.dumps(r) + "\n" for r in records(columns)).encode()


def encode_csv(columns, media):
    if "predicted_label" in columns:
        return "".join(f"{v}\n" for v in np.asarray(columns["predicted_label"]).astype(np.int64).tolist()).encode()
    out = io.StringIO()
    np.savetxt(out, np.asarray(columns["score"], np.float64).reshape(-1, 1), fmt="%.9g")
    return out.getvalue().encode()


ENCODERS = {
    ct.JSON: encode_json,
    ct.JSONLINES: encode_jsonlines,
    ct.RECORDIO_PROTOBUF: recordio.records_encoder(),
    ct.CSV: encode_csv,
}
