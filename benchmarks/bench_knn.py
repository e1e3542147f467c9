"""k-NN benchmarks: exactness against scikit-learn, recall of the IVF indexes, serving and training speed.

    .venv/bin/python benchmarks/bench_knn.py --part exact     # digits, LetterRecognition, BostonHousing, DNA
    .venv/bin/python benchmarks/bench_knn.py --part speed     # 1M x 64 index, 10k queries (about 5 minutes)
    .venv/bin/python benchmarks/bench_knn.py --part serve     # only /invocations vs faiss, 5 x 1,000-row requests
    .venv/bin/python benchmarks/bench_knn.py --part hnsw      # hnswlib alone (ef up to 512) beside faiss Flat
    .venv/bin/python benchmarks/bench_knn.py --part train     # algobox knn train, 1M x 64 recordIO, File/Pipe
    .venv/bin/python benchmarks/bench_knn.py --part huge      # predict() of 3,000,000 one-feature rows (1 minute)

Speed figures are ratios against a reference run in the same invocation (faiss called directly on the same
index, hnswlib). mlbench tables come from Debian's r-cran-mlbench package, fetched once into
~/.cache/algobox/mlbench (apt-get download; pyreadr reads the .rda files).

Reference packages not in requirements-dev.txt (hnswlib 0.8.0 is a source distribution that compiles):
    .venv/bin/pip install hnswlib==0.8.0 pyreadr==0.5.8
"""

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import containers.knn  # noqa: E402,F401  (OpenMP policy before faiss loads)
from common import protobuf, recordio  # noqa: E402
from common.spec import load_spec  # noqa: E402
from containers.knn import checks, knn, projection  # noqa: E402

CACHE = Path(os.environ.get("ALGOBOX_CACHE", Path.home() / ".cache/algobox")) / "mlbench"
MLBENCH_DATA = "usr/lib/R/site-library/mlbench/data"


def mlbench(name):
    """A table of the mlbench R package as a pandas DataFrame (fetched once from Debian)."""
    import pyreadr

    path = CACHE / MLBENCH_DATA / f"{name}.rda"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=CACHE, check=True)
        deb = next(CACHE.glob("r-cran-mlbench_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
    return next(iter(pyreadr.read_r(str(path)).values()))


def hyperparameters(**values):
    raw = {"predictor_type": "classifier", **values}
    return load_spec("knn").hyperparameters.parse({k: str(v) for k, v in raw.items()})


def build(train, labels, **values):
    values = {"sample_size": train.shape[0], **values}
    plan = checks.plan(hyperparameters(feature_dim=train.shape[1], **values))
    matrix = knn.projection_matrix(plan)
    features = train if matrix is None else projection.apply(train, matrix)
    return knn.build_model(plan, features, labels, matrix)


def boundary_ties(train, queries, k):
    """Queries whose k-th and (k+1)-th nearest points are equally far: the k nearest are not unique there."""
    tied = np.zeros(len(queries), bool)
    train64 = train.astype(np.float64)
    norms = (train64 ** 2).sum(1)
    for start in range(0, len(queries), 500):
        q = queries[start:start + 500].astype(np.float64)
        squared = np.maximum(norms[None, :] - 2 * q @ train64.T + (q ** 2).sum(1)[:, None], 0)
        ordered = np.sort(squared, axis=1)[:, k - 1:k + 1]
        tied[start:start + 500] = np.isclose(ordered[:, 0], ordered[:, 1], rtol=1e-9, atol=1e-9)
    return tied


def datasets():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    yield "digits", *train_test_split(x.astype(np.float32), y.astype(np.float32), test_size=0.25, random_state=0)
    letters = mlbench("LetterRecognition")
    x = letters.drop(columns="lettr").to_numpy(np.float32)
    y = letters["lettr"].cat.codes.to_numpy(np.float32)
    yield "LetterRecognition", x[:16000], x[16000:], y[:16000], y[16000:]  # the classic split


def part_exact(k_values=(1, 5, 10)):
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    rows = []
    for name, x_train, x_test, y_train, y_test in datasets():
        for k in k_values:
            tied = boundary_ties(x_train, x_test, k)
            ours = build(x_train, y_train, k=k).predict(x_test)["predicted_label"]
            ref = KNeighborsClassifier(k, algorithm="brute").fit(x_train, y_train).predict(x_test)
            rows.append({"data": name, "k": k, "task": "classifier", "equal": float(np.mean(ours == ref)),
                         "equal_without_ties": float(np.mean((ours == ref)[~tied])), "ties": int(tied.sum()),
                         "accuracy": float(np.mean(ours == y_test)), "sklearn_accuracy": float(np.mean(ref == y_test))})
            ours = build(x_train, y_train, k=k, predictor_type="regressor").predict(x_test)["predicted_label"]
            ref = KNeighborsRegressor(k, algorithm="brute").fit(x_train, y_train).predict(x_test)
            close = np.isclose(ours, ref, rtol=1e-5, atol=1e-5)
            rows.append({"data": name, "k": k, "task": "regressor", "equal": float(np.mean(close)),
                         "equal_without_ties": float(np.mean(close[~tied])), "ties": int(tied.sum()),
                         "mse": float(np.mean((ours - y_test) ** 2)),
                         "sklearn_mse": float(np.mean((ref - y_test) ** 2))})
    boston = mlbench("BostonHousing")
    x = boston.drop(columns="medv").astype(np.float64).to_numpy(np.float32)
    y = boston["medv"].to_numpy(np.float32)
    tied = boundary_ties(x[:400], x[400:], 5)
    ours = build(x[:400], y[:400], k=5, predictor_type="regressor").predict(x[400:])["predicted_label"]
    ref = KNeighborsRegressor(5, algorithm="brute").fit(x[:400], y[:400]).predict(x[400:])
    close = np.isclose(ours, ref, rtol=1e-5, atol=1e-4)
    rows.append({"data": "BostonHousing", "k": 5, "task": "regressor", "equal": float(np.mean(close)),
                 "equal_without_ties": float(np.mean(close[~tied])), "ties": int(tied.sum()),
                 "mse": float(np.mean((ours - y[400:]) ** 2)), "sklearn_mse": float(np.mean((ref - y[400:]) ** 2))})
    for row in rows:
        print(json.dumps(row))
    return rows


def recall_at_k(ids, truth):
    k = truth.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(ids, truth)]))


