"""Serving throughput: single-record JSON requests through ``algobox kmeans serve`` against a trivial
Flask app returning a constant, under the same gunicorn settings and the same load generator, in one run.

    .venv/bin/python benchmarks/bench_serving.py [--seconds 10] [--clients 8]

Prints requests/s, p50/p99 latency for both and the ratio (goal: ours >= 0.85 of the trivial app).
"""

import argparse
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from common import ndarray  # noqa: E402
from common.serving.server import GRACEFUL_TIMEOUT  # noqa: E402
from emulator import free_port, serve  # noqa: E402


def client(port, body, seconds, queue):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        latencies.append(time.perf_counter() - start)
    queue.put(latencies)


def load(port, body, seconds, clients):
    queue = mp.Queue()
    processes = [mp.Process(target=client, args=(port, body, seconds, queue)) for _ in range(clients)]
    for p in processes:
        p.start()
    latencies = np.concatenate([queue.get() for _ in processes])
    for p in processes:
        p.join()
    return len(latencies) / seconds, np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3


def run_trivial(workers, body, seconds, clients):
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread",
               "--threads", "4", "--keep-alive", "5", "--graceful-timeout", str(GRACEFUL_TIMEOUT),
               "--chdir", str(REPO / "benchmarks"), "trivial_app:app"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port)
                c.request("GET", "/ping")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        return load(port, body, seconds, clients)
    finally:
        process.terminate()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--feature-dim", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(10, args.feature_dim)).astype(np.float32)
    body = json.dumps({"instances": [{"features": rng.normal(size=args.feature_dim).round(4).tolist()}]})
    trivial, ours = [], []
    with tempfile.TemporaryDirectory() as root:
        Path(root, "model").mkdir()
        ndarray.save(Path(root, "model", "model_algo-1"), [centroids])
        for _ in range(args.rounds):  # interleaved, so background load hits both alike
            trivial.append(run_trivial(args.workers, body, args.seconds, args.clients))
            with serve("kmeans", root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers)}) as server:
                ours.append(load(int(server.url.rsplit(":", 1)[1]), body, args.seconds, args.clients))
    trivial, ours = np.mean(trivial, axis=0), np.mean(ours, axis=0)
    print(f"workers={args.workers} clients={args.clients} seconds={args.seconds} x {args.rounds} rounds, "
          f"feature_dim={args.feature_dim}")
    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, (rps, p50, p99) in (("trivial Flask", trivial), ("algobox kmeans", ours)):
        print(f"{name:<22}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
    print(f"throughput ratio algobox/trivial = {ours[0] / trivial[0]:.2f} (goal >= 0.85)")


if __name__ == "__main__":
    main()
