"""Serving throughput: single-record JSON requests through ``algobox kmeans serve`` against a trivial
Flask app returning a constant, under the same gunicorn settings and the same load generator, in one run.

The ratio is measured with gunicorn serving the port itself on both sides (``ALGOBOX_NGINX=off``): it is the
cost of our protocol (decode, checks, predict, encode). A third row shows ours with nginx in front (as the
images run), when nginx is installed, so the cost of that hop is visible too.

    .venv/bin/python benchmarks/bench_serving.py [--seconds 10] [--clients 8]

Prints requests/s, p50/p99 latency for both and the ratio (goal: ours >= 0.85 of the trivial app).

``--content-type text/csv --records 1000`` sends that many records per request (CSV rows, or JSON instances);
``--before REPO`` then serves from this tree and from another checkout's code (e.g. main) at once, without
nginx, and measures them in turn in 3 x --rounds slices of --seconds / 3: a before/after in one run, e.g.

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_serving.py --content-type text/csv \
        --records 1000 --before /work/main --rounds 3
"""

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import shutil
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


def client(port, body, seconds, queue, content_type="application/json"):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        latencies.append(time.perf_counter() - start)
    queue.put(latencies)


def load(port, body, seconds, clients, content_type="application/json"):
    queue = mp.Queue()
    processes = [mp.Process(target=client, args=(port, body, seconds, queue, content_type)) for _ in range(clients)]
    for p in processes:
        p.start()
    latencies = np.concatenate([queue.get() for _ in processes])
    for p in processes:
        p.join()
    return len(latencies) / seconds, np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3


@contextlib.contextmanager
def trivial_server(workers):
    """gunicorn serving trivial_app (a constant answer, the body read) with ``workers`` gthread workers: the port."""
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
        yield port
    finally:
        process.terminate()
        process.wait()


def run_trivial(workers, body, seconds, clients):
    with trivial_server(workers) as port:
        return load(port, body, seconds, clients)


def request_body(rng, content_type, records, feature_dim):
    rows = rng.normal(size=(records, feature_dim)).round(4)
    if content_type == "text/csv":
        return "\n".join(",".join(f"{v:g}" for v in row) for row in rows).encode()
    return json.dumps({"instances": [{"features": row} for row in rows.tolist()]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--feature-dim", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--content-type", default="application/json", choices=("application/json", "text/csv"))
    parser.add_argument("--records", type=int, default=1, help="records per request")
    parser.add_argument("--before", metavar="REPO", help="also serve from this checkout's code in every round")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(10, args.feature_dim)).astype(np.float32)
    body = request_body(rng, args.content_type, args.records, args.feature_dim)
    trivial, ours, before = [], [], []
    send = dict(seconds=args.seconds, clients=args.clients, content_type=args.content_type)
    with tempfile.TemporaryDirectory() as root:
        Path(root, "model").mkdir()
        ndarray.save(Path(root, "model", "model_algo-1"), [centroids])
        fronted = []
        nginx = shutil.which("nginx") is not None
        for _ in range(args.rounds):  # interleaved, so background load hits both alike
            trivial.append(run_trivial(args.workers, body, args.seconds, args.clients))
            env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers), "ALGOBOX_NGINX": "off"}
            with serve("kmeans", root, env=env) as server:
                ours.append(load(int(server.url.rsplit(":", 1)[1]), body, **send))
            if nginx:
                with serve("kmeans", root, env={**env, "ALGOBOX_NGINX": "auto"}) as server:
                    fronted.append(load(int(server.url.rsplit(":", 1)[1]), body, **send))
            print(f"  round: trivial {trivial[-1][0]:.0f} req/s, ours {ours[-1][0]:.0f}; load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        if args.before:  # both servers up at once, short slices in turn, so background load hits both alike
            env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(args.workers), "ALGOBOX_NGINX": "off"}
            other = {**env, "PYTHONPATH": str(Path(args.before).resolve())}
            with serve("kmeans", root, env=env) as mine, serve("kmeans", root, env=other) as theirs:
                ports = [int(server.url.rsplit(":", 1)[1]) for server in (mine, theirs)]
                for _ in range(3 * args.rounds):
                    pair = [load(port, body, **{**send, "seconds": max(1.0, args.seconds / 3)}) for port in ports]
                    before.append(pair)
                    print(f"  slice: ours {pair[0][0]:.0f} req/s, {args.before} {pair[1][0]:.0f}; load average "
                          f"{os.getloadavg()[0]:.1f}", flush=True)
    ratios = [mine[0] / theirs[0] for mine, theirs in before]
    before = [theirs for _, theirs in before]
    trivial, ours = np.mean(trivial, axis=0), np.mean(ours, axis=0)
    print(f"workers={args.workers} clients={args.clients} seconds={args.seconds} x {args.rounds} rounds, "
          f"feature_dim={args.feature_dim}, {args.records} record(s) of {args.content_type} per request")
    print(f"{'server':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    rows = [("trivial Flask", trivial), ("algobox kmeans", ours)]
    if before:
        rows.append((f"kmeans {Path(args.before).name}", np.mean(before, axis=0)))
    if fronted:
        rows.append(("algobox, nginx front", np.mean(fronted, axis=0)))
    for name, (rps, p50, p99) in rows:
        print(f"{name:<22}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
    print(f"throughput ratio algobox/trivial = {ours[0] / trivial[0]:.2f} (goal >= 0.85)")
    if ratios:
        print(f"throughput ratio this tree / {args.before} = {float(np.median(ratios)):.2f} (median of slices "
              f"{', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
