"""Random Cut Forest quality and speed beside scikit-learn's IsolationForest (and rrcf), from one run.

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_rcf.py [--rows 1000000] [--rounds 3]
        [--skip nab,shuttle,speed,serve,rrcf,rows]

Every forest is 100 trees x 256 samples (both algorithms' defaults), built by the same code ``train`` runs
(forest.Reservoir over the rows in blocks, split_sample, build_forest) and scored by the kernel ``serve`` runs.

nab      NAB realKnownCause/nyc_taxi.csv (10,320 half-hours), shingled 48 wide (a day): each shingle's score is
         its last point's. Cutoff = mean + 3 std of the scores (the guide's rule, AWS's notebook). Reported: of
         the 5 labelled windows how many hold a point above the cutoff, how many points outside windows are
         above it, and the ROC-AUC of point scores against window membership. IsolationForest on the same
         shingles (score = -score_samples).
shuttle  mlbench Shuttle (58,000 x 9; "Rad.Flow" normal, the other classes anomalous, 21%): ROC-AUC and
         average precision, trained and scored on all rows (unsupervised). Fetched with apt-get download
         r-cran-mlbench into ~/.cache/algobox (or --mlbench DIR).
speed    --rows x 10 float32: a mixture of 5 Gaussians plus 0.4% planted anomalies (uniform in the 1.5x
         bounding box). Training time (reservoir pass + build, against IsolationForest.fit) and scoring rows/s,
         --rounds rounds interleaved (IF, ours, IF, ours): one thread each (numba.set_num_threads(1) against
         IsolationForest.score_samples, which is single-threaded by default) and all cores each (numba's
         threads against score_samples inside joblib's threading backend with n_jobs=-1, the way
         scikit-learn documents to parallelise it); median ratios, wall clock and (one thread) CPU seconds;
         the numpy fallback on a slice; the ROC-AUC of each; and the descent's floor: CPU ns per row and tree
         on one thread of the kernel, of the same kernel without its climb (its source with the climb cut out:
         each row walks down every tree to its leaf, whose depth any exact score needs) and of IsolationForest,
         so that the time 2x IsolationForest's rate leaves for the climb is measured, not argued. Ratios are of
         this run only.
serve    5 MB text/csv requests (as many rows as fit) to ``algobox randomcutforest serve`` over HTTP,
         a 100 x 256 model, feature_dim 1 (a raw series), 10 and 48 (a day of half-hours, shingled): seconds
         per request (the platform's limit is 60 s).
rows     the model's scores of requests' rows (``RandomCutForestModel.score`` in slices of its predict_rows, as
         serving calls it: repeated rows scored once, one or two features as sorted distinct rows, distinct.py)
         against the kernel on the same slices as they are (what the model did before), --rounds rounds
         interleaved, median ratio, scores checked bit for bit: the hardening tests' 3,000,000 x "0" and
         shapes of rows that differ (Gaussian; 6 MB bodies of one feature, ``d.dddd`` and ``d.ddddd``), the hardening tests' 50 x 64 model and 100 x 256 models at feature_dim 1, 2 and 10.
rrcf     10,000 rows of the speed data, 100 rrcf trees x 256 of them: Spearman rank correlation of our scores
         with rrcf's mean CoDisp over the 100 trees for the first 1,000 rows (each inserted temporarily where it
         is not in a tree: what our score does; rrcf takes ~0.7 ms an insertion, so not all 10,000), and with
         rrcf's batch recipe (CoDisp of each tree's own points, every row in ~2.6 trees), beside
         IsolationForest's correlation with the same.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from containers.randomcutforest import forest as F  # noqa: E402
from containers.randomcutforest import kernels  # noqa: E402

NAB = Path(os.environ.get("ALGOBOX_DATA", "/work/shared/data")) / "nab"
TREES, SAMPLES, SHINGLE = 100, 256, 48
BLOCK = 100_000


def fit_rcf(x, seed=0):
    rng = np.random.default_rng(seed)
    reservoir = F.Reservoir(TREES * SAMPLES, x.shape[1], rng)
    for start in range(0, x.shape[0], BLOCK):
        reservoir.add(x[start:start + BLOCK])
    return F.build_forest(F.split_sample(reservoir.sample, TREES, SAMPLES, rng), rng)


def fit_iforest(x, seed=0):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=TREES, max_samples=SAMPLES, random_state=seed).fit(x)


def auc_ap(labels, scores):
    from sklearn.metrics import average_precision_score, roc_auc_score

    return roc_auc_score(labels, scores), average_precision_score(labels, scores)


def nab():
    import pandas as pd

    frame = pd.read_csv(NAB / "nyc_taxi.csv", parse_dates=["timestamp"])
    windows = json.loads((NAB / "nyc_taxi_windows.json").read_text())["realKnownCause/nyc_taxi.csv"]
    values = frame["value"].to_numpy(np.float32)
    shingles = np.lib.stride_tricks.sliding_window_view(values, SHINGLE).copy()
    times = frame["timestamp"].to_numpy()[SHINGLE - 1:]  # a shingle's score is its last point's
    membership = np.zeros(times.size, bool)
    spans = []
    for start, end in windows:
        inside = (times >= np.datetime64(start)) & (times <= np.datetime64(end))
        membership |= inside
        spans.append(inside)
    print(f"nab: {values.size} points, {shingles.shape[0]} shingles of {SHINGLE}, {len(windows)} windows "
          f"({membership.sum()} points inside)")
    results = {}
    rcf = fit_rcf(shingles)
    results["algobox RCF"] = kernels.score(rcf, shingles)
    results["IsolationForest"] = -fit_iforest(shingles).score_samples(shingles)
    for name, scores in results.items():
        cutoff = scores.mean() + 3 * scores.std()
        above = scores > cutoff
        hit = sum(bool(above[span].any()) for span in spans)
        auc, ap = auc_ap(membership, scores)
        print(f"  {name:16s} windows with a point above 3 sigma: {hit}/{len(windows)}; points above outside "
              f"windows: {int((above & ~membership).sum())} (inside: {int((above & membership).sum())}); "
              f"ROC-AUC {auc:.4f}; AP {ap:.4f}")


def mlbench_dir(given):
    if given:
        return Path(given)
    cache = Path.home() / ".cache" / "algobox" / "mlbench"
    data = cache / "usr/lib/R/site-library/mlbench/data"
    if not data.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=tmp, check=True, capture_output=True)
            deb = next(Path(tmp).glob("r-cran-mlbench_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return data


def shuttle(given):
    import pyreadr

    frame = pyreadr.read_r(str(mlbench_dir(given) / "Shuttle.rda"))["Shuttle"]
    x = frame.drop(columns="Class").to_numpy(np.float32)
    labels = (frame["Class"].astype(str) != "Rad.Flow").to_numpy()
    print(f"shuttle: {x.shape[0]} x {x.shape[1]}, {labels.mean():.1%} anomalous (not Rad.Flow)")
    for name, scores in (("algobox RCF", kernels.score(fit_rcf(x), x)),
                         ("IsolationForest", -fit_iforest(x).score_samples(x))):
        auc, ap = auc_ap(labels, scores)
        print(f"  {name:16s} ROC-AUC {auc:.4f}; average precision {ap:.4f}")


def synthetic(rows, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(5, 10))
    x = (centres[rng.integers(0, 5, rows)] + rng.normal(size=(rows, 10))).astype(np.float32)
    anomalies = rng.choice(rows, int(rows * 0.004), replace=False)
    low, high = x.min(0), x.max(0)
    middle, half = (low + high) / 2, (high - low) / 2 * 1.5
    x[anomalies] = rng.uniform(middle - half, middle + half, size=(anomalies.size, 10))
    labels = np.zeros(rows, bool)
    labels[anomalies] = True
    return x, labels


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def speed(rows, rounds=3):
    import numba
    from joblib import parallel_backend

    x, labels = synthetic(rows)
    cores = numba.get_num_threads()
    print(f"speed: {rows} x 10 float32, {labels.sum()} planted anomalies; {TREES} trees x {SAMPLES}; "
          f"{os.cpu_count()} cores, numba threads {cores}")
    kernels.score(fit_rcf(x[:5000]), x[:100])  # compile (or load the cached kernel) before timing
    print(f"  numba threading layer: {numba.threading_layer()}")
    rcf, rcf_fit = timed(fit_rcf, x)
    iforest, if_fit = timed(fit_iforest, x)
    print(f"  training: algobox RCF {rcf_fit:.2f} s (reservoir pass over every row + build), "
          f"IsolationForest.fit {if_fit:.2f} s; ratio IF/RCF {if_fit / rcf_fit:.2f}")

    def if_all_cores(data):  # the documented way: score_samples ignores n_jobs, a joblib context sets it
        with parallel_backend("threading", n_jobs=-1):
            return iforest.score_samples(data)

    def ours_threads(threads):
        def run(data):
            numba.set_num_threads(threads)
            try:
                return kernels.score(rcf, data)
            finally:
                numba.set_num_threads(cores)
        return run

    runs = (("IF 1 thread", iforest.score_samples), ("RCF 1 thread", ours_threads(1)),
            ("IF all cores", if_all_cores), ("RCF all cores", ours_threads(cores)))
    wall = {name: [] for name, _ in runs}
    cpu = {name: [] for name, _ in runs}
    scores = {}
    for round_ in range(rounds):  # interleaved: IF, ours, IF, ours, ... so that load swings hit both alike
        for name, function in runs:
            started, cpu_started = time.perf_counter(), time.process_time()
            scores[name] = function(x)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
        print(f"  round {round_ + 1}: " + ", ".join(f"{name} {rows / wall[name][-1]:,.0f} rows/s" for name, _ in runs))

    def median_ratio(times, reference, ours):
        return float(np.median(np.array(times[reference]) / np.array(times[ours])))

    rate = {name: rows / float(np.median(values)) for name, values in wall.items()}
    print(f"  scoring rows/s (median of {rounds}): " + ", ".join(f"{name} {value:,.0f}" for name, value in rate.items()))
    print(f"  RCF / IF, one thread each: {median_ratio(wall, 'IF 1 thread', 'RCF 1 thread'):.2f}x wall "
          f"({median_ratio(cpu, 'IF 1 thread', 'RCF 1 thread'):.2f}x in CPU seconds, which other jobs' load "
          f"does not skew)")
    print(f"  RCF / IF, all {cores} cores each (IF: joblib threading backend, n_jobs=-1): "
          f"{median_ratio(wall, 'IF all cores', 'RCF all cores'):.2f}x")
    print(f"  RCF all cores / IF as configured by default (n_jobs=None: 1 thread): "
          f"{median_ratio(wall, 'IF 1 thread', 'RCF all cores'):.2f}x")
    descent_floor(rcf, iforest, x[:200_000], cores)
    part = x[:max(1, rows // 20)]
    numba.set_num_threads(1)
    _, one_time = timed(kernels.score, rcf, part)
    numba.set_num_threads(cores)
    _, numpy_time = timed(kernels.score, rcf, part, "numpy")
    print(f"  numpy fallback on {part.shape[0]:,} rows: {part.shape[0] / numpy_time:,.0f} rows/s "
          f"(numba 1 thread / numpy = {numpy_time / one_time:.1f}x)")
    auc_rcf, ap_rcf = auc_ap(labels, scores["RCF all cores"])
    auc_if, ap_if = auc_ap(labels, -scores["IF 1 thread"])
    print(f"  ROC-AUC: algobox RCF {auc_rcf:.4f} (AP {ap_rcf:.4f}); IsolationForest {auc_if:.4f} (AP {ap_if:.4f})")
    return x


CLIMB_START = "            for i in range(count):\n                node = U(leaf[i])"
CLIMB_END = "        for i in range(count):\n            out[first + i]"


def descent_floor(rcf, iforest, x, cores):
    """The kernel, the kernel without its climb (each row's walk down every tree to its leaf and the leaf's
    depth: what any exact score must do, as the score needs the leaf's depth), and IsolationForest, in CPU ns per
    row and tree on one thread, best of 3: how much of 2x IsolationForest's rate the descent alone leaves."""
    import inspect

    import numba

    source = inspect.getsource(kernels._kernel)
    start, end = source.index(CLIMB_START), source.index(CLIMB_END)  # the climb, as the kernel spells it
    climbless = (source[:start] + "            for i in range(count):\n"
                 "                total[i] += inverse_depth[depth[U(leaf[i])]] * scale\n" + source[end:])
    namespace = dict(vars(kernels))
    exec(climbless.replace("def _kernel(", "def _descent("), namespace)  # noqa: S102 - the kernel's own source
    descent = numba.njit(parallel=True, nogil=True, fastmath=True)(namespace["_descent"])
    kernel, arrays = kernels.compiled(), kernels.layout(rcf)
    out = np.empty(len(x))
    numba.set_num_threads(1)
    try:
        for function in (kernel, descent):
            function(x[:1000], *arrays, out[:1000])  # compiled before timing

        def cost(function):
            best = np.inf
            for _ in range(3):
                started = time.process_time()
                function()
                best = min(best, time.process_time() - started)
            return best / len(x) / TREES * 1e9

        ours = cost(lambda: kernel(x, *arrays, out))
        walk = cost(lambda: descent(x, *arrays, out))
        theirs = cost(lambda: iforest.score_samples(x))
    finally:
        numba.set_num_threads(cores)
    print(f"  CPU ns per row and tree, one thread, {len(x):,} rows, best of 3: RCF kernel {ours:.1f}, its descent "
          f"alone (no climb) {walk:.1f}, IsolationForest.score_samples {theirs:.1f}; 2x IsolationForest's rate "
          f"leaves {theirs / 2:.1f} ns, {theirs / 2 - walk:.1f} ns for the climb, which costs {ours - walk:.1f} ns "
          f"now (the descent alone is {theirs / walk:.2f}x IsolationForest)")


def serving():
    import io

    sys.path.insert(0, str(REPO / "tests"))
    from containers.randomcutforest.model import RandomCutForestModel
    from emulator import serve

    rng = np.random.default_rng(2)
    for dim in (1, 10, 48):
        x = rng.normal(size=(5_000_000 // (8 * dim) + 1000, dim)).astype(np.float32)
        with tempfile.TemporaryDirectory() as root:
            (Path(root) / "model").mkdir()
            RandomCutForestModel(fit_rcf(x), SAMPLES).save(Path(root) / "model")
            buffer = io.StringIO()
            np.savetxt(buffer, x, delimiter=",", fmt="%.5f")
            text = buffer.getvalue().encode()
            body = text[:text.rindex(b"\n", 0, 5_000_000) + 1]
            rows = body.count(b"\n")
            with serve("randomcutforest", Path(root)) as server:
                server.post(body[:1000], "text/csv")
                started = time.perf_counter()
                response = server.post(body, "text/csv")
                seconds = time.perf_counter() - started
            assert response.status_code == 200 and len(response.json()["scores"]) == rows, response.text[:200]
            print(f"serve: feature_dim {dim}: 5 MB CSV = {rows:,} rows answered in {seconds:.2f} s "
                  f"({rows / seconds:,.0f} rows/s end to end)")


def rrcf_agreement(x, scored=1000):
    from scipy.stats import spearmanr

    sys.modules.setdefault("pkg_resources", types.SimpleNamespace(  # rrcf 0.4.4 imports it for its version
        get_distribution=lambda name: types.SimpleNamespace(version="0.4.4")))
    import rrcf

    rng = np.random.default_rng(1)
    subset = x[rng.choice(x.shape[0], 10_000, replace=False)].astype(np.float64)
    started = time.perf_counter()
    trees = []
    own, count = np.zeros(len(subset)), np.zeros(len(subset))
    for _ in range(TREES):  # each tree from 256 of the 10,000 rows
        index = rng.choice(len(subset), SAMPLES, replace=False)
        seed = int(rng.integers(2**31))  # rrcf's cuts seeded too, so that a rerun gives the same figures
        tree = rrcf.RCTree(subset[index], index_labels=index, random_state=seed)
        trees.append(tree)
        for leaf in index:  # rrcf's batch recipe: CoDisp of a tree's own points
            own[leaf] += tree.codisp(leaf)
            count[leaf] += 1
    inserted = np.zeros(scored)
    for row in range(scored):  # and the score we compute: insert the row in every tree (temporarily)
        for tree in trees:
            if row in tree.leaves:
                inserted[row] += tree.codisp(row)
            else:
                tree.insert_point(subset[row], index="query")
                inserted[row] += tree.codisp("query")
                tree.forget_point("query")
    inserted /= TREES
    rrcf_time = time.perf_counter() - started
    ours = kernels.score(fit_rcf(subset.astype(np.float32)), subset.astype(np.float32))
    iforest = -fit_iforest(subset).score_samples(subset)
    seen = count > 0
    batch = own[seen] / count[seen]

    def rho(a, b):
        return spearmanr(a, b).statistic

    print(f"rrcf: 10,000-row subsample, 100 rrcf trees x 256 ({rrcf_time:.0f} s). Spearman with rrcf's mean CoDisp "
          f"over all 100 trees (first {scored} rows, inserted where not in a tree): algobox RCF "
          f"{rho(ours[:scored], inserted):.4f}, IsolationForest {rho(iforest[:scored], inserted):.4f}; with rrcf's "
          f"batch CoDisp ({seen.sum()} rows, ~{count[seen].mean():.1f} trees each): algobox RCF "
          f"{rho(ours[seen], batch):.4f}, IsolationForest {rho(iforest[seen], batch):.4f}; algobox RCF vs "
          f"IsolationForest {rho(ours, iforest):.4f}")


def rows_section(rounds=3):
    from containers.randomcutforest.model import RandomCutForestModel

    rng = np.random.default_rng(4)

    def model(dim, trees, samples):
        x = rng.normal(size=(4000, dim)).astype(np.float32)
        return RandomCutForestModel(F.build_forest(F.split_sample(x, trees, samples, rng), rng), samples)

    small = model(1, 50, 64)  # the hardening tests' shape (their model, seeded differently)
    cases = [("50 x 64, 3,000,000 x 0 (the hardening tests' request)", small, np.zeros((3_000_000, 1), np.float32)),
             ("50 x 64, 3,000,000 Gaussian rows of 1 feature", small, rng.normal(size=(3_000_000, 1)).astype(np.float32)),
             ("50 x 64, 898,779 rows d.dddd (6 MB)", small,
              (rng.integers(0, 100_000, (898_779, 1)) / 10_000).astype(np.float32)),
             ("50 x 64, 786,432 rows d.ddddd (6 MB, distinct within slices)", small,
              (rng.integers(0, 1_000_000, (786_432, 1)) / 100_000).astype(np.float32)),
             ("100 x 256, 1,000,000 Gaussian rows of 1 feature", model(1, 100, 256), rng.normal(size=(1_000_000, 1)).astype(np.float32)),
             ("100 x 256, 1,000,000 Gaussian rows of 2 features", model(2, 100, 256), rng.normal(size=(1_000_000, 2)).astype(np.float32)),
             ("100 x 256, 300,000 Gaussian rows of 10 features", model(10, 100, 256), rng.normal(size=(300_000, 10)).astype(np.float32))]
    print(f"rows: RandomCutForestModel.score in slices of {RandomCutForestModel.predict_rows:,} rows against the kernel on the "
          f"same slices as they are; median of {rounds} interleaved rounds")
    for name, rcf, x in cases:
        step = rcf.predict_rows
        kernels.score(rcf.forest, x[:10])

        def before():
            return np.concatenate([kernels.score(rcf.forest, x[start:start + step]) for start in range(0, len(x), step)])

        def after():
            return np.concatenate([rcf.score(x[start:start + step]) for start in range(0, len(x), step)])

        times = {"before": [], "after": []}
        for _ in range(rounds):
            expected, seconds = timed(before)
            times["before"].append(seconds)
            got, seconds = timed(after)
            times["after"].append(seconds)
            assert np.array_equal(got, expected), name
        ratio = float(np.median(np.array(times["before"]) / np.array(times["after"])))
        print(f"  {name}: as they are {np.median(times['before']):.3f} s, model.score {np.median(times['after']):.3f} s: "
              f"{ratio:.2f}x (rounds {', '.join(f'{b / a:.2f}x' for b, a in zip(times['before'], times['after']))}); "
              f"scores bit for bit equal")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", default="")
    parser.add_argument("--mlbench", default="", help="folder holding mlbench's Shuttle.rda")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "nab" not in skip:
        nab()
    if "shuttle" not in skip:
        shuttle(args.mlbench)
    x = speed(args.rows, args.rounds) if "speed" not in skip else synthetic(args.rows)[0]  # rrcf: the same rows
    if "serve" not in skip:
        serving()
    if "rrcf" not in skip:
        rrcf_agreement(x)
    if "rows" not in skip:
        rows_section(args.rounds)


if __name__ == "__main__":
    main()
