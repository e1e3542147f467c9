"""One small codec per content type, found through registries keyed by content type.

Request decoders turn a body into model input (a float32 array or CSR matrix of rows, or a list of raw
payloads); response encoders turn the model's output columns into bytes. Every codec reports a bad
payload with :class:`CodecError`, whose message says what was wrong.
"""

from ...errors import RequestError, UnsupportedAccept, UnsupportedContentType


class CodecError(RequestError):
    """A request body that cannot be decoded (HTTP 400); the message says what was wrong and where."""

    status = 400


_DECODERS = {}


def register_decoder(mime):
    def wrap(function):
        _DECODERS[mime] = function
        return function

    return wrap


def decoder_for(mime, accepted):
    """The decoder of a request content type the algorithm accepts, or 415."""
    if mime not in accepted or mime not in _DECODERS:
        raise UnsupportedContentType(
            f"Content type {mime!r} is not supported; use one of: {', '.join(accepted)}"
        )
    return _DECODERS[mime]


def negotiate(accept_ranges, encoders, default):
    """The (mime, media range) to answer with for a parsed Accept header, or 406."""
    from ...contenttypes import matches, parse

    if not accept_ranges:
        return default, parse(default)
    for media in accept_ranges:
        if media.mime in ("*/*", "*"):
            return default, media
        for mime in encoders:
            if matches(media.mime, mime):
                return mime, media
    wanted = ", ".join(str(m) for m in accept_ranges)
    raise UnsupportedAccept(f"Accept {wanted!r} is not supported; use one of: {', '.join(encoders)}")


def _register_builtin():
    from . import csv, image, json, jsonlines, recordio  # noqa: F401  (each registers its decoder)


_register_builtin()
