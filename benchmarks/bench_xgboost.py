"""XGBoost: parity with ``xgboost.train`` and the overhead of the container around it, as ratios from one run.

    flock /tmp/algobox-bench.lock .venv/bin/python -W ignore benchmarks/bench_xgboost.py [--rows 1000000]
        [--features 50] [--rounds 100] [--repeats 3] [--formats csv,libsvm,recordio] [--modes File,Pipe]
        [--skip-parity] [--skip-train] [--skip-serving] [--seconds 10] [--nthread N] [--serving-compare REPO]

    serving alone, against main's code in the same run (~3 minutes once the model is cached):
    flock /tmp/algobox-bench.lock .venv/bin/python -W ignore benchmarks/bench_xgboost.py --skip-parity \
        --skip-train --seconds 10 --repeats 3 --serving-compare /work/main

(a) parity: ``algobox xgboost train`` (File mode) on breast_cancer (binary) and mlbench Shuttle (7 classes;
    Debian's r-cran-mlbench, read with pyreadr, cached under ~/.cache/algobox) as CSV, libsvm, recordIO-
    protobuf and parquet, against ``xgboost.train`` on the same rows (a QuantileDMatrix of the numpy array):
    the largest difference of the predictions;
(b) overhead: the whole ``algobox xgboost train`` (process start to exit) on --rows x --features (synthetic,
    binary labels), --rounds rounds, depth 6, hist, as CSV, libsvm and recordIO-protobuf in File and Pipe mode,
    against a reference process that loads the same rows as numpy (.npy) and runs QuantileDMatrix +
    ``xgboost.train(..., evals=[(dtrain, "train")])`` (same nthread; like for like: the job evaluates the train
    set each round for the built-in's ``[n]#011train-<metric>`` lines, as the open container's algorithm mode
    does): time over the reference's matrix + train call, CPU seconds likewise, and peak RSS over the
    reference's (each process's own, from wait4); the same reference process then trains again on its matrix
    without ``evals``, reported as the second column ("without evaluation"); --repeats interleaved pairs per
    variant (reference, ours, reference, ours, ...), the median ratio reported, with the load average;
(c) serving: rows/s of 1,000-row CSV requests (``%.7g``, 50 features) through ``algobox xgboost serve`` (nginx,
    gunicorn, one worker per core; two keep-alive http.client clients per worker, threads of this process on the
    same cores) against a bare ``Booster.inplace_predict`` loop on the same rows already parsed, all cores;
    --repeats interleaved rounds, the median ratio; in parentheses the ratio to a second reference that shares the
    cores as the server does, one single-threaded predict loop per core in separate processes (the all-core loop's
    OpenMP threads slow down most when anything else runs); and, each round, the HTTP floor: the same clients and
    bodies against a trivial Flask app under gunicorn (one gthread worker per core, no nginx, a constant answer),
    giving the most any server on this HTTP stack could serve, 1 / (1/floor + 1/predict) rows/s, whatever its
    parser (costs on shared cores add), and that bound with the parse of the bodies added at the cost of the fastest
    parser here (numpy's loadtxt, pyarrow's read_csv on one thread or pandas' read_csv, CPU time in this process).
    ``--serving-compare REPO`` adds a second server run from that
    checkout's code to every round (e.g. main, for a before/after in one run). Without --skip-train the model is
    the overhead run's; else the reference model of --rows x --features, trained once and cached.

Files are cached in $ALGOBOX_BENCH_DIR (default /tmp/algobox-bench-xgboost) between runs.
"""

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import protobuf, recordio  # noqa: E402
from emulator import ALGOBOX, Job, PipeWriter, serve  # noqa: E402
from bench_serving import trivial_server  # noqa: E402

CACHE = Path(os.environ.get("ALGOBOX_BENCH_DIR", "/tmp/algobox-bench-xgboost"))
PARAMS = {"max_depth": 6, "eta": 0.3, "tree_method": "hist", "objective": "binary:logistic", "seed": 0}


