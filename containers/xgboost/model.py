"""The served model: ``xgboost-model`` in any format SageMaker's XGBoost images wrote, and its predictions.

Loaded, in this order of detection by the file's first bytes: a pickle (SageMaker's 0.72-1.2 images; read by a
restricted unpickler, only from the model directory, never from a request), UBJSON or JSON (``save_model`` of
1.3+ and of this image), the 1.x legacy binary (converted, as today's library no longer reads it).
"""

import json
import logging
import os

import numpy as np
import scipy.sparse as sp

from common.errors import ClientError, RequestError

from . import legacy
from .selectable import ALL_KEYS, outputs_for

log = logging.getLogger(__name__)

MODEL_FILE = "xgboost-model"
INFERENCE_OUTPUT_ENV = "SAGEMAKER_INFERENCE_OUTPUT"


def model_path(model_dir):
    path = model_dir / MODEL_FILE
    if path.is_file():
        return path
    candidates = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not candidates:
        raise ClientError(f"No xgboost model in {model_dir}: expected the file {MODEL_FILE}")
    log.warning("No %s in %s; loading %s", MODEL_FILE, model_dir, candidates[0].name)
    return candidates[0]


def load_booster(path):
    """(Booster, format name) from the bytes of a model file."""
    import xgboost as xgb

    data = path.read_bytes()
    if not data:
        raise ClientError(f"Model file {path} is empty")
    try:
        if data[:1] == b"\x80":
            return legacy.load_pickle(data), "pickle"
        if data[:1] in (b"{", b"["):
            booster = xgb.Booster()
            booster.load_model(bytearray(data))
            return booster, "json" if data[:2] in (b'{"', b"{\n", b"{ ") else "ubjson"
        return legacy.load_binary(data), "legacy binary"
    except (legacy.LegacyFormatError, xgb.core.XGBoostError, ValueError) as exc:
        from .data import library_message

        reason = library_message(exc) if isinstance(exc, xgb.core.XGBoostError) else str(exc)
        raise ClientError(f"{path} is not an xgboost model this image reads: {reason}") from None
    except Exception as exc:  # pickle.UnpicklingError and friends
        raise ClientError(f"{path} cannot be unpickled as an xgboost Booster: {exc}") from None


class XGBoostModel:
    def __init__(self, booster, source_format="ubjson", selected=None):
        self.booster = booster
        self.source_format = source_format
        config = json.loads(booster.save_config())
        learner = config["learner"]
        self.objective = learner["objective"]["name"]
        self.num_class = int(learner["learner_model_param"].get("num_class", "0") or 0)
        self.num_features = booster.num_features()
        best = booster.attr("best_iteration")
        rounds = booster.num_boosted_rounds()
        self.iteration_range = (0, int(best) + 1) if best is not None and int(best) + 1 < rounds else (0, 0)
        one_based = booster.attr("algobox_libsvm_one_based")
        self.libsvm_one_based = None if one_based is None else one_based == "1"
        booster.set_param({"nthread": int(os.environ.get("ALGOBOX_XGBOOST_NTHREAD", "1"))})
        self.selected = selected

    @classmethod
    def load(cls, model_dir):
        path = model_path(model_dir)
        booster, source_format = load_booster(path)
        selected = os.environ.get(INFERENCE_OUTPUT_ENV)
        keys = [k for k in selected.replace(" ", "").lower().split(",") if k] if selected else None
        if keys:
            unknown = [k for k in keys if k not in ALL_KEYS]
            if unknown:
                raise ClientError(f"{INFERENCE_OUTPUT_ENV} names unknown output(s) {', '.join(unknown)}; use "
                                  f"{', '.join(ALL_KEYS)}")
        model = cls(booster, source_format, keys)
        log.info("Loaded %s (%s): objective %s, %d features, %d rounds%s%s", path.name, source_format,
                 model.objective, model.num_features, booster.num_boosted_rounds(),
                 f", predicting with rounds {model.iteration_range}" if model.iteration_range[1] else "",
                 f", {INFERENCE_OUTPUT_ENV}={','.join(keys)}" if keys else "")
        return model

    feature_dim = None  # the runtime's width check does not apply: libsvm and sparse rows may be narrower

    @property
    def dense_width(self):
        """Dense rows (CSV, JSON lists) must have the model's width: the codecs check it before parsing."""
        return self.num_features
    allows_missing = True  # NaN and empty fields are missing values, as xgboost treats them

    def prepare(self, inputs):
        """libsvm requests: shift one-based indices down, by the base the training data had (recorded in the
        model), or for models trained elsewhere when no index is 0 (the open container's rule)."""
        from .codecs import LibSVMRows

        if not isinstance(inputs, LibSVMRows):
            return inputs
        smallest = inputs.smallest
        shift = self.libsvm_one_based if self.libsvm_one_based is not None else (smallest is not None and
                                                                                 smallest >= 1)
        if shift and smallest == 0:
            raise RequestError("libsvm request uses feature index 0, but this model was trained on one-based "
                               "indices (1 is its first feature)")
        matrix = sp.csr_matrix(inputs)
        if shift:
            matrix = sp.csr_matrix((matrix.data, matrix.indices - 1, matrix.indptr),
                                   shape=(matrix.shape[0], max(matrix.shape[1] - 1, 0)))
        return matrix

    def warmup_inputs(self):
        return np.zeros((1, self.num_features), np.float32)

    def fit_width(self, features):
        """Dense rows must have the model's width; sparse rows may be narrower (absent features are missing)."""
        width = features.shape[1]
        if sp.issparse(features):
            if width > self.num_features:
                used = int(features.indices.max()) + 1 if features.nnz else 0
                if used > self.num_features:
                    raise RequestError(f"A record uses feature index {used - 1}; the model has {self.num_features} "
                                       f"features (indices 0 to {self.num_features - 1})")
            return sp.csr_matrix((features.data, features.indices, features.indptr),
                                 shape=(features.shape[0], self.num_features))
        if width != self.num_features:
            raise RequestError(f"Each record must have {self.num_features} features; got {width}")
        return features

    def raw_predict(self, features):
        features = self.fit_width(features)
        if not sp.issparse(features):
            features = np.asarray(features, dtype=np.float32)
            values = features
        else:
            values = features.data
        if np.isinf(values).any():
            raise RequestError("Features contain infinite values (NaN and empty fields are missing values; inf is "
                               "not a number xgboost can split on)")
        return self.booster.inplace_predict(features, iteration_range=self.iteration_range, missing=np.nan,
                                            validate_features=False)

    def contributions(self, features):
        import xgboost as xgb

        features = self.fit_width(features)
        matrix = xgb.DMatrix(features, missing=np.nan)
        return self.booster.predict(matrix, pred_contribs=True, iteration_range=self.iteration_range,
                                    validate_features=False)

    def predict(self, features):
        """Columns: ``score`` (n, or n x classes) or the SAGEMAKER_INFERENCE_OUTPUT keys; SHAP values on demand."""
        from common.model import Prediction

        raw = self.raw_predict(features)
        if self.selected:
            columns = outputs_for(self.selected, self.objective, raw, self.num_class)
        else:
            columns = {"score": raw}

        def contributions():
            values = self.contributions(features)
            return values.reshape(values.shape[0], -1) if values.ndim == 3 else values

        return Prediction(columns, {"contributions": contributions})
