"""k-means speed and memory, printed as ratios from one run.

    .venv/bin/python benchmarks/bench_kmeans.py [--rows 1000000] [--dim 100] [--k 100] [--big-rows 4000000]

(a) the clustering core on an in-memory array against scikit-learn MiniBatchKMeans (batch 5000, one pass,
    n_init=1) and faiss.Kmeans (one Lloyd pass over all points): throughput and final msd;
(b) the whole ``algobox kmeans train`` from a recordIO-protobuf file in File mode and in Pipe mode, against
    sklearn's in-memory core alone;
(c) the assignment step's FLOP rate as a fraction of this machine's float32 matmul peak (torch.mm);
(d) peak RSS of ``algobox kmeans train`` for --rows and --big-rows points (must not grow with the data).
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from common import protobuf, recordio  # noqa: E402
from containers.kmeans.kmeans import StreamingKMeans, assign, weighted_lloyd  # noqa: E402
from containers.kmeans.train import resolve_auto  # noqa: E402
from emulator import Job  # noqa: E402

BATCH = 5000


def make_data(rows, dim, k, seed=0):
    """Gaussian blobs around k random centers, generated in blocks (float32)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, dim)).astype(np.float32)
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        out[start:start + n] = centers[rng.integers(0, k, n)] + rng.normal(size=(n, dim)).astype(np.float32)
    return out


def msd(points, centers):
    _, distances = assign(torch.from_numpy(points), torch.as_tensor(np.asarray(centers), dtype=torch.float32))
    return float(distances.double().mean())


def ours_core(points, k):
    factor, trials = resolve_auto({"k": k, "extra_center_factor": "auto", "local_lloyd_num_trials": "auto"})
    start = time.perf_counter()
    model = StreamingKMeans(k * factor, points.shape[1], "random", 0, "cpu", seed=17)
    tensor = torch.from_numpy(points)
    for i in range(0, points.shape[0], BATCH):
        model.partial_fit(tensor[i:i + BATCH])
    model.finish()
    centers, _ = weighted_lloyd(model.centers, model.counts, k, "kmeans++", 300, 1e-4, trials,
                                torch.Generator().manual_seed(17))
    return time.perf_counter() - start, centers.numpy()


def sklearn_core(points, k):
    from sklearn.cluster import MiniBatchKMeans

    start = time.perf_counter()
    model = MiniBatchKMeans(k, batch_size=BATCH, max_iter=1, n_init=1, random_state=0, compute_labels=False,
                            max_no_improvement=None).fit(points)
    return time.perf_counter() - start, model.cluster_centers_


def faiss_core(points, k):
    import faiss

    start = time.perf_counter()
    model = faiss.Kmeans(points.shape[1], k, niter=1, seed=1, max_points_per_centroid=points.shape[0])
    model.train(points)
    return time.perf_counter() - start, model.centroids


