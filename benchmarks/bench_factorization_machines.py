"""Factorization Machines quality, speed and memory, printed from one run.

    .venv/bin/python benchmarks/bench_factorization_machines.py [--rows 1000000] [--epochs 10] [--myfm-iter 20]
        [--skip-myfm] [--skip-rss] [--skip-dna] [--optimizers] [--optimizer-epochs 10] [--before TREE --repeats 2]

(a) The planted benchmark (containers/factorization_machines/planted.py): --rows rows of 8 categorical fields
    (50,000 users, 20,000 items, six fields of 1,000 to 100 values, popularity ~ 1/(rank + 10)) one-hot encoded
    (72,800 features, 8 non-zeros per row); labels drawn from a known FM with k=8 (logistic noise). Test log loss on
    200,000 fresh rows of: the oracle (the generating FM), scikit-learn LogisticRegression on the same one-hot
    features (it cannot see interactions), ``algobox factorization-machines train`` (the real entrypoint, sparse
    recordIO in File mode, its logged test metric) and myfm (Bayesian FM, Gibbs sampling, PyPI) with its time.
    "closed" = (LR - ours) / (LR - oracle): the share of the interaction gap a model closes.
(b) Training throughput of the entrypoint (rows/s over all epochs, from its log) and its peak RSS at --rows and
    at 4 x --rows (the same file linked four times into the channel): memory must not grow with the data. With
    --before TREE, one epoch's throughput with TREE's code (e.g. a checkout of main) and this tree's, interleaved
    --repeats times, and common.protobuf.decode_batch alone, record by record (fast=False) and vectorised.
(c) mlbench DNA (3,186 x 180 binary indicators; class "n" vs rest), 5 seeded 2:1 splits: FM against logistic
    regression (test log loss and accuracy). The Debian package is fetched into --cache when missing.
(d) --optimizers: the optimizer behind the per-group learning rates, measured in-process on the planted data:
    test log loss after 1, 2, 3, 5 and --optimizer-epochs epochs for adam, adagrad, sgd and sgdw (--runs), at the
    guide's default learning rates, at tuned rates (scaled per optimizer, see README), and at tuned rates with
    lr_decay 0.6 ("decayed").
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from common import protobuf, recordio  # noqa: E402
from containers.factorization_machines import planted  # noqa: E402
from emulator import ALGOBOX, Job  # noqa: E402

ALG = "factorization-machines"
RECORDIO = "application/x-recordio-protobuf"
DEFAULTS = {name: prop["default"] for name, prop in json.loads(
    (REPO / "containers/factorization_machines/hyperparameters.json").read_text())["properties"].items()
    if "default" in prop}
# The benchmark's hyperparameters (the guide's defaults learn far too slowly on one-hot data; see README): what a
# user sets: optimizer, the three learning rates, linear/factors wd, factors_init_sigma, lr_decay (extensions:
# optimizer, lr_decay), epochs
BENCH = {"num_factors": 8, "predictor_type": "binary_classifier", "mini_batch_size": 1000, "optimizer": "sgdw",
         "bias_lr": 1.0, "linear_lr": 20.0, "factors_lr": 20.0, "linear_wd": 2e-5, "factors_wd": 2e-5,
         "factors_init_sigma": 0.01, "lr_decay": 0.6}
# the same step sizes for the other optimizers (sgd's gradient is the batch mean: scale by the batch size)
TUNED = {"adam": {"linear_lr": 0.01, "factors_lr": 0.01}, "adagrad": {"linear_lr": 0.05, "factors_lr": 0.05},
         "sgd": {"linear_lr": 20.0, "factors_lr": 20.0, "bias_lr": 1.0},
         "adamw": {"linear_lr": 0.01, "factors_lr": 0.01, "linear_wd": 0.3, "factors_wd": 0.3},
         "sgdw": {"linear_lr": 20.0, "factors_lr": 20.0, "bias_lr": 1.0, "linear_wd": 2e-5, "factors_wd": 2e-5}}
# every tuned setting above at constant rates ("tuned") or with lr_decay 0.6 ("decayed")
DECAY = 0.6



def log(*args):
    print(*args, flush=True)


def write_recordio(path, x, y, chunk=100_000):
    with open(path, "wb") as f:
        for start in range(0, x.shape[0], chunk):
            recordio.write_records(f, protobuf.encode_sparse(x[start:start + chunk], y[start:start + chunk]))


def run_train(root, files, hp, test_file=None, tree=None):
    """``algobox factorization-machines train`` in a child (the code of ``tree``, default this one): (seconds,
    peak RSS MB, output)."""
    job = Job(root)
    for i, target in enumerate(files):
        link = job.root / "input/data/train" / f"part-{i}.pbr"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    channels = {"train": {"ContentType": RECORDIO}}
    if test_file is not None:
        (job.root / "input/data/test").mkdir(parents=True, exist_ok=True)
        (job.root / "input/data/test/test.pbr").symlink_to(test_file)
        channels["test"] = {"ContentType": RECORDIO}
    job.write_config(hp, channels)
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, *ALGOBOX, ALG, "train"],
                         env=job.env({"PYTHONPATH": tree} if tree else None),
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(out.stdout[-3000:] + out.stderr[-3000:])
    return seconds, int(out.stdout.strip().splitlines()[-1]) / 1024, out.stdout


def run_train_for(root, files, hp, seconds, tree=None):
    """The same, stopped by SIGTERM after ``seconds`` (the job saves its model and exits): its output."""
    job = Job(root)
    for i, target in enumerate(files):
        link = job.root / "input/data/train" / f"part-{i}.pbr"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    job.write_config(hp, {"train": {"ContentType": RECORDIO}})
    process = subprocess.Popen([*ALGOBOX, ALG, "train"], env=job.env({"PYTHONPATH": tree} if tree else None),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate()
    return output


def logged(output, name):
    return float(re.search(rf"test {name} <loss>=(\S+)", output).group(1))


def train_rows_per_second(output):
    """Records over seconds, summed over the epochs' final progress lines."""
    rows = seconds = 0.0
    for epoch in sorted(set(re.findall(r"train epoch (\d+):", output)), key=int):
        lines = re.findall(rf"train epoch {epoch}: \d+ batches, (\d+) records, ([\d.]+) s", output)
        rows += float(lines[-1][0])
        seconds += float(lines[-1][1])
    return rows / seconds