def part_recall(k=10):
    """IVFFlat and IVFPQ (auto nlists, default nprobe and pq_m) against Flat; reductions on DNA (180 binary)."""
    rows = []
    sets = list(datasets())
    dna = mlbench("DNA")
    x = dna.drop(columns="Class").astype(np.float32).to_numpy(np.float32)
    y = dna["Class"].cat.codes.to_numpy(np.float32)
    sets.append(("DNA", x[:2500], x[2500:], y[:2500], y[2500:]))
    for name, x_train, x_test, y_train, y_test in sets:
        flat = build(x_train, y_train, k=k)
        _, truth = flat.search(x_test, k)
        variants = [("faiss.Flat", {}), ("faiss.IVFFlat", {"index_type": "faiss.IVFFlat"}),
                    ("faiss.IVFPQ", {"index_type": "faiss.IVFPQ"})]
        if name == "DNA":
            for target in (60, 120):
                variants += [(f"faiss.Flat {kind} {target}", {"dimension_reduction_type": kind,
                                                             "dimension_reduction_target": target})
                             for kind in ("sign", "fjlt")]
        for label, values in variants:
            model = build(x_train, y_train, k=k, **values)
            _, ids = model.search(x_test, k)
            accuracy = float(np.mean(model.predict(x_test)["predicted_label"] == y_test))
            rows.append({"data": name, "index": label, f"recall@{k}": recall_at_k(ids, truth), "accuracy": accuracy,
                         "nlist": getattr(model.index, "nlist", None), "nprobe": model.nprobe,
                         "pq_m": getattr(getattr(model.index, "pq", None), "M", None)})
            print(json.dumps(rows[-1]))
    return rows


# ---------------------------------------------------------------- speed: 1M x 64, 10k queries

HNSW_EFS = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)

def mixture(n, d, centers, seed):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, size=(centers, d)).astype(np.float32)
    which = rng.integers(0, centers, size=n)
    points = means[which] + rng.normal(0, 0.35, size=(n, d)).astype(np.float32)
    return np.ascontiguousarray(points, np.float32), which.astype(np.float32)


def csv_body(rows):
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%.7g")
    return buffer.getvalue().encode()


