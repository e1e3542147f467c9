"""image-classification-tensorflow: hyperparameters as the seed lists them, training through the real
``algobox image-classification-tensorflow train``, serving over real HTTP, incremental training, SIGTERM.

The images are generated: four classes of coloured shapes (circle, cross, square, triangle) drawn at random
positions and sizes on noise, half JPEG and half PNG, of varying sizes. The backbone is a three-layer CNN
packed with scripts/pack_backbone.py, so that training on two CPU cores takes seconds.
"""

import json
import os
import re
import signal
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests

import emulator
from common.hyperparameters import HyperparameterSchema
from common.spec import load_spec
from emulator import REPO, Job

sys.path.insert(0, str(REPO / "scripts"))
import pack_backbone  # noqa: E402

ALGORITHM = "image-classification-tensorflow"
SPEC = load_spec(ALGORITHM)
CLASSES = {"circle": (220, 40, 40), "cross": (40, 200, 40), "square": (40, 60, 220), "triangle": (230, 210, 30)}
IMAGE_SIZE = 48


def metric_values(output, name):
    """Every value of a metric, found with the MetricDefinition regex the spec publishes."""
    regex = SPEC.metric(name).regex_for(name)
    return [float(v) for v in re.findall(regex, output)]


def draw(shape, rng):
    """One RGB uint8 image of ``shape`` on a noisy background."""
    size = int(rng.integers(40, 97))
    image = rng.integers(0, 90, (size, size, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    r = rng.uniform(0.22, 0.38) * size
    cy, cx = rng.uniform(r, size - r), rng.uniform(r, size - r)
    if shape == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    elif shape == "square":
        mask = (abs(yy - cy) <= r * 0.85) & (abs(xx - cx) <= r * 0.85)
    elif shape == "cross":
        t = r * 0.3
        mask = ((abs(yy - cy) <= t) & (abs(xx - cx) <= r)) | ((abs(xx - cx) <= t) & (abs(yy - cy) <= r))
    else:
        top = cy - r
        mask = (yy >= top) & (yy <= cy + r) & (abs(xx - cx) <= (yy - top) * 0.55)
    image[mask] = np.array(CLASSES[shape], np.float32) + rng.normal(0, 20, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image, fmt):
    import tensorflow as tf

    return (tf.io.encode_jpeg(image, quality=90) if fmt == "jpg" else tf.io.encode_png(image)).numpy()


def add_images(job, channel, classes, per_class, seed):
    rng = np.random.default_rng(seed)
    for name in classes:
        for i in range(per_class):
            fmt = "jpg" if i % 2 else "png"
            job.add_file(channel, f"{name}/{i:03d}.{'jpeg' if i % 4 == 1 else fmt}", encode(draw(name, rng), fmt))


def tiny_backbone(path, batch_norm=False, rescale=False):
    """A small CNN: (48, 48, 3) images in [0, 1] (with ``rescale``: in [0, 255], the Keras tutorials' leading
    ``Rescaling(1/255)``) -> 64 features."""
    import keras

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs) if rescale else inputs
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.5)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, x).save(path)
    return path


def model_channel_from(job, model_dir):
    """Pack an earlier job's /opt/ml/model as this job's model channel, as SageMaker delivers it."""
    target = job.root / "input/data/model"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target / "model.tar.gz", "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)


CHANNELS = {"training": {"ContentType": "application/x-image"},
            "model": {"ContentType": "application/x-sagemaker-model"}}


@pytest.fixture(scope="module")
def packed_backbone(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backbone")
    keras_file = tiny_backbone(folder / "tiny.keras")
    assert pack_backbone.main(["--keras-file", str(keras_file), "--output", str(folder / "model.tar.gz")]) == 0
    return folder / "model.tar.gz"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, packed_backbone):
    """One training job: 4 classes x 60 images, 20% held out, 8 epochs."""
    job = Job(tmp_path_factory.mktemp("trained") / "opt_ml")
    add_images(job, "training", CLASSES, 60, seed=0)
    job.add_file("model", "model.tar.gz", packed_backbone.read_bytes())
    job.write_config({"epochs": 8, "learning_rate": 0.003, "batch_size": 32}, CHANNELS)
    scratch = tmp_path_factory.mktemp("trained-tmpdir")
    started = time.monotonic()
    result = job.train(ALGORITHM, env={"TMPDIR": str(scratch)}, timeout=600)
    result.seconds = time.monotonic() - started
    result.scratch = scratch
    assert result.returncode == 0, result.output[-5000:]
    return result


# ---------------------------------------------------------------- hyperparameters, exactly as the seed says

SCHEMA = HyperparameterSchema.from_file(SPEC.folder / "hyperparameters.json")
SEED_DEFAULTS = {
    "augmentation": "False", "augmentation_random_flip": "horizontal_and_vertical",
    "augmentation_random_rotation": 0.2, "augmentation_random_zoom": 0.1, "batch_size": 32, "beta_1": 0.9,
    "beta_2": 0.999, "binary_mode": "False", "dropout_rate": 0.2, "early_stopping": "False",
    "early_stopping_min_delta": 0.0, "early_stopping_patience": 5, "epochs": 3, "epsilon": 1e-7,
    "eval_metric": "accuracy", "image_resize_interpolation": "bilinear", "initial_accumulator_value": 0.0001,
    "label_smoothing": 0.1, "learning_rate": 0.001, "momentum": 0.9, "optimizer": "adam",
    "regularizers_l2": 0.0001, "reinitialize_top_layer": "Auto", "rho": 0.95, "train_only_on_top_layer": "False",
}
BOOLEANS = ("augmentation", "binary_mode", "early_stopping", "train_only_on_top_layer")
UNIT_FLOATS = ("beta_1", "beta_2", "dropout_rate", "early_stopping_min_delta", "epsilon", "initial_accumulator_value",
               "label_smoothing", "learning_rate", "momentum", "regularizers_l2", "rho")