# ---------------------------------------------------------------- data in every format
def _tokens(x, prefix):
    """Fixed-width text of every value (values are multiples of 0.001 in (-10, 10): ``+1.234``), as bytes
    rows built from a lookup table, so that writing a million rows takes seconds."""
    codes = np.rint(np.asarray(x, dtype=np.float64) * 1000).astype(np.int64) + 9999
    values = np.array([f"{(v - 9999) / 1000:+.3f}" for v in range(19999)], dtype="S6")
    width = len(prefix(0)) + 6  # every prefix of a format has the same width
    table = np.char.add(np.array([prefix(j) for j in range(x.shape[1])], dtype="S8")[:, None], values[None, :])
    table = table.astype(f"S{width}")
    return table[np.arange(x.shape[1])[None, :], codes]


def _write_rows(x, y, prefix, sep, out):
    for start in range(0, len(y), 50_000):
        part = _tokens(x[start:start + 50_000], prefix)
        width = part.dtype.itemsize
        rows = part.shape[0]
        line = np.full((rows, 2 + part.shape[1] * (width + 1)), ord(sep), np.uint8)
        line[:, 0] = ord("0") + y[start:start + 50_000].astype(np.uint8)  # labels 0-9
        body = np.ascontiguousarray(part).view(np.uint8).reshape(rows, part.shape[1], width)
        cells = line[:, 2:].reshape(rows, part.shape[1], width + 1)
        cells[:, :, :width] = body
        line[:, -1] = ord("\n")
        out.write(line.tobytes())
    return out


def csv_bytes(x, y):
    return _write_rows(x, y, lambda j: "", ",", io.BytesIO()).getvalue()


def libsvm_bytes(x, y):
    """Zero-based indices, every value written (two-digit indices keep the width fixed: ``07:+1.234``)."""
    return _write_rows(x, y, lambda j: f"{j:02d}:", " ", io.BytesIO()).getvalue()


def quantise(x):
    """The values the text formats can write exactly: multiples of 0.001 in (-10, 10)."""
    return (np.rint(np.clip(x, -9.999, 9.999) * 1000) / 1000).astype(np.float32)


def recordio_bytes(x, y):
    out = io.BytesIO()
    for start in range(0, len(y), 100_000):
        payloads = protobuf.encode_dense(x[start:start + 100_000], y[start:start + 100_000])
        out.write(b"".join(recordio.encode_record(p) for p in payloads))
    return out.getvalue()


def parquet_bytes(x, y):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"label": y, **{f"f{j}": x[:, j] for j in range(x.shape[1])}}), buffer)
    return buffer.getvalue()


FORMATS = {"csv": ("text/csv", csv_bytes), "libsvm": ("text/libsvm", libsvm_bytes),
           "recordio": ("application/x-recordio-protobuf", recordio_bytes),
           "parquet": ("application/x-parquet", parquet_bytes)}


def shuttle():
    """mlbench Shuttle (58,000 x 9, 7 classes) from Debian's r-cran-mlbench, cached."""
    cached = Path.home() / ".cache" / "algobox" / "shuttle.npz"
    if not cached.exists():
        import pyreadr

        work = Path(tempfile.mkdtemp())
        subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=work, check=True, capture_output=True)
        deb = next(work.glob("r-cran-mlbench_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x")], check=True)
        frame = pyreadr.read_r(str(next(work.rglob("Shuttle.rda"))))["Shuttle"]
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, x=frame.iloc[:, :9].to_numpy(np.float32), y=frame["Class"].cat.codes.to_numpy(np.float32))
        shutil.rmtree(work, ignore_errors=True)
    data = np.load(cached)
    return data["x"], data["y"]


# ---------------------------------------------------------------- running algobox
def run_train(root, data, content_type, hp, mode="File"):
    """``algobox xgboost train`` as a subprocess: (seconds, peak RSS MB, model dir)."""
    shutil.rmtree(root, ignore_errors=True)
    job = Job(root)
    if mode == "File":
        (root / "input/data/train").mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            os.symlink(data, root / "input/data/train" / data.name)
        else:
            job.add_file("train", "data", data)
    else:
        fifo = root / "input/data/train_0"
        os.mkfifo(fifo)

        def chunks():
            with open(data, "rb") if isinstance(data, Path) else io.BytesIO(data) as f:
                while block := f.read(1 << 20):
                    yield block

        writer = PipeWriter(fifo, chunks())
        writer.start()
    job.write_config({k: str(v) for k, v in hp.items()}, {"train": {"ContentType": content_type,
                                                                      "TrainingInputMode": mode}})
    started = time.perf_counter()
    process = subprocess.Popen(ALGOBOX + ["xgboost", "train"], cwd=REPO, env=job.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    output = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"algobox train failed:\n{output[0].decode()[-3000:]}")
    run_train.cpu_s = usage.ru_utime + usage.ru_stime  # the whole process's CPU seconds
    return elapsed, usage.ru_maxrss / 1024, root / "model", output[0].decode()


