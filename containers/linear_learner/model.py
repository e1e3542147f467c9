"""The trained Linear Learner model: ``model_algo-1`` as Amazon writes it, and scoring.

``model_algo-1`` is a zip (Amazon's layout) of:

* ``mx-mod-symbol.json``: an MXNet graph ``data -> FullyConnected(fc0)``, whose output is the raw score
  (the "output of the trained linear function" the guide calibrates on);
* ``mx-mod-0000.params``: an MXNet NDArray file with ``arg:fc0_weight`` (K, D) and ``arg:fc0_bias`` (K,), as
  ``Module.save_checkpoint`` names them; the scaler is folded in, so the graph takes raw features;
* ``manifest.json``: the files and their roles;
* ``additional-params.json``: predictor type, loss, threshold, classes, the scaler that training used, and the
  hyperparameters of the selected model.

So ``gluon.nn.SymbolBlock.imports('mx-mod-symbol.json', ['data'], 'mx-mod-0000.params')`` gives the raw
scores our server turns into ``score``/``predicted_label`` (tests/fixtures/linear_learner, written by MXNet).
"""

import io
import json
import zipfile

import numpy as np
import scipy.sparse as sp

from common import ndarray
from common.atomic import atomic_write
from common.errors import ClientError

MODEL_FILE = "model_algo-1"
SYMBOL_FILE = "mx-mod-symbol.json"
PARAMS_FILE = "mx-mod-0000.params"
MANIFEST_FILE = "manifest.json"
ADDITIONAL_FILE = "additional-params.json"
FORMAT_VERSION = 1


