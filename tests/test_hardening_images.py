"""Finding #4 end to end: a small PNG that decodes past ALGOBOX_MAX_IMAGE_PIXELS, sent to a real
image-classification-tensorflow server, is a quick 400 with bounded worker memory; the limit is settable.

The model is a tiny classifier exported with the algorithm's own serving graph (network.export_serving:
tf.io.decode_image, resize, classify), so a bomb that got past the check would really be decoded (16000 x
16000 x 3 bytes = 768 MB: the probe measured 813 -> 1,580 MB and a 200 after 7.1 s).
"""

import json
import struct
import time
import zlib

import numpy as np
import psutil
import pytest
import requests

import emulator
from test_hardening_requests import EXTRA_MB_BOUND, LIMIT, REFERENCE_RATIO, RETURNED_MB_BOUND, SECONDS_BOUND, RSSSampler

ALGORITHM = "image-classification-tensorflow"


def png(width, height, value=0):
    """A whole, valid grayscale PNG: every row present (zeros compress about 1000:1)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    z = zlib.compressobj(9)
    row = b"\0" + bytes([value]) * width
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from containers.image_classification_tensorflow.network import export_serving

    root = tmp_path_factory.mktemp("images")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    export_serving(keras.Model(inputs, outputs), root / "model", (8, 8), "bilinear")
    (root / "model" / "labels_info.json").write_text(json.dumps({"labels": ["dark", "light"]}))
    return root


@pytest.fixture
def tolerant_ping(monkeypatch):
    """The SavedModel loads for seconds after gunicorn listens: a timed-out /ping counts as not up yet."""
    monkeypatch.setattr(emulator.requests, "ConnectionError", requests.RequestException)


def worker_of(server):
    workers = [p for p in psutil.Process(server.process.pid).children() if "nginx" not in " ".join(p.cmdline())]
    assert len(workers) == 1
    return workers[0]


def test_png_bomb_is_a_quick_400_with_bounded_memory(model_root, tolerant_ping):
    bomb = png(16000, 16000)
    assert len(bomb) < LIMIT // 20, len(bomb)  # ~250 KB declaring 256,000,000 pixels
    photo = png(640, 480, 200)
    with emulator.serve(ALGORITHM, model_root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
                        startup_timeout=300) as server:
        worker = worker_of(server)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            reply = server.post(photo, "image/png")
            timings.append(time.perf_counter() - started)
            assert reply.status_code == 200, reply.text
        assert len(reply.json()["probabilities"]) == 2
        before = worker.memory_info().rss
        sampler = RSSSampler(worker)
        sampler.start()
        started = time.perf_counter()
        reply = server.post(bomb, "image/png")
        seconds = time.perf_counter() - started
        sampler.running = False
        sampler.join()
        extra_mb = (sampler.peak - before) / 1e6
        after_mb = (worker.memory_info().rss - before) / 1e6
        bound = max(SECONDS_BOUND, REFERENCE_RATIO * min(timings))
        print(f"PNG bomb: {reply.status_code} in {seconds:.2f} s (bound {bound:.2f} s), +{extra_mb:.0f} MB peak, "
              f"+{after_mb:.0f} MB after")
        assert reply.status_code == 400, reply.text[:300]
        assert "16000 x 16000 = 256000000 pixels" in reply.json()["error"]
        assert "ALGOBOX_MAX_IMAGE_PIXELS" in reply.json()["error"]
        assert seconds < bound
        assert extra_mb < EXTRA_MB_BOUND and after_mb < RETURNED_MB_BOUND
        for content_type in ("application/x-image", "image/jpeg"):  # the header decides, not the content type
            assert server.post(bomb, content_type).status_code == 400
        assert server.post(photo, "image/png").status_code == 200  # still serving
    assert "Traceback" not in server.output, server.output[-3000:]


def test_pixel_limit_is_settable(model_root, tolerant_ping):
    photo = png(640, 480, 200)
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "ALGOBOX_MAX_IMAGE_PIXELS": "100000"}
    with emulator.serve(ALGORITHM, model_root, env=env, startup_timeout=300) as server:
        reply = server.post(photo, "image/png")
        assert reply.status_code == 400
        assert "640 x 480 = 307200 pixels, over the limit of 100000" in reply.json()["error"]
        assert server.post(png(300, 300, 200), "image/png").status_code == 200
    assert "Traceback" not in server.output, server.output[-3000:]
