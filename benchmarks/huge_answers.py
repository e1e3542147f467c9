"""Valid 6 MB requests with huge answers (3,000,000 records), through the real server (nginx + gunicorn, one
worker), for every response type and encoder of the tabular algorithms: seconds and the worker's extra RSS (peak,
and after), this tree against another (``--before``, e.g. main before the chunked encoders), interleaved case by
case (before, after, after, after: the median of the after runs). BEYOND adds k-NN's verbose answers to rows that
differ (the most distinct rows a 6 MB body holds, as tests/test_randomcutforest_serving.py builds them): the
repeated-rows path (common/repeats.py) must cost them next to nothing.

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/huge_answers.py --before /work/main \\
        --before-cases "factorization-machines application/json" ...

The cases and models are tests/test_hardening_requests.py's (HUGE); a "before" server whose answer takes
minutes is given SAGEMAKER_MODEL_SERVER_TIMEOUT=300. ``--before-cases`` limits the (slow) before runs to
the named "algorithm accept" pairs (default: all). Prints one line per case and, at the end, a Markdown table.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

import test_hardening_requests as cases  # noqa: E402
from emulator import serve  # noqa: E402


JSON, JSONLINES = cases.JSON, cases.JSONLINES


def differing_rows():
    """786,432 one-feature rows of ``d.ddddd`` (6 MB; tests/test_randomcutforest_serving.py's body): ~544,000
    distinct values, too many to deduplicate."""
    import numpy as np

    rows = cases.LIMIT // len(b"1.23456\n")
    values = np.random.default_rng(11).integers(0, 1_000_000, rows) / 100_000
    return "\n".join(f"{value:.5f}" for value in values).encode() + b"\n", rows


# (algorithm, features, request type, accept types, the answer's shape, body maker): cases beyond the test's HUGE
BEYOND = [
    ("knn", 1, cases.CSV, (JSON + "; verbose=true", JSONLINES + "; verbose=true"),
     "predicted_label + distances, labels vectors (rows that differ)", differing_rows),
]


def expected_answer(algorithm, model_dir, body, content_type, accept):
    """The answer to ``body``, in-process (``invoke`` on the loaded model), for bodies that are not one row
    repeated."""
    from common.serving.protocol import invoke
    from common.spec import load_spec

    spec = load_spec(algorithm)
    model = spec.load_model_class().load(model_dir)
    return invoke(model, spec, body, content_type, accept).body


def worker_of(server):
    workers = [p for p in psutil.Process(server.process.pid).children() if "nginx" not in " ".join(p.cmdline())]
    assert len(workers) == 1, workers
    return workers[0]


def measure(server, worker, body, content_type, accept):
    before = worker.memory_info().rss
    sampler = cases.RSSSampler(worker)
    sampler.start()
    start = time.perf_counter()
    answer = server.post(body, content_type, accept=accept, stream=True)
    content = b"".join(answer.iter_content(1 << 20))
    seconds = time.perf_counter() - start
    sampler.running = False
    sampler.join()
    time.sleep(0.2)
    after = worker.memory_info().rss
    return answer.status_code, content, seconds, (sampler.peak - before) / 1e6, (after - before) / 1e6


@contextlib.contextmanager
def started(algorithm, features, tree, timeout):
    root = Path(tempfile.mkdtemp(prefix=f"huge-{algorithm}-"))
    (root / "model").mkdir()
    cases.write_model(algorithm, root / "model", features)
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(timeout)}
    if tree:
        env["PYTHONPATH"] = tree
    with serve(algorithm, root, env=env) as server:
        server.post(",".join(["1"] * features).encode(), "text/csv")
        server.model_dir = root / "model"
        yield server, worker_of(server)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a tree to compare with (its PYTHONPATH), e.g. /work/main")
    parser.add_argument("--before-cases", nargs="*", help='"algorithm accept" pairs to run before (default: all)')
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="run only the algorithms whose name contains this")
    args = parser.parse_args()
    rows_out = []
    for algorithm, features, content_type, accepts, shape, rows in cases.HUGE + BEYOND:
        if args.only and args.only not in algorithm:
            continue
        line = cases.huge_line(features, content_type)
        varied = callable(rows)
        body, rows = rows() if varied else (line * rows, rows)
        with contextlib.ExitStack() as stack:
            after_server, after_worker = stack.enter_context(started(algorithm, features, str(REPO), 60))
            before = None
            if args.before:
                before = stack.enter_context(started(algorithm, features, args.before, 300))
            for accept in accepts:
                name = f"{algorithm} {accept}"
                if varied:
                    expected = expected_answer(algorithm, after_server.model_dir, body, content_type, accept)
                else:
                    one = after_server.post(line, content_type, accept=accept).content
                    expected = cases.repeated(one, accept, rows)
                old = None
                if before and (args.before_cases is None or name in args.before_cases):
                    status, content, seconds, peak, held = measure(*before, body, content_type, accept)
                    old = (seconds, peak, held, status, content == expected)
                    print(f"{name} ({rows:,} records) before: {status} in {seconds:.2f} s, +{peak:.0f} MB peak, "
                          f"+{held:.0f} MB after, same bytes: {content == expected}", flush=True)
                    del content
                runs = []
                for _ in range(args.repeats):
                    status, content, seconds, peak, held = measure(after_server, after_worker, body, content_type,
                                                                   accept)
                    assert status == 200 and content == expected, (name, status, content[:200])
                    runs.append((seconds, peak, held))
                    del content
                seconds = statistics.median(r[0] for r in runs)
                peak = max(r[1] for r in runs)
                held = max(r[2] for r in runs)
                print(f"{name} ({rows:,} records, {len(expected) / 1e6:.0f} MB) after: {seconds:.2f} s "
                      f"(runs {', '.join(f'{r[0]:.2f}' for r in runs)}), +{peak:.0f} MB peak, +{held:.0f} MB after",
                      flush=True)
                rows_out.append((algorithm, accept, shape, rows, len(expected), old, seconds, peak, held))
                del expected
    print("\n| algorithm | accept | answer | before: s, MB peak | after: s (median), MB peak, MB after |")
    print("|---|---|---|---|---|")
    for algorithm, accept, shape, rows, size, old, seconds, peak, held in rows_out:
        was = f"{old[0]:.1f} s, +{old[1]:.0f} MB" + ("" if old[3] == 200 else f" ({old[3]})") if old else "-"
        print(f"| {algorithm} | {accept} | {rows:,} x {shape}, {size / 1e6:.0f} MB | {was} | "
              f"{seconds:.2f} s, +{peak:.0f} MB, +{held:.0f} MB |")


if __name__ == "__main__":
    main()