def timed(function, *args, repeat=1):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def interleaved(model, flat, q, bodies, k, workers=1):
    """Seconds for 1,000-row batches: faiss's search, our model.predict in-process, and POST /invocations
    (CSV in, JSON out), taken in turn for each batch."""
    import requests

    from emulator import serve

    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600",
           "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}
    seconds = {"faiss": 0.0, "predict": 0.0, "invocations": 0.0}
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "model").mkdir()
        model.save(Path(root) / "model")
        with serve("knn", root, env=env, startup_timeout=300) as server:
            assert server.post(b"0" + b",0" * (q.shape[1] - 1), "text/csv").status_code == 200  # warm
            for i, body in enumerate(bodies):
                batch = q[i * 1000:(i + 1) * 1000]
                seconds["faiss"] += timed(lambda: flat.search(batch, k))[0]
                seconds["predict"] += timed(lambda: model.predict(batch))[0]
                t, response = timed(lambda: requests.post(server.url + "/invocations", data=body, timeout=None,
                                                          headers={"Content-Type": "text/csv",
                                                                   "Accept": "application/json"}))
                assert response.status_code == 200 and len(response.json()["predictions"]) == 1000
                seconds["invocations"] += t
    rows = len(bodies) * 1000
    qps = {name: rows / s for name, s in seconds.items()}
    return {"faiss_qps": qps["faiss"], "predict_qps": qps["predict"], "invocations_qps": qps["invocations"],
            "invocations_vs_faiss": qps["invocations"] / qps["faiss"], "predict_vs_faiss": qps["predict"] / qps["faiss"],
            "workers": workers}


def part_speed(n=1_000_000, d=64, queries=10_000, k=10, hnsw=True, exact_queries=2_000):
    import faiss

    out = {}
    points, classes = mixture(n + queries, d, 1000, 0)  # queries: fresh points of the same mixture
    data, labels, q = points[:n], classes[:n], np.ascontiguousarray(points[n:])
    del points
    print(f"threads: faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}", flush=True)

    # index build: faiss directly against ours (build_model: the same faiss calls plus our bookkeeping)
    t_faiss, flat = timed(lambda: (lambda ix: (ix.add(data), ix)[1])(faiss.IndexFlatL2(d)))
    t_ours, model = timed(lambda: build(data, labels, k=k))
    out["build_flat"] = {"faiss_s": t_faiss, "ours_s": t_ours}
    nlist = checks.auto_nlists(n)

    def faiss_ivf():
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
        index.train(data)
        index.add(data)
        index.own_fields = True
        quantizer.this.disown()
        return index

    t_faiss_ivf, ivf_direct = timed(faiss_ivf)
    t_ours_ivf, ivf_model = timed(lambda: build(data, labels, k=k, index_type="faiss.IVFFlat"))
    out["build_ivfflat"] = {"faiss_s": t_faiss_ivf, "ours_s": t_ours_ivf, "nlist": nlist}
    print(json.dumps(out), flush=True)

    # exact neighbours of the first `exact_queries` queries (a shared 2-core machine does ~3-5 GFLOPS, so exact
    # search over all 10k would take ~7 minutes per pass); recall is measured on those, speed on all 10k
    exact = q[:exact_queries]
    t_direct, (_, truth) = timed(lambda: flat.search(exact, k))
    out["search_flat"] = {"faiss_qps": exact_queries / t_direct, "queries": exact_queries}
    params = faiss.SearchParametersIVF(nprobe=ivf_model.nprobe)
    t_ivf, (_, ivf_ids) = timed(lambda: ivf_direct.search(q, k, params=params))
    t_ours, (_, our_ivf_ids) = timed(lambda: ivf_model.search(q, k))
    out["search_ivfflat"] = {"faiss_qps": queries / t_ivf, "ours_qps": queries / t_ours, "nprobe": ivf_model.nprobe,
                             "recall@10_faiss": recall_at_k(ivf_ids[:exact_queries], truth),
                             "recall@10_ours": recall_at_k(our_ivf_ids[:exact_queries], truth)}
    print(json.dumps(out), flush=True)
    del ivf_direct, ivf_model

    # /invocations with 1,000-row CSV requests against faiss on the same index, interleaved request by request
    # (the machine is shared: alternating keeps both sides under the same load)
    bodies = [csv_body(exact[i:i + 1000]) for i in range(0, exact_queries, 1000)]
    out["invocations"] = interleaved(model, flat, exact, bodies, k)
    print(json.dumps(out), flush=True)

    if hnsw:
        import hnswlib

        index = hnswlib.Index(space="l2", dim=d)
        index.init_index(max_elements=n, M=16, ef_construction=64, random_seed=0)
        t_build, _ = timed(lambda: index.add_items(data, np.arange(n), num_threads=os.cpu_count()))
        sweep = []
        for ef in HNSW_EFS:
            index.set_ef(ef)
            t, (ids, _) = timed(lambda: index.knn_query(q, k=k, num_threads=os.cpu_count()))
            sweep.append({"ef": ef, "qps": queries / t, "recall@10": recall_at_k(ids[:exact_queries], truth)})
            if sweep[-1]["recall@10"] >= 0.95:
                break
        out["hnswlib"] = {"build_s": t_build, "M": 16, "ef_construction": 64, "sweep": sweep,
                          "at_recall_0.95": next((s for s in sweep if s["recall@10"] >= 0.95), None)}
    print(json.dumps(out, indent=1), flush=True)
    return out


