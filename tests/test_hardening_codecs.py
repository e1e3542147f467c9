"""Worst-shaped bodies for the codecs k-means does not take (libsvm, images), in-process: a 400 (CodecError)
or an answer, in bounded time and memory (findings #1/#5's shape for libsvm; #4 the PNG bomb).
Algorithm-agnostic for libsvm (the codec is common/'s); the image limit is image-classification-tensorflow's.
"""

import struct
import time
import tracemalloc
import zlib

import pytest

from common import contenttypes
from common.serving.codecs import COMMON, CodecError, DecodeHints
from test_hardening_requests import EXTRA_MB_BOUND, REFERENCE_RATIO, SECONDS_BOUND, _reference_body

LIMIT = 6 << 20
FEATURES = 20
REFERENCE_BODY = _reference_body()


def _outcome(function, *args):
    try:
        return function(*args)
    except CodecError as exc:
        return exc


def measured(function, *args):
    """(outcome, seconds, peak MB): timed on its own (best of 2), then run again under tracemalloc (10x slower)
    for memory."""
    seconds = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        outcome = _outcome(function, *args)
        seconds = min(seconds, time.perf_counter() - start)
    tracemalloc.start()
    _outcome(function, *args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return outcome, seconds, peak / 1e6


LIBSVM_CASES = {
    "one line of 1,000,000 tokens": b"1 " + b" ".join(b"%d:1" % (i % 9) for i in range(1_000_000)),
    "3,000,000 label-only lines": b"0\n" * 3_000_000,
    "1,500,000 one-feature lines": b"1:1\n" * 1_500_000,
    "3,000,000 lines, the last malformed": b"0\n" * 2_999_999 + b"0 1:x\n",
    "800,000 nan values": b"1 " + b" ".join(b"%d:nan" % (i % 9) for i in range(800_000)),
    "a 1 MB number": b"1 1:" + b"1" * (1 << 20) + b".5\n",
    "300,000 label-only lines": b"0\n" * 300_000,
    "5 MB of newlines": b"\n" * (5 << 20),
    "index 2**40": b"1 1099511627776:1\n",
    "value 1e400": b"1 1:1e400\n",
    "index -1": b"1 -1:1\n",
    "garbage": b"\x00\xff" * 1000,
}


def reference_s():
    """The in-process decode of a valid 6 MB CSV request (40,000 rows of 20), best of 2, measured next to each
    case: the time bound is max(2 s, REFERENCE_RATIO x this), as in the server test (a shared box's load
    changes by the minute)."""
    body, codec = REFERENCE_BODY, COMMON.find(contenttypes.CSV)
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        codec.decode(body, contenttypes.parse(contenttypes.CSV), DecodeHints(feature_dim=FEATURES))
        timings.append(time.perf_counter() - start)
    return min(timings)


# libsvm requests were split line by line in Python: 3,000,000 label-only lines (3 million rows of zeros, a
# valid 6 MB request) took 15.8 s and ~680 MB on the loaded 2-core box; common/libsvm.py is vectorised now.
@pytest.mark.parametrize("name", list(LIBSVM_CASES))
def test_libsvm_worst_shapes_are_bounded(name):
    body = LIBSVM_CASES[name]
    assert len(body) <= LIMIT
    codec = COMMON.find(contenttypes.LIBSVM)
    outcome, seconds, peak_mb = measured(codec.decode, body, contenttypes.parse(contenttypes.LIBSVM),
                                         DecodeHints(feature_dim=FEATURES))
    bound = max(SECONDS_BOUND, REFERENCE_RATIO * reference_s())
    print(f"libsvm {name}: {type(outcome).__name__} in {seconds:.2f} s (bound {bound:.2f} s), {peak_mb:.0f} MB peak")
    assert seconds < bound and peak_mb < EXTRA_MB_BOUND
    if not isinstance(outcome, CodecError):
        assert outcome.shape[1] == FEATURES


def png(width, height):
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    rows = b"".join(z.compress(row) for _ in range(min(height, 64))) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def jpeg_header(width, height):
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def bmp_header(width, height):
    return b"BM" + b"\0" * 16 + struct.pack("<ii", width, -height) + b"\0" * 28


def gif_header(width, height):
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\0" * 8


@pytest.mark.parametrize("make", [png, jpeg_header, bmp_header, gif_header])
def test_image_pixel_limit_refuses_bombs_before_decoding(make, monkeypatch):
    model = pytest.importorskip("containers.image_classification_tensorflow.model")
    assert model.image_size(make(16000, 16000)) == (16000, 16000)
    with pytest.raises(CodecError, match=r"16000 x 16000 = 256000000 pixels, over the limit of 25000000 "
                                         r"\(ALGOBOX_MAX_IMAGE_PIXELS\)"):
        model.check_image_size(make(16000, 16000), model.max_pixels())
    model.check_image_size(make(4000, 3000), model.max_pixels())  # a 12 MP photo passes
    monkeypatch.setenv("ALGOBOX_MAX_IMAGE_PIXELS", "1000000")
    with pytest.raises(CodecError, match="over the limit of 1000000"):
        model.check_image_size(make(4000, 3000), model.max_pixels())


def test_png_bomb_is_refused_by_the_classifier_without_decoding():
    """Finding #4: a 243 KB PNG of 16000 x 16000 decoded to 767 MB; the classifier now says 400 first."""
    model = pytest.importorskip("containers.image_classification_tensorflow.model")
    pytest.importorskip("tensorflow")

    class Unreachable:
        def __call__(self, *args):
            raise AssertionError("the bomb reached the decoder")

    classifier = object.__new__(model.ImageClassifier)
    classifier.function, classifier.output_name, classifier.max_pixels = Unreachable(), "probabilities", 25_000_000
    bomb = png(16000, 16000)
    assert len(bomb) < LIMIT
    with pytest.raises(CodecError, match="16000 x 16000"):
        classifier.probabilities([bomb])


# ---------------------------------------------------------------------------------- chunked response encoders

def _values(rng, n, *shape, dtype="float32"):
    """Numbers of every magnitude orjson and repr write differently (1e-5, 1e-7, 1e17), zeros, integers."""
    import numpy as np

    values = rng.normal(size=(n,) + shape) * np.exp(rng.uniform(-30, 30, size=(n,) + shape))
    values.flat[::7] = 0.0
    values.flat[::11] = np.round(values.flat[::11])
    return values.astype(dtype)


def _per_record(spec, mime, columns):
    """The bytes the per-record encoders wrote (rows.records, format_rows, encode_outputs + encode_record)."""
    import numpy as np

    from common import protobuf, recordio
    from common.serving.codecs.csv import format_rows
    from common.serving.codecs.json import dumps
    from common.serving.codecs.rows import column_list, records

    if mime == "application/json":
        return dumps({spec.encode_options().response_key: records(columns)})
    if mime == "application/jsonlines":
        return b"\n".join(dumps(record) for record in records(columns))
    if mime == "text/csv":
        return format_rows(columns, tuple(columns))
    arrays = {name: np.asarray(column_list(values, name), np.float32) for name, values in columns.items()}
    return b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(arrays))


