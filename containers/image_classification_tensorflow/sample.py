"""Image Classification - TensorFlow's conformance sample for the contract suite (tests/contract/).

Its channels are folders of images plus a backbone, so it writes them itself (``write_channels``). TensorFlow
is imported only when the suite calls these functions.
"""

import numpy as np

HYPERPARAMETERS = {"epochs": "1", "batch_size": "8", "learning_rate": "0.01"}
INVALID_HYPERPARAMETERS = [({"epochs": "0"}, "epochs"), ({"learning_rate": "nan"}, "learning_rate"),
                           ({"optimizer": "nope"}, "optimizer")]
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}
SIZE = 32


def _image(colour, rng):
    image = rng.integers(0, 60, (SIZE, SIZE, 3)).astype(np.float32)
    image[8:24, 8:24] = np.array(COLOURS[colour], np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode(image, mime):
    import tensorflow as tf

    return (tf.io.encode_jpeg(image).numpy() if mime == "image/jpeg" else tf.io.encode_png(image).numpy())


def _backbone(path):
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, x).save(path)


def write_channels(root, content_type, input_mode):
    """Write the channels under ``root``/input/data; return their inputdataconfig.json entries."""
    rng = np.random.default_rng(0)
    mime = "image/png" if content_type in ("application/x-image", "image/png") else content_type
    data = root / "input" / "data"
    for colour in COLOURS:
        folder = data / "training" / colour
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(10):
            (folder / f"{i}.{'jpg' if mime == 'image/jpeg' else 'png'}").write_bytes(_encode(_image(colour, rng), mime))
    (data / "model").mkdir(parents=True, exist_ok=True)
    _backbone(data / "model" / "backbone.keras")
    return {"training": {"ContentType": content_type, "TrainingInputMode": input_mode},
            "model": {"ContentType": "application/x-sagemaker-model", "TrainingInputMode": input_mode}}


def requests():
    rng = np.random.default_rng(1)
    image = _image("red", rng)
    return [(mime, _encode(image, "image/jpeg" if mime == "image/jpeg" else "image/png"), 1)
            for mime in ("application/x-image", "image/jpeg", "image/png")]