# ---------------------------------------------------------------- training through the entrypoint

def part_serve(n=1_000_000, d=64, batches=5, k=10):
    """Only the /invocations comparison: ``batches`` 1,000-row CSV requests against faiss on the same 1M index."""
    import faiss

    points, classes = mixture(n + batches * 1000, d, 1000, 0)
    data, labels, q = points[:n], classes[:n], np.ascontiguousarray(points[n:])
    del points
    flat = faiss.IndexFlatL2(d)
    flat.add(data)
    model = build(data, labels, k=k)
    del data
    bodies = [csv_body(q[i:i + 1000]) for i in range(0, len(q), 1000)]
    out = interleaved(model, flat, q, bodies, k)
    print(json.dumps(out), flush=True)
    return out


def part_hnsw(n=1_000_000, d=64, queries=10_000, k=10, exact_queries=2_000, efs=(128, 192, 256, 384, 512)):
    """hnswlib alone on the speed part's data, beside faiss Flat (and our IVFFlat) in the same run."""
    import faiss
    import hnswlib

    points, classes = mixture(n + queries, d, 1000, 0)
    data, labels, q = points[:n], classes[:n], np.ascontiguousarray(points[n:])
    del points
    flat = faiss.IndexFlatL2(d)
    flat.add(data)
    t_flat, (_, truth) = timed(lambda: flat.search(q[:exact_queries], k))
    out = {"faiss_flat_qps": exact_queries / t_flat}
    del flat
    index = hnswlib.Index(space="l2", dim=d)
    index.init_index(max_elements=n, M=16, ef_construction=64, random_seed=0)
    t_build, _ = timed(lambda: index.add_items(data, np.arange(n), num_threads=os.cpu_count()))
    out["hnswlib_build_s"] = t_build
    sweep = []
    for ef in efs:
        index.set_ef(ef)
        t, (ids, _) = timed(lambda: index.knn_query(q, k=k, num_threads=os.cpu_count()))
        sweep.append({"ef": ef, "qps": queries / t, "recall@10": recall_at_k(ids[:exact_queries], truth)})
        print(json.dumps(sweep[-1]), flush=True)
        if sweep[-1]["recall@10"] >= 0.95:
            break
    del index
    ivf = build(data, labels, k=k, index_type="faiss.IVFFlat")
    t_ivf, (_, ids) = timed(lambda: ivf.search(q, k))
    out.update({"hnswlib_sweep": sweep, "ours_ivfflat_qps": queries / t_ivf, "ours_ivfflat_nprobe": ivf.nprobe,
                "ours_ivfflat_recall@10": recall_at_k(ids[:exact_queries], truth)})
    print(json.dumps(out, indent=1), flush=True)
    return out


