"""The serving protocol, apart from HTTP: request bytes in, response bytes out.

``invoke(model, spec, body, content_type, accept)`` decodes the body with the request type's codec,
checks the records against the model (feature count, finite values unless the model allows missing
ones), calls the model's optional ``prepare`` and its ``predict``, and encodes the result with the
negotiated response codec, whose chunks the server streams. ``/invocations`` wraps it; tests call it in-process.
"""

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from .. import contenttypes, repeats
from ..model import (allows_missing, as_prediction, check_prediction, dense_width, distinct_rows, feature_dim,
                     join_predictions, predict_rows)
from .codecs import CodecError, DecodeHints


@dataclass
class Response:
    """The answer: ``chunks`` of its body (an iterable of bytes, consumed once) and its content type."""

    chunks: object
    content_type: str

    @property
    def body(self):
        """The whole body as bytes (for callers that want it at once; the server streams ``chunks``)."""
        if not isinstance(self.chunks, bytes):
            self.chunks = b"".join(self.chunks)
        return self.chunks


def hints_for(model):
    return DecodeHints(feature_dim=feature_dim(model), allows_missing=allows_missing(model),
                       dense_width=dense_width(model))


def check_features(inputs, model):
    """Wrong feature counts are the client's to fix (400); so are NaN/inf unless the model allows missing."""
    expected = feature_dim(model)
    if isinstance(inputs, list) or not hasattr(inputs, "shape"):
        return
    if inputs.ndim != 2:
        raise CodecError(f"Records must be rows of features; got an array of shape {inputs.shape}")
    if expected is not None and inputs.shape[1] != expected:
        raise CodecError(f"Each record must have {expected} features; got {inputs.shape[1]}")
    if allows_missing(model):
        values = inputs.data if sp.issparse(inputs) else inputs
        if np.isinf(values).any():
            raise CodecError("Features contain infinite values (NaN is a missing value here; infinity is not)")
        return
    values = inputs.data if sp.issparse(inputs) else inputs
    if not np.isfinite(values).all():
        raise CodecError("Features contain NaN or infinite values")


def predict(model, inputs):
    """The model's prediction for the records, in slices of ``predict_rows`` where the model declares it; for a
    model that declares ``distinct_rows``, of the distinct rows only where a sample says most rows repeat (the
    Prediction's ``inverse`` then maps records to them, see common/repeats.py)."""
    found = repeats.distinct(inputs) if distinct_rows(model) and isinstance(inputs, np.ndarray) else None
    if found is not None:
        rows, inverse = found
        prediction = _predict(model, rows)
        if prediction.extras:
            return _predict(model, inputs)  # extras are not per record: not the model's to dedup after all
        return replace(prediction, inverse=inverse)
    return _predict(model, inputs)


def _predict(model, inputs):
    prepare = getattr(model, "prepare", None)
    if callable(prepare):
        inputs = prepare(inputs)
    rows = len(inputs) if isinstance(inputs, list) else inputs.shape[0]
    step = predict_rows(model)
    if step is None or rows <= step:
        prediction = as_prediction(model.predict(inputs))
    else:
        parts = []
        for start in range(0, rows, step):
            part = as_prediction(model.predict(inputs[start:start + step]))
            check_prediction(part, min(step, rows - start), type(model).__name__)
            parts.append(part)
        prediction = join_predictions(parts)
    check_prediction(prediction, rows, type(model).__name__)
    return prediction


def invoke(model, spec, body, content_type, accept):
    """One request, start to end; raises RequestError subclasses (4xx) for the client's faults."""
    codecs = spec.codecs_registry()
    default_type = spec.request_types[0] if spec.request_types else None
    media = contenttypes.parse(content_type, default=default_type)
    decoder = codecs.decoder(media.mime, spec.request_types)
    default_accept = spec.default_accept
    if spec.accept_follows_content_type and media.mime in spec.response_types:
        default_accept = media.mime
    encoder, accept_media = codecs.negotiate(contenttypes.parse_accept(accept), spec.response_types, default_accept)
    if not body:
        raise CodecError("Request body is empty")
    inputs = decoder.decode(body, media, hints_for(model))
    check_features(inputs, model)
    prediction = predict(model, inputs)
    return Response(encoder.chunks(prediction, accept_media, spec.encode_options()), accept_media.mime)
