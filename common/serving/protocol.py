"""The serving protocol, apart from HTTP: request bytes in, response bytes out.

``invoke(model, spec, body, content_type, accept)`` decodes the body with the request type's codec,
checks the records against the model (feature count, finite values unless the model allows missing
ones), calls the model's optional ``prepare`` and its ``predict``, and encodes the result with the
negotiated response codec. ``/invocations`` wraps it; tests call it in-process.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import contenttypes
from ..model import allows_missing, as_prediction, check_prediction, dense_width, feature_dim
from .codecs import CodecError, DecodeHints


@dataclass(frozen=True)
class Response:
    body: bytes
    content_type: str


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
    prepare = getattr(model, "prepare", None)
    if callable(prepare):
        inputs = prepare(inputs)
    prediction = as_prediction(model.predict(inputs))
    rows = len(inputs) if isinstance(inputs, list) else inputs.shape[0]
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
    return Response(encoder.encode(prediction, accept_media, spec.encode_options()), accept_media.mime)
