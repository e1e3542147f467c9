#!/usr/bin/env python3
"""Pack a backbone as the ``model`` channel of image-classification-tensorflow (a directory or a model.tar.gz).

The packed backbone maps float images in [0, 1] to a feature vector (include_top=False, pooling="avg"): the
architecture's own preprocessing (scaling to [-1, 1], mean/std, BGR) is built into the packed model, so the
container reads [0, 1] from its leading layers. A --keras-file model's input range is read the same way from its
own leading Rescaling/Normalization layers (or its keras.applications name) unless --input-range says it.

    # a keras.applications architecture, randomly initialised (nothing is downloaded)
    python scripts/pack_backbone.py --architecture MobileNetV2 --alpha 0.35 --image-size 96 --output model.tar.gz
    # the same with ImageNet weights you already have (e.g. the *_notop.h5 file Keras publishes)
    python scripts/pack_backbone.py --architecture MobileNetV2 --image-size 224 \\
        --weights mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 --output model.tar.gz
    # a Keras model file of your own (images -> features or a feature map; the range is read from the model)
    python scripts/pack_backbone.py --keras-file my_backbone.keras --output model.tar.gz
    # a TF Hub TF2 feature-vector SavedModel you downloaded and unpacked
    python scripts/pack_backbone.py --saved-model ./imagenet_mobilenet_v2_100_224_feature_vector --image-size 224 \\
        --output model.tar.gz
"""

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The preprocess_input modes of the keras.applications families, shared with the container.
from containers.image_classification_tensorflow.preprocessing import apply as apply_mode  # noqa: E402
from containers.image_classification_tensorflow.preprocessing import family  # noqa: E402

# Everything not in preprocessing.FAMILIES (EfficientNet*, EfficientNetV2*, ConvNeXt*, MobileNetV3*) rescales by
# itself and takes [0, 255].
ALPHA_ARCHITECTURES = ("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large")


def preprocessing(x, architecture):
    """From images in [0, 1] to what the architecture's body expects."""
    import keras

    kind = family(architecture)
    if kind in ("tf", "torch", "caffe"):
        return apply_mode(x, kind)
    return keras.layers.Rescaling(255.0, name="to_0_255")(x)


def application(architecture, image_size, weights, alpha, minimalistic=False):
    import keras

    constructor = getattr(keras.applications, architecture, None)
    if constructor is None or not callable(constructor) or architecture[0].islower():
        names = sorted(n for n in dir(keras.applications) if n[0].isupper())
        raise SystemExit(f"Unknown architecture {architecture!r}; keras.applications has: {', '.join(names)}")
    if weights == "imagenet":
        raise SystemExit("--weights imagenet would download from the internet; give the path of a weights file "
                         "you have (the *_notop.h5 file), or leave --weights out for random initialisation")
    kwargs = {"include_top": False, "weights": weights, "input_shape": (image_size, image_size, 3),
              "pooling": "avg"}
    if alpha is not None:
        if architecture not in ALPHA_ARCHITECTURES:
            raise SystemExit(f"--alpha applies to {', '.join(ALPHA_ARCHITECTURES)} only")
        kwargs["alpha"] = alpha
    if minimalistic:
        if not architecture.startswith("MobileNetV3"):
            raise SystemExit("--minimalistic applies to MobileNetV3Small and MobileNetV3Large only")
        kwargs["minimalistic"] = True
    if architecture.startswith("MobileNetV3"):
        kwargs["include_preprocessing"] = True
    return constructor(**kwargs)


def build_keras_backbone(architecture, image_size, weights=None, alpha=None, minimalistic=False):
    """``[0, 1]`` images -> the architecture's preprocessing -> features, as one Keras model."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    body = application(architecture, image_size, weights, alpha, minimalistic)
    outputs = body(preprocessing(inputs, architecture))
    return keras.Model(inputs, outputs, name=f"{architecture.lower()}_backbone")


def write_keras(model, folder, info):
    model.save(folder / "backbone.keras")
    (folder / "backbone.json").write_text(json.dumps(info, indent=2))


def write_hub_saved_model(model, folder, info):
    """A TF Hub style (TF2 reusable) SavedModel: ``__call__(images, training)``, ``variables`` and friends."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model
    spec = tf.TensorSpec((None, *model.input_shape[1:3], 3), tf.float32)
    call = tf.function(lambda images, training=False: model(images, training=training))
    call.get_concrete_function(spec, training=True)
    call.get_concrete_function(spec, training=False)
    module.__call__ = call
    module.variables_list = list(model.variables)
    tf.saved_model.save(module, str(folder / "saved_model"))
    (folder / "saved_model" / "backbone.json").write_text(json.dumps(info, indent=2))


