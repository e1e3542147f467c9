import json
import math

import numpy as np

from common.errors import ClientError


class MeanModel:
    def __init__(self, mean, feature_dim):
        if not math.isfinite(mean):
            raise ClientError("the mean is not finite")
        self.mean = mean
        self.feature_dim = feature_dim

    @classmethod
    def load(cls, model_dir):
        path = model_dir / "mean.json"
        if not path.is_file():
            raise ClientError(f"No mean-predictor model at {path}")
        data = json.loads(path.read_text())
        return cls(float(data["mean"]), int(data["feature_dim"]))

    def predict(self, features):
        return {"score": np.full(features.shape[0], self.mean, np.float32)}
