"""The Flask app of one serving worker: the model is loaded once, when the worker starts.

At load the model protocol is checked (``common/model.py``) and one warm-up prediction goes through every
declared response type, so a model that cannot answer fails the worker's boot (``/ping`` never says 200 for
a server whose every answer would be 500).
"""

import ctypes
import ctypes.util
import logging
import time

from flask import Flask, Response, request

from ..errors import AlgorithmError, ClientError, PayloadTooLarge, RequestError
from ..model import check_model, warmup_inputs
from .codecs import EncodeOptions
from .codecs.json import dumps
from .protocol import check_features, invoke, predict
from .settings import ServingSettings

log = logging.getLogger(__name__)


TRIM_AFTER_BYTES = 1 << 20  # after a request this large, hand the freed heap back to the system


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere): freed memory of a large request otherwise stays in the worker's heap."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()


def read_body(limit_bytes):
    """The request body, refusing (413) anything over the payload limit before reading it all."""
    environ = request.environ
    declared = environ.get("CONTENT_LENGTH")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > limit_bytes:
        raise PayloadTooLarge(f"Request body of {length} bytes exceeds MaxPayloadInMB ({limit_bytes} bytes)")
    if length is not None:  # the server's input stream, read once (werkzeug's wrappers cost more than the model)
        body = environ["wsgi.input"].read(length)
    else:
        body = request.stream.read(limit_bytes + 1)
    if len(body) > limit_bytes:
        raise PayloadTooLarge(f"Request body exceeds MaxPayloadInMB ({limit_bytes} bytes)")
    return body


def warm_up(spec, model):
    """One prediction through every declared response type; a failure is the model's (or ours)."""
    inputs = warmup_inputs(model)
    if inputs is None:
        log.info("No warm-up input for %s (no feature_dim, no warmup_inputs()); skipped", spec.name)
        return
    try:
        check_features(inputs, model)
        prediction = predict(model, inputs)
        codecs = spec.codecs_registry()
        for mime in spec.response_types:
            b"".join(codecs.find(mime).chunks(prediction, spec.parse_media(mime), spec.encode_options()))
    except RequestError as exc:
        raise ClientError(f"The model cannot answer a warm-up request ({exc}); it cannot serve") from exc
    except Exception as exc:
        raise AlgorithmError(f"Warm-up prediction failed: {type(exc).__name__}: {exc}") from exc


def load_model(spec, model_dir):
    started = time.perf_counter()
    model = spec.load_model_class().load(model_dir)
    check_model(model, spec.name)
    warm_up(spec, model)
    log.info("Loaded and warmed up the %s model from %s in %.2f s", spec.name, model_dir,
             time.perf_counter() - started)
    return model


STREAM_AFTER_BYTES = 4 << 20  # a body of more chunks than this is streamed (no Content-Length), not held whole


def respond(answer, trim=False):
    """A response of the answer's chunks: whole, with its Content-Length, when they come to under
    STREAM_AFTER_BYTES; else streamed as they are made, so that the worker holds one chunk of a huge answer at
    a time. The first chunk is made here, so a failure to make it is still answered as an error."""
    chunks = answer.chunks
    if isinstance(chunks, bytes):
        return Response(chunks, mimetype=answer.content_type)
    chunks = iter(chunks)
    head, size = [], 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= STREAM_AFTER_BYTES:
            break
    else:
        return Response(b"".join(head), mimetype=answer.content_type)

    def stream():
        yield from head
        head.clear()
        yield from chunks

    response = Response(stream(), mimetype=answer.content_type)
    if trim and MALLOC_TRIM is not None:
        response.call_on_close(lambda: MALLOC_TRIM(0))  # after the last chunk is sent
    return response


def _json_error(message, status):
    return Response(dumps({"error": message}), status=status, mimetype="application/json")


def create_app(spec, model_dir, settings=None, model=None):
    """The WSGI app; ``model_dir`` must already be unpacked (the server does that once, before forking)."""
    settings = settings or ServingSettings.from_env()
    model = model if model is not None else load_model(spec, model_dir)
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
        environ = request.environ
        if len(body) >= TRIM_AFTER_BYTES:
            environ["algobox.trim"] = True
        answer = invoke(model, spec, body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"))
        del body
        return respond(answer, trim=bool(environ.get("algobox.trim")))

    @app.teardown_request
    def release_memory(exc=None):
        if MALLOC_TRIM is not None and request.environ.get("algobox.trim"):
            MALLOC_TRIM(0)

    @app.errorhandler(RequestError)
    def client_error(exc):
        return _json_error(str(exc), exc.status)

    @app.errorhandler(Exception)
    def server_error(exc):
        status = getattr(exc, "code", None)
        if isinstance(status, int) and 400 <= status < 500:  # werkzeug's own 404/405/413
            return _json_error(str(exc), status)
        log.exception("Error while serving a request")
        return _json_error(f"Internal error: {type(exc).__name__}: {exc}", 500)

    return app


__all__ = ["create_app", "load_model", "EncodeOptions"]