def symbol_json(num_hidden, use_bias=True, name="fc0"):
    """An MXNet (1.x) symbol graph: variable ``data`` -> FullyConnected(num_hidden) named ``name``."""
    nodes = [{"op": "null", "name": "data", "inputs": []},
             {"op": "null", "name": f"{name}_weight", "inputs": []}]
    inputs = [[0, 0, 0], [1, 0, 0]]
    if use_bias:
        nodes.append({"op": "null", "name": f"{name}_bias", "inputs": []})
        inputs.append([2, 0, 0])
    nodes.append({"op": "FullyConnected", "name": name,
                  "attrs": {"flatten": "True", "no_bias": "False" if use_bias else "True",
                            "num_hidden": str(num_hidden)},
                  "inputs": inputs})
    arg_nodes = list(range(len(nodes) - 1))
    return {"nodes": nodes, "arg_nodes": arg_nodes, "node_row_ptr": list(range(len(nodes) + 1)),
            "heads": [[len(nodes) - 1, 0, 0]], "attrs": {"mxnet_version": ["int", 10901]}}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class LinearModel:
    """``raw = x @ weights + bias``; ``score`` is the probability for logistic/softmax, raw otherwise."""

    predict_rows = 1 << 16  # rows per predict() call (common/model.py): one record's answer depends on it alone
    distinct_rows = True  # repeated rows are predicted once (common/repeats.py)

    def __init__(self, weights, bias, predictor_type, loss, threshold=None, scaler=None, extra=None):
        self.weights = np.ascontiguousarray(weights, np.float32)
        if self.weights.ndim != 2:
            raise ClientError(f"Linear Learner weights have shape {self.weights.shape}; expected (feature_dim, K)")
        self.bias = np.ascontiguousarray(bias, np.float32).reshape(-1)
        if self.bias.size != self.weights.shape[1]:
            raise ClientError(f"Linear Learner bias has {self.bias.size} values for {self.weights.shape[1]} outputs")
        self.predictor_type = predictor_type
        self.loss = loss
        if threshold is None:
            threshold = 0.5 if loss == "logistic" else 0.0
        self.threshold = float(threshold)
        self.scaler = scaler or {}
        self.extra = extra or {}

    @property
    def feature_dim(self):
        return self.weights.shape[0]

    @property
    def outputs(self):
        return self.weights.shape[1]

    @property
    def probabilistic(self):
        return self.loss in ("logistic", "softmax_loss")

    def raw_scores(self, features):
        if sp.issparse(features):
            return np.asarray(features @ self.weights, np.float32) + self.bias
        return np.asarray(features, np.float32) @ self.weights + self.bias

    def outputs_of(self, raw):
        if self.predictor_type == "regressor":
            return {"score": raw[:, 0]}
        if self.predictor_type == "binary_classifier":
            score = _sigmoid(raw[:, 0].astype(np.float64)).astype(np.float32) if self.probabilistic else raw[:, 0]
            return {"score": score, "predicted_label": (score > self.threshold).astype(np.float32)}
        shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
        probabilities = (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)
        return {"score": probabilities, "predicted_label": raw.argmax(axis=1).astype(np.float32)}

    def predict(self, features):
        return self.outputs_of(self.raw_scores(features))

    # -- files -----------------------------------------------------------------------------------

    def additional_params(self):
        return {"predictor_type": self.predictor_type, "loss": self.loss, "threshold": self.threshold,
                "score_is_probability": self.probabilistic, "feature_dim": self.feature_dim,
                "num_outputs": self.outputs, "scaler": self.scaler, **self.extra}

    def save(self, model_dir):
        params = io.BytesIO()
        ndarray.save(params, {"arg:fc0_weight": self.weights.T.copy(), "arg:fc0_bias": self.bias})
        manifest = {"format": "algobox-linear-learner", "format_version": FORMAT_VERSION,
                    "symbol": SYMBOL_FILE, "params": PARAMS_FILE, "additional_params": ADDITIONAL_FILE,
                    "data_name": "data", "output": "raw linear score, shape (batch, num_outputs)"}
        with atomic_write(model_dir / MODEL_FILE) as target, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(SYMBOL_FILE, json.dumps(symbol_json(self.outputs), indent=2))
            archive.writestr(PARAMS_FILE, params.getvalue())
            archive.writestr(MANIFEST_FILE, json.dumps(manifest, indent=2))
            archive.writestr(ADDITIONAL_FILE, json.dumps(self.additional_params(), indent=2))

    @classmethod
    def load(cls, model_dir):
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise ClientError(f"No Linear Learner model at {path}")
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                params_name = next((n for n in sorted(names) if n.endswith(".params")), None)
                if params_name is None:
                    raise ClientError(f"{path} holds no MXNet .params file (found {sorted(names)})")
                arrays = ndarray.load(io.BytesIO(archive.read(params_name)))
                extra = json.loads(archive.read(ADDITIONAL_FILE)) if ADDITIONAL_FILE in names else {}
        except zipfile.BadZipFile:
            raise ClientError(f"{path} is not a Linear Learner model (not a zip archive)") from None
        if not isinstance(arrays, dict):
            raise ClientError(f"{path}: {params_name} holds unnamed arrays; expected named weight and bias")
        weight = next((v for k, v in arrays.items() if k.endswith("weight")), None)
        bias = next((v for k, v in arrays.items() if k.endswith("bias")), None)
        if weight is None or weight.ndim != 2:
            raise ClientError(f"{path}: no 2-D '*weight' array in {params_name} (found {sorted(arrays)})")
        k = weight.shape[0]
        bias = np.zeros(k, np.float32) if bias is None else bias
        predictor = extra.pop("predictor_type", "regressor" if k == 1 else "multiclass_classifier")
        loss = extra.pop("loss", {"regressor": "squared_loss"}.get(predictor, "softmax_loss"))
        threshold = extra.pop("threshold", None)
        scaler = extra.pop("scaler", {})
        for key in ("score_is_probability", "feature_dim", "num_outputs"):
            extra.pop(key, None)
        return cls(weight.T, bias, predictor, loss, threshold, scaler, extra)

    def to_json(self):
        """Everything needed to score without MXNet (``algobox linear-learner export``)."""
        return {**self.additional_params(), "coefficients": self.weights.T.tolist(), "bias": self.bias.tolist()}
