"""BlazingText on Debian's package descriptions: classification against scikit-learn, our overhead against the
fastText library, and Word2Vec quality (WordSim-353) and speed for cbow, skipgram and batch_skipgram.

    apt-get update -o Acquire::Languages=en      # once, as root (long descriptions; see blazingtext_corpus.py)
    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_blazingtext.py [--parts supervised,overhead,word2vec,hosts]
        [--repeat 5] [--epochs 5]

supervised: the packages of the 15 largest Sections, one shuffled 80/20 split (seed 0); ours is the whole
``algobox blazingtext train`` (mode=supervised, the guide's defaults: vector_dim 100, epochs 5, lr 0.05,
word_ngrams 2, min_count 5), and again with epochs=15 learning_rate=0.5 min_count=2, with the 20% as its
validation channel, read off its ``validation:accuracy`` line;
scikit-learn's TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2) + LogisticRegression(C=10,
max_iter=1000) on the same tokens and split.

overhead: the whole ``algobox blazingtext train`` (train channel only) against a process that imports fasttext,
calls ``train_supervised`` with the same arguments (the same threads) and saves the model: both are new
processes, timed from start to exit, interleaved (A B, B A, ...); the median ratio.

word2vec: every description (one package a line, ~4.7M tokens) through ``algobox blazingtext train`` for cbow,
skipgram and batch_skipgram (the guide's defaults: vector_dim 100, window 5, negatives 5, epochs 5, min_count 5,
sampling 1e-4, lr 0.05): eval.json's Spearman rho on WordSim-353 and the words/s the job logs.

hosts: batch_skipgram on two hosts (two processes on this machine, FullyReplicated, joined by torch.distributed),
each pinned to a CPU of its own, against one host (the word2vec part's run, when it ran; batch_skipgram trains on
one thread a host); rho and words/s (all hosts' words over the training time).
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import blazingtext_corpus as corpus  # noqa: E402
from emulator import Job, free_port  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "algobox-blazingtext-corpus"
TEXT = {"ContentType": "text/plain"}
PYTHON = sys.executable
TUNED = {"epochs": "15", "learning_rate": "0.5", "min_count": "2"}  # valid values of the guide's table


def build_corpus():
    """(train lines, validation lines, unlabelled lines), cached under /tmp."""
    CACHE.mkdir(exist_ok=True)
    files = [CACHE / n for n in ("train.txt", "validation.txt", "all.txt")]
    if not all(f.exists() for f in files):
        found = corpus.packages(corpus.dumpavail(), corpus.translations())
        labelled = [f"__label__{section} {tokens}" for section, tokens in corpus.labelled(found)]
        random.Random(0).shuffle(labelled)
        cut = int(0.8 * len(labelled))
        for path, lines in zip(files, (labelled[:cut], labelled[cut:], corpus.unlabelled(found))):
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f.read_text(encoding="utf-8").splitlines() for f in files]


def job_with(root, hp, channels, hosts=("algo-1",), host="algo-1"):
    shutil.rmtree(root, ignore_errors=True)
    job = Job(root)
    config = {}
    for name, path in channels.items():
        (job.root / "input/data" / name).mkdir(parents=True, exist_ok=True)
        os.symlink(path, job.root / "input/data" / name / Path(path).name)
        config[name] = TEXT
    job.write_config(hp, config, hosts=hosts, current_host=host)
    return job


def run_job(job, env=None):
    started = time.perf_counter()
    result = job.train("blazingtext", env=env, timeout=7200)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.output[-3000:]}")
    return result, seconds


def metric(output, channel, name):
    values = re.findall(rf"#quality_metric: host=algo-1, {channel} {name} <loss>=(\S+)", output)
    return float(values[-1]) if values else None


def supervised(train, validation, work):
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    print(f"\n(supervised) {len(train)} training and {len(validation)} validation descriptions, "
          f"{len({l.split()[0] for l in train})} sections")
    channels = {"train": CACHE / "train.txt", "validation": CACHE / "validation.txt"}
    result, seconds = run_job(job_with(work / "supervised", {"mode": "supervised"}, channels))
    ours = metric(result.output, "validation", "accuracy")
    result, tuned_seconds = run_job(job_with(work / "supervised-tuned", {"mode": "supervised", **TUNED}, channels))
    tuned = metric(result.output, "validation", "accuracy")

    def split(lines):
        labels, texts = zip(*(line.split(" ", 1) for line in lines))
        return list(texts), np.array(labels)

    xt, yt = split(train)
    xv, yv = split(validation)
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, token_pattern=r"\S+")
    classifier = LogisticRegression(C=10, max_iter=1000).fit(vectorizer.fit_transform(xt), yt)
    reference = float((classifier.predict(vectorizer.transform(xv)) == yv).mean())
    sk_seconds = time.perf_counter() - started
    print(f"{'method':62} {'accuracy':>9} {'seconds':>8}")
    print(f"{'algobox blazingtext, the guide defaults':62} {ours:9.4f} {seconds:8.1f}")
    print(f"{'algobox blazingtext, ' + ' '.join(f'{k}={v}' for k, v in TUNED.items()):62} {tuned:9.4f} "
          f"{tuned_seconds:8.1f}")
    print(f"{'TfidfVectorizer(1-2 grams)+LogisticRegression':62} {reference:9.4f} {sk_seconds:8.1f}")
    print(f"accuracy difference (ours - scikit-learn): defaults {ours - reference:+.4f}, "
          f"tuned {tuned - reference:+.4f}")


DIRECT = """
import sys, os, fasttext
model = fasttext.train_supervised(input=sys.argv[1], dim=100, epoch=5, minCount=5, lr=0.05, wordNgrams=2,
                                  bucket=2000000, thread=int(sys.argv[3]), verbose=0)