REFERENCE = r"""
import json, os, sys, time
import numpy as np, xgboost as xgb
x = np.load(sys.argv[1]); y = np.load(sys.argv[2]); params = json.loads(sys.argv[3]); rounds = int(sys.argv[4])
def seconds(since):
    now = os.times()
    return time.perf_counter() - since[0], now.user + now.system - since[1].user - since[1].system
start = (time.perf_counter(), os.times())
matrix = xgb.QuantileDMatrix(x, label=y, nthread=params.get("nthread"))
matrix_s, matrix_cpu = seconds(start)
start = (time.perf_counter(), os.times())  # like for like: the train set evaluated each round, as the job does
booster = xgb.train(params, matrix, rounds, evals=[(matrix, "train")], verbose_eval=False)
eval_s, eval_cpu = seconds(start)
booster.save_model(sys.argv[5])
del booster
start = (time.perf_counter(), os.times())  # the second column: the library alone, no evaluation
xgb.train(params, matrix, rounds)
bare_s, bare_cpu = seconds(start)
print(json.dumps({"train_s": matrix_s + eval_s, "train_cpu_s": matrix_cpu + eval_cpu,
                  "bare_s": matrix_s + bare_s, "bare_cpu_s": matrix_cpu + bare_cpu}))
"""


LIBRARY_PARSE = r"""
import json, os, sys, time
import xgboost as xgb
start = (time.perf_counter(), os.times())
with xgb.config_context(verbosity=0):
    matrix = xgb.DMatrix(sys.argv[1] + "?format=libsvm&indexing_mode=0", silent=True)
now = os.times()
print(json.dumps({"s": time.perf_counter() - start[0], "cpu_s": now.user + now.system - start[1].user - start[1].system,
                  "rows": matrix.num_row()}))
"""


def library_parse(path):
    """The library's own parse of a whole libsvm file into a DMatrix (its URI loader, all its threads), in a child:
    (seconds, CPU seconds). No reader that keeps the library's values (parity with its loader) parses for less."""
    out = subprocess.run([sys.executable, "-c", LIBRARY_PARSE, str(path)], capture_output=True, check=True)
    result = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result["s"], result["cpu_s"]


