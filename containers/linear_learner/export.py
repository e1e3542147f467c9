"""``algobox linear-learner export MODEL [OUT]``: a model as plain JSON, so that nobody needs MXNet to read it.

MODEL is a model directory (holding ``model_algo-1``), the ``model_algo-1`` zip itself, or a ``model.tar.gz``.
The JSON holds ``coefficients`` (num_outputs x feature_dim, raw features), ``bias``, ``threshold``, the
scaler training used (already folded into the coefficients), predictor type, loss and the selected model's
hyperparameters. raw = x @ coefficients^T + bias; score = sigmoid(raw) (logistic), softmax(raw) (softmax_loss),
else raw; binary predicted_label = score > threshold.
"""

import argparse
import json
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from common.model_dir import model_files

from .model import MODEL_FILE, LinearModel


def load_any(path):
    path = Path(path)
    if path.is_file() and not tarfile.is_tarfile(path):  # model_algo-1 itself
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(path, Path(tmp) / MODEL_FILE)
            return LinearModel.load(Path(tmp))
    with model_files(path) as folder:
        return LinearModel.load(folder)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="algobox linear-learner export", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model directory, model_algo-1 or model.tar.gz")
    parser.add_argument("out", nargs="?", help="output JSON file (default: stdout)")
    args = parser.parse_args(argv)
    try:
        document = load_any(args.model).to_json()
    except Exception as exc:  # a clear one-line message, not a traceback
        print(f"algobox linear-learner export: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(document, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0