SIGNED_FLOATS = ("augmentation_random_rotation", "augmentation_random_zoom")
POSITIVE_INTS = ("batch_size", "early_stopping_patience", "epochs")
ENUMS = {
    "augmentation_random_flip": ("horizontal_and_vertical", "vertical", "None"),
    "image_resize_interpolation": ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian",
                                   "mitchellcubic"),
    "optimizer": ("adam", "sgd", "nesterov", "rmsprop", "adagrad", "adadelta"),
    "reinitialize_top_layer": ("Auto", "True", "False"),
}

ACCEPTED = (
    [(name, value, value) for name in BOOLEANS for value in ("True", "False")]
    + [(name, text, value) for name in UNIT_FLOATS
       for text, value in (("0", 0.0), ("0.0", 0.0), (".0001", 1e-4), ("1e-7", 1e-7), ("0.5", 0.5), ("1", 1.0),
                           ("1.0", 1.0))]
    + [(name, text, value) for name in SIGNED_FLOATS
       for text, value in (("-1.0", -1.0), ("-1", -1.0), ("-0.3", -0.3), ("0", 0.0), ("0.2", 0.2), ("1.0", 1.0))]
    + [(name, text, value) for name in POSITIVE_INTS for text, value in (("1", 1), ("7", 7), ("1024", 1024))]
    + [(name, value, value) for name, values in ENUMS.items() for value in values]
    + [("eval_metric", "accuracy", "accuracy")]
)
REJECTED = (
    [(name, value) for name in BOOLEANS for value in ("true", "false", "1", "yes", "")]
    + [(name, value) for name in UNIT_FLOATS for value in ("-0.1", "1.01", "2", "abc", "inf")]
    + [(name, value) for name in SIGNED_FLOATS for value in ("-1.01", "1.5", "abc")]
    + [(name, value) for name in POSITIVE_INTS for value in ("0", "-1", "1.5", "ten")]
    + [("augmentation_random_flip", v) for v in ("horizontal", "none", "both")]
    + [("image_resize_interpolation", v) for v in ("cubic", "Bilinear", "lanczos")]
    + [("optimizer", v) for v in ("adamw", "Adam", "ftrl")]
    + [("reinitialize_top_layer", v) for v in ("auto", "true", "yes")]
    + [("eval_metric", v) for v in ("precision", "recall", "auc", "prc", "f1", "Accuracy")]  # binary_mode False
)


def test_schema_defaults_are_the_seeds():
    assert SCHEMA.defaults() == SEED_DEFAULTS


@pytest.mark.parametrize("name,text,value", ACCEPTED)
def test_accepted(name, text, value):
    assert SCHEMA.parse({name: text})[name] == value


@pytest.mark.parametrize("name,text", REJECTED)
def test_rejected(name, text):
    with pytest.raises(Exception, match=f"Invalid hyperparameter {name}="):
        SCHEMA.parse({name: text})


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "auc", "prc"])
def test_eval_metric_beyond_accuracy_needs_binary_mode(metric):
    assert SCHEMA.parse({"binary_mode": "True", "eval_metric": metric})["eval_metric"] == metric
    with pytest.raises(Exception, match="eval_metric"):
        SCHEMA.parse({"binary_mode": "True", "eval_metric": "f1"})


def test_unknown_hyperparameter_and_nan_are_rejected():
    from containers.image_classification_tensorflow.train import check_hyperparameters
    from common.errors import HyperparameterError

    with pytest.raises(Exception, match="image_shape"):
        SCHEMA.parse({"image_shape": "224"})
    with pytest.raises(HyperparameterError, match="learning_rate"):
        check_hyperparameters(SCHEMA.parse({"learning_rate": "nan"}))


def test_every_accepted_value_builds():
    """Every interpolation resizes, every optimizer builds, augmentation extremes and dropout 1.0 run."""
    import tensorflow as tf

    from containers.image_classification_tensorflow import data, network

    png = encode(draw("circle", np.random.default_rng(0)), "png")
    for method in ENUMS["image_resize_interpolation"]:
        image = data.decode_and_resize(tf.constant(png), (20, 30), method).numpy()
        assert image.shape == (20, 30, 3) and 0.0 <= image.min() and image.max() <= 1.0, method
    for name in ENUMS["optimizer"]:
        assert network.optimizer(SCHEMA.parse({"optimizer": name, "epsilon": "0", "momentum": "1"}))
    batch = tf.random.uniform((2, 24, 24, 3))
    for flip in ENUMS["augmentation_random_flip"]:
        for amount in ("-1.0", "-0.3", "0", "1.0"):
            hp = SCHEMA.parse({"augmentation_random_flip": flip, "augmentation_random_rotation": amount,
                               "augmentation_random_zoom": amount})
            for layer in network.augmentation(hp):
                assert layer(batch, training=True).shape == batch.shape
    drop_all = network.DropAll()
    assert float(tf.reduce_max(drop_all(batch, training=True))) == 0.0
    assert np.array_equal(drop_all(batch, training=False).numpy(), batch.numpy())


def test_rejected_hyperparameter_end_to_end_writes_the_failure_file(job):
    add_images(job, "training", ["circle", "square"], 2, seed=3)
    job.add_file("model", "backbone.keras", b"not used")
    job.write_config({"optimizer": "adamw"}, CHANNELS)
    result = job.train(ALGORITHM, timeout=120)
    assert result.returncode == 1
    assert "Invalid hyperparameter optimizer='adamw'" in result.failure
    assert "\"adam\", \"sgd\", \"nesterov\", \"rmsprop\", \"adagrad\" or \"adadelta\"" in result.failure


def test_eval_metric_without_binary_mode_end_to_end(job):
    add_images(job, "training", ["circle", "square"], 2, seed=3)
    job.write_config({"eval_metric": "auc"}, CHANNELS)
    result = job.train(ALGORITHM, timeout=120)
    assert result.returncode == 1
    assert "eval_metric='auc'" in result.failure and "binary_mode" in result.failure


# ---------------------------------------------------------------- channels


def test_missing_model_channel_says_how_to_pack_one(job):
    add_images(job, "training", ["circle", "square"], 2, seed=3)
    job.write_config({}, {"training": {}})
    result = job.train(ALGORITHM, timeout=120)
    assert result.returncode == 1
    assert "model channel is required" in result.failure and "pack_backbone.py" in result.failure