def run_reference(x_path, y_path, params, rounds, model_path):
    """The library on the rows already in memory, one process: its matrix + ``xgboost.train`` with the train set
    evaluated each round (``train_s``, ``train_cpu_s``: like for like), then, on the same matrix, without
    evaluation (``bare_s``, ``bare_cpu_s``: the matrix's time + that call's); ``rss_mb``: the process's peak."""
    process = subprocess.Popen([sys.executable, "-c", REFERENCE, str(x_path), str(y_path), json.dumps(params),
                                str(rounds), str(model_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    reader.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(process.stderr.read().decode()[-2000:])
    result = json.loads(out[0].decode().strip().splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024
    return result


def load_model(model_dir):
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(model_dir / "xgboost-model"))
    return booster


# ---------------------------------------------------------------- (a) parity
def parity(work):
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    sets = {"breast_cancer": (quantise(x / np.abs(x).max(axis=0) * 9), y.astype(np.float32),
                              {"objective": "binary:logistic", "max_depth": 4}, 20)}
    try:
        sx, sy = shuttle()
        sets["shuttle"] = (quantise(sx / np.abs(sx).max(axis=0) * 9), sy, {"objective": "multi:softprob", "num_class": 7, "max_depth": 6}, 20)
    except Exception as exc:  # no apt or pyreadr: say so, keep going
        print(f"  shuttle unavailable: {type(exc).__name__}: {exc}")
    print("(a) parity: max |prediction - xgboost.train's| on the training rows; the reference loads each file as a "
          "user would with the library (numpy for CSV, recordIO and parquet; xgboost's own libsvm loader, whose "
          "values differ from numpy's in the last bit in places, which moves the dense reference's model)")
    for name, (x, y, params, rounds) in sets.items():
        dense = xgb.train(params, xgb.QuantileDMatrix(x, label=y), rounds).predict(xgb.DMatrix(x))
        for fmt, (content_type, make) in FORMATS.items():
            data = make(x, y)
            expected = dense
            if fmt == "libsvm":
                path = work / f"{name}.libsvm"
                path.write_bytes(data)
                expected = xgb.train(params, xgb.DMatrix(f"{path}?format=libsvm"), rounds).predict(xgb.DMatrix(x))
            seconds, rss, model_dir, _ = run_train(work / f"parity-{name}-{fmt}", data, content_type,
                                                   {**params, "num_round": rounds})
            got = load_model(model_dir).predict(xgb.DMatrix(x))
            print(f"  {name:14s} {x.shape[0]:6d} x {x.shape[1]:2d} {fmt:9s} max diff {np.abs(got - expected).max():.2e}"
                  f"  ({seconds:.1f} s)")


# ---------------------------------------------------------------- (b) overhead
def synthetic(rows, features):
    CACHE.mkdir(parents=True, exist_ok=True)
    x_path, y_path = CACHE / f"x-{rows}-{features}.npy", CACHE / f"y-{rows}-{features}.npy"
    if not x_path.exists():
        rng = np.random.default_rng(0)
        x = quantise(rng.standard_normal((rows, features), dtype=np.float32))
        w = rng.standard_normal(features).astype(np.float32)
        margin = x @ w / np.sqrt(features) + 0.5 * np.sin(3 * x[:, 0]) * x[:, 1]
        y = (margin + rng.logistic(size=rows).astype(np.float32) * 0.5 > 0).astype(np.float32)
        np.save(x_path, x)
        np.save(y_path, y)
    return x_path, y_path


def data_file(fmt, rows, features, x_path, y_path):
    path = CACHE / f"data-{rows}-{features}.{fmt}"
    if not path.exists():
        started = time.perf_counter()
        x, y = np.load(x_path), np.load(y_path)
        path.write_bytes(FORMATS[fmt][1](x, y))
        print(f"  wrote {path.name}: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s")
    return path


def overhead(work, rows, features, rounds, repeats, formats, modes):
    """Per variant, ``repeats`` pairs run back to back (reference, ours, reference, ours, ...), so each pair
    shares the machine's load of that moment; the median of the pairs' ratios is the figure. Both sides run
    with the same nthread (also the reference's QuantileDMatrix). The decisive reference evaluates the train
    set each round (``evals=[(dtrain, "train")]``), as the job does for its ``[n]#011train-<metric>`` lines and
    as the open container's algorithm mode does; the same reference without evaluation is the second column.
    CPU seconds (the whole process against the reference's matrix + train call) are reported beside the wall
    times: they depend far less on the load."""
    import xgboost as xgb

    x_path, y_path = synthetic(rows, features)
    reference_model = work / "reference-model"
    probe = np.asarray(np.load(x_path, mmap_mode="r")[:20000])
    print(f"(b) overhead, {rows} x {features}, {rounds} rounds, depth 6, hist, nthread {PARAMS.get('nthread', 'all')},"
          f" {repeats} interleaved pairs per variant; ratios are medians of the pairs", flush=True)
    hp = {**PARAMS, "num_round": rounds}
    summary = []
    for fmt in formats:
        path = data_file(fmt, rows, features, x_path, y_path)
        for mode in modes:
            pairs, floors = [], []
            for _ in range(repeats):
                ref = run_reference(x_path, y_path, PARAMS, rounds, reference_model)
                seconds, peak, model_dir, output = run_train(work / f"overhead-{fmt}-{mode}", path,
                                                            FORMATS[fmt][0], hp, mode)
                cpu = run_train.cpu_s
                stages = json.loads(output.split("#metrics ")[-1].splitlines()[0])["Metrics"]
                read_s = sum(v["sum"] for k, v in stages.items() if k.startswith("read")) / 1000
                library_s = (stages["build matrices.time"]["sum"] + stages["boost.time"]["sum"]) / 1000
                load = os.getloadavg()[0]
                floor = ""
                if fmt == "libsvm":
                    parse_s, parse_cpu = library_parse(path)
                    floors.append((ref["train_s"] + parse_s) / ref["train_s"])
                    floor = (f"; the library's own parse of the file {parse_s:.1f} s ({parse_cpu:.1f} s CPU): the reference "
                             f"+ that parse alone = {floors[-1]:.2f}x")
                pairs.append((seconds / ref["train_s"], cpu / ref["train_cpu_s"], peak / ref["rss_mb"],
                              seconds / ref["bare_s"], cpu / ref["bare_cpu_s"], load))
                print(f"    {fmt:8s} {mode:4s}: {seconds:6.1f} s ({cpu:5.1f} s CPU) vs reference {ref['train_s']:6.1f} s "
                      f"({ref['train_cpu_s']:5.1f} s CPU) = {pairs[-1][0]:.2f}x ({pairs[-1][1]:.2f}x CPU); without "
                      f"evaluation {ref['bare_s']:6.1f} s ({ref['bare_cpu_s']:5.1f} s CPU) = {pairs[-1][3]:.2f}x "
                      f"({pairs[-1][4]:.2f}x CPU); peak RSS {peak:4.0f} / {ref['rss_mb']:4.0f} MB = {pairs[-1][2]:.2f}x; "
                      f"reading {read_s:.1f} s; matrix + boosting {library_s:.1f} s; load average {load:.1f}{floor}",
                      flush=True)
            reference = xgb.Booster()
            reference.load_model(str(reference_model))
            diff = np.abs(load_model(model_dir).inplace_predict(probe) - reference.inplace_predict(probe)).max()
            medians = [float(np.median([p[i] for p in pairs])) for i in range(5)]
            loads = [p[5] for p in pairs]
            summary.append((fmt, mode, *medians))
            print(f"  {fmt:8s} {mode:4s}: time {medians[0]:.2f}x (pairs {', '.join(f'{p[0]:.2f}' for p in pairs)}), "
                  f"CPU {medians[1]:.2f}x; without evaluation {medians[3]:.2f}x time, {medians[4]:.2f}x CPU; peak RSS "
                  f"{medians[2]:.2f}x; max diff vs reference {diff:.1e}; load average {min(loads):.1f}-{max(loads):.1f}"
                  + (f"; floor (the reference + the library's own parse of the file) {np.median(floors):.2f}x"
                     if floors else ""), flush=True)
    print("  summary (median of pairs; like for like = the reference evaluates the train set each round, as the job "
          "does): " + "; ".join(f"{f} {m}: {t:.2f}x time, {c:.2f}x CPU ({bt:.2f}x, {bc:.2f}x without evaluation), "
                                f"{r:.2f}x RSS" for f, m, t, c, r, bt, bc in summary), flush=True)
    return reference_model, x_path


# ---------------------------------------------------------------- (c) serving
def http_rate(url, bodies, seconds, clients, batch):
    """Rows/s of ``clients`` keep-alive clients (http.client, threads of this process) posting ``bodies`` in turn."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    done = [0]
    stop = time.perf_counter() + seconds

    def client(k):
        connection = http.client.HTTPConnection(where.hostname, where.port)
        i = k
        while time.perf_counter() < stop:
            connection.request("POST", where.path, body=bodies[i % len(bodies)], headers={"Content-Type": "text/csv"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            done[0] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] * batch / (time.perf_counter() - begin)


BARE_ONE_THREAD = """
import sys, time
import numpy as np, xgboost as xgb
model, rows, start, seconds = sys.argv[1], np.load(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
booster = xgb.Booster()
booster.load_model(model)
booster.set_param({"nthread": 1})
batches = np.split(rows, len(rows) // 1000)
booster.inplace_predict(batches[0])
time.sleep(max(0.0, start - time.time()))
count, begin = 0, time.perf_counter()
while time.perf_counter() - begin < seconds:
    booster.inplace_predict(batches[count % len(batches)])
    count += 1
print(count * 1000 / (time.perf_counter() - begin))
"""


def bare_processes(model_path, rows_path, seconds, processes):
    """Rows/s of ``processes`` processes each predicting on one thread (the server's layout: one worker per core,
    one thread each) at the same time: a reference that shares the cores the way the server does."""
    start = time.time() + 3  # after every process has imported xgboost
    children = [subprocess.Popen([sys.executable, "-c", BARE_ONE_THREAD, str(model_path), str(rows_path), str(start),
                                  str(seconds)], stdout=subprocess.PIPE) for _ in range(processes)]
    return sum(float(child.communicate()[0]) for child in children)


def fastest_parse(bodies):
    """CPU seconds per body of the fastest CSV parser at hand (numpy's C ``loadtxt``, pyarrow's ``read_csv`` on one
    thread, pandas' ``read_csv``), best of 5 passes over the bodies: the name and the seconds."""
    import pandas
    import pyarrow
    import pyarrow.csv as arrow_csv

    width = bodies[0].split(b"\n", 1)[0].count(b",") + 1
    read = arrow_csv.ReadOptions(use_threads=False, autogenerate_column_names=True)
    convert = arrow_csv.ConvertOptions(column_types={f"f{j}": pyarrow.float32() for j in range(width)})
    parsers = {
        "numpy.loadtxt": lambda body: np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float32),
        "pyarrow.csv (1 thread)": lambda body: arrow_csv.read_csv(io.BytesIO(body), read_options=read,
                                                                  convert_options=convert),
        "pandas.read_csv": lambda body: pandas.read_csv(io.BytesIO(body), header=None, engine="c", dtype=np.float32),
    }
    costs = {}
    for name, parse in parsers.items():
        best = np.inf
        for _ in range(5):
            started = time.process_time()
            for body in bodies:
                parse(body)
            best = min(best, (time.process_time() - started) / len(bodies))
        costs[name] = best
    name = min(costs, key=costs.get)
    return name, costs[name]


def serving(work, model_path, x_path, seconds, repeats=3, batch=1000, other_code=None):
    """``repeats`` rounds of (bare loop for ``seconds``, HTTP clients for ``seconds`` [, the same against the server
    run from ``other_code``]); the median ratio of each server to the bare loop of its round."""
    import requests
    import xgboost as xgb

    x = np.asarray(np.load(x_path, mmap_mode="r")[:batch * 20])
    batches = [x[i:i + batch] for i in range(0, len(x), batch)]
    bodies = []
    for b in batches:
        buffer = io.StringIO()
        np.savetxt(buffer, b, delimiter=",", fmt="%.7g")
        bodies.append(buffer.getvalue().encode())
    parsed = [np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float32) for body in bodies]
    rows_path = work / "serving-rows.npy"
    np.save(rows_path, np.concatenate(parsed))
    booster = xgb.Booster()
    booster.load_model(str(model_path))

    def bare():
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            booster.inplace_predict(parsed[count % len(parsed)])
            count += 1
        return count * batch / (time.perf_counter() - started)

    cores = os.cpu_count() or 1
    root = work / "serving"
    shutil.rmtree(root, ignore_errors=True)
    (root / "model").mkdir(parents=True)
    shutil.copy(model_path, root / "model" / "xgboost-model")
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(cores)}
    servers = {"this tree": env}
    if other_code:
        servers[str(other_code)] = {**env, "PYTHONPATH": str(Path(other_code).resolve())}
    ratios = {name: [] for name in servers}
    per_core = {name: [] for name in servers}
    bounds, parsed_bounds = [], []
    parser_name, parse_seconds = fastest_parse(bodies)
    parse_rate = cores * batch / parse_seconds  # rows/s of that parser on every core
    print(f"    the fastest CSV parser here: {parser_name}, {parse_seconds * 1e3:.2f} ms of CPU per 1,000-row body "
          f"({parse_rate:,.0f} rows/s on {cores} cores)", flush=True)
    with contextlib.ExitStack() as stack:
        urls = {}
        for name, server_env in servers.items():
            server = stack.enter_context(serve("xgboost", root, env=server_env, startup_timeout=180))
            urls[name] = server.url + "/invocations"
            for body in bodies[:4]:
                assert requests.post(urls[name], data=body, headers={"Content-Type": "text/csv"}).status_code == 200
        floor_port = stack.enter_context(trivial_server(cores))
        floor_url = f"http://127.0.0.1:{floor_port}/invocations"
        for _ in range(repeats):  # interleaved: bare, the HTTP floor, this tree, the other tree, bare, ...
            alone = bare()
            split = bare_processes(model_path, rows_path, seconds, cores)
            http_only = http_rate(floor_url, bodies, seconds, 2 * cores, batch)
            # costs on shared cores add: any server that reads the request over this HTTP stack and predicts as the
            # one-thread processes do serves at most 1 / (1/http + 1/predict) rows/s, whatever its parser
            bound = 1 / (1 / http_only + 1 / max(split, alone))
            parsed_bound = 1 / (1 / bound + 1 / parse_rate)  # and parsing the bodies with the fastest parser
            bounds.append(bound / alone)
            parsed_bounds.append(parsed_bound / alone)
            line = [f"bare {alone:,.0f} rows/s", f"bare one thread x {cores} processes {split:,.0f} rows/s",
                    f"HTTP alone (trivial app) {http_only:,.0f} rows/s, so at most {bound:,.0f} = {bound / alone:.2f}x, "
                    f"{parsed_bound / alone:.2f}x with the parse"]
            for name, url in urls.items():
                served = http_rate(url, bodies, seconds, 2 * cores, batch)
                ratios[name].append(served / alone)
                per_core[name].append(served / split)
                line.append(f"{name} {served:,.0f} rows/s = {served / alone:.2f}x ({served / split:.2f}x)")
            print(f"    serving: {'; '.join(line)}; load average {os.getloadavg()[0]:.1f}", flush=True)
    for name, pairs in ratios.items():
        print(f"(c) serving 1,000-row CSV requests ({name}): {float(np.median(pairs)):.2f}x bare Booster.inplace_predict "
              f"(median of {repeats} rounds {', '.join(f'{p:.2f}' for p in pairs)}; {cores} workers, {2 * cores} "
              f"http.client clients; the bare loop on all cores); {float(np.median(per_core[name])):.2f}x the bare "
              f"one-thread processes", flush=True)
    print(f"(c) the HTTP floor: a server that predicts as fast as the bare one-thread processes and whose only other "
          f"cost is a trivial Flask app's (gunicorn, {cores} gthread workers, no nginx, the body read, a constant "
          f"answer) serves at most {float(np.median(bounds)):.2f}x the bare loop (median of {repeats} rounds "
          f"{', '.join(f'{b:.2f}' for b in bounds)}); adding the fastest parser's cost ({parser_name}): at most "
          f"{float(np.median(parsed_bounds)):.2f}x ({', '.join(f'{b:.2f}' for b in parsed_bounds)})", flush=True)
    if other_code:
        ours, theirs = (np.array(ratios[name]) for name in servers)
        print(f"(c) this tree / {other_code}: {float(np.median(ours / theirs)):.2f}x rows/s (median of rounds)",
              flush=True)


def serving_model(rows, features, rounds):
    """The reference model of ``rows`` x ``features``, trained once and kept in the cache (serving needs no fresh one)."""
    model_path = CACHE / f"model-{rows}-{features}-{rounds}.ubj"
    x_path, y_path = synthetic(rows, features)
    if not model_path.exists():
        run_reference(x_path, y_path, PARAMS, rounds, model_path)
    return model_path, x_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--nthread", type=int, default=None,
                        help="the nthread hyperparameter for both sides (1 is steadier on a crowded machine)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved reference/ours pairs per variant")
    parser.add_argument("--formats", default="csv,libsvm,recordio")
    parser.add_argument("--modes", default="File,Pipe")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--serving-compare", metavar="REPO",
                        help="also serve from another checkout's code (e.g. /work/main), interleaved in each round")
    args = parser.parse_args()
    if args.nthread:
        PARAMS["nthread"] = args.nthread
    work = Path(tempfile.mkdtemp(prefix="bench-xgboost-"))
    try:
        if not args.skip_parity:
            parity(work)
        model_path = x_path = None
        if not args.skip_train:
            model_path, x_path = overhead(work, args.rows, args.features, args.rounds, args.repeats,
                                          args.formats.split(","), args.modes.split(","))
        if not args.skip_serving:
            if model_path is None:
                model_path, x_path = serving_model(args.rows, args.features, args.rounds)
            serving(work, model_path, x_path, args.seconds, args.repeats, other_code=args.serving_compare)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
