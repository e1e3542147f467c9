"""Image folders -> file lists -> tf.data pipelines (parallel decode, resize, batch, prefetch).

A channel holds one sub-folder per class (its name is the label); class indices follow the alphabetical order of
the folder names. Files ending in .jpg, .jpeg or .png (any case) anywhere below a class folder are its images.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ChannelError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG
VALIDATION_FRACTION = 0.2  # held out of `training` per class when there is no `validation` channel
SPLIT_SEED = 20240611
SHUFFLE_SEED = 1234
CACHE_LIMIT_BYTES = 1 << 30  # decoded, resized images are kept in memory when they fit in this


@dataclass
class ImageList:
    """Image file paths and their class indices."""

    paths: list
    labels: np.ndarray

    def __len__(self):
        return len(self.paths)

    def counts(self, num_classes):
        return np.bincount(self.labels, minlength=num_classes).tolist()


def _is_image(path):
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _has_image_signature(path):
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return any(head.startswith(signature) for signature in SIGNATURES)


def _class_images(folder, channel):
    """Image files below one class folder, sorted; files that are not JPEG/PNG are skipped with a warning."""
    good, bad = [], []
    for path in sorted(p for p in folder.rglob("*") if _is_image(p)):
        (good if _has_image_signature(path) else bad).append(path)
    if bad:
        log.warning("Channel %s: skipping %d file(s) whose contents are not JPEG or PNG, e.g. %s", channel,
                    len(bad), ", ".join(str(p.relative_to(folder.parent)) for p in bad[:5]))
    return good


def _class_folders(root, channel):
    if not root.is_dir():
        raise ChannelError(f"Channel {channel!r} has no directory at {root}")
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    loose = [p.name for p in root.iterdir() if _is_image(p)]
    if loose:
        log.warning("Channel %s: ignoring %d image(s) directly in the channel root (e.g. %s); put each image in "
                    "its class's sub-folder", channel, len(loose), ", ".join(sorted(loose)[:3]))
    return folders


def scan_training(root, channel="training"):
    """The class names (alphabetical) and the images of the training channel."""
    folders = _class_folders(Path(root), channel)
    if len(folders) < 2:
        raise ChannelError(
            f"Channel {channel!r} must hold one sub-folder per class (at least 2), each with .jpg/.jpeg/.png "
            f"images; found {len(folders)} sub-folder(s) in {root}"
        )
    paths, labels = [], []
    for index, folder in enumerate(folders):
        images = _class_images(folder, channel)
        if not images:
            raise ChannelError(f"Class folder {folder.name!r} of channel {channel!r} holds no .jpg, .jpeg or .png "
                               "images; remove the folder or add images")
        paths.extend(str(p) for p in images)
        labels.extend([index] * len(images))
    return [f.name for f in folders], ImageList(paths, np.asarray(labels, dtype=np.int64))


def scan_validation(root, class_names, channel="validation"):
    """The images of the validation channel, labelled with the training channel's class indices."""
    index = {name: i for i, name in enumerate(class_names)}
    folders = _class_folders(Path(root), channel)
    unknown = [f.name for f in folders if f.name not in index]
    if unknown:
        raise ChannelError(
            f"Channel {channel!r} has class folder(s) {unknown} that the training channel lacks; the classes are "
            f"{class_names}"
        )
    paths, labels = [], []
    for folder in folders:
        images = _class_images(folder, channel)
        paths.extend(str(p) for p in images)
        labels.extend([index[folder.name]] * len(images))
    if not paths:
        raise ChannelError(f"Channel {channel!r} holds no .jpg, .jpeg or .png images in class sub-folders")
    return ImageList(paths, np.asarray(labels, dtype=np.int64))


def hold_out(images, fraction=VALIDATION_FRACTION, seed=SPLIT_SEED):
    """Split off ``fraction`` of each class (at least one image when it has two or more), deterministically."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in np.unique(images.labels):
        members = np.flatnonzero(images.labels == label)
        members = members[rng.permutation(len(members))]
        count = int(round(fraction * len(members)))
        count = min(max(count, 1), len(members) - 1) if len(members) >= 2 else 0
        val_idx.extend(members[:count])
        train_idx.extend(members[count:])
    train_idx, val_idx = sorted(train_idx), sorted(val_idx)

    def take(indices):
        return ImageList([images.paths[i] for i in indices], images.labels[np.asarray(indices, dtype=np.int64)])

    return take(train_idx), take(val_idx)


def decode_and_resize(encoded, image_size, method):
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 (height, width, 3) in [0, 1]; serving uses the same function."""
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, image_size, method=method)
    return tf.clip_by_value(tf.cast(image, tf.float32) / 255.0, 0.0, 1.0)


def dataset(images, num_classes, image_size, method, batch_size, *, training, binary=False, cache=None,
            seed=SHUFFLE_SEED):
    """Batches of (images in [0, 1], targets): one-hot rows, or a (batch, 1) 0/1 column in binary mode."""
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    image_size = tuple(int(s) for s in image_size)
    if cache is None:
        cache = len(images) * image_size[0] * image_size[1] * 3 * 4 <= CACHE_LIMIT_BYTES

    def load(path, label):
        image = decode_and_resize(tf.io.read_file(path), image_size, method)
        image.set_shape(image_size + (3,))
        if binary:
            target = tf.cast(tf.reshape(label, [1]), tf.float32)
        else:
            target = tf.one_hot(label, num_classes, dtype=tf.float32)
        return image, target

    data = tf.data.Dataset.from_tensor_slices((list(images.paths), images.labels))
    if training and not cache:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    data = data.map(load, num_parallel_calls=autotune, deterministic=not training)
    data = data.ignore_errors(log_warning=True)  # a truncated or corrupt file is skipped, not fatal
    if cache:
        data = data.cache()
        if training:
            data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size).prefetch(autotune)
    options = tf.data.Options()
    options.deterministic = not training
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)
