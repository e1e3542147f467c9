"""image-classification-tensorflow: cold start to a healthy /ping, by serving layout, as ratios from one run.

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_image_classification_coldstart.py \
        [--rounds 3] [--requests 40]

Trains a tiny model once, then starts ``algobox image-classification-tensorflow serve`` repeatedly, the layouts
interleaved round by round so that the shared machine's load hits them alike:

  per-worker import   every worker imports TensorFlow itself (SPEC.serving_preload emptied: the first layout)
  preload tensorflow  the master runs a plain ``import tensorflow`` before forking (Keras and, where installed,
                      scikit-learn and pandas come with it: the layout until now)
  preload serving     the master imports serving.py before forking: TensorFlow without Keras & co. (the default)

each with SAGEMAKER_MODEL_SERVER_WORKERS unset (the default: one worker per CPU), and the default layout with 1
worker too. Reported per case: the median seconds from the process start to the first 200 from /ping; the CPU
seconds the server's processes (master, workers, nginx) had used by then, which do not depend on how busy the
machine is (on an otherwise idle machine with 2 cores the wall time is about the CPU time: the start is one
process after another, and the workers load side by side); and how many of ``--requests`` concurrent requests
(2 client threads) got a 200 (a worker forked from a master holding a broken TensorFlow would hang).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from emulator import Job  # noqa: E402
from test_image_classification import CHANNELS, CLASSES, add_images, draw, encode, tiny_backbone  # noqa: E402

ALGORITHM = "image-classification-tensorflow"
# `algobox <alg> serve` with the spec's preload list emptied: the per-worker import of before
def with_preload(modules):
    """`algobox <alg> serve` with the spec's preload list replaced."""
    code = ("import sys; from common.spec import load_spec; from common.serving import server; "
            f"spec = load_spec({ALGORITHM!r}); spec.serving_preload = {tuple(modules)!r}; sys.exit(server.run(spec))")
    return [sys.executable, "-c", code]


LAYOUTS = {
    "per-worker import": with_preload(()),
    "preload tensorflow": with_preload(("tensorflow",)),
    "preload serving": [str(Path(sys.executable).parent / "algobox"), ALGORITHM, "serve"],
}
CASES = [("per-worker import", None), ("preload tensorflow", None), ("preload serving", None),
         ("preload serving", 1)]
GOAL_SECONDS = 10.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root):
    """User + system CPU seconds of process ``root`` and its descendants (those alive, and reaped children)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()
            stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))  # ppid; u+s+cu+cs
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        if pid in stats:
            total += stats[pid][1]
            frontier.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return total / TICKS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained_model(root):
    job = Job(root)
    add_images(job, "training", CLASSES, 10, seed=0)
    tiny_backbone(root / "tiny.keras")
    job.add_file("model", "backbone.keras", (root / "tiny.keras").read_bytes())
    job.write_config({"epochs": 1}, CHANNELS)
    result = job.train(ALGORITHM, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.output[-4000:]}")
    return job


def cold_start(job, command, workers, count):
    port = free_port()
    env = job.env({"SAGEMAKER_BIND_TO_PORT": str(port)})
    env.pop("SAGEMAKER_MODEL_SERVER_WORKERS", None)
    if workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}:\n{process.stdout.read()[-4000:]}")
            try:
                if requests.get(url + "/ping", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - started > 120:
                raise SystemExit("no healthy /ping in 120 s")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(process.pid)
        body = encode(draw("circle", np.random.default_rng(1)), "png")

        def post(_):
            try:
                reply = requests.post(url + "/invocations", data=body, headers={"Content-Type": "image/png"},
                                      timeout=20)
                return reply.status_code == 200
            except requests.RequestException:
                return False

        with ThreadPoolExecutor(2) as pool:
            answered = sum(pool.map(post, range(count)))
        return seconds, cpu, answered
    finally:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        job = trained_model(Path(tmp) / "job")
        seconds = {case: [] for case in CASES}
        cpu = {case: [] for case in CASES}
        answered = {case: 0 for case in CASES}
        for _ in range(args.rounds):
            for case in CASES:
                took, used, ok = cold_start(job, LAYOUTS[case[0]], case[1], args.requests)
                seconds[case].append(took)
                cpu[case].append(used)
                answered[case] += ok
        print(f"cold start to a healthy /ping on {os.cpu_count()} CPUs, median of {args.rounds} (load average "
              f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end):")
        for case in CASES:
            name, workers = case
            print(f"  {name:18s} {'default' if workers is None else workers:>7} workers: "
                  f"{statistics.median(seconds[case]):5.1f} s (all: {', '.join(f'{s:.1f}' for s in seconds[case])}), "
                  f"CPU {statistics.median(cpu[case]):4.1f} s; "
                  f"{answered[case]}/{args.requests * args.rounds} requests answered 200")
        default = ("preload serving", None)
        wall, used = statistics.median(seconds[default]), statistics.median(cpu[default])
        for name in ("per-worker import", "preload tensorflow"):
            print(f"default workers, preload serving / {name}: wall {wall / statistics.median(seconds[(name, None)]):.2f}, "
                  f"CPU {used / statistics.median(cpu[(name, None)]):.2f}")
        print(f"goal: healthy /ping under {GOAL_SECONDS:g} s with the default workers: {wall:.1f} s -> "
              f"{'met' if wall < GOAL_SECONDS else 'NOT met'} (CPU {used:.1f} s; at load average {load_before:.1f} the "
              f"wall time is inflated by the other processes)")


if __name__ == "__main__":
    main()
