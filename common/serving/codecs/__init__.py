"""One codec object per content type, both directions, found through a registry (MLServer's shape).

A codec declares its ``content_type`` and ``aliases`` and implements ``decode(body, media, hints)`` (a request
body into model input: a float32 array or CSR matrix of rows, or a list of raw payloads) and/or
``encode(prediction, media, options)`` (the model's output into bytes) or ``encode_chunks(...)`` (the same
bytes as an iterable of chunks, for answers of millions of records: the server streams them; ``encode`` then
joins them). ``chunks(...)`` is what the server calls: the most derived of the two a class defines. Checks that
can fail (a non-finite output: 400) run when ``encode_chunks`` is called, not while its chunks are iterated.
A prediction of repeated rows (``Prediction.inverse``, common/repeats.py) reaches only an encoder whose class
declares ``repeats = True`` in the class that defines its ``encode_chunks``/``encode``, and there only its
``encode_repeated`` (it formats each distinct record once, the same bytes as ``encode_chunks`` gives for the
expanded prediction; None where it cannot); ``encode_chunks``/``encode`` get the columns expanded, always.
Every codec reports a bad payload with :class:`CodecError`, whose message says what was wrong.

``common/`` registers its codecs in ``COMMON``; an algorithm adds its own (or replaces one for itself) by
naming codec classes in ``AlgorithmSpec.codecs``; its registry is a child of ``COMMON``, so two algorithms'
codecs never meet.
"""

from dataclasses import dataclass

from ... import contenttypes
from ...errors import RequestError, UnsupportedAccept, UnsupportedContentType


class CodecError(RequestError):
    """A request body that cannot be decoded (HTTP 400); the message says what was wrong and where."""

    status = 400


@dataclass(frozen=True)
class DecodeHints:
    """What decoding may check early, from the model: its feature count and missing-value policy."""

    feature_dim: int | None = None
    allows_missing: bool = False
    dense_width: int | None = None  # models whose sparse rows may be narrower (feature_dim None): dense rows' width

    @property
    def width(self):
        """The width a dense row must have (None: any), for the checks made before parsing."""
        return self.feature_dim if self.feature_dim is not None else self.dense_width


@dataclass(frozen=True)
class EncodeOptions:
    """How the algorithm lays out responses: the JSON document's top key, the columns a CSV line holds."""

    response_key: str = "predictions"
    csv_columns: tuple | None = None


class Codec:
    """Base class: a content type, its aliases, and either direction."""

    content_type = None
    aliases = ()
    repeats = False  # encode_repeated takes a Prediction with an inverse (declared where encode_chunks is defined)

    def decode(self, body, media, hints):
        raise UnsupportedContentType(f"{self.content_type} is not accepted as a request type")

    def encode(self, prediction, media, options):
        if type(self).encode_chunks is Codec.encode_chunks:
            raise UnsupportedAccept(f"{self.content_type} is not offered as a response type")
        return b"".join(self.chunks(prediction, media, options))

    def encode_chunks(self, prediction, media, options):
        raise UnsupportedAccept(f"{self.content_type} is not offered as a response type")

    def encode_repeated(self, prediction, media, options):
        """``encode_chunks``'s bytes for a prediction with an inverse, each distinct record formatted once, or None
        where the columns do not allow it (the prediction is then expanded). Only where ``repeats`` is declared."""
        return None

    def chunks(self, prediction, media, options):
        """The response body as an iterable of bytes, through whichever of ``encode_chunks`` and ``encode`` the
        most derived class defines (a subclass that overrides ``encode`` keeps its own bytes); a prediction with an
        inverse through ``encode_repeated`` first where that class declares ``repeats``."""
        for klass in type(self).__mro__:
            if "encode_chunks" in vars(klass) or "encode" in vars(klass):
                if getattr(prediction, "inverse", None) is not None:
                    if vars(klass).get("repeats", False):
                        chunks = self.encode_repeated(prediction, media, options)
                        if chunks is not None:
                            return chunks
                    prediction = prediction.expanded()
                if "encode_chunks" in vars(klass):
                    return self.encode_chunks(prediction, media, options)
                return (self.encode(prediction, media, options),)
        raise UnsupportedAccept(f"{self.content_type} is not offered as a response type")  # pragma: no cover

    @classmethod
    def can_decode(cls):
        return cls.decode is not Codec.decode

    @classmethod
    def can_encode(cls):
        return cls.encode is not Codec.encode or cls.encode_chunks is not Codec.encode_chunks


class Registry:
    """Codecs by content type; a child registry falls back to its parent."""

    def __init__(self, parent=None):
        self.parent = parent
        self.codecs = {}
        self._found = {}

    def register(self, codec):
        self._found = {}
        """Register a Codec class (or instance) under its content type and aliases; returns it (decorator)."""
        instance = codec() if isinstance(codec, type) else codec
        if not instance.content_type:
            raise TypeError(f"{codec!r} declares no content_type")
        self.codecs[instance.content_type] = instance
        for alias in instance.aliases:
            contenttypes.register_alias(alias, instance.content_type)
        return codec

    def find(self, mime):
        try:
            return self._found[mime]
        except KeyError:
            pass
        codec = self.codecs.get(mime)
        if codec is None and self.parent is not None:
            codec = self.parent.find(mime)
        if len(self._found) < 256:
            self._found[mime] = codec
        return codec

    def content_types(self):
        own = set(self.codecs)
        return sorted(own | (set(self.parent.content_types()) if self.parent else set()))

    def decoder(self, mime, accepted):
        """The codec that decodes a request content type the algorithm accepts, or 415."""
        codec = self.find(mime) if mime in accepted else None
        if codec is None or not codec.can_decode():
            raise UnsupportedContentType(f"Content type {mime!r} is not supported; use one of: {', '.join(accepted)}")
        return codec

    def negotiate(self, accept_ranges, offered, default):
        """``(codec, media)`` to answer with for a parsed Accept header (best first), or 406."""
        if not accept_ranges:
            return self.find(default), contenttypes.parse(default)
        for media in accept_ranges:
            if media.mime in ("*/*", "*"):
                return self.find(default), contenttypes.MediaType(default, media.params)
            for mime in offered:
                if contenttypes.matches(media.mime, mime):
                    return self.find(mime), contenttypes.MediaType(mime, media.params)
        wanted = ", ".join(str(m) for m in accept_ranges)
        if len(wanted) > 200:
            wanted = wanted[:200] + "..."
        raise UnsupportedAccept(f"Accept {wanted!r} is not supported; use one of: {', '.join(offered)}")


COMMON = Registry()


def register_codec(codec):
    """Decorator: register a codec in ``common/``'s registry."""
    return COMMON.register(codec)


def _register_builtin():
    from . import csv, image, json, jsonlines, libsvm, recordio  # noqa: F401  (each registers its codec)


_register_builtin()