def test_channel_layout_errors(tmp_path):
    from common.errors import ChannelError
    from containers.image_classification_tensorflow import data

    (tmp_path / "only").mkdir()
    (tmp_path / "only/a.png").write_bytes(encode(np.zeros((4, 4, 3), np.uint8), "png"))
    with pytest.raises(ChannelError, match="at least 2"):
        data.scan_training(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("no images")
    with pytest.raises(ChannelError, match="'empty'.*holds no"):
        data.scan_training(tmp_path)
    (tmp_path / "empty/fake.jpg").write_text("not a jpeg")
    (tmp_path / "empty/real.jpg").write_bytes(encode(np.zeros((4, 4, 3), np.uint8), "jpg"))
    names, images = data.scan_training(tmp_path)
    assert names == ["empty", "only"] and len(images) == 2  # fake.jpg skipped with a warning
    validation = tmp_path / "validation"
    (validation / "other").mkdir(parents=True)
    with pytest.raises(ChannelError, match="other"):
        data.scan_validation(validation, names)


def test_hold_out_is_deterministic_and_stratified():
    from containers.image_classification_tensorflow import data

    images = data.ImageList([f"{i}.png" for i in range(100)], np.repeat(np.arange(4), 25))
    train_a, val_a = data.hold_out(images)
    train_b, val_b = data.hold_out(images)
    assert val_a.paths == val_b.paths and train_a.paths == train_b.paths
    assert val_a.counts(4) == [5, 5, 5, 5] and len(train_a) == 80
    assert not set(train_a.paths) & set(val_a.paths)


@pytest.mark.slow
def test_pack_backbone_keras_applications(tmp_path):
    """A keras.applications backbone, randomly initialised, packed as model.tar.gz and loaded as a channel."""
    from containers.image_classification_tensorflow import backbone

    channel = tmp_path / "model"
    channel.mkdir()
    assert pack_backbone.main(["--architecture", "MobileNetV2", "--alpha", "0.35", "--image-size", "32",
                               "--output", str(channel / "model.tar.gz")]) == 0
    loaded = backbone.load(channel)
    assert loaded.kind == "keras" and loaded.image_size == (32, 32) and loaded.layer.output_shape == (None, 1280)
    with pytest.raises(SystemExit, match="download"):
        pack_backbone.main(["--architecture", "MobileNetV2", "--weights", "imagenet", "--output", str(tmp_path)])


# ---------------------------------------------------------------- training and serving


@pytest.mark.slow
def test_the_unpacked_backbone_is_removed_when_the_job_ends(trained):
    """The model channel's archive is unpacked under TMPDIR for the job and gone after it (each job left up to
    210 MB behind)."""
    assert "Unpacking" in trained.output and "model.tar.gz" in trained.output
    assert not list(trained.scratch.glob("algobox-backbone-*"))


def test_training_reaches_90_percent_validation_accuracy(trained):
    accuracy = metric_values(trained.output, "validation:accuracy")
    print(f"validation accuracy by epoch: {accuracy}; training job took {trained.seconds:.1f} s")
    assert len(accuracy) == 8 and accuracy[-1] >= 0.9
    assert len(metric_values(trained.output, "train:accuracy")) == 8
    assert len(metric_values(trained.output, "validation:loss")) == 8
    assert re.search(r"Epoch 8/8: 192 training images in \S+ s \(\S+ images/s\)", trained.output)
    assert "48 validation images from 20% of each class held out" in trained.output
    files = set(trained.model_files)
    assert {"saved_model.pb", "variables", "labels_info.json", "class_label_to_prediction_index.json"} <= files
    labels = json.loads((trained.model_dir / "labels_info.json").read_text())
    assert labels == {"labels": sorted(CLASSES)}
    index = json.loads((trained.model_dir / "class_label_to_prediction_index.json").read_text())
    assert index == {name: i for i, name in enumerate(sorted(CLASSES))}


@pytest.mark.slow
def test_saved_model_takes_encoded_images(trained):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(trained.model_dir))
    serve = loaded.signatures["serving_default"]
    rng = np.random.default_rng(11)
    bodies = [encode(draw(name, rng), "png") for name in sorted(CLASSES)]
    probabilities = serve(image_bytes=tf.constant(bodies))["probabilities"].numpy()
    assert probabilities.shape == (4, 4)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.fixture
def tolerant_ping(monkeypatch):
    """The model takes seconds to load after gunicorn listens, so a /ping may time out before it answers 200;
    let the emulator's wait loop treat a timed-out ping like a refused one."""
    monkeypatch.setattr(emulator.requests, "ConnectionError", requests.RequestException)


