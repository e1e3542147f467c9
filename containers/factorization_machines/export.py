"""``algobox factorization-machines export MODEL OUT``: w0, w and V as .npy files, so nobody needs MXNet.

MODEL is a model directory (holding ``model_algo-1``), the ``model_algo-1`` zip itself, or a ``model.tar.gz``
(ours or Amazon's). OUT (a directory, created) receives ``w0.npy`` (1,), ``w.npy`` (feature_dim,), ``V.npy``
(feature_dim, num_factors), float32, and ``model.json`` (predictor_type, feature_dim, num_factors, and how to
score). Row i of V is feature i's embedding: for recommendations, score a user u against items j by
w[j] + V[u] @ V[j] (the user's own terms are the same for every item).
"""

import argparse
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

from common.model_dir import model_files

from . import artifact
from .model import FMModel

PROG = "algobox factorization-machines export"


def load_any(path):
    path = Path(path)
    if path.is_file() and not tarfile.is_tarfile(path):  # model_algo-1 itself
        return FMModel.load_file(path)
    with model_files(path) as folder:
        return FMModel.load(folder)


def export(model, out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "w0.npy", model.w0)
    np.save(out / "w.npy", model.w[:, 0])
    np.save(out / "V.npy", model.v)
    score = "y = w0 + x @ w + 0.5 * (((x @ V) ** 2).sum(1) - ((x ** 2) @ (V ** 2)).sum(1))"
    if model.binary:
        score += "; score = sigmoid(y); predicted_label = score >= 0.5"
    (out / "model.json").write_text(json.dumps({
        "predictor_type": model.predictor_type, "feature_dim": model.feature_dim, "num_factors": model.num_factors,
        "files": {"w0.npy": "(1,)", "w.npy": "(feature_dim,)", "V.npy": "(feature_dim, num_factors)"},
        "score": score}, indent=1) + "\n")
    return sorted(p.name for p in out.iterdir())


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help=f"model directory, {artifact.MODEL_FILE} or model.tar.gz")
    parser.add_argument("out", help="output directory for w0.npy, w.npy, V.npy and model.json")
    args = parser.parse_args(argv)
    try:
        written = export(load_any(args.model), args.out)
    except Exception as exc:  # a clear one-line message, not a traceback
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"{PROG}: wrote {', '.join(written)} to {args.out}")
    return 0
