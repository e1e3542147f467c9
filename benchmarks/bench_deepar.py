"""DeepAR quality and speed, printed from one run (ratios against references in the same run).

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_deepar.py [--parts taxi,tweets,synthetic,serving]
        [--skip-gluonts] [--seeds 1]

(a) taxi: ../shared/data/nab/nyc_taxi.csv (half-hourly, one series), time_freq 30min, prediction_length 48,
    context_length 48; cut before NAB's last anomaly window (the January 2015 blizzard, --taxi-end), its last 7
    days are 7 test windows (each forecast from everything before it), trained on what precedes the first. (b) tweets: the ten Twitter-volume series of ../shared/data/nab/tweets/ (5-minute
    counts), one model over all ten, time_freq 5min, prediction_length 48, context_length 48; 3 test windows per
    series. For both: test RMSE and mean wQuantileLoss (the guide's formulas, forecast.Scores, 100 samples) of
    ``algobox deepar train`` (the real entrypoint; its logged test metrics), of GluonTS's torch DeepAR with the same
    settings (lags, date features, 2 x 40 LSTM, student-T, Adam 1e-3, the same batches per epoch and epochs, one
    torch thread as ours) and of the seasonal-naive forecast (the value one day earlier), with training times.
(c) synthetic: 1,000 series of 1,000 days with weekly seasonality, a trend, a level per category (10 categories)
    and Gaussian noise of known sigma; coverage of the 0.1 and 0.9 quantiles (share of held-out points below
    each) and the training time per epoch (from the entrypoint's log).
(d) serving: 100 series x 100 samples x horizon 24 forecast in one request through ``algobox deepar serve``
    (HTTP, JSON, 2 workers), median latency of 5 requests, against one-series-at-a-time requests (the built-in's
    documented way of working) in the same run.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from containers.deepar.forecast import Scores, quantiles  # noqa: E402
from emulator import Job, serve  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "nab"
if not DATA.is_dir():
    DATA = Path("/work/shared/data/nab")
LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
METRIC = re.compile(r"#quality_metric: host=\S+, (test|train) (\S+) <loss>=(\S+)")
EPOCH = re.compile(r"Epoch\[(\d+)\] train loss=\S+, (\d+) batches, \S+ windows/s, (\S+) s")


def read_csv(path):
    stamps, values = [], []
    for line in Path(path).read_text().splitlines()[1:]:
        stamp, value = line.split(",")
        stamps.append(stamp)
        values.append(float(value))
    return stamps, np.asarray(values, np.float64)


def regular(stamps, values, minutes):
    """NAB's files skip a few timestamps: put the values on a regular grid (gaps are NaN, missing values)."""
    t = np.array([np.datetime64(s.replace(" ", "T"), "s") for s in stamps])
    index = ((t - t[0]) / np.timedelta64(minutes * 60, "s")).astype(np.int64)
    grid = np.full(index[-1] + 1, np.nan)
    grid[index] = values
    return str(t[0]).replace("T", " "), grid


def jsonl(records):
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


def as_json_target(values):
    return [None if math.isnan(v) else float(v) for v in values]


def windows(series_list, p, count):
    """(train records, test records): each series' last ``count`` windows of p points are test windows."""
    train, test = [], []
    for start, values, cat in series_list:
        train.append({"start": start, "target": as_json_target(values[:len(values) - count * p]), **cat})
        for k in range(count):
            end = len(values) - k * p
            test.append({"start": start, "target": as_json_target(values[:end]), **cat})
    return train, test


def seasonal_naive(test, p, season):
    scores = Scores(LEVELS)
    for record in test:
        y = np.array([np.nan if v is None else v for v in record["target"]], np.float64)
        history, truth = y[:-p], y[-p:]
        idx = len(history) - season + np.arange(p) % season
        point = history[idx]
        point = np.where(np.isnan(point), np.nanmean(history[-season:]), point)
        scores.add(truth, point, {q: point for q in LEVELS})
    return scores.results()


