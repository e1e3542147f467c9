"""CPU per CSV request in process: ``invoke()`` (decode, checks, predict, encode) on a 1,000 x 50 body, for
XGBoost and k-means, from this checkout's code and from another's (``--before REPO``, e.g. main), in turn.

    .venv/bin/python benchmarks/bench_csv_request.py --before /work/main [--pairs 3] [--records 1000]

Each side runs in its own process (``python this-file --side REPO``: the two checkouts' modules cannot share one),
A B A B ...; each process prints the best of 7 x 100 requests' CPU time (``time.process_time``), which a shared
machine disturbs far less than wall-clock rates. The models: XGBoost 100 trees of depth 6 on 20,000 synthetic
rows (binary:logistic), k-means 10 centroids; the body ``%.7g`` of standard normal features. Prints ms of CPU per
request for each side and the median ratio before / this tree.
"""

import argparse
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def make_inputs(work, records, features):
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, features)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.float32)
    booster = xgb.train({"max_depth": 6, "tree_method": "hist", "objective": "binary:logistic", "nthread": 1},
                        xgb.DMatrix(x, y), 100)
    (work / "xgboost").mkdir()
    (work / "xgboost" / "xgboost-model").write_bytes(bytes(booster.save_raw("ubj")))
    (work / "kmeans").mkdir()
    np.save(work / "centroids.npy", rng.standard_normal((10, features)).astype(np.float32))
    buffer = io.StringIO()
    np.savetxt(buffer, x[:records], delimiter=",", fmt="%.7g")
    (work / "body.csv").write_bytes(buffer.getvalue().encode())


def side(repo, work):
    """In a process whose path starts with ``repo``: ms of CPU per request for each algorithm."""
    sys.path.insert(0, str(repo))
    from common import ndarray
    from common.serving import protocol
    from common.serving.app import load_model
    from common.spec import load_spec

    kmeans_dir = work / "kmeans"
    if not (kmeans_dir / "model_algo-1").exists():
        ndarray.save(kmeans_dir / "model_algo-1", [np.load(work / "centroids.npy")])
    body = (work / "body.csv").read_bytes()
    out = []
    for name in ("xgboost", "kmeans"):
        spec = load_spec(name)
        model = load_model(spec, work / name)
        protocol.invoke(model, spec, body, "text/csv", None).body
        best = float("inf")
        for _ in range(7):
            started = time.process_time()
            for _ in range(100):
                protocol.invoke(model, spec, body, "text/csv", None).body
            best = min(best, (time.process_time() - started) / 100 * 1e3)
        out.append(best)
    print(" ".join(f"{v:.4f}" for v in out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=False, help="the other checkout (e.g. /work/main)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(Path(args.side), Path(args.work))
        return
    with tempfile.TemporaryDirectory() as root:
        work = Path(root)
        make_inputs(work, args.records, args.features)
        sides = [("this tree", REPO)] + ([(args.before, Path(args.before).resolve())] if args.before else [])
        results = {name: [] for name, _ in sides}
        for _ in range(args.pairs):
            for name, repo in sides:
                line = subprocess.run([sys.executable, "-W", "ignore", __file__, "--side", str(repo), "--work", root],
                                      check=True, capture_output=True, text=True).stdout.split()
                results[name].append([float(v) for v in line])
                print(f"  {name}: xgboost {line[0]} ms, k-means {line[1]} ms of CPU per request", flush=True)
    size = (args.records, args.features)
    for name, values in results.items():
        median = np.median(values, axis=0)
        print(f"{name}: invoke() of a {size[0]} x {size[1]} CSV request: xgboost {median[0]:.2f} ms, "
              f"k-means {median[1]:.2f} ms of CPU (median of {args.pairs})")
    if args.before:
        ours, theirs = np.array(results["this tree"]), np.array(results[args.before])
        ratio = np.median(theirs / ours, axis=0)
        print(f"before / this tree (CPU per request; above 1 is faster now): xgboost {ratio[0]:.2f}x, "
              f"k-means {ratio[1]:.2f}x")


if __name__ == "__main__":
    main()
