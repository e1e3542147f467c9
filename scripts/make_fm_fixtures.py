"""Write the Factorization Machines MXNet files with real MXNet 1.9.1, and prove ours work in MXNet.

Run it in a throwaway venv (MXNet must never be a dependency of algobox)::

    python3 -m venv /tmp/mxvenv-fm
    PIP_CONSTRAINT= /tmp/mxvenv-fm/bin/pip install --isolated 'mxnet==1.9.1' 'numpy<1.24'
    /tmp/mxvenv-fm/bin/python scripts/make_fm_fixtures.py

What it does:

1. Builds the FM graph with ``mx.sym`` for both predictor types and writes it to
   ``containers/factorization_machines/symbols/<predictor_type>.json``, the ``symbol.json`` our models carry.
2. Writes ``model_algo-1`` zips the way Amazon's are laid out, with MXNet (``Module.save_checkpoint``, then
   zipped as ``symbol.json`` + ``params``): one dense, one whose ``w1_weight`` and ``v`` are ``row_sparse``
   NDArrays, into ``tests/fixtures/factorization_machines/``, with MXNet's own predictions for a few rows
   (dense and CSR inputs through the loaded graph) in ``expected.json``.
3. Writes a model with *our* ``artifact.save`` and runs the users' code on it: unzip, rename,
   ``mx.module.Module.load(prefix, 0, False, label_names=['out_label'])``, ``_arg_params['v']``, and the loaded
   graph's predictions, which must equal the FM formula. That file is kept as ``ours_model_algo-1`` so the
   tests can check our writer still produces those bytes.
"""

import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from containers.factorization_machines import artifact  # noqa: E402  (numpy + stdlib + common.ndarray)

OUT = ROOT / "tests" / "fixtures" / "factorization_machines"
D, K = 7, 3


def check(cond, message):
    if not cond:
        raise SystemExit(f"FAILED: {message}")
    print(f"ok   {message}")


def fm_symbol(mx, binary):
    data = mx.sym.Variable("data")
    w0 = mx.sym.Variable("w0_weight", shape=(1,))
    w1 = mx.sym.Variable("w1_weight")
    v = mx.sym.Variable("v")
    linear = mx.sym.dot(data, w1)
    xv = mx.sym.dot(data, v)
    x2v2 = mx.sym.dot(mx.sym.square(data), mx.sym.square(v))
    pair = 0.5 * mx.sym.sum(mx.sym.square(xv) - x2v2, axis=1, keepdims=True)
    score = mx.sym.broadcast_add(linear + pair, mx.sym.reshape(w0, shape=(1, 1)))
    output = mx.sym.LogisticRegressionOutput if binary else mx.sym.LinearRegressionOutput
    return output(score, name="out")


def parameters(seed):
    rng = np.random.default_rng(seed)
    w0 = np.array([0.25], np.float32)
    w = rng.normal(0, 0.5, (D, 1)).astype(np.float32)
    v = rng.normal(0, 0.5, (D, K)).astype(np.float32)
    w[4] = 0
    v[[2, 4]] = 0  # rows a sparse trainer never touched: absent from a row_sparse array
    return w0, w, v


def inputs():
    rng = np.random.default_rng(3)
    x = (rng.random((5, D)) < 0.4) * rng.integers(1, 3, (5, D))
    x[0] = 0
    return x.astype(np.float32)


def formula(w0, w, v, x):
    s = x.astype(np.float64) @ v
    return w0[0] + (x @ w)[:, 0] + 0.5 * ((s * s).sum(1) - ((x * x) @ (v * v)).sum(1))


def module_predict(mx, prefix, x, sparse_input):
    """The users' code (Module.load), then the loaded graph evaluated with the loaded params on dense or CSR data."""
    module = mx.module.Module.load(prefix, 0, False, label_names=["out_label"])
    data = mx.nd.sparse.csr_matrix(x) if sparse_input else mx.nd.array(x)
    args = {name: value.tostype("default") for name, value in module._arg_params.items()}
    out = module.symbol.eval(ctx=mx.cpu(), data=data, out_label=mx.nd.zeros((x.shape[0], 1)), **args)
    return module, out[0].asnumpy()[:, 0]