def ours(root, train, test, hp):
    job = Job(root)
    job.add_file("train", "train.json", jsonl(train))
    job.add_file("test", "test.json", jsonl(test))
    job.write_config(hp, {"train": {"ContentType": "application/jsonlines"},
                          "test": {"ContentType": "application/jsonlines"}})
    started = time.perf_counter()
    result = job.train("deepar", timeout=3600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.output[-3000:])
    metrics = {f"{c}:{m}": float(v) for c, m, v in METRIC.findall(result.output)}
    epochs = [(int(e), int(b), float(s)) for e, b, s in EPOCH.findall(result.output)]
    return metrics, seconds, epochs, result.output


def gluonts_deepar(train, test, hp, batches_per_epoch, seed, workdir):
    import torch
    from gluonts.dataset.common import ListDataset
    from gluonts.torch import DeepAREstimator
    from gluonts.torch.distributions import StudentTOutput

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    freq = {"30min": "30min", "5min": "5min", "H": "h", "D": "D"}[hp["time_freq"]]
    p = int(hp["prediction_length"])

    def dataset(records, cut=0):
        return ListDataset([{"start": r["start"], "target": np.array([np.nan if v is None else v for v in
                                                                       r["target"]], np.float32)[:len(r["target"]) - cut]}
                            for r in records], freq=freq)

    estimator = DeepAREstimator(freq=freq, prediction_length=p, context_length=int(hp["context_length"]),
                                num_layers=2, hidden_size=40, dropout_rate=0.1, lr=1e-3,
                                batch_size=int(hp["mini_batch_size"]), num_batches_per_epoch=batches_per_epoch,
                                distr_output=StudentTOutput(), num_parallel_samples=100,
                                trainer_kwargs={"max_epochs": int(hp["epochs"]), "accelerator": "cpu",
                                                "enable_progress_bar": False, "logger": False,
                                                "enable_model_summary": False,
                                                "default_root_dir": str(workdir)})
    started = time.perf_counter()
    predictor = estimator.train(dataset(train))
    seconds = time.perf_counter() - started
    scores = Scores(LEVELS)
    for record, forecast in zip(test, predictor.predict(dataset(test, cut=p))):
        truth = np.array([np.nan if v is None else v for v in record["target"][-p:]], np.float64)
        paths = forecast.samples[None]  # (1, S, P)
        values = quantiles(paths, LEVELS)
        scores.add(truth, paths.mean(axis=1)[0], {q: values[q][0] for q in LEVELS})
    return scores.results(), seconds


def compare(name, series_list, hp, count, season, args, workdir):
    p = int(hp["prediction_length"])
    train, test = windows(series_list, p, count)
    naive = seasonal_naive(test, p, season)
    print(f"\n== {name}: {len(train)} training series, {len(test)} test windows of {p}; hyperparameters {hp}")
    print(f"seasonal naive (season {season}): RMSE {naive['RMSE']:.4g}, mean wQuantileLoss "
          f"{naive['mean_wQuantileLoss']:.4f}")
    rows = []
    for seed in range(args.seeds):
        metrics, seconds, epochs, _ = ours(workdir / f"{name}-{seed}", train, test, hp)
        batches = epochs[0][1] if epochs else 1
        print(f"ours    seed-run {seed}: RMSE {metrics['test:RMSE']:.4g}, mean wQuantileLoss "
              f"{metrics['test:mean_wQuantileLoss']:.4f}, train:final_loss {metrics.get('train:final_loss', float('nan')):.4f}, "
              f"job {seconds:.1f} s ({batches} batches/epoch, epochs {sum(e[2] for e in epochs):.1f} s)")
        row = {"ours": metrics["test:mean_wQuantileLoss"], "ours_rmse": metrics["test:RMSE"], "ours_s": seconds,
               "ours_epochs_s": sum(e[2] for e in epochs)}
        if not args.skip_gluonts:
            reference, ref_seconds = gluonts_deepar(train, test, hp, batches, seed, workdir / f"{name}-gluonts-{seed}")
            print(f"gluonts seed {seed}: RMSE {reference['RMSE']:.4g}, mean wQuantileLoss "
                  f"{reference['mean_wQuantileLoss']:.4f}, fit {ref_seconds:.1f} s")
            row.update(gluonts=reference["mean_wQuantileLoss"], gluonts_rmse=reference["RMSE"], gluonts_s=ref_seconds)
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"{name} summary: ours mean wQL {mean['ours']:.4f} (RMSE {mean['ours_rmse']:.4g}) vs seasonal naive "
          f"{naive['mean_wQuantileLoss']:.4f} (RMSE {naive['RMSE']:.4g}): ratio {mean['ours'] / naive['mean_wQuantileLoss']:.3f}")
    if "gluonts" in mean:
        print(f"{name} summary: GluonTS mean wQL {mean['gluonts']:.4f} (RMSE {mean['gluonts_rmse']:.4g}); ours / GluonTS "
              f"wQL {mean['ours'] / mean['gluonts']:.3f}, RMSE {mean['ours_rmse'] / mean['gluonts_rmse']:.3f}; training "
              f"time ours (epochs) / GluonTS (fit) {mean['ours_epochs_s'] / mean['gluonts_s']:.3f}")
    return mean, naive