@pytest.mark.slow
def test_serving_over_http(trained, tolerant_ping):
    rng = np.random.default_rng(99)
    started = time.monotonic()
    with emulator.serve(ALGORITHM, trained.model_dir.parent, startup_timeout=90) as server:
        cold_start = time.monotonic() - started
        print(f"cold start to a healthy /ping: {cold_start:.1f} s")
        correct = {"jpg": 0, "png": 0}
        for name in CLASSES:
            for fmt, content_type in (("jpg", "image/jpeg"), ("png", "image/png"), ("jpg", "application/x-image"),
                                      ("png", "application/x-image")):
                reply = server.post(encode(draw(name, rng), fmt), content_type, accept="application/json;verbose")
                assert reply.status_code == 200, reply.text
                body = reply.json()
                assert body["labels"] == sorted(CLASSES) and len(body["probabilities"]) == 4
                assert body["predicted_label"] == body["labels"][int(np.argmax(body["probabilities"]))]
                correct[fmt] += body["predicted_label"] == name
        assert correct["jpg"] >= 7 and correct["png"] >= 7, correct

        image = encode(draw("cross", rng), "png")
        plain = server.post(image, "application/x-image")
        assert plain.status_code == 200 and list(plain.json()) == ["probabilities"]
        lines = server.post(image, "application/x-image", accept="application/jsonlines")
        assert lines.status_code == 200 and lines.headers["Content-Type"].startswith("application/jsonlines")
        assert json.loads(lines.text.splitlines()[0]) == plain.json()

        for corrupt in (b"this is not an image", image[: len(image) // 3], b"\xff\xd8\xff\xe0" + b"\x00" * 64):
            reply = server.post(corrupt, "application/x-image")
            assert reply.status_code == 400, reply.text
            assert "image" in reply.json()["error"].lower()
        assert server.post(b"1,2,3", "text/csv").status_code == 415
        assert server.post(image, "application/x-image", accept="text/csv").status_code == 406
        assert server.post(image, "application/x-image").json() == plain.json()  # still serving
        assert server.get("/ping").status_code == 200
    # TensorFlow was imported once, in the master (serving.py), and both forked workers serve (the requests above)
    assert "Imported containers.image_classification_tensorflow.serving before forking the workers" in server.output


def test_serving_imports_tensorflow_without_keras():
    """The master's preload imports TensorFlow without Keras, scikit-learn or pandas (most of the import's cost
    beyond TensorFlow itself), can still run TensorFlow, and leaves Keras importable afterwards."""
    import subprocess

    code = ("import sys; from containers.image_classification_tensorflow import serving; "
            "skipped = [n for n in ('keras', 'sklearn', 'pandas') if n in sys.modules]; "
            "import tensorflow as tf; total = float(tf.reduce_sum(tf.constant([1.0, 2.0]))); "
            "import keras; print('skipped-imported', skipped, total, keras.__name__)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped-imported [] 3.0 keras" in result.stdout


# ---------------------------------------------------------------- incremental training, SIGTERM, SavedModel backbones


@pytest.mark.slow
def test_incremental_training_resumes_and_stops_on_sigterm(tmp_path, trained):
    job = Job(tmp_path / "opt_ml")
    add_images(job, "training", CLASSES, 24, seed=5)
    model_channel_from(job, trained.model_dir)
    job.write_config({"epochs": 500, "batch_size": 16}, CHANNELS)
    process = job.start_train(ALGORITHM)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Epoch 2/500" in line:
            process.send_signal(signal.SIGTERM)
            break
    output, _ = process.communicate(timeout=120)
    output = "".join(lines) + output
    assert process.returncode == 0, output[-5000:]
    assert "Incremental training from a model this algorithm trained: 4 classes" in output
    assert "Kept the top layer of the earlier model (reinitialize_top_layer=Auto)" in output
    # resumed, not restarted: the first epoch is already as good as the first job's last
    assert metric_values(output, "validation:accuracy")[0] >= 0.9
    assert "Training stopped early by a signal" in output
    assert len(metric_values(output, "train:accuracy")) < 10
    assert (job.model_dir / "saved_model.pb").is_file() and (job.model_dir / "labels_info.json").is_file()


@pytest.mark.slow
def test_saved_model_backbone_binary_mode_and_changed_classes(tmp_path):
    """A TF Hub style SavedModel backbone (with batch norm), binary_mode with eval_metric prc, augmentation,
    early stopping and a validation channel; then incremental training with another class set fails clearly."""
    channel = tmp_path / "hub_channel"
    keras_file = tiny_backbone(tmp_path / "tiny_bn.keras", batch_norm=True)
    assert pack_backbone.main(["--keras-file", str(keras_file), "--as-saved-model", "--output", str(channel)]) == 0
    job = Job(tmp_path / "binary")
    add_images(job, "training", ["circle", "square"], 40, seed=7)
    add_images(job, "validation", ["circle", "square"], 8, seed=8)
    for path in channel.rglob("*"):
        if path.is_file():
            job.add_file("model", str(path.relative_to(channel)), path.read_bytes())
    hp = {"epochs": 6, "batch_size": 16, "binary_mode": "True", "eval_metric": "prc", "augmentation": "True",
          "early_stopping": "True", "early_stopping_patience": 2, "optimizer": "nesterov", "learning_rate": 0.01,
          "image_resize_interpolation": "area"}
    job.write_config(hp, {**CHANNELS, "validation": {"ContentType": "image/png"}})
    result = job.train(ALGORITHM, timeout=600)
    assert result.returncode == 0, result.output[-5000:]
    assert "Backbone saved_model (saved_model) takes (48, 48) images" in result.output
    assert metric_values(result.output, "validation:prc")
    assert metric_values(result.output, "validation:accuracy")[-1] >= 0.9
    assert "backbone" in result.model_files  # the fine-tuned SavedModel backbone, for incremental training

    import tensorflow as tf

    serve = tf.saved_model.load(str(job.model_dir)).signatures["serving_default"]
    probability = serve(image_bytes=tf.constant([encode(draw("square", np.random.default_rng(1)), "jpg")]))
    assert probability["probabilities"].shape == (1, 1)  # binary_mode: P(second class, "square")

    changed = Job(tmp_path / "changed")
    add_images(changed, "training", ["circle", "square", "triangle"], 4, seed=9)
    model_channel_from(changed, job.model_dir)
    changed.write_config({"epochs": 1}, CHANNELS)
    result = changed.train(ALGORITHM, timeout=300)
    assert result.returncode == 1
    assert "Incremental training needs the same classes" in result.failure
    assert "['circle', 'square']" in result.failure and "['circle', 'square', 'triangle']" in result.failure


# ---------------------------------------------------------------- the backbone's input range, read from the backbone

# keras.applications families (random weights, tiny): what the container must feed each bare model. The packed
# ones (scripts/pack_backbone.py puts the family's preprocessing in front) all take [0, 1].
APPLICATIONS = [
    ("MobileNet", {"alpha": 0.25}, "tf"),
    ("MobileNetV2", {"alpha": 0.35}, "tf"),
    ("ResNet50V2", {}, "tf"),
    ("DenseNet121", {}, "torch"),
    ("ResNet50", {}, "caffe"),
    ("VGG16", {}, "caffe"),
    ("EfficientNetB0", {}, (0.0, 255.0)),  # include their preprocessing: Rescaling(1/255) [+ Normalization]
    ("EfficientNetV2B0", {}, (0.0, 255.0)),
    ("ConvNeXtTiny", {}, (0.0, 255.0)),  # Normalization with the ImageNet mean/std times 255
    ("MobileNetV3Small", {"alpha": 0.75, "minimalistic": True}, (0.0, 255.0)),  # Rescaling(1/127.5, offset=-1)
    ("Xception", {}, "tf"),  # the smallest inputs these three take: 71 and 75 pixels
    ("InceptionV3", {}, "tf"),
    ("InceptionResNetV2", {}, "tf"),
    ("NASNetMobile", {}, "tf"),
]
SMALLEST_INPUT = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}
PACKED = {"MobileNetV2", "DenseNet121", "VGG16", "MobileNetV3Small"}  # one per kind of packed preprocessing
PACKED_WHOLE = {"MobileNetV3Small"}  # packed as it is (its own Rescaling nested); the others' front on a small body


@pytest.mark.slow
@pytest.mark.parametrize("architecture,kwargs,expected", APPLICATIONS, ids=[a[0] for a in APPLICATIONS])
def test_input_of_keras_applications_models(architecture, kwargs, expected):
    import keras

    from containers.image_classification_tensorflow import preprocessing

    size = SMALLEST_INPUT.get(architecture, 32)
    bare = getattr(keras.applications, architecture)(include_top=False, weights=None, input_shape=(size, size, 3),
                                                     pooling="avg", **kwargs)
    inferred = preprocessing.infer(bare)
    if isinstance(expected, str):
        assert (inferred.input_range, inferred.mode) == ((0.0, 1.0), expected)
        assert f"it is the keras.applications model {bare.name!r}" in inferred.reason
    else:
        assert (inferred.input_range, inferred.mode) == (expected, None)
        assert "written for 8-bit values" in inferred.reason
    if architecture in PACKED:
        if architecture in PACKED_WHOLE:
            packed = pack_backbone.build_keras_backbone(architecture, 32, alpha=kwargs.get("alpha"),
                                                        minimalistic=kwargs.get("minimalistic", False))
        else:  # what pack_backbone puts in front of the architecture, in front of a cheaper body
            inputs = keras.Input((32, 32, 3))
            front = pack_backbone.preprocessing(inputs, architecture)
            packed = keras.Model(inputs, keras.layers.Conv2D(4, 3)(front))
        inferred = preprocessing.infer(packed)
        assert (inferred.input_range, inferred.mode) == ((0.0, 1.0), None)
        assert "its leading" in inferred.reason and "written for values in [0, 1]" in inferred.reason


def test_input_of_plain_keras_models():
    import keras

    from containers.image_classification_tensorflow import preprocessing

    def model(*front):
        inputs = keras.Input((16, 16, 3))
        x = inputs
        for layer in front:
            x = layer(x)
        return keras.Model(inputs, keras.layers.Conv2D(4, 3)(x))

    plain = preprocessing.infer(model())
    assert (plain.input_range, plain.mode) == ((0.0, 1.0), None) and "TF Hub convention" in plain.reason
    rescaled = preprocessing.infer(model(keras.layers.RandomFlip(), keras.layers.Rescaling(1 / 255)))
    assert rescaled.input_range == (0.0, 255.0) and "Rescaling" in rescaled.reason and "1/255" in rescaled.reason
    to_minus1_1 = preprocessing.infer(model(keras.layers.Rescaling(1 / 127.5, offset=-1)))
    assert to_minus1_1.input_range == (0.0, 255.0)
    unit = preprocessing.infer(model(keras.layers.Normalization(mean=[0.5] * 3, variance=[0.06] * 3)))
    assert unit.input_range == (0.0, 1.0)
    eight_bit = preprocessing.infer(model(keras.layers.Normalization(mean=[127.0] * 3, variance=[3600.0] * 3)))
    assert eight_bit.input_range == (0.0, 255.0)


def test_backbone_json_input_is_checked(tmp_path):
    from common.errors import ChannelError
    from containers.image_classification_tensorflow import backbone

    keras_file = tiny_backbone(tmp_path / "backbone.keras")
    for bad, message in (({"input_range": [1, 0]}, "low < high"), ({"input_range": "0-255"}, "input_range"),
                         ({"preprocessing": "inception"}, "preprocessing must be one of"),
                         ({"preprocessing": "caffe", "input_range": [0, 255]}, "not both")):
        (tmp_path / "backbone.json").write_text(json.dumps(bad))
        with pytest.raises(ChannelError, match=message):
            backbone.load(tmp_path)
    (tmp_path / "backbone.json").write_text(json.dumps({"preprocessing": "torch"}))
    loaded = backbone.load(tmp_path)
    assert (loaded.input_range, loaded.mode, loaded.input_reason) == ((0.0, 1.0), "torch", "set in backbone.json")


THREE = ["circle", "cross", "square"]


def train_backbone(tmp_path, files, hp, per_class=20):
    """A job on 3 classes x ``per_class`` images (20% held out) with ``files`` as the model channel."""
    job = Job(tmp_path / "opt_ml")
    add_images(job, "training", THREE, per_class, seed=1)
    for name, data in files.items():
        job.add_file("model", name, data)
    job.write_config(hp, CHANNELS)
    result = job.train(ALGORITHM, timeout=600)
    assert result.returncode == 0, result.output[-5000:]
    return result, job


def classify(model_dir, per_class=3, seed=21):
    """Correct answers of the trained serving SavedModel on fresh images of THREE."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    rng = np.random.default_rng(seed)
    names = [name for name in THREE for _ in range(per_class)]
    probabilities = serve(image_bytes=tf.constant([encode(draw(n, rng), "png") for n in names]))["probabilities"]
    return sum(THREE[i] == name for i, name in zip(np.argmax(probabilities.numpy(), axis=1), names))


def test_plain_backbone_is_fed_0_1(trained):
    assert ("Backbone backbone.keras input: images in [0, 1]: it has no leading Rescaling or Normalization layer"
            in trained.output)
    assert "at chance" not in trained.output


@pytest.mark.slow
def test_backbone_with_leading_rescaling_learns(tmp_path):
    """The issue's case: Rescaling(1/255) first, no backbone.json: fed [0, 255], it learns (it stayed at chance)."""
    keras_file = tiny_backbone(tmp_path / "rescaled.keras", rescale=True)
    result, job = train_backbone(tmp_path, {"backbone.keras": keras_file.read_bytes()},
                                 {"epochs": 6, "learning_rate": 0.01, "batch_size": 16})
    assert re.search(r"Backbone backbone.keras input: images in \[0, 255\]: its leading Rescaling '\w+' multiplies "
                     r"values by 0.003922 overall \(1/255\), which is written for 8-bit values", result.output)
    accuracy = metric_values(result.output, "validation:accuracy")
    print(f"validation accuracy by epoch: {accuracy}")
    assert accuracy[-1] >= 0.8
    assert "at chance" not in result.output
    assert json.loads((job.model_dir / "model_info.json").read_text())["input_range"] == [0.0, 255.0]
    assert classify(job.model_dir) >= 7  # of 9: the serving model rescales too


@pytest.mark.slow
def test_backbone_json_overrides_and_chance_is_diagnosed(tmp_path):
    """backbone.json's input_range wins over the model's Rescaling; fed [0, 1] it divides by 255 twice and stays
    at chance, and the log says why that may be."""
    keras_file = tiny_backbone(tmp_path / "rescaled.keras", rescale=True)
    files = {"backbone.keras": keras_file.read_bytes(), "backbone.json": b'{"input_range": [0, 1]}'}
    result, _ = train_backbone(tmp_path, files, {"epochs": 5, "learning_rate": 0.01, "batch_size": 16})
    assert ("The backbone's input is set in backbone.json, which overrides what backbone.keras suggests by itself: "
            "images in [0, 255]") in result.output
    assert "Backbone backbone.keras input: images in [0, 1]: set in backbone.json" in result.output
    assert max(metric_values(result.output, "validation:accuracy")) <= 0.5
    warnings = [line for line in result.output.splitlines() if "Training accuracy has stayed at chance" in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0] and "(0.333, the largest class's share) for 3 epochs" in warnings[0]
    for cause in ("the input range: the backbone gets images in [0, 1]: set in backbone.json",
                  "set \"input_range\" in backbone.json", "train_only_on_top_layer='False'",
                  "the learning rate (0.01 with adam)"):
        assert cause in warnings[0], cause


def test_preprocessing_modes_are_keras_applications_preprocess_input():
    """The container's 'tf', 'torch' and 'caffe' layers (on [0, 1] images) compute what keras.applications'
    preprocess_input computes on the same images in [0, 255]."""
    import keras

    from containers.image_classification_tensorflow import preprocessing

    images = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    for mode in preprocessing.MODES:
        inputs = keras.Input((8, 8, 3))
        ours = keras.Model(inputs, preprocessing.apply(inputs, mode)).predict(images, verbose=0)
        theirs = keras.applications.imagenet_utils.preprocess_input(images * 255.0, mode=mode)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3, err_msg=mode)


@pytest.mark.slow
def test_backbone_json_preprocessing_mode_learns(tmp_path):
    """A backbone that wants keras.applications 'caffe' input (BGR, ImageNet mean, [0, 255]) learns when fed it:
    the path of a bare ResNet50/VGG16 (recognised by name: test_input_of_keras_applications_models), with a
    backbone small enough to train here (random-weight keras.applications models do not learn in seconds)."""
    keras_file = tiny_backbone(tmp_path / "caffe.keras")
    files = {"backbone.keras": keras_file.read_bytes(), "backbone.json": b'{"preprocessing": "caffe"}'}
    result, job = train_backbone(tmp_path, files, {"epochs": 6, "learning_rate": 0.003, "batch_size": 16})
    assert ("Backbone backbone.keras input: keras.applications 'caffe' preprocessing (RGB to BGR, minus the "
            "ImageNet mean on [0, 255]): set in backbone.json") in result.output
    accuracy = metric_values(result.output, "validation:accuracy")
    print(f"validation accuracy by epoch: {accuracy}")
    assert accuracy[-1] >= 0.8
    assert json.loads((job.model_dir / "model_info.json").read_text())["preprocessing"] == "caffe"
    assert classify(job.model_dir) >= 7


def test_chance_watch_needs_a_streak_and_warns_once():
    from containers.image_classification_tensorflow.backbone import Backbone
    from containers.image_classification_tensorflow.train import ChanceWatch

    loaded = Backbone(None, "keras", (8, 8), (0.0, 255.0), None, "its leading Rescaling says so")
    hp = SCHEMA.parse({"train_only_on_top_layer": "True", "learning_rate": "0.5"})
    watch = ChanceWatch([100, 100, 100, 100], hp, loaded)  # chance 0.25; 400 images: limit 0.25 + 0.05
    assert [watch.update(a) for a in (0.26, 0.29, 0.6, 0.3, 0.25)] == [None] * 5  # 0.6 broke the streak
    warning = watch.update(0.27)
    assert "stayed at chance (0.250, the largest class's share) for 3 epochs" in warning
    assert "images in [0, 255]: its leading Rescaling says so" in warning
    assert "a frozen backbone (train_only_on_top_layer='True')" in warning and "(0.5 with adam)" in warning
    assert watch.update(0.25) is None  # once
    small = ChanceWatch([10, 30], hp, loaded)  # chance 0.75 of 40: two standard errors, 0.137, beyond 0.05
    assert [small.update(a) for a in (0.85, 0.88, 0.8)][-1] is not None
    assert ChanceWatch([10, 30], hp, loaded).update(0.9) is None


# ---------------------------------------------------------------- keras.applications families that learn here

# Without pretrained weights (nothing is downloaded) a family is trained from random weights, whole, through the
# container. VGG (no normalisation) and ConvNeXt (layer normalisation) below also show the input range matters;
# the batch-normalised families after them learn because the container re-estimates their batch-norm statistics
# before each validation and before saving (batchnorm.py): on the moving averages a few hundred steps leave
# near their initial values they stayed at chance on held-out images while training accuracy climbed.
FROM_SCRATCH = [
    pytest.param("VGG16", "keras.applications 'caffe' preprocessing (RGB to BGR, minus the ImageNet mean on [0, 255]): "
                          "it is the keras.applications model 'vgg16'", id="VGG16"),
    # ConvNeXtTiny takes 193 s on a quiet 2-core machine (17 min at load 25), too long for `make test`:
    # ALGOBOX_LONG_TESTS=1 runs it (it passed in the integration run of 2026-12-01)
    pytest.param("ConvNeXtTiny", "images in [0, 255]: its leading Normalization", id="ConvNeXtTiny",
                 marks=pytest.mark.skipif(os.environ.get("ALGOBOX_LONG_TESTS") != "1",
                                          reason="ConvNeXtTiny from scratch takes minutes: ALGOBOX_LONG_TESTS=1")),
]
COLOURS = {"blue": (40, 60, 220), "green": (40, 200, 40), "red": (220, 40, 40)}
FROM_SCRATCH_HP = {"epochs": 3, "learning_rate": 0.0001, "batch_size": 8}


def paint(name, rng):
    """One RGB uint8 image: a block of the class's colour (with noise) covering most of a noise image."""
    size = int(rng.integers(40, 97))
    image = rng.integers(0, 256, (size, size, 3)).astype(np.float32)
    height, width = (int(size * rng.uniform(0.7, 1.0)) for _ in range(2))
    top, left = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
    image[top:top + height, left:left + width] = np.array(COLOURS[name], np.float32) + rng.normal(0, 25, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def colour_job(root, files, hp, per_class=24):
    """A training job on the three COLOURS classes (20% held out) with ``files`` as the model channel."""
    job = Job(root)
    rng = np.random.default_rng(1)
    for name in COLOURS:
        for i in range(per_class):
            job.add_file("training", f"{name}/{i:03d}.png", encode(paint(name, rng), "png"))
    for name, data in files.items():
        job.add_file("model", name, data)
    job.write_config(hp, CHANNELS)
    result = job.train(ALGORITHM, timeout=900)
    assert result.returncode == 0, result.output[-5000:]
    return result, job


@pytest.mark.slow
@pytest.mark.parametrize("architecture,inferred", FROM_SCRATCH)
def test_family_learns_and_a_wrong_input_range_does_not(tmp_path, architecture, inferred):
    """(a) packed by scripts/pack_backbone.py (random weights), and (b) saved bare as keras.applications builds
    it, the family trains whole and learns; (b)'s input is read from the model. (c) The backbone (b) trained is
    then a pretrained backbone: frozen (train_only_on_top_layer), a new top layer learns on it when the
    container feeds it as read from the model, and stays at chance when backbone.json says [0, 1] (what the
    container fed every backbone before it read the range from the model)."""
    import keras
    from concurrent.futures import ThreadPoolExecutor

    packed = tmp_path / "packed.tar.gz"
    assert pack_backbone.main(["--architecture", architecture, "--image-size", "32", "--output", str(packed)]) == 0
    bare = tmp_path / "bare.keras"
    getattr(keras.applications, architecture)(include_top=False, weights=None, input_shape=(32, 32, 3),
                                              pooling="avg").save(bare)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(colour_job, tmp_path / "packed", {"model.tar.gz": packed.read_bytes()}, FROM_SCRATCH_HP),
                pool.submit(colour_job, tmp_path / "bare", {"backbone.keras": bare.read_bytes()}, FROM_SCRATCH_HP)]
        (packed_result, _), (bare_result, bare_job) = (job.result() for job in jobs)
    assert "input: images in [0, 1]: its leading Rescaling 'to_0_255'" in packed_result.output
    assert f"Backbone backbone.keras input: {inferred}" in bare_result.output
    for result in (packed_result, bare_result):
        accuracy = metric_values(result.output, "validation:accuracy")
        print(f"{architecture} from scratch: validation accuracy by epoch {accuracy}")
        assert accuracy[-1] >= 0.9

    pretrained = (bare_job.model_dir / "backbone.keras").read_bytes()
    # two epochs at the default learning rate: fed as read, the first is at >= 0.9 already; fed [0, 1], a top
    # layer can still amplify the 255-fold smaller differences, slowly (README, Tests)
    frozen = {"epochs": 2, "batch_size": 8, "train_only_on_top_layer": "True"}
    wrong = {"backbone.keras": pretrained, "backbone.json": b'{"input_range": [0, 1]}'}
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(colour_job, tmp_path / "right", {"backbone.keras": pretrained}, frozen),
                pool.submit(colour_job, tmp_path / "wrong", wrong, frozen)]
        (right, _), (wrong_result, _) = (job.result() for job in jobs)
    right_accuracy = metric_values(right.output, "validation:accuracy")
    wrong_accuracy = metric_values(wrong_result.output, "validation:accuracy")
    print(f"{architecture} pretrained, frozen: fed as read {right_accuracy}; fed [0, 1] {wrong_accuracy}")
    assert f"Backbone backbone.keras input: {inferred}" in right.output and min(right_accuracy) >= 0.9
    assert "Backbone backbone.keras input: images in [0, 1]: set in backbone.json" in wrong_result.output
    # fed [0, 1] the top layer sees 255-fold smaller differences: at chance (0.33) in most runs, but how far a
    # top layer amplifies them depends on the backbone this test trained, and one CI run reached 0.67 in epoch 1
    # (10 of 15 held-out images); what the range decides is the gap to the right range, which is at >= 0.9
    assert max(wrong_accuracy) <= min(right_accuracy) - 0.2, (right_accuracy, wrong_accuracy)