def mxnet_model(mx, tmp, name, predictor_type, stypes):
    """A model_algo-1 written by MXNet: save_checkpoint of the graph and params, zipped as Amazon's."""
    w0, w, v = parameters(1 if predictor_type == "binary_classifier" else 2)
    sym = fm_symbol(mx, predictor_type == "binary_classifier")
    args = {"w0_weight": mx.nd.array(w0), "w1_weight": mx.nd.array(w).tostype(stypes),
            "v": mx.nd.array(v).tostype(stypes)}
    prefix = str(Path(tmp, name))
    mx.model.save_checkpoint(prefix, 0, sym, args, {})
    with zipfile.ZipFile(OUT / name, "w") as archive:
        archive.write(f"{prefix}-symbol.json", artifact.SYMBOL_MEMBER)
        archive.write(f"{prefix}-0000.params", artifact.PARAMS_MEMBER)
    saved = mx.nd.load(f"{prefix}-0000.params")
    check({k: a.stype for k, a in saved.items()} == {"arg:w0_weight": "default", "arg:w1_weight": stypes,
                                                     "arg:v": stypes}, f"{name}: params stored {stypes}")
    x = inputs()
    _, dense_out = module_predict(mx, prefix, x, False)
    _, csr_out = module_predict(mx, prefix, x, True)
    raw = formula(w0, w, v, x)
    want = 1 / (1 + np.exp(-raw)) if predictor_type == "binary_classifier" else raw
    check(np.allclose(dense_out, want, atol=1e-5) and np.allclose(csr_out, want, atol=1e-5),
          f"{name}: MXNet's forward pass is the FM formula (dense and csr data)")
    return {"writer": f"mxnet {mx.__version__} save_checkpoint, zipped", "storage": stypes,
            "predictor_type": predictor_type, "w0": w0.tolist(), "w": w[:, 0].tolist(), "v": v.tolist(),
            "inputs": x.tolist(), "mxnet_predictions": dense_out.tolist()}


def ours_in_mxnet(mx, tmp, predictor_type):
    """Our artifact.save, opened with the users' MXNet code."""
    w0, w, v = parameters(5)
    name = f"ours_{predictor_type}_model_algo-1"
    artifact.save(OUT / name, w0, w, v, predictor_type)
    work = Path(tmp, "ours")
    work.mkdir(exist_ok=True)
    with zipfile.ZipFile(OUT / name) as archive:
        check(sorted(archive.namelist()) == ["params", "symbol.json"], f"{name}: zip holds symbol.json, params")
        archive.extractall(work)
    shutil.move(work / "symbol.json", work / "model-symbol.json")
    shutil.move(work / "params", work / "model-0000.params")
    x = inputs()
    module, out = module_predict(mx, str(work / "model"), x, False)
    check(np.array_equal(module._arg_params["v"].asnumpy(), v), f"{name}: Module.load(...)._arg_params['v'] is V")
    check(np.array_equal(module._arg_params["w1_weight"].asnumpy(), w), f"{name}: _arg_params['w1_weight'] is w")
    check(np.array_equal(module._arg_params["w0_weight"].asnumpy(), w0), f"{name}: _arg_params['w0_weight'] is w0")
    raw = formula(w0, w, v, x)
    want = 1 / (1 + np.exp(-raw)) if predictor_type == "binary_classifier" else raw
    check(np.allclose(out, want, atol=1e-5), f"{name}: the loaded graph predicts the FM formula")
    return {"writer": "algobox artifact.save, checked in MXNet 1.9.1", "predictor_type": predictor_type,
            "w0": w0.tolist(), "w": w[:, 0].tolist(), "v": v.tolist(), "inputs": x.tolist(),
            "mxnet_predictions": out.tolist()}


def main():
    import mxnet as mx

    OUT.mkdir(parents=True, exist_ok=True)
    for predictor_type in artifact.PREDICTOR_TYPES:
        text = fm_symbol(mx, predictor_type == "binary_classifier").tojson()
        path = artifact.SYMBOLS / f"{predictor_type}.json"
        path.write_text(text, encoding="utf-8")
        check(artifact.predictor_type_of(text, path) == predictor_type, f"{path.name}: output layer read back")
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        for predictor_type in artifact.PREDICTOR_TYPES:
            for stype in ("default", "row_sparse"):
                name = f"mxnet_{predictor_type}_{stype}_model_algo-1"
                expected[name] = mxnet_model(mx, tmp, name, predictor_type, stype)
            expected[f"ours_{predictor_type}_model_algo-1"] = ours_in_mxnet(mx, tmp, predictor_type)
    (OUT / "expected.json").write_text(json.dumps({"generated_by": "scripts/make_fm_fixtures.py",
                                                   "mxnet": mx.__version__, "fixtures": expected}, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    check(total < 40_000, f"fixtures total {total} bytes")


if __name__ == "__main__":
    main()