def import_myfm():
    """myfm 0.4.0 imports pkg_resources (gone from setuptools >= 81) for nothing it uses."""
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            stub = types.ModuleType("pkg_resources")
            stub.DistributionNotFound, stub.get_distribution = Exception, lambda *a: None
            sys.modules["pkg_resources"] = stub
    import myfm

    return myfm


def logistic_regression(x, y, xt):
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    model = LogisticRegression(C=1.0, max_iter=300).fit(x, y)
    return model.predict_proba(xt)[:, 1], time.perf_counter() - start


def planted_benchmark(args, tmp):
    oracle = planted.PlantedFM()
    x, _, y = oracle.rows(args.rows, seed=1)
    xt, logits, yt = oracle.rows(args.test_rows, seed=2)
    log(f"(a) planted: {args.rows:,} train / {args.test_rows:,} test rows, {oracle.feature_dim:,} features, "
        f"{x.nnz // x.shape[0]} non-zeros per row, positive rate {y.mean():.3f}")
    folder = Path(args.data_dir) if args.data_dir else Path(tmp)
    folder.mkdir(parents=True, exist_ok=True)
    train_file, test_file = folder / f"train-{args.rows}.pbr", folder / f"test-{args.test_rows}.pbr"
    start = time.perf_counter()
    for path, rows, labels in ((train_file, x, y), (test_file, xt, yt)):
        if not (args.data_dir and path.exists()):
            write_recordio(path, rows, labels)
    log(f"    (recordIO written in {time.perf_counter() - start:.0f} s: {train_file.stat().st_size / 1e6:.0f} MB)")
    hp = {**BENCH, "feature_dim": oracle.feature_dim, "epochs": args.epochs}
    if not args.speed_only:
        planted_quality(args, tmp, (x, y, xt, yt, logits), hp, train_file, test_file)
    if not args.skip_rss:
        hp1 = {**hp, "epochs": 1}
        _, rss1, out1 = run_train(Path(tmp, "job-rss-1"), [train_file], hp1)
        _, rss4, out4 = run_train(Path(tmp, "job-rss-4"), [train_file] * 4, hp1)
        log(f"(b) peak RSS of algobox FM train, 1 epoch: {rss1:.0f} MB at {args.rows:,} rows, {rss4:.0f} MB at "
            f"{4 * args.rows:,} rows (x{rss4 / rss1:.2f}); {train_rows_per_second(out4):,.0f} rows/s at 4x")
    if args.before:
        compare_trees(args, tmp, train_file, oracle.feature_dim, None if args.skip_rss else out1)


