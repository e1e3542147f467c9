"""The Flask app of one serving worker: the model is loaded once, when the worker starts."""

import json
import logging
import os
import time

import numpy as np
import scipy.sparse as sp
from flask import Flask, Response, request

from .. import contenttypes
from ..errors import PayloadTooLarge, RequestError
from ..model_dir import resolve_model_dir
from .codecs import CodecError, decoder_for, negotiate
from .settings import ServingSettings

log = logging.getLogger(__name__)


def read_body(limit_bytes):
    """The request body, refusing (413) anything over the payload limit before reading it all."""
    length = request.content_length
    if length is not None and length > limit_bytes:
        raise PayloadTooLarge(f"Request body of {length} bytes exceeds MaxPayloadInMB ({limit_bytes} bytes)")
    body = request.get_data(cache=False) if length is not None else request.stream.read(limit_bytes + 1)
    if len(body) > limit_bytes:
        raise PayloadTooLarge(f"Request body exceeds MaxPayloadInMB ({limit_bytes} bytes)")
    if not body:
        raise CodecError("Request body is empty")
    return body


def check_features(features, model):
    """Wrong feature counts and NaN/inf are the client's to fix (400)."""
    expected = getattr(model, "feature_dim", None)
    if expected is None or isinstance(features, list):
        return
    if features.shape[1] != expected:
        raise CodecError(f"Each record must have {expected} features; got {features.shape[1]}")
    values = features.data if sp.issparse(features) else features
    if not np.isfinite(values).all():
        raise CodecError("Features contain NaN or infinite values")


def create_app(spec, model_dir, settings=None):
    settings = settings or ServingSettings.from_env()
    started = time.perf_counter()
    model = spec.load_model_class().load(resolve_model_dir(model_dir))
    log.info("Loaded %s model from %s in %.2f s", spec.name, model_dir, time.perf_counter() - started)
    app = Flask(spec.name)

    @app.get("/ping")
    def ping():
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        return {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": settings.max_payload_mb,
        }

    @app.post("/invocations")
    def invocations():
        body = read_body(settings.max_payload_bytes)
        default_type = spec.request_types[0] if spec.request_types else None
        media = contenttypes.parse(request.headers.get("Content-Type"), default=default_type)
        decode = decoder_for(media.mime, spec.request_types)
        mime, accept = negotiate(contenttypes.parse_accept(request.headers.get("Accept")), spec.encoders,
                                 spec.default_accept)
        inputs = decode(body, media)
        check_features(inputs, model)
        outputs = model.predict(inputs)
        return Response(spec.encoders[mime](outputs, accept), mimetype=mime)

    @app.errorhandler(RequestError)
    def client_error(exc):
        return Response(json.dumps({"error": str(exc)}), status=exc.status, mimetype="application/json")

    @app.errorhandler(Exception)
    def server_error(exc):
        status = getattr(exc, "code", None)
        if isinstance(status, int) and 400 <= status < 500:  # werkzeug's own 404/405
            return Response(json.dumps({"error": str(exc)}), status=status, mimetype="application/json")
        log.exception("Error while serving a request")
        return Response(json.dumps({"error": f"Internal error: {type(exc).__name__}: {exc}"}), status=500,
                        mimetype="application/json")

    return app