def matmul_peak():
    """The best of several timings of a large float32 torch.mm (the machine's practical peak)."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best


def assignment_rate(dim, centers):
    """The best of several timings of the streaming assignment step (one mini-batch against K centers)."""
    x, c = torch.randn(BATCH, dim), torch.randn(centers, dim)
    norms = (c * c).sum(1)
    assign(x, c, norms, with_distances=False)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            assign(x, c, norms, with_distances=False)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * BATCH * dim * centers / best


def write_recordio(path, points):
    with open(path, "wb") as f:
        for i in range(0, points.shape[0], 50_000):
            recordio.write_records(f, protobuf.encode_dense(points[i:i + 50_000]))


def train_job(root, data_file, rows, dim, k, pipe):
    """Run ``algobox kmeans train`` in a child; return (seconds, peak RSS MB of that child)."""
    job = Job(root)
    if pipe:
        def chunks():
            with open(data_file, "rb") as f:
                while block := f.read(1 << 20):
                    yield block
        job.add_pipe("train", [chunks()])
    else:
        (job.root / "input/data/train").mkdir(parents=True, exist_ok=True)
        (job.root / "input/data/train/data.pbr").symlink_to(data_file)
    job.write_config({"k": k, "feature_dim": dim, "mini_batch_size": BATCH},
                     {"train": {"ContentType": "application/x-recordio-protobuf",
                                "TrainingInputMode": "Pipe" if pipe else "File"}})
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    from emulator import ALGOBOX

    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, *ALGOBOX, "kmeans", "train"], env=job.env(),
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
    return seconds, int(out.stdout.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=4_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--skip-faiss", action="store_true")
    args = parser.parse_args()
    print(f"torch threads={torch.get_num_threads()} rows={args.rows} dim={args.dim} k={args.k} batch={BATCH}")
    points = make_data(args.rows, args.dim, args.k)

    print("\n(a) clustering core, in memory, one pass")
    results = {"algobox": ours_core(points, args.k), "sklearn MiniBatchKMeans": sklearn_core(points, args.k)}
    if not args.skip_faiss:
        results["faiss.Kmeans (1 iter)"] = faiss_core(points, args.k)
    print(f"{'core':<26}{'seconds':>10}{'points/s':>14}{'final msd':>12}")
    for name, (seconds, centers) in results.items():
        print(f"{name:<26}{seconds:>10.2f}{args.rows / seconds:>14.0f}{msd(points, centers):>12.4f}")
    sk_seconds = results["sklearn MiniBatchKMeans"][0]
    ours_seconds, ours_centers = results["algobox"]
    print(f"throughput ratio algobox/sklearn = {sk_seconds / ours_seconds:.2f} (goal >= 2), "
          f"msd ratio = {msd(points, ours_centers) / msd(points, results['sklearn MiniBatchKMeans'][1]):.4f} "
          "(goal <= 1)")

    print("\n(c) assignment step FLOP rate")
    factor, _ = resolve_auto({"k": args.k, "extra_center_factor": "auto", "local_lloyd_num_trials": "auto"})
    peak, rate = matmul_peak(), assignment_rate(args.dim, args.k * factor)
    print(f"torch.mm peak {peak / 1e9:.1f} GFLOP/s; assignment ({BATCH}x{args.dim} vs {args.k * factor} centers) "
          f"{rate / 1e9:.1f} GFLOP/s = {rate / peak:.0%} of peak (goal > 50%)")

    with tempfile.TemporaryDirectory(dir=REPO / ".work" if (REPO / ".work").exists() else None) as tmp:
        tmp = Path(tmp)
        data_file = tmp / "train.pbr"
        write_recordio(data_file, points)
        print(f"\n(b) whole `algobox kmeans train`, recordIO-protobuf file of {data_file.stat().st_size / 1e6:.0f} MB")
        file_s, file_rss = train_job(tmp / "file", data_file, args.rows, args.dim, args.k, pipe=False)
        pipe_s, pipe_rss = train_job(tmp / "pipe", data_file, args.rows, args.dim, args.k, pipe=True)
        print(f"File mode {file_s:.2f} s, Pipe mode {pipe_s:.2f} s (process start included); sklearn core "
              f"{sk_seconds:.2f} s -> ratios sklearn/File {sk_seconds / file_s:.2f}, "
              f"sklearn/Pipe {sk_seconds / pipe_s:.2f} (goal >= 1)")
        del points
        print(f"\n(d) peak RSS of `algobox kmeans train` (File mode)")
        big = tmp / "big.pbr"
        with open(big, "wb") as f:
            for seed in range(max(1, args.big_rows // 500_000)):
                block = make_data(500_000, args.dim, args.k, seed=seed)
                for i in range(0, block.shape[0], 50_000):
                    recordio.write_records(f, protobuf.encode_dense(block[i:i + 50_000]))
        big_rows = max(1, args.big_rows // 500_000) * 500_000
        data_file.unlink()
        big_s, big_rss = train_job(tmp / "big", big, big_rows, args.dim, args.k, pipe=False)
        print(f"{args.rows} points: {file_rss:.0f} MB ({file_s:.1f} s); {big_rows} points: {big_rss:.0f} MB "
              f"({big_s:.1f} s); Pipe mode {args.rows} points: {pipe_rss:.0f} MB; growth ratio {big_rss / file_rss:.2f}")


if __name__ == "__main__":
    main()
