"""A bounded soak of ``algobox <algorithm> serve``: keep-alive clients sending a mix of valid and malformed
requests of every content type the algorithm declares, for a fixed time.

    .venv/bin/python benchmarks/soak.py --duration 240 --clients 4            # k-means, a model of its own
    .venv/bin/python benchmarks/soak.py --duration 20 --clients 2 --check     # CI: exit 1 on a failure

Reports (and prints as JSON): requests, answers by status, errors for valid requests, p50/p99 latency of
valid and malformed requests, throughput, and each worker's RSS after warm-up and at the end.
``--check`` fails on any non-2xx answer (or client exception) for a valid request, on any 5xx, on a worker
that restarted, or on worker RSS growth beyond ``--max-rss-growth`` (20%) after warm-up.
"""

import argparse
import io
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from common import contenttypes as ct  # noqa: E402
from common import ndarray, protobuf, recordio  # noqa: E402
from emulator import serve  # noqa: E402

FEATURE_DIM = 20


def kmeans_model(root):
    rng = np.random.default_rng(0)
    (root / "model").mkdir(parents=True, exist_ok=True)
    ndarray.save(root / "model" / "model_algo-1", [rng.normal(scale=5, size=(5, FEATURE_DIM)).astype(np.float32)])
    return root


def valid_body(mime, rows, rng):
    x = rng.normal(size=(rows, FEATURE_DIM)).astype(np.float32)
    if mime == ct.CSV:
        buffer = io.StringIO()
        np.savetxt(buffer, x, delimiter=",", fmt="%.6g")
        return buffer.getvalue().encode()
    if mime == ct.JSON:
        return json.dumps({"instances": [{"features": r} for r in x.tolist()]}).encode()
    if mime == ct.JSONLINES:
        return "\n".join(json.dumps(r) for r in x.tolist()).encode()
    if mime == ct.RECORDIO_PROTOBUF:
        return b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(x))
    if mime == ct.LIBSVM:
        return "\n".join("0 " + " ".join(f"{i}:{v:.5g}" for i, v in enumerate(r)) for r in x.tolist()).encode()
    return None


def malformed_bodies(mime):
    """(name, body, content type): every one must answer 4xx."""
    nested = b"[" * 5000 + b"]" * 5000
    common = [("empty body", b"", mime), ("unknown content type", b"1,2", "application/x-foo")]
    own = {
        ct.CSV: [("ragged CSV", b"1,2,3\n1,2\n", mime), ("non-numeric CSV", b"a," * 19 + b"a", mime),
                 ("19 features", b"1," * 18 + b"1", mime), ("3,000,000 columns", b"1," * 3_000_000, mime)],
        ct.JSON: [("truncated JSON", b'{"instances": [[1, 2', mime), ("nested 5000", nested, mime),
                  ("10**400", b"[[1" + b"0" * 400 + b"]]", mime), ("empty instances", b"[" + b"[]," * 100_000 + b"[]]", mime)],
        ct.JSONLINES: [("bad JSON line", b"[1, 2]\n{oops\n", mime), ("nested line", nested, mime)],
        ct.RECORDIO_PROTOBUF: [("bad magic", b"\x00" * 64, mime), ("truncated recordIO", b"\x0a\x23\xd7\xce\xff\x00\x00\x00", mime)],
        ct.LIBSVM: [("bad libsvm", b"0 x:y\n", mime)],
    }.get(mime, [])
    return common + own


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = {}
        self.valid_errors = []
        self.server_errors = []
        self.latency = {"valid": [], "malformed": []}
        self.requests = 0

    def add(self, kind, status, seconds, name):
        with self.lock:
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latency[kind].append(seconds)
            if kind == "valid" and not (isinstance(status, int) and 200 <= status < 300):
                self.valid_errors.append(f"{name}: {status}")
            if isinstance(status, int) and status >= 500:
                self.server_errors.append(f"{name}: {status}")