def peak_rss_run(command, env, cwd):
    """Run a command; return (seconds, peak RSS in MB, exit code, output). The peak is the kernel's VmHWM of the
    child after exec, polled until it exits (wait4's ru_maxrss would count the parent's pages held before exec)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()))
    reader.start()
    peak_kb = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.02)
    reader.join()
    return time.perf_counter() - start, peak_kb / 1024, process.returncode, output[0].decode()


def recordio_file(features, labels):
    parts = []
    for start in range(0, len(features), 100_000):
        payloads = protobuf.encode_dense(features[start:start + 100_000], labels[start:start + 100_000])
        parts.append(b"".join(recordio.encode_record(p) for p in payloads))
    return b"".join(parts)


def part_train(n=1_000_000, d=64):
    from emulator import Job

    data, labels = mixture(n, d, 1000, 0)
    body = recordio_file(data, labels)
    small = recordio_file(data[:n // 4], labels[:n // 4])
    del data
    print(f"recordIO: {len(body) / 1e6:.0f} MB for {n} x {d}", flush=True)
    rows = []
    runs = [("File", body, 100_000), ("Pipe", body, 100_000), ("File", small, 100_000), ("File", body, 10_000),
            ("File", body, 1_000_000)]
    for mode, data_bytes, sample in runs:
        with tempfile.TemporaryDirectory() as root:
            job = Job(root)
            if mode == "File":
                job.add_file("train", "train.pbr", data_bytes)
            else:
                job.add_pipe("train", [data_bytes])
            job.write_config({"feature_dim": d, "k": 10, "predictor_type": "classifier", "sample_size": sample},
                             {"train": {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": mode}})
            env = job.env({"ALGOBOX_PIPE_WAIT_SECONDS": "60"})
            seconds, rss, code, output = peak_rss_run([sys.executable, "-m", "common.cli", "knn", "train"], env, REPO)
            assert code == 0, output[-3000:]
            stages = {line.split("Stage ")[1].split(" took")[0]: float(line.split("took ")[1].split(" s")[0])
                      for line in output.splitlines() if "Stage " in line}
            read = re.search(r"Sampled (\d+) of the (\d+) records", output)
            rows.append({"mode": mode, "rows": len(data_bytes) * n // len(body), "sample_size": sample,
                         "sampled": int(read.group(1)), "records_read": int(read.group(2)),
                         "seconds": round(seconds, 2), "peak_rss_mb": round(rss), "sample_mb": sample * d * 4 / 1e6,
                         "stages": stages})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def part_huge(rows=3_000_000, repeats=3):
    """predict() of a 6 MB request's worth of one-feature rows (the hardening test's model: 200 points, k=3,
    classifier): the window search of the sorted points (containers/knn/line.py) against the same model searched
    by faiss (both slices of 65,536 rows, the same vote), interleaved, on identical rows and on 3,000,000 distinct
    ones; every column equal bit for bit. Then the window search alone for indexes of 10,000 and 1,000,000
    points (faiss's scan grows with the points; a binary search barely does)."""
    import statistics

    from containers.knn.model import KNNModel

    rng = np.random.default_rng(0)
    plan = checks.plan(hyperparameters(feature_dim=1, k=3, sample_size=200))
    root = Path(tempfile.mkdtemp(prefix="knn-huge-"))
    knn.build_model(plan, rng.normal(size=(200, 1)).astype(np.float32),
                    rng.integers(0, 3, 200).astype(np.float32), None).save(root)
    windowed, scanned = KNNModel.load(root), KNNModel.load(root)
    scanned.line = None
    bodies = {"identical (0)": np.zeros((rows, 1), np.float32),
              "distinct, normal": rng.normal(size=(rows, 1)).astype(np.float32),
              "distinct, linspace(-4, 4)": np.linspace(-4, 4, rows, dtype=np.float32)[:, None]}
    results = []
    for name, x in bodies.items():
        times = {"window": [], "faiss": []}
        for _ in range(repeats):
            for label, model in (("faiss", scanned), ("window", windowed)):
                start = time.perf_counter()
                out = model.predict(x)
                times[label].append(time.perf_counter() - start)
                if label == "faiss":
                    expected = out
                else:
                    assert all(np.array_equal(out[c].view(np.uint32), expected[c].view(np.uint32)) for c in out)
            del out, expected
        ratio = statistics.median(f / w for f, w in zip(times["faiss"], times["window"]))
        results.append({"rows": name, "faiss_s": round(statistics.median(times["faiss"]), 3),
                        "window_s": round(statistics.median(times["window"]), 3), "speedup": round(ratio, 2)})
        print(json.dumps(results[-1]), flush=True)
    for points in (10_000, 1_000_000):
        plan = checks.plan(hyperparameters(feature_dim=1, k=3, sample_size=points))
        model = knn.build_model(plan, rng.normal(size=(points, 1)).astype(np.float32),
                                rng.integers(0, 3, points).astype(np.float32), None)
        x = bodies["distinct, normal"]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(x)
            times.append(time.perf_counter() - start)
        results.append({"rows": f"distinct, normal; index of {points:,} points", "window_s":
                        round(statistics.median(times), 3)})
        print(json.dumps(results[-1]), flush=True)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["exact", "recall", "speed", "serve", "hnsw", "train", "huge", "all"],
                        default="all")
    parser.add_argument("--no-hnsw", action="store_true")
    args = parser.parse_args()
    if args.part in ("exact", "all"):
        part_exact()
    if args.part in ("recall", "all"):
        part_recall()
    if args.part in ("speed", "all"):
        part_speed(hnsw=not args.no_hnsw)
    if args.part == "serve":
        part_serve()
    if args.part == "hnsw":
        part_hnsw()
    if args.part in ("train", "all"):
        part_train()
    if args.part == "huge":
        part_huge()


if __name__ == "__main__":
    main()
