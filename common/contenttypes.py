"""MIME type parsing, lenient the way SageMaker users write content types."""

from dataclasses import dataclass, field
from functools import lru_cache

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
LIBSVM = "text/libsvm"
IMAGE = "application/x-image"

# Other spellings users write, canonical type by alias. Readers and codecs add theirs when they register
# (``register_alias``), so an algorithm's own content type brings its aliases from its own folder.
ALIASES = {}


def register_alias(alias, canonical):
    """Make ``alias`` (any case) parse as ``canonical``; an alias already taken by another type is an error."""
    alias = alias.strip().lower()
    if alias == canonical:
        return
    taken = ALIASES.get(alias)
    if taken is not None and taken != canonical:
        raise ValueError(f"content type alias {alias!r} already means {taken!r}, not {canonical!r}")
    ALIASES[alias] = canonical
    if "parse" in globals():
        parse.cache_clear()  # an earlier parse of this alias is stale now


for _canonical, _aliases in {
    CSV: ("csv", "text/x-csv", "application/csv"),
    JSON: ("json",),
    JSONLINES: ("jsonlines", "application/x-jsonlines", "application/json-lines", "application/jsonl"),
    RECORDIO_PROTOBUF: ("recordio-protobuf", "application/recordio-protobuf", "recordio"),
    LIBSVM: ("libsvm", "text/x-libsvm", "application/x-libsvm"),
}.items():
    for _alias in _aliases:
        register_alias(_alias, _canonical)


@dataclass(frozen=True)
class MediaType:
    """A parsed content type: canonical ``type/subtype`` plus lower-cased parameters."""

    mime: str
    params: dict = field(default_factory=dict)

    def __str__(self):
        extra = "".join(f";{k}={v}" for k, v in self.params.items())
        return self.mime + extra

    def param(self, name, default=None):
        return self.params.get(name, default)

    def int_param(self, name, default):
        value = self.params.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"parameter {name}={value!r} of {self.mime} must be a whole number") from None
        if number < 0:
            raise ValueError(f"parameter {name}={value!r} of {self.mime} must not be negative")
        return number

    def flag(self, name):
        """A boolean parameter such as ``verbose``; a bare ``;verbose`` counts as true."""
        value = self.params.get(name)
        return value is not None and value.lower() in ("", "true", "1", "yes")


@lru_cache(maxsize=256)
def parse(value, default=None):
    """Parse ``' Text/CSV ; Label-Size = 1 '`` into ``MediaType('text/csv', {'label_size': '1'})``.

    Results are cached (headers repeat); treat the returned MediaType as read-only."""
    if value is None or not value.strip():
        return parse(default) if default else None
    parts = value.split(";")
    mime = parts[0].strip().lower()
    mime = ALIASES.get(mime, mime)
    params = {}
    for part in parts[1:]:
        if not part.strip():
            continue
        key, _, val = part.partition("=")
        key = key.strip().lower().replace("-", "_")
        params[key] = val.strip().strip('"')
    return MediaType(mime, params)


@lru_cache(maxsize=256)
def parse_accept(header):
    """The media ranges of an Accept header, best first (by q, then by order)."""
    if header is None or not header.strip():
        return []
    ranges = []
    for index, item in enumerate(header.split(",")):
        if not item.strip():
            continue
        media = parse(item)
        params = dict(media.params)
        q = params.pop("q", None)
        media = MediaType(media.mime, params)
        try:
            quality = float(q) if q is not None else 1.0
        except ValueError:
            quality = 0.0
        if quality > 0:
            ranges.append((-quality, index, media))
    return tuple(media for _, _, media in sorted(ranges, key=lambda r: (r[0], r[1])))


def matches(media_range, mime):
    """Does an Accept media range such as ``application/*`` cover ``mime``?"""
    if media_range in ("*/*", "*"):
        return True
    if media_range.endswith("/*"):
        return mime.split("/")[0] == media_range[:-2]
    return media_range == mime