def taxi(args, workdir):
    stamps, values = read_csv(DATA / "nyc_taxi.csv")
    keep = [i for i, s in enumerate(stamps) if s < args.taxi_end]
    start, grid = regular([stamps[i] for i in keep], values[keep], 30)
    hp = {"time_freq": "30min", "prediction_length": "48", "context_length": "48", "epochs": str(args.taxi_epochs),
          "mini_batch_size": "32", "num_eval_samples": "100"}
    return compare("taxi", [(start, grid, {})], hp, 7, 48, args, workdir)


def tweets(args, workdir):
    series_list = []
    for path in sorted((DATA / "tweets").glob("*.csv")):
        stamps, values = read_csv(path)
        start, grid = regular(stamps, values, 5)
        series_list.append((start, grid, {}))
    hp = {"time_freq": "5min", "prediction_length": "48", "context_length": "48", "epochs": str(args.tweet_epochs),
          "mini_batch_size": "64", "num_eval_samples": "100"}
    return compare("tweets", series_list, hp, 3, 288, args, workdir)


def synthetic_series(n=1000, length=1000, seed=0, sigma=1.0, groups=10):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    levels = rng.uniform(10, 50, groups)
    records = []
    for i in range(n):
        group = i % groups
        phase = rng.integers(0, 7)
        values = (levels[group] + 0.01 * t * rng.uniform(0.5, 1.5) + 5.0 * np.sin(2 * np.pi * (t + phase) / 7)
                  + rng.normal(0, sigma, length))
        records.append({"start": "2020-01-01 00:00:00", "target": values, "cat": [group]})
    return records


