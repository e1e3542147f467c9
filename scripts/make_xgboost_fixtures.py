"""Write tests/fixtures/xgboost/ with old xgboost releases: the model files SageMaker's XGBoost images wrote.

xgboost 0.90 and 1.2.1 (SageMaker's 0.90-x and 1.2-x images) pickled the Booster into ``xgboost-model``;
1.3-1 ... 1.7-1 wrote ``Booster.save_model`` with no extension, which 1.x writes in its legacy binary format.
Run each in a throwaway venv (never a dependency of algobox)::

    python3 -m venv /tmp/xgb09 && /tmp/xgb09/bin/pip install 'xgboost==0.90' 'numpy<1.24' 'scipy<1.12'
    python3 -m venv /tmp/xgb12 && /tmp/xgb12/bin/pip install 'xgboost==1.2.1' 'numpy<1.24' 'scipy<1.12'
    python3 -m venv /tmp/xgb17 && /tmp/xgb17/bin/pip install 'xgboost==1.7.6' 'numpy<2' scipy
    for v in 09 12 17; do /tmp/xgb$v/bin/python scripts/make_xgboost_fixtures.py; done

Each run writes ``<kind>-<version>-<objective>/xgboost-model`` and ``expected.csv`` (that release's own
predictions of ``data.csv``, the rows the test scores with today's library).
"""

import os
import pickle
from pathlib import Path

import numpy as np
import xgboost as xgb

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "xgboost"


def data():
    rng = np.random.RandomState(7)
    x = rng.uniform(-1, 1, size=(200, 5)).round(4)
    x[rng.rand(*x.shape) < 0.05] = np.nan  # missing values travel through every format
    y_binary = (np.nansum(x[:, :2], axis=1) > 0).astype(np.float64)
    y_multi = (np.digitize(np.nan_to_num(x[:, 0]), [-0.3, 0.3])).astype(np.float64)
    return x, y_binary, y_multi


def write(kind, objective, booster, x):
    folder = OUT / f"{kind}-{xgb.__version__}-{objective.replace(':', '-')}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "xgboost-model"
    if kind == "pickle":
        with open(path, "wb") as f:
            pickle.dump(booster, f, protocol=2 if xgb.__version__.startswith("0.") else 4)
    else:
        booster.save_model(str(path))
    predictions = booster.predict(xgb.DMatrix(x, missing=np.nan)).reshape(len(x), -1)
    np.savetxt(folder / "expected.csv", predictions, delimiter=",", fmt="%.9g")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    x, y_binary, y_multi = data()
    np.savetxt(OUT / "data.csv", x, delimiter=",", fmt="%.4f")
    kind = "pickle" if xgb.__version__ < "1.3" else "legacy"
    params = {"max_depth": 3, "eta": 0.3, "silent": 1} if xgb.__version__.startswith("0.") else {
        "max_depth": 3, "eta": 0.3}
    binary = xgb.train({**params, "objective": "binary:logistic"}, xgb.DMatrix(x, y_binary, missing=np.nan), 5)
    write(kind, "binary:logistic", binary, x)
    multi = xgb.train({**params, "objective": "multi:softprob", "num_class": 3},
                      xgb.DMatrix(x, y_multi, missing=np.nan), 5)
    write(kind, "multi:softprob", multi, x)
    print("wrote", kind, xgb.__version__, "under", os.path.relpath(OUT))


if __name__ == "__main__":
    main()