def planted_quality(args, tmp, data, hp, train_file, test_file):
    """The oracle, logistic regression, the entrypoint at --epochs (its logged test metric) and myfm."""
    x, y, xt, yt, logits = data
    oracle_loss = planted.oracle_log_loss(logits, yt)
    p, lr_seconds = logistic_regression(x, y, xt)
    lr_loss = planted.log_loss(p, yt)
    log(f"    oracle (the generating FM)       test log loss {oracle_loss:.4f}")
    log(f"    logistic regression (sklearn)    test log loss {lr_loss:.4f}   ({lr_seconds:.1f} s)")

    def closed(loss):
        return (lr_loss - loss) / (lr_loss - oracle_loss)

    seconds, rss, output = run_train(Path(tmp, "job-quality"), [train_file], hp, test_file)
    ours = logged(output, "binary_classification_cross_entropy")
    rate = train_rows_per_second(output)
    log(f"    algobox FM, {args.epochs} epochs (entrypoint) test log loss {ours:.4f}   closes {closed(ours):.0%} of "
        f"the gap; accuracy {logged(output, 'binary_classification_accuracy'):.4f}; {seconds:.0f} s in all, "
        f"training {rate:,.0f} rows/s, peak RSS {rss:.0f} MB")
    if not args.skip_myfm:
        myfm = import_myfm()
        start = time.perf_counter()
        model = myfm.MyFMClassifier(rank=8, random_seed=0).fit(x, y.astype(int), n_iter=args.myfm_iter,
                                                                n_kept_samples=args.myfm_iter // 2)
        seconds_myfm = time.perf_counter() - start
        loss_myfm = planted.log_loss(model.predict_proba(xt), yt)
        log(f"    myfm Gibbs FM, rank 8, {args.myfm_iter} iterations  test log loss {loss_myfm:.4f}   closes "
            f"{closed(loss_myfm):.0%}; {seconds_myfm:.0f} s (algobox's whole job took {seconds:.0f} s)")


def compare_trees(args, tmp, train_file, feature_dim, first_after=None):
    """(b) the entrypoint's throughput, 1 epoch on the training file, with the code of --before (e.g. main before
    the vectorised recordIO decoding) and with this tree's, interleaved A B A B; and the decoding alone."""
    hp = {**BENCH, "feature_dim": feature_dim, "epochs": 1}
    del hp["lr_decay"]  # unknown to older trees; with one epoch it changes nothing
    rates, walls = {"before": [], "after": []}, {"before": [], "after": []}
    for i in range(args.repeats):
        for name, tree in (("before", args.before), ("after", str(REPO))):
            if name == "after" and i == 0 and first_after is not None:  # the 1M RSS run above: the same job
                rates[name].append(train_rows_per_second(first_after))
                walls[name].append(float("nan"))
                log(f"    {name:6s} ({tree}): training {rates[name][-1]:,.0f} rows/s (the RSS run at {args.rows:,})")
                continue
            if name == "before" and args.before_seconds:  # its progress lines' rate over the rows it got to
                output = run_train_for(Path(tmp, f"job-{name}-{i}"), [train_file], hp, args.before_seconds, tree)
                rates[name].append(train_rows_per_second(output))
                walls[name].append(float("nan"))
                reached = re.findall(r"(\d+) records, ", output)[-1]
                log(f"    {name:6s} ({tree}): training {rates[name][-1]:,.0f} rows/s (at most {args.before_seconds} s: "
                    f"{int(reached):,} records)")
                continue
            seconds, _, output = run_train(Path(tmp, f"job-{name}-{i}"), [train_file], hp, tree=tree)
            rates[name].append(train_rows_per_second(output))
            walls[name].append(args.rows / seconds)
            log(f"    {name:6s} ({tree}): training {rates[name][-1]:,.0f} rows/s, whole job {walls[name][-1]:,.0f} "
                f"rows/s ({seconds:.0f} s)")
    ratio = np.median(np.array(rates["after"]) / np.array(rates["before"]))
    log(f"(b) entrypoint, 1 epoch of {args.rows:,} rows: training rows/s before {np.median(rates['before']):,.0f}, "
        f"after {np.median(rates['after']):,.0f} (median ratio x{ratio:.1f}); whole job rows/s before "
        f"{np.median(walls['before']):,.0f}, after {np.median(walls['after']):,.0f}".replace("nan", "n/a"))
    with open(train_file, "rb") as f:
        batches = list(recordio.iter_record_batches(f, 8192))
    speeds = {True: [], False: []}
    for _ in range(args.repeats):
        for fast in (False, True):
            start = time.perf_counter()
            for batch in batches[:20]:
                protobuf.decode_batch(batch, feature_dim, fast=fast)
            speeds[fast].append(sum(map(len, batches[:20])) / (time.perf_counter() - start))
    log(f"    decode_batch alone, sparse records with labels, 8,192 a batch: record by record "
        f"{np.median(speeds[False]):,.0f} rows/s, vectorised {np.median(speeds[True]):,.0f} rows/s "
        f"(x{np.median(np.array(speeds[True]) / np.array(speeds[False])):.0f})")


def mlbench_dna(cache):
    import pyreadr

    data = Path(cache) / "usr/lib/R/site-library/mlbench/data/DNA.rda"
    if not data.exists():
        Path(cache).mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=cache, check=True)
        deb = sorted(Path(cache).glob("r-cran-mlbench_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    frame = pyreadr.read_r(str(data))["DNA"]
    x = frame.drop(columns="Class").astype(int).to_numpy(np.float32)
    y = (frame["Class"].astype(str) == "n").to_numpy(np.float32)
    return x, y


# (c)'s settings. Why the first loses to logistic regression: 180 x 8 factors at factors_wd 1e-5 memorise 2,124 rows,
# and adagrad's shrinking steps leave the linear part short of converged; the second regularises the factors hard
# (factors_wd 1e-2: the interactions add only what the data supports), leaves the bias unregularised (as
# LogisticRegression does) and converges (30 epochs, lr_decay 0.9); the third is the second with the factors
# frozen at their tiny initial values (a linear model trained the same way)
DNA_SETTINGS = {
    "adagrad lr 0.05, 10 epochs": {"optimizer": "adagrad", "bias_lr": 0.1, "linear_lr": 0.05, "factors_lr": 0.05,
                                   "linear_wd": 0.001, "factors_wd": 1e-5, "epochs": 10},
    "sgdw lr 0.5, factors_wd 1e-2, 30 epochs, lr_decay 0.9": {
        "optimizer": "sgdw", "bias_lr": 0.5, "linear_lr": 0.5, "factors_lr": 0.5, "bias_wd": 0.0, "linear_wd": 5e-4,
        "factors_wd": 1e-2, "epochs": 30, "lr_decay": 0.9},
    "the same, factors frozen (linear only)": {
        "optimizer": "sgdw", "bias_lr": 0.5, "linear_lr": 0.5, "factors_lr": 0.0, "bias_wd": 0.0, "linear_wd": 5e-4,
        "factors_wd": 0.0, "epochs": 30, "lr_decay": 0.9},
}


def dna_benchmark(args):
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss

    from containers.factorization_machines import fm
    from containers.factorization_machines.model import FMModel

    x, y = mlbench_dna(args.cache)
    log(f"(c) mlbench DNA 'n' vs rest ({len(y)} x {x.shape[1]}), 5 seeded 2:1 splits, k = 8, mini_batch_size 100; "
        "test log loss / accuracy:")
    splits = []
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(len(y))
        splits.append((order[: 2 * len(y) // 3], order[2 * len(y) // 3:]))
    results = []
    for train, test in splits:
        q = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        results.append((log_loss(y[test], q), accuracy_score(y[test], q >= 0.5)))
    log("    logistic regression (scikit-learn, C=1)                 {:.4f} / {:.4f}".format(*np.mean(results, axis=0)))
    for name, setting in DNA_SETTINGS.items():
        hp = {**DEFAULTS, **BENCH, "feature_dim": x.shape[1], "num_factors": 8, "mini_batch_size": 100,
              "lr_decay": 1.0, **setting}
        results = []
        for seed, (train, test) in enumerate(splits):
            trainer = fm.Trainer(hp, seed=seed)
            xs = sp.csr_matrix(x[train])
            for _ in range(hp["epochs"]):
                for start in range(0, len(train), 100):
                    trainer.train_batch(xs[start:start + 100], y[train][start:start + 100])
                trainer.end_epoch()
            trainer.finish()
            p = FMModel(*trainer.params.numpy(), "binary_classifier").predict(x[test])["score"]
            results.append((log_loss(y[test], p), accuracy_score(y[test], p >= 0.5)))
        log("    FM, {:52s}  {:.4f} / {:.4f}".format(name, *np.mean(results, axis=0)))


def optimizer_benchmark(args, data=None):
    from containers.factorization_machines import fm
    from containers.factorization_machines.model import FMModel

    if data is None:
        oracle = planted.PlantedFM()
        x, _, y = oracle.rows(args.rows, seed=1)
        xt, _, yt = oracle.rows(args.test_rows, seed=2)
        d = oracle.feature_dim
    else:
        x, y, xt, yt, d = data
    marks = [e for e in (1, 2, 3, 5, 10, 20) if e < args.optimizer_epochs] + [args.optimizer_epochs]
    log(f"(d) optimizers, in-process, test log loss after {', '.join(map(str, marks))} epochs "
        f"(mini_batch_size 1000):")
    for setting, kind in (item.split(":") for item in args.runs.split(",")):
        hp = {**DEFAULTS, **BENCH, "feature_dim": d, "lr_decay": 1.0}
        if setting == "defaults":
            hp.update({k: DEFAULTS[k] for k in ("bias_lr", "linear_lr", "factors_lr", "factors_init_sigma",
                                                 "bias_wd", "linear_wd", "factors_wd")})
        else:
            hp.update(TUNED[kind])
            if setting == "decayed":
                hp["lr_decay"] = DECAY
        hp["optimizer"] = kind
        trainer = fm.Trainer(hp)
        losses, start = [], time.perf_counter()
        for epoch in range(1, args.optimizer_epochs + 1):
            for s in range(0, x.shape[0], 1000):
                trainer.train_batch(x[s:s + 1000], y[s:s + 1000])
            if epoch in marks:
                trainer.finish()  # lazily applied decay brought up to date (a no-op but for *w)
                model = FMModel(*trainer.params.numpy(), "binary_classifier")
                losses.append(planted.log_loss(model.predict(xt)["score"], yt))
            trainer.end_epoch()
        rates = {k: hp[k] for k in ("bias_lr", "linear_lr", "factors_lr", "linear_wd", "factors_wd", "lr_decay")}
        log(f"    {setting:8s} {kind:8s} {json.dumps(rates)}: " + ", ".join(f"{loss:.4f}" for loss in losses)
            + f"  ({time.perf_counter() - start:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--myfm-iter", type=int, default=20)
    parser.add_argument("--before", help="a source tree (e.g. a checkout of main) whose entrypoint's throughput to "
                                         "compare with this tree's")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--before-seconds", type=int, default=0,
                        help="stop the --before tree's job after this many seconds (0: let it finish)")
    parser.add_argument("--skip-myfm", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="(a) without the quality runs: only (b)")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-dna", action="store_true")
    parser.add_argument("--skip-planted", action="store_true")
    parser.add_argument("--optimizers", action="store_true")
    parser.add_argument("--optimizer-epochs", type=int, default=10)
    parser.add_argument("--runs", default="defaults:adam,defaults:adagrad,defaults:sgd,tuned:adam,tuned:adagrad,"
                                          "tuned:sgdw,decayed:adam,decayed:adagrad,decayed:sgdw",
                        help="setting:optimizer pairs for --optimizers (defaults, tuned, decayed: tuned + lr_decay)")
    parser.add_argument("--data-dir", help="keep the planted recordIO files here and reuse them (else a temp dir)")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "algobox-mlbench"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # as the entrypoint's sparse path effectively runs; a shared 2-core machine
    with tempfile.TemporaryDirectory(prefix="algobox-bench-fm-") as tmp:
        if not args.skip_planted:
            planted_benchmark(args, tmp)
    if not args.skip_dna:
        dna_benchmark(args)
    if args.optimizers:
        optimizer_benchmark(args)


if __name__ == "__main__":
    main()