def synthetic(args, workdir):
    p, c = 14, 14
    records = synthetic_series(args.synthetic_series, args.synthetic_length)
    train = [{"start": r["start"], "target": [round(float(v), 4) for v in r["target"][:-p]], "cat": r["cat"]}
             for r in records]
    test = [{"start": r["start"], "target": [round(float(v), 4) for v in r["target"]], "cat": r["cat"]} for r in records]
    hp = {"time_freq": "D", "prediction_length": str(p), "context_length": str(c), "epochs": str(args.synthetic_epochs),
          "likelihood": "gaussian", "test_quantiles": "[0.1, 0.5, 0.9]", "mini_batch_size": "128",
          "num_eval_samples": "200"}
    metrics, seconds, epochs, _ = ours(workdir / "synthetic", train, test, hp)
    # coverage from the served model on the same held-out windows
    model_root = workdir / "synthetic"
    below = {0.1: 0, 0.9: 0}
    total = 0
    with serve("deepar", model_root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as server:
        for first in range(0, len(test), 100):
            part = test[first:first + 100]
            body = json.dumps({"instances": [{"start": r["start"], "target": r["target"][:-p], "cat": r["cat"]}
                                             for r in part],
                               "configuration": {"num_samples": 200, "output_types": ["quantiles"],
                                                 "quantiles": ["0.1", "0.9"]}})
            answer = server.post(body, "application/json").json()["predictions"]
            for record, prediction in zip(part, answer):
                truth = np.asarray(record["target"][-p:])
                for q in below:
                    below[q] += int((truth < np.asarray(prediction["quantiles"][f"{q:g}"])).sum())
                total += p
    per_epoch = [s for _, _, s in epochs]
    print(f"\n== synthetic: {len(train)} series x {args.synthetic_length} days, weekly season, trend, 10 category "
          f"levels, Gaussian noise sigma 1; {args.synthetic_epochs} epochs ({epochs[0][1] if epochs else 0} batches "
          f"of 128 each)")
    print(f"coverage: {100 * below[0.1] / total:.1f} % of held-out points below the 0.1 quantile (nominal 10), "
          f"{100 * below[0.9] / total:.1f} % below the 0.9 quantile (nominal 90)")
    print(f"training time per epoch: median {np.median(per_epoch):.2f} s (epochs {', '.join(f'{s:.1f}' for s in per_epoch)}); "
          f"test RMSE {metrics['test:RMSE']:.4g} (noise sigma 1), mean wQuantileLoss {metrics['test:mean_wQuantileLoss']:.4f}")


def serving(args, workdir):
    """One request of 100 series x 100 samples x 24 steps, against 100 requests of one series each."""
    records = synthetic_series(100, 400, seed=3)
    train = [{"start": r["start"], "target": [round(float(v), 4) for v in r["target"]], "cat": r["cat"]}
             for r in records]
    hp = {"time_freq": "H", "prediction_length": "24", "context_length": "24", "epochs": "1",
          "mini_batch_size": "128"}
    job = Job(workdir / "serving")
    job.add_file("train", "train.json", jsonl(train))
    job.write_config(hp, {"train": {"ContentType": "application/jsonlines"}})
    result = job.train("deepar", timeout=1200)
    if result.returncode != 0:
        raise SystemExit(result.output[-3000:])
    configuration = {"num_samples": 100, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}
    batch = json.dumps({"instances": train, "configuration": configuration})
    singles = [json.dumps({"instances": [r], "configuration": configuration}) for r in train]
    import psutil

    def cpu_seconds(process):
        """User + system CPU time of the server and its workers (what the request costs on an idle core)."""
        procs = [process] + process.children(recursive=True)
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    with serve("deepar", job.root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as server:
        server_process = psutil.Process(server.process.pid)
        server.post(batch, "application/json")
        together, one_by_one, cpu = [], [], []
        for _ in range(5):
            started, used = time.perf_counter(), cpu_seconds(server_process)
            response = server.post(batch, "application/json")
            together.append(time.perf_counter() - started)
            cpu.append(cpu_seconds(server_process) - used)
            assert response.status_code == 200 and len(response.json()["predictions"]) == 100, response.text[:300]
            started = time.perf_counter()
            for body in singles[:20]:
                assert server.post(body, "application/json").status_code == 200
            one_by_one.append((time.perf_counter() - started) * 5)  # 20 requests, scaled to 100 series
    print(f"\n== serving: 100 series x 100 samples x horizon 24 in one JSON request: median {np.median(together):.3f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in together)}), server CPU time per request median {np.median(cpu):.3f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in cpu)}; load average {os.getloadavg()[0]:.1f}); one series per request: median "
          f"{np.median(one_by_one):.2f} s for 100 series; ratio {np.median(one_by_one) / np.median(together):.1f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="taxi,tweets,synthetic,serving")
    parser.add_argument("--skip-gluonts", action="store_true")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--taxi-epochs", type=int, default=200)
    parser.add_argument("--taxi-end", default="2015-01-24 20:30:00",
                        help="the series ends before this timestamp (default: the start of NAB's blizzard window)")
    parser.add_argument("--tweet-epochs", type=int, default=40)
    parser.add_argument("--synthetic-epochs", type=int, default=5)
    parser.add_argument("--synthetic-series", type=int, default=1000)
    parser.add_argument("--synthetic-length", type=int, default=1000)
    args = parser.parse_args()
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-deepar-") as tmp:
        workdir = Path(tmp)
        for part in parts:
            globals()[part](args, workdir)


if __name__ == "__main__":
    main()
