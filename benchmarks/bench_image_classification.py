"""image-classification-tensorflow speed, printed as ratios from one run.

    .venv/bin/python benchmarks/bench_image_classification.py [--architecture MobileNetV2 --alpha 0.35]
        [--image-size 96] [--per-class 128] [--batch-size 32] [--epochs 4] [--requests 200]

(a) training images/s of ``algobox image-classification-tensorflow train`` (the container: subprocess, callbacks,
    per-epoch validation excluded from the timing) against a plain ``model.fit`` in this process on the same
    backbone, head, batch size and tf.data pipeline (containers/image_classification_tensorflow/data.py); both
    are the median over the epochs after the first (the first one traces the graph). Goal: ratio >= 0.9.
(b) single-image POST /invocations latency (p50/p99, one worker, sequential) against calling the loaded
    model (ImageClassifier.predict: the SavedModel's decode+resize+classify) on the same image in-process.
    Goal: p50 overhead < 20 ms. Also the cold start to a healthy /ping.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import emulator  # noqa: E402
import pack_backbone  # noqa: E402
from emulator import Job  # noqa: E402
from test_image_classification import CLASSES, add_images, draw, encode  # noqa: E402

ALGORITHM = "image-classification-tensorflow"
THROUGHPUT = re.compile(r"#metric train:throughput=(\S+) epoch=(\d+)")


def container_throughput(root, backbone_tar, args):
    job = Job(root)
    add_images(job, "training", CLASSES, args.per_class, seed=0)
    job.add_file("model", "model.tar.gz", backbone_tar.read_bytes())
    job.write_config({"epochs": args.epochs, "batch_size": args.batch_size},
                     {"training": {"ContentType": "application/x-image"}, "model": {}})
    started = time.perf_counter()
    result = job.train(ALGORITHM, timeout=3600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.output[-4000:]}")
    per_epoch = [float(v) for v, epoch in THROUGHPUT.findall(result.output) if int(epoch) > 1]
    return statistics.median(per_epoch), wall, job


def plain_fit_throughput(job, backbone_tar, args):
    """The same backbone, head, optimizer, batch size and tf.data pipeline, with a bare model.fit."""
    import keras

    from common.hyperparameters import HyperparameterSchema
    from containers.image_classification_tensorflow import backbone, data, network

    schema = HyperparameterSchema.from_file(REPO / "containers/image_classification_tensorflow/hyperparameters.json")
    hp = schema.parse({"epochs": str(args.epochs), "batch_size": str(args.batch_size)})
    names, images = data.scan_training(job.root / "input/data/training")
    train_images, _ = data.hold_out(images)
    channel = Path(tempfile.mkdtemp(prefix="bench-backbone-"))
    (channel / "model.tar.gz").write_bytes(backbone_tar.read_bytes())
    loaded = backbone.load(channel)
    keras.utils.set_random_seed(7)
    model, _, _ = network.build(loaded, len(names), hp, train_backbone=True)
    loss, metrics = network.loss_and_metrics(hp, binary=False)
    model.compile(optimizer=network.optimizer(hp), loss=loss, metrics=metrics)
    dataset = data.dataset(train_images, len(names), loaded.image_size, hp["image_resize_interpolation"],
                           args.batch_size, training=True)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rates = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.rates.append(len(train_images) / (self.last - self.start))

    timer = Timer()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(dataset, epochs=args.epochs, verbose=0, shuffle=False, callbacks=[timer])
    return statistics.median(timer.rates[1:])


def latencies(call, image, count):
    for _ in range(10):
        call(image)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call(image)
        times.append((time.perf_counter() - started) * 1000)
    return np.percentile(times, 50), np.percentile(times, 99)


def serving(job, args):
    from containers.image_classification_tensorflow.model import ImageClassifier

    image = encode(draw("circle", np.random.default_rng(3)), "jpg")
    direct = ImageClassifier.load(job.model_dir)
    direct_p50, direct_p99 = latencies(lambda body: direct.predict([body]), image, args.requests)
    # a /ping sent while the worker is still loading TensorFlow times out rather than being refused
    refused, requests.ConnectionError = requests.ConnectionError, requests.RequestException
    started = time.perf_counter()
    try:
        with emulator.serve(ALGORITHM, job.root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"},
                            startup_timeout=120) as server:
            cold = time.perf_counter() - started
            requests.ConnectionError = refused
            session = requests.Session()
            url = server.url + "/invocations"

            def post(body):
                reply = session.post(url, data=body, headers={"Content-Type": "application/x-image"}, timeout=30)
                reply.raise_for_status()

            http_p50, http_p99 = latencies(post, image, args.requests)
    finally:
        requests.ConnectionError = refused
    return cold, (direct_p50, direct_p99), (http_p50, http_p99)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="MobileNetV2")
    parser.add_argument("--alpha", type=float, default=0.35)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone_tar = tmp / "backbone.tar.gz"
        pack = ["--architecture", args.architecture, "--image-size", str(args.image_size), "--output",
                str(backbone_tar)]
        pack_backbone.main(pack + (["--alpha", str(args.alpha)] if args.alpha else []))
        print(f"backbone {args.architecture} alpha={args.alpha} at {args.image_size}px (random weights); "
              f"{4 * args.per_class} images, batch {args.batch_size}, {args.epochs} epochs")

        ours, wall, job = container_throughput(tmp / "job", backbone_tar, args)
        plain = plain_fit_throughput(job, backbone_tar, args)
        print(f"(a) training: container {ours:.1f} images/s (whole job {wall:.1f} s), plain model.fit "
              f"{plain:.1f} images/s -> ratio {ours / plain:.2f} (goal >= 0.9)")

        cold, direct, http = serving(job, args)
        print(f"(b) serving: cold start to healthy /ping {cold:.1f} s (1 worker)")
        print(f"    direct model call p50 {direct[0]:.2f} ms, p99 {direct[1]:.2f} ms; /invocations p50 "
              f"{http[0]:.2f} ms, p99 {http[1]:.2f} ms -> p50 overhead {http[0] - direct[0]:.2f} ms (goal < 20)")


if __name__ == "__main__":
    main()