def test_precise_batch_norm_statistics_are_those_of_all_images():
    """The re-estimated moving mean and variance are the mean and variance over all the images seen (pooled
    over batches of different means), the momentum is kept, and a frozen layer is not touched."""
    import keras
    import tensorflow as tf

    from containers.image_classification_tensorflow import batchnorm

    inputs = keras.Input((4, 4, 3))
    nested = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.BatchNormalization(momentum=0.99)])
    frozen = keras.layers.BatchNormalization(momentum=0.9)
    frozen.trainable = False
    features = frozen(nested(inputs))
    body = keras.Model(inputs, features)
    layers = batchnorm.batch_norm_layers(body)
    assert layers == [nested.layers[0]]
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.normal(i, 1.0 + i, (6, 4, 4, 3)) for i in range(4)]).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images)))).batch(6)
    precise = batchnorm.PreciseBatchNorm(body, layers, dataset, len(images), 6)
    precise.estimate()
    bn = layers[0]
    np.testing.assert_allclose(bn.moving_mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), images.var(axis=(0, 1, 2)), rtol=1e-4)
    assert bn.momentum == 0.99 and precise.fresh and precise.batches == 4
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(frozen.moving_variance.numpy(), np.ones(3))


@pytest.mark.slow
def test_frozen_backbone_keeps_its_batch_norm_statistics(tmp_path):
    """train_only_on_top_layer='True': the backbone runs in inference mode and its batch-norm statistics are not
    re-estimated: the saved backbone has exactly the ones it came with."""
    import keras

    original = tiny_backbone(tmp_path / "tiny_bn.keras", batch_norm=True)
    job = Job(tmp_path / "frozen")
    add_images(job, "training", ["circle", "square"], 12, seed=3)
    job.add_file("model", "backbone.keras", original.read_bytes())
    job.write_config({"epochs": 2, "batch_size": 8, "train_only_on_top_layer": "True"}, CHANNELS)
    result = job.train(ALGORITHM, timeout=600)
    assert result.returncode == 0, result.output[-5000:]
    assert "Batch-norm statistics: the backbone is frozen (train_only_on_top_layer='True')" in result.output
    assert "batch-norm statistics re-estimated" not in result.output
    before = [layer for layer in keras.models.load_model(original).layers if "batch_normalization" in layer.name]
    after = [layer for layer in keras.models.load_model(job.model_dir / "backbone.keras").layers
             if "batch_normalization" in layer.name]
    assert len(before) == len(after) == 3
    for old, new in zip(before, after):
        for a, b in zip(old.get_weights(), new.get_weights()):
            np.testing.assert_array_equal(a, b)