model.save_model(sys.argv[2])
"""


def overhead(work, repeat):
    from containers.blazingtext.train import threads

    print(f"\n(overhead) whole `algobox blazingtext train` (supervised, train channel only) vs a process calling "
          f"fasttext.train_supervised directly; threads={threads()}, {repeat} interleaved pairs")
    job = job_with(work / "overhead", {"mode": "supervised"}, {"train": CACHE / "train.txt"})
    ours, direct = [], []

    def run_direct():
        started = time.perf_counter()
        subprocess.run([PYTHON, "-c", DIRECT, str(CACHE / "train.txt"), str(work / "direct.bin"), str(threads())],
                       check=True)
        direct.append(time.perf_counter() - started)

    def run_ours():
        result, seconds = run_job(job)
        ours.append(seconds)
        return dict(re.findall(r"Stage (\w+) took ([\d.]+) s", result.output))

    for number in range(repeat):  # A B, B A, A B, ...: neither side always runs first
        if number % 2 == 0:
            run_direct()
            stages = run_ours()
        else:
            stages = run_ours()
            run_direct()
        print(f"  direct {direct[-1]:6.2f} s   ours {ours[-1]:6.2f} s   ratio {ours[-1] / direct[-1]:.3f}   (ours: "
              + ", ".join(f"{k} {float(v):.1f} s" for k, v in stages.items()) + ")", flush=True)
    ratios = [a / b for a, b in zip(ours, direct)]
    print(f"median direct {statistics.median(direct):.2f} s, ours {statistics.median(ours):.2f} s; "
          f"median ratio {statistics.median(ratios):.3f} (goal <= 1.1)")


def words_per_second(output):
    found = re.findall(r"([\d.]+) words/s", output)
    return float(found[-1]) if found else float("nan")


def word2vec_job(work, name, hp, hosts_=("algo-1",), env=None, cpus=None):
    """Train one Word2Vec job per host on the whole corpus (each host's process pinned to ``cpus[i]`` when given);
    (rho, words/s of all hosts, seconds, pairs in the vocabulary)."""
    jobs = [job_with(work / name / host, hp, {"train": CACHE / "all.txt"}, hosts_, host) for host in hosts_]
    started = time.perf_counter()
    processes = []
    for number, job in enumerate(jobs):
        process = job.start_train("blazingtext", env)
        if cpus:  # a host of these CPUs: the job sizes its threads by its CPU affinity, read after start-up
            os.sched_setaffinity(process.pid, cpus[number])
        processes.append(process)
    results = [job.result(process, timeout=7200) for job, process in zip(jobs, processes)]
    seconds = time.perf_counter() - started
    if any(r.returncode for r in results):
        raise SystemExit("training failed:\n" + "\n".join(r.output[-3000:] for r in results))
    evaluation = json.loads((jobs[0].model_dir / "eval.json").read_text())
    scores = evaluation["EN-WS-353-ALL.txt"]
    return (evaluation["mean_rho"], words_per_second(results[0].output), seconds,
            scores["total_pairs"] - scores["not_found"])


def word2vec(work, epochs, modes=("skipgram", "batch_skipgram", "cbow")):  # the bar's pair first
    print(f"\n(word2vec) {CACHE / 'all.txt'}: {sum(len(l.split()) for l in open(CACHE / 'all.txt'))} tokens; "
          f"epochs={epochs}; one host of {len(os.sched_getaffinity(0))} CPUs; WordSim-353 Spearman rho over the "
          "pairs in the vocabulary")
    print(f"{'mode':16} {'rho':>7} {'pairs':>6} {'words/s':>10} {'job s':>8}", flush=True)
    rows = {}
    for mode in modes:
        rows[mode] = rho, speed, seconds, pairs = word2vec_job(work, mode, {"mode": mode, "epochs": str(epochs)})
        print(f"{mode:16} {rho:7.4f} {pairs:6d} {speed:10.0f} {seconds:8.1f}", flush=True)
    if "skipgram" in rows and "batch_skipgram" in rows:
        print(f"batch_skipgram - skipgram rho: {rows['batch_skipgram'][0] - rows['skipgram'][0]:+.4f} "
              "(goal within 0.03)")
    return rows


def hosts(work, epochs, one=None):
    """Two hosts of one CPU each against one host (the word2vec part's run when given; one thread either way)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("(hosts) needs 2 CPUs: one per host")
    print(f"\n(hosts) batch_skipgram, epochs={epochs}: one host against two hosts of one CPU each (two processes "
          f"pinned to CPUs {cpus[0]} and {cpus[1]}, FullyReplicated, torch.distributed/gloo); a host trains on one "
          "thread")
    hp = {"mode": "batch_skipgram", "epochs": str(epochs)}
    if one is None:
        one = word2vec_job(work, "one", hp)
    print(f"{'hosts':6} {'rho':>7} {'words/s':>10} {'job s':>8}")
    print(f"{1:6d} {one[0]:7.4f} {one[1]:10.0f} {one[2]:8.1f}", flush=True)
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    two = word2vec_job(work, "two", hp, ("algo-1", "algo-2"), env, [{cpus[0]}, {cpus[1]}])
    print(f"{2:6d} {two[0]:7.4f} {two[1]:10.0f} {two[2]:8.1f}")
    print(f"two hosts / one host: words/s {two[1] / one[1]:.2f}x, rho {two[0] - one[0]:+.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="supervised,overhead,word2vec,hosts")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    parts = args.parts.split(",")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    train, validation, _ = build_corpus()
    with tempfile.TemporaryDirectory(prefix="bench-blazingtext-") as folder:
        work = Path(folder)
        if "supervised" in parts:
            supervised(train, validation, work)
        if "overhead" in parts:
            overhead(work, args.repeat)
        rows = word2vec(work, args.epochs) if "word2vec" in parts else {}
        if "hosts" in parts:
            hosts(work, args.epochs, rows.get("batch_skipgram"))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
