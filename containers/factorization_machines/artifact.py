"""``model_algo-1`` as Amazon SageMaker's Factorization Machines writes it: a zip of ``symbol.json`` and ``params``.

``params`` is an MXNet NDArray file (``Module.save_checkpoint`` layout) with ``arg:w0_weight`` (1,),
``arg:w1_weight`` (feature_dim, 1) and ``arg:v`` (feature_dim, num_factors), float32; ``symbol.json`` is an MXNet
graph whose output layer is named ``out`` (so its label is ``out_label``). Users rename the two members to
``model-symbol.json`` and ``model-0000.params`` and run MXNet's
``mx.module.Module.load('model', 0, False, label_names=['out_label'])``; ``scripts/make_fm_fixtures.py`` proves
that works on what :func:`save` writes, and that :func:`load` reads what MXNet writes (dense and row_sparse).

numpy, zipfile and ``common.ndarray`` only (the fixture script runs this module inside an MXNet venv).
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from common import ndarray
from common.errors import ClientError

MODEL_FILE = "model_algo-1"
SYMBOL_MEMBER = "symbol.json"
PARAMS_MEMBER = "params"
NAMES = ("w0_weight", "w1_weight", "v")
PREDICTOR_TYPES = ("binary_classifier", "regressor")
OUTPUT_OPS = {"LogisticRegressionOutput": "binary_classifier", "LinearRegressionOutput": "regressor"}
SYMBOLS = Path(__file__).parent / "symbols"
_ZIP_TIME = (2018, 1, 1, 0, 0, 0)  # fixed member times: the same model gives the same bytes


def symbol_json(predictor_type):
    """The MXNet graph for a predictor type (written by MXNet 1.9.1: ``scripts/make_fm_fixtures.py``)."""
    return (SYMBOLS / f"{predictor_type}.json").read_text(encoding="utf-8")


def save(target, w0, w, v, predictor_type):
    """Write the zip to a path or a seekable binary file."""
    w0 = np.asarray(w0, np.float32).reshape(1)
    v = np.ascontiguousarray(v, np.float32)
    w = np.asarray(w, np.float32).reshape(v.shape[0], 1)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr(zipfile.ZipInfo(SYMBOL_MEMBER, _ZIP_TIME), symbol_json(predictor_type))
        with archive.open(zipfile.ZipInfo(PARAMS_MEMBER, _ZIP_TIME), "w", force_zip64=True) as params:
            ndarray.save(params, {"arg:w0_weight": w0, "arg:w1_weight": w, "arg:v": v})


def predictor_type_of(symbol_text, where):
    """binary_classifier or regressor, from the output layer of an MXNet graph."""
    try:
        nodes = json.loads(symbol_text)["nodes"]
        ops = {node.get("op") for node in nodes}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ClientError(f"{where}: {SYMBOL_MEMBER} is not an MXNet symbol (JSON with 'nodes')") from None
    found = {OUTPUT_OPS[op] for op in ops if op in OUTPUT_OPS}
    if len(found) != 1:
        raise ClientError(f"{where}: cannot tell the predictor type from {SYMBOL_MEMBER}: expected one output "
                          f"layer among {sorted(OUTPUT_OPS)}, found ops {sorted(o for o in ops if o)}")
    return found.pop()


def load(path):
    """``(w0 (1,), w (d, 1), v (d, k), predictor_type)`` from a ``model_algo-1`` zip."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ClientError(f"{path} is not a Factorization Machines model: expected a zip holding "
                          f"{SYMBOL_MEMBER} and {PARAMS_MEMBER}")
    with zipfile.ZipFile(path) as archive:
        members = {Path(name).name: name for name in archive.namelist()}
        params_name = members.get(PARAMS_MEMBER) or next(
            (name for base, name in members.items() if base.endswith(".params")), None)
        symbol_name = members.get(SYMBOL_MEMBER) or next(
            (name for base, name in members.items() if base.endswith("symbol.json")), None)
        if params_name is None or symbol_name is None:
            raise ClientError(f"{path}: the zip holds {sorted(members)}; expected {SYMBOL_MEMBER} and "
                              f"{PARAMS_MEMBER}")
        predictor_type = predictor_type_of(archive.read(symbol_name).decode("utf-8", "replace"), path)
        with archive.open(params_name) as params:
            try:
                arrays = ndarray.load(params)
            except ndarray.NDArrayFormatError as exc:
                raise ClientError(f"{path}: {params_name} is not a readable MXNet NDArray file: {exc}") from None
    if not isinstance(arrays, dict):
        raise ClientError(f"{path}: {params_name} holds unnamed arrays; expected {', '.join(NAMES)}")
    arrays = {name.split(":", 1)[-1]: value for name, value in arrays.items()}
    missing = [name for name in NAMES if name not in arrays]
    if missing:
        raise ClientError(f"{path}: {params_name} lacks {', '.join(missing)} (it holds {sorted(arrays)})")
    w0, w, v = (np.asarray(arrays[name], np.float32) for name in NAMES)
    if v.ndim != 2 or w.size != v.shape[0] or w0.size != 1:
        raise ClientError(f"{path}: inconsistent shapes w0_weight {w0.shape}, w1_weight {w.shape}, v {v.shape}; "
                          "expected (1,), (feature_dim, 1), (feature_dim, num_factors)")
    return w0.reshape(1), w.reshape(-1, 1), v, predictor_type