def client(url, spec, deadline, stats, seed, malformed_share):
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    session = requests.Session()
    request_types = [m for m in spec.request_types if valid_body(m, 1, rng) is not None]
    while time.monotonic() < deadline:
        mime = pick.choice(request_types)
        if pick.random() < malformed_share:
            name, body, content_type = pick.choice(malformed_bodies(mime))
            kind = "malformed"
        else:
            name, body, content_type, kind = mime, valid_body(mime, pick.randint(1, 100), rng), mime, "valid"
        headers = {"Content-Type": content_type}
        accept = pick.choice([None, *spec.response_types])
        if accept:
            headers["Accept"] = accept
        start = time.perf_counter()
        try:
            status = session.post(url + "/invocations", data=body, headers=headers, timeout=30).status_code
        except requests.RequestException as exc:
            status = f"exception {type(exc).__name__}"
            session = requests.Session()
        stats.add(kind, status, time.perf_counter() - start, name)


def workers_of(server):
    master = psutil.Process(server.process.pid)
    return [p for p in master.children() if "nginx" not in " ".join(p.cmdline())]


def percentile(values, q):
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def soak(algorithm, model_root, duration, clients, warmup, malformed_share=0.1):
    from common.spec import load_spec

    spec = load_spec(algorithm)
    stats = Stats()
    with serve(algorithm, model_root, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as server:
        boot_deadline = time.monotonic() + 60  # /ping answers once the first worker is up; wait for the second
        workers = workers_of(server)
        while len(workers) < 2 and time.monotonic() < boot_deadline:
            time.sleep(0.2)
            workers = workers_of(server)
        deadline = time.monotonic() + duration
        threads = [threading.Thread(target=client, args=(server.url, spec, deadline, stats, seed, malformed_share),
                                    daemon=True) for seed in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(min(warmup, duration / 2))
        rss_start = {w.pid: w.memory_info().rss for w in workers}
        for thread in threads:
            thread.join(duration + 60)
        elapsed = time.monotonic() - started
        rss_end = {w.pid: w.memory_info().rss for w in workers if w.is_running()}
        restarted = sorted(set(w.pid for w in workers_of(server)) ^ set(rss_start))
    return {
        "algorithm": algorithm, "duration_s": round(elapsed, 1), "clients": clients,
        "requests": stats.requests, "throughput_rps": round(stats.requests / elapsed, 1),
        "by_status": {str(k): v for k, v in sorted(stats.statuses.items(), key=str)},
        "valid_errors": len(stats.valid_errors), "valid_error_examples": stats.valid_errors[:10],
        "server_errors": len(stats.server_errors), "server_error_examples": stats.server_errors[:10],
        "latency_ms": {kind: {"p50": percentile(v, 50), "p99": percentile(v, 99), "count": len(v)}
                       for kind, v in stats.latency.items()},
        "worker_rss_mb": {str(pid): {"after_warmup": round(rss_start[pid] / 1e6, 1),
                                     "end": round(rss_end.get(pid, 0) / 1e6, 1)} for pid in rss_start},
        "workers_restarted": restarted,
        "tracebacks_in_log": server.output.count("Traceback"),
    }


def failures(report, max_rss_growth):
    found = []
    if report["valid_errors"]:
        found.append(f"{report['valid_errors']} errors for valid requests: {report['valid_error_examples']}")
    if report["server_errors"]:
        found.append(f"{report['server_errors']} 5xx answers: {report['server_error_examples']}")
    if report["workers_restarted"]:
        found.append(f"workers restarted: {report['workers_restarted']}")
    if report["tracebacks_in_log"]:
        found.append(f"{report['tracebacks_in_log']} tracebacks in the server log")
    for pid, rss in report["worker_rss_mb"].items():
        if rss["end"] > (1 + max_rss_growth) * rss["after_warmup"]:
            found.append(f"worker {pid} RSS grew {rss['after_warmup']} -> {rss['end']} MB after warm-up")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients")
    parser.add_argument("--algorithm", default="kmeans")
    parser.add_argument("--model-root", help="an /opt/ml root with model/ (default: a fresh k-means model)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds before the first RSS reading")
    parser.add_argument("--malformed-share", type=float, default=0.1)
    parser.add_argument("--check", action="store_true", help="exit 1 on a failure (see the module docstring)")
    parser.add_argument("--max-rss-growth", type=float, default=0.2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.model_root) if args.model_root else kmeans_model(Path(scratch))
        report = soak(args.algorithm, root, args.duration, args.clients, args.warmup, args.malformed_share)
    print(json.dumps(report, indent=2))
    found = failures(report, args.max_rss_growth)
    for line in found:
        print("FAIL:", line)
    return 1 if args.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