@pytest.mark.parametrize("rows", [1, 2, 2500])
def test_chunked_encoders_write_the_per_record_bytes(monkeypatch, rows):
    """common's JSON, JSON Lines, CSV and recordIO encoders, chunk by chunk (chunks of 1,000 records here),
    write exactly the bytes of the per-record encoders they replace, for every column shape the tabular models
    answer with (one scalar, two, an integer label first or last, vectors, three columns)."""
    import numpy as np

    from common.model import Prediction
    from common.serving.codecs import layout
    from common.spec import load_spec

    monkeypatch.setattr(layout, "CHUNK_ROWS", 1000)
    rng = np.random.default_rng(rows)
    labels = rng.integers(0, 3, rows)
    shapes = {
        "score": {"score": _values(rng, rows)},
        "score + label": {"score": _values(rng, rows), "predicted_label": labels.astype(np.int64)},
        "label + score": {"predicted_label": labels.astype(np.int64) - 1, "score": _values(rng, rows, dtype="float64")},
        "two floats": {"closest_cluster": labels.astype(np.float32), "distance_to_cluster": _values(rng, rows)},
        "vectors": {"projection": _values(rng, rows, 3)},
        "three": {"predicted_label": labels.astype(np.float32), "distances": _values(rng, rows, 4),
                  "labels": labels[:, None].repeat(4, 1).astype(np.float32)},
        "flags": {"flag": labels > 0, "id": labels.astype(np.uint8)},
        # whole floats (formatted from int64 where orjson writes them as the integer and ".0"): -0.0, 1e16 and
        # over, vectors of one, and a column of whole floats beside one that is not
        "whole": {"predicted_label": (labels - 1).astype(np.float64), "labels": labels[:, None].astype(np.float32),
                  "distances": np.column_stack([labels * 7, labels * -3]).astype(np.float32)},
        "whole but -0.0": {"score": np.where(labels > 1, -0.0, labels).astype(np.float32),
                           "labels": np.column_stack([labels, -0.0 * labels]).astype(np.float64)},
        "whole past 1e16": {"score": labels * 1e16 + 1e15, "labels": np.column_stack([labels, labels * 2.0 ** 60])},
    }
    spec = load_spec("kmeans")
    for shape, columns in shapes.items():
        for mime in ("application/json", "application/jsonlines", "text/csv", "application/x-recordio-protobuf"):
            codec = COMMON.find(mime)
            media = contenttypes.parse(mime)
            chunks = list(codec.chunks(Prediction(dict(columns)), media, spec.encode_options()))
            assert b"".join(chunks) == _per_record(spec, mime, columns), (shape, mime)
            if rows > 1000:
                assert len(chunks) > 2, (shape, mime)  # written chunk by chunk