LONG = pytest.mark.skipif(os.environ.get("ALGOBOX_LONG_TESTS") != "1",
                          reason="this family from scratch takes minutes on 2 cores: ALGOBOX_LONG_TESTS=1")
# The smallest member of each batch-normalised family scripts/pack_backbone.py packs, at the smallest input it
# takes (Keras 3 has no RegNet), packed with random weights, and the epochs it is trained for (the ones that learn
# in the first epochs get fewer: tracing the step is fixed, each epoch of a large one costs tens of seconds).
# The ones over about 1.5 minutes on 2 cores run with ALGOBOX_LONG_TESTS=1 (README, Tests, has every family's
# figures).
BATCH_NORMALISED = [
    pytest.param("MobileNet", 32, ["--alpha", "0.25"], 20, id="MobileNet"),
    pytest.param("MobileNetV3Small", 32, ["--alpha", "0.75", "--minimalistic"], 20, id="MobileNetV3Small"),
    pytest.param("MobileNetV2", 32, ["--alpha", "0.35"], 20, id="MobileNetV2", marks=LONG),
    pytest.param("ResNet50", 32, [], 20, id="ResNet50", marks=LONG),
    pytest.param("ResNet50V2", 32, [], 6, id="ResNet50V2", marks=LONG),
    pytest.param("DenseNet121", 32, [], 6, id="DenseNet121", marks=LONG),
    pytest.param("EfficientNetB0", 32, [], 6, id="EfficientNetB0", marks=LONG),
    pytest.param("EfficientNetV2B0", 32, [], 6, id="EfficientNetV2B0", marks=LONG),
    pytest.param("NASNetMobile", 32, [], 6, id="NASNetMobile", marks=LONG),
    pytest.param("Xception", 71, [], 6, id="Xception", marks=LONG),
    pytest.param("InceptionV3", 75, [], 6, id="InceptionV3", marks=LONG),
    pytest.param("InceptionResNetV2", 75, [], 6, id="InceptionResNetV2", marks=LONG),
]
BATCH_NORMALISED_HP = {"learning_rate": 0.003, "batch_size": 8}


