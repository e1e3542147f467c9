"""Prove with real MXNet that our ``model_algo-1`` is a valid MXNet Module checkpoint, and write fixtures.

Run in a throwaway venv (MXNet must never be a dependency of algobox)::

    python3 -m venv /tmp/mxvenv-ll
    PIP_CONSTRAINT= /tmp/mxvenv-ll/bin/pip install --isolated 'mxnet==1.9.1' 'numpy<1.24' scipy
    PYTHONPATH=. /tmp/mxvenv-ll/bin/python scripts/make_linear_learner_fixtures.py

For each predictor type it builds a LinearModel (our code, numpy only), saves ``model_algo-1``, opens the zip,
and loads the graph with MXNet 1.9.1 three ways users do (``gluon.nn.SymbolBlock.imports``,
``SymbolBlock(outputs=mx.sym.load_json(...))`` + ``load_parameters(..., allow_missing=True)``, and
``mx.mod.Module`` from the checkpoint prefix). It records MXNet's raw scores on fixed inputs in
``tests/fixtures/linear_learner/<name>/expected.json`` next to the model, and checks they equal our
``raw_scores`` (the tests re-check ours against these MXNet figures without MXNet). It also writes a model
with MXNet's own ``Module.save_checkpoint`` and checks that our loader reads it.
"""

import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "linear_learner"
sys.path.insert(0, str(ROOT))

from containers.linear_learner.model import LinearModel  # noqa: E402  (numpy + common only)

import mxnet as mx  # noqa: E402


def cases():
    rng = np.random.default_rng(7)
    d = 6
    yield "binary", LinearModel(rng.normal(size=(d, 1)), [0.25], "binary_classifier", "logistic", 0.62,
                                {"feature_mean": [0.0] * d, "feature_scale": [1.0] * d}, {"num_classes": 2})
    yield "multiclass", LinearModel(rng.normal(size=(d, 4)), rng.normal(size=4), "multiclass_classifier",
                                    "softmax_loss", None, {}, {"num_classes": 4})
    yield "regressor", LinearModel(rng.normal(size=(d, 1)) * 3, [30.0], "regressor", "squared_loss")


def mxnet_scores(folder, inputs):
    symbol, params = str(folder / "mx-mod-symbol.json"), str(folder / "mx-mod-0000.params")
    block = mx.gluon.nn.SymbolBlock.imports(symbol, ["data"], params)
    first = block(mx.nd.array(inputs)).asnumpy()
    block2 = mx.gluon.nn.SymbolBlock(outputs=mx.sym.load_json(open(symbol).read()), inputs=mx.sym.var("data"))
    block2.load_parameters(params, allow_missing=True)
    second = block2(mx.nd.array(inputs)).asnumpy()
    sym, args, aux = mx.model.load_checkpoint(str(folder / "mx-mod"), 0)
    module = mx.mod.Module(sym, data_names=["data"], label_names=None)
    module.bind(data_shapes=[("data", inputs.shape)], for_training=False)
    module.set_params(args, aux)
    module.forward(mx.io.DataBatch([mx.nd.array(inputs)]), is_train=False)
    third = module.get_outputs()[0].asnumpy()
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, third, rtol=1e-6)
    return first


def mxnet_written_model(work):
    """A model written by MXNet's Module.save_checkpoint (names arg:fc0_weight/arg:fc0_bias), zipped."""
    data = mx.sym.var("data")
    out = mx.sym.FullyConnected(data, num_hidden=1, name="fc0")
    weight = np.arange(5, dtype=np.float32).reshape(1, 5) / 10
    mx.model.save_checkpoint(str(work / "mx-mod"), 0, out, {"fc0_weight": mx.nd.array(weight),
                                                            "fc0_bias": mx.nd.array([1.5])}, {})
    model_dir = work / "mxnet-written"
    model_dir.mkdir()
    with zipfile.ZipFile(model_dir / "model_algo-1", "w") as archive:
        archive.write(work / "mx-mod-symbol.json", "mx-mod-symbol.json")
        archive.write(work / "mx-mod-0000.params", "mx-mod-0000.params")
        archive.writestr("additional-params.json", json.dumps({"predictor_type": "regressor",
                                                               "loss": "squared_loss"}))
    return model_dir, weight


def main():
    inputs = np.random.default_rng(11).normal(size=(5, 6)).astype(np.float32)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, model in cases():
            folder = OUT / name
            folder.mkdir()
            model.save(folder)
            unpacked = tmp / name
            with zipfile.ZipFile(folder / "model_algo-1") as archive:
                archive.extractall(unpacked)
            scores = mxnet_scores(unpacked, inputs)
            ours = model.raw_scores(inputs)
            np.testing.assert_allclose(scores, ours, rtol=1e-5, atol=1e-6)
            (folder / "expected.json").write_text(json.dumps({
                "mxnet_version": mx.__version__, "inputs": inputs.tolist(), "mxnet_raw_scores": scores.tolist(),
                "loaders": ["gluon.nn.SymbolBlock.imports", "SymbolBlock(load_json)+load_parameters",
                            "mx.mod.Module(load_checkpoint)"]}, indent=1))
            print(f"{name}: MXNet {mx.__version__} raw scores equal ours (max |diff| "
                  f"{np.abs(scores - ours).max():.2e})")
        model_dir, weight = mxnet_written_model(tmp)
        ours = LinearModel.load(model_dir)
        np.testing.assert_allclose(ours.weights.T, weight)
        np.testing.assert_allclose(ours.bias, [1.5])
        folder = OUT / "mxnet_written"
        shutil.copytree(model_dir, folder)
        (folder / "expected.json").write_text(json.dumps({"weight": weight.tolist(), "bias": [1.5]}))
        print("MXNet-written checkpoint read by LinearModel.load")


if __name__ == "__main__":
    main()