def copy_saved_model(source, folder, info):
    source = Path(source)
    if not (source / "saved_model.pb").is_file():
        raise SystemExit(f"{source} is not a SavedModel directory (no saved_model.pb)")
    shutil.copytree(source, folder / "saved_model")
    (folder / "saved_model" / "backbone.json").write_text(json.dumps(info, indent=2))


def copy_keras_file(source, folder, info):
    source = Path(source)
    if source.suffix.lower() not in (".keras", ".h5"):
        raise SystemExit(f"{source} must be a .keras or .h5 file")
    shutil.copyfile(source, folder / f"backbone{source.suffix.lower()}")
    (folder / "backbone.json").write_text(json.dumps(info, indent=2))


def write_output(folder, output):
    output = Path(output)
    if output.name.endswith((".tar.gz", ".tgz")):
        output.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(output, "w:gz") as tar:
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    else:
        if output.exists() and any(output.iterdir()):
            raise SystemExit(f"{output} exists and is not empty")
        shutil.copytree(folder, output, dirs_exist_ok=True)
    return output


def pack(args):
    if args.architecture and args.input_range:
        raise SystemExit("--input-range applies to --keras-file and --saved-model; a packed --architecture takes "
                         "[0, 1] images")
    info = {"input_range": list(args.input_range)} if args.input_range else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.saved_model:
            if args.image_size:
                info["image_size"] = [args.image_size, args.image_size]
            copy_saved_model(args.saved_model, folder, info)
        elif args.keras_file:
            if args.image_size:
                info["image_size"] = [args.image_size, args.image_size]
            if args.as_saved_model:
                import keras

                write_hub_saved_model(keras.models.load_model(args.keras_file, compile=False), folder, info)
            else:
                copy_keras_file(args.keras_file, folder, info)
        else:
            image_size = args.image_size or 224
            model = build_keras_backbone(args.architecture, image_size, args.weights, args.alpha, args.minimalistic)
            info.update(image_size=[image_size, image_size], architecture=args.architecture,
                        weights=Path(args.weights).name if args.weights else "random")
            if args.alpha is not None:
                info["alpha"] = args.alpha
            if args.minimalistic:
                info["minimalistic"] = True
            (write_hub_saved_model if args.as_saved_model else write_keras)(model, folder, info)
        return write_output(folder, args.output)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--architecture", help="a keras.applications model, e.g. MobileNetV2, EfficientNetB0")
    source.add_argument("--keras-file", help="a .keras/.h5 backbone of your own")
    source.add_argument("--saved-model", help="a TF2 SavedModel directory (e.g. a TF Hub feature vector)")
    parser.add_argument("--image-size", type=int, help="square input size (default 224 for --architecture)")
    parser.add_argument("--alpha", type=float, help="width multiplier of MobileNet/MobileNetV2/MobileNetV3")
    parser.add_argument("--minimalistic", action="store_true",
                        help="MobileNetV3's minimalistic variant (no squeeze-excite, hard-swish or 5x5 convolutions)")
    parser.add_argument("--weights", help="a weights file you have for --architecture (default: random)")
    parser.add_argument("--input-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="value range the --keras-file/--saved-model model expects (default: a Keras model's "
                             "is read from its leading layers; a SavedModel's is [0, 1])")
    parser.add_argument("--as-saved-model", action="store_true",
                        help="write a TF Hub style SavedModel (__call__(images, training)) instead of a .keras file")
    parser.add_argument("--output", required=True, help="a directory, or a file ending in .tar.gz")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    output = pack(args)
    print(f"Packed the backbone into {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