@pytest.mark.slow
@pytest.mark.parametrize("architecture,size,options,epochs", BATCH_NORMALISED)
def test_batch_normalised_family_learns(tmp_path, architecture, size, options, epochs):
    """Packed by scripts/pack_backbone.py with random weights and trained whole, the family learns the three
    colours: validation (in inference mode, on the re-estimated batch-norm statistics) well above chance, and the
    saved serving model, on images it has never seen, as well (it carries the statistics validation used)."""
    import tensorflow as tf

    packed = tmp_path / "packed.tar.gz"
    assert pack_backbone.main(["--architecture", architecture, "--image-size", str(size), *options,
                               "--output", str(packed)]) == 0
    started = time.monotonic()
    result, job = colour_job(tmp_path / "job", {"model.tar.gz": packed.read_bytes()},
                             {**BATCH_NORMALISED_HP, "epochs": epochs}, per_class=40)
    seconds = time.monotonic() - started
    accuracy = metric_values(result.output, "validation:accuracy")
    assert re.search(r"Batch-norm statistics: the backbone trains and has \d+ BatchNormalization layers", result.output)
    assert len(re.findall(r"batch-norm statistics re-estimated \(", result.output)) == epochs

    model = tf.saved_model.load(str(job.model_dir))
    rng = np.random.default_rng(2)  # other images than the job's
    names = sorted(COLOURS)
    images = [(name, encode(paint(name, rng), "png")) for name in names for _ in range(10)]
    probabilities = model.signatures["serving_default"](image_bytes=tf.constant([b for _, b in images]))
    predicted = np.argmax(probabilities["probabilities"].numpy(), axis=1)
    served = float(np.mean([names[p] == name for p, (name, _) in zip(predicted, images)]))
    print(f"{architecture} {size} px from scratch: validation accuracy by epoch {accuracy}; served on 30 new "
          f"images {served:.3f}; job {seconds:.0f} s")
    # on the moving averages these stay at 0.33 (chance) in every epoch; with the estimate they learn, but a
    # 24-image validation set and CPU kernels that are not bit-reproducible swing the late epochs (MobileNet:
    # 0.67-0.96 from epoch 9 on), so: the best of the last three epochs, and the served model (the last epoch's)
    # at twice chance or better
    assert max(accuracy[-3:]) >= 0.75 and served >= 0.67, (accuracy, served)
