"""Serving: the SavedModel decodes and resizes encoded images itself and returns class probabilities."""

import json
import logging
import os
import re
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import numpy as np  # noqa: E402

from common.errors import ClientError  # noqa: E402
from common.model import Prediction  # noqa: E402
from common.serving.codecs import CodecError  # noqa: E402

log = logging.getLogger(__name__)

SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}


def image_format(body):
    for signature, name in SIGNATURES.items():
        if body.startswith(signature):
            return name
    return None


MAX_PIXELS_ENV = "ALGOBOX_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 25_000_000  # 5000 x 5000: 75 MB decoded as RGB; a 243 KB PNG can declare 16000 x 16000


def max_pixels(environ=None):
    value = (os.environ if environ is None else environ).get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise ClientError(f"{MAX_PIXELS_ENV}={value!r} must be a positive whole number of pixels")
    return int(value)


def image_size(body):
    """(width, height) from the image's header, without decoding it (None when the header does not say)."""
    kind = image_format(body)
    if kind == "PNG" and len(body) >= 24 and body[12:16] == b"IHDR":
        return int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")
    if kind == "GIF" and len(body) >= 10:
        return int.from_bytes(body[6:8], "little"), int.from_bytes(body[8:10], "little")
    if kind == "BMP" and len(body) >= 26:
        return abs(int.from_bytes(body[18:22], "little", signed=True)), abs(int.from_bytes(body[22:26], "little", signed=True))
    if kind == "JPEG":
        at = 2
        while at + 9 <= len(body):
            if body[at] != 0xFF:
                return None
            marker = body[at + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                at += 1 if marker == 0xFF else 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                return int.from_bytes(body[at + 7:at + 9], "big"), int.from_bytes(body[at + 5:at + 7], "big")
            at += 2 + int.from_bytes(body[at + 2:at + 4], "big")
    return None


def check_image_size(body, limit, where=""):
    """400 before decoding an image whose header declares more than ``limit`` pixels (a decompression bomb)."""
    size = image_size(body)
    if size is not None and size[0] * size[1] > limit:
        raise CodecError(f"Image{where} is {size[0]} x {size[1]} = {size[0] * size[1]} pixels, over the limit of "
                         f"{limit} ({MAX_PIXELS_ENV})")


def _reason(error):
    """The decoder's own words from a TensorFlow error, without the graph-execution framing."""
    skip = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ", "Traceback")
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", getattr(error, "message", None) or str(error))
    useful = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(skip)]
    return useful[0] if useful else "the data is corrupt or truncated"


def _warmup_image():
    """A tiny valid PNG (1x1 grey) to run the whole serving graph once at load."""
    import zlib

    def chunk(kind, payload):
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x80\x80\x80"))
            + chunk(b"IEND", b""))


class ImageClassifier:
    """The trained SavedModel's ``serving_default`` (tf.string images -> probabilities) and the labels."""

    def __init__(self, loaded, labels):
        self.loaded = loaded  # keeps the variables alive
        self.function = loaded.signatures["serving_default"]
        self.labels = list(labels)
        self.output_name = next(iter(self.function.structured_outputs))
        self.max_pixels = max_pixels()

    @classmethod
    def load(cls, model_dir):
        import tensorflow as tf

        model_dir = Path(model_dir)
        labels_file = model_dir / "labels_info.json"
        if not (model_dir / "saved_model.pb").is_file() or not labels_file.is_file():
            raise ClientError(f"{model_dir} holds no image-classification-tensorflow model "
                              "(saved_model.pb and labels_info.json)")
        labels = json.loads(labels_file.read_text(encoding="utf-8"))["labels"]
        started = time.perf_counter()
        model = cls(tf.saved_model.load(str(model_dir)), labels)
        # not run here: the server's warm-up (common/serving/app.py) runs warmup_inputs() through every
        # response type right after this, which is the first call that traces and optimises the graph
        log.info("Loaded the SavedModel (%d classes) in %.2f s", len(labels), time.perf_counter() - started)
        return model

    def probabilities(self, images):
        import tensorflow as tf

        for index, body in enumerate(images):
            if image_format(body) is None:
                where = f" (image {index})" if len(images) > 1 else ""
                raise CodecError(f"Request body{where} is not a JPEG, PNG, GIF or BMP image "
                                 f"(it starts with {body[:8]!r})")
            check_image_size(body, self.max_pixels, f" {index}" if len(images) > 1 else "")
        try:
            outputs = self.function(tf.constant(images, dtype=tf.string))
        except tf.errors.InvalidArgumentError as exc:
            raise CodecError(f"Cannot decode the image: {_reason(exc)}") from None
        return outputs[self.output_name].numpy()

    def predict(self, images):
        probabilities = self.probabilities(images)
        if probabilities.shape[1] == 1:  # binary_mode: the probability of the second (positive) class
            predicted = [self.labels[int(p >= 0.5)] for p in probabilities[:, 0]]
        else:
            predicted = [self.labels[i] for i in np.argmax(probabilities, axis=1)]
        return Prediction({"probabilities": probabilities, "predicted_label": predicted}, {"labels": self.labels})

    def warmup_inputs(self):
        return [_warmup_image()]
