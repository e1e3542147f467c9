"""Training-data reading throughput: recordIO-protobuf against the SageMaker SDK, CSV against pandas.

    .venv/bin/python benchmarks/bench_recordio.py [--rows 200000] [--dim 100] [--slow-rows 50000]

Writes ``--rows`` x ``--dim`` float32 records with float32 labels using the SDK's
``write_numpy_to_dense_tensor`` into a temporary file, then times in this process, reading that file:

  (a) the SDK's ``read_records`` plus conversion to an (n, d) numpy array, the way a user would;
  (b) our ``iter_record_batches`` + ``decode_batch`` (batch 5000) into one numpy array;
  (c) a raw ``numpy.frombuffer`` copy of the same float bytes held in one buffer (the physical limit);
  (d) our general decoder (protobuf parsing, no fast path);
  (e) the same rows as CSV (label first): our ``iter_csv_batches`` (with pandas installed, and on numpy
      alone) against
      ``pandas.read_csv(header=None, engine="c")``.

Throughput is MB/s of file bytes. (a) and (d) read the first ``--slow-rows`` records only (to keep the run
short; their cost per byte does not depend on the file's length). Default sizes run in about 40 s on 2 cores.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from common import csv_reader, protobuf, recordio  # noqa: E402

BATCH = 5000


def best_of(repeats, function):
    """(fastest seconds, last result) over ``repeats`` calls."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def write_csv(path, table):
    row = ",".join(["%.7g"] * table.shape[1]) + "\n"
    with open(path, "w") as f:
        for start in range(0, table.shape[0], 10_000):
            f.write("".join(row % tuple(values) for values in table[start:start + 10_000].tolist()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--slow-rows", type=int, default=50_000, help="records read by (a) and (d)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many CSV runs (3x for recordIO)")
    args = parser.parse_args()
    import pandas as pd
    from sagemaker.amazon.common import read_records, write_numpy_to_dense_tensor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    y = rng.integers(0, 10, args.rows).astype(np.float32)
    slow_rows = min(args.slow_rows, args.rows)
    work = Path(tempfile.mkdtemp(prefix="bench_recordio_"))
    rec_path, csv_path = work / "train.rec", work / "train.csv"
    with open(rec_path, "wb") as f:
        write_numpy_to_dense_tensor(f, x, y)
    write_csv(csv_path, np.column_stack([y, x]))
    rec_bytes, csv_bytes = rec_path.stat().st_size, csv_path.stat().st_size
    record_bytes = rec_bytes // args.rows  # every record has the same length
    slow_path = work / "head.rec"
    with open(rec_path, "rb") as f:
        slow_path.write_bytes(f.read(record_bytes * slow_rows))
    raw = x.tobytes()

    def sdk_reader():
        with open(slow_path, "rb") as f:
            records = read_records(f)
        return np.array([r.features["values"].float32_tensor.values for r in records], dtype=np.float32)

    def ours(path=rec_path, fast=True):
        with open(path, "rb") as f:
            return np.concatenate([protobuf.decode_batch(b, fast=fast, source=str(path))[0]
                                   for b in recordio.iter_record_batches(f, BATCH, source=str(path))])

    def raw_copy():
        return np.frombuffer(raw, np.float32).reshape(args.rows, args.dim).copy()

    def ours_csv(with_pandas):
        saved = csv_reader._pandas
        if not with_pandas:
            csv_reader._pandas = lambda: None
        try:
            with open(csv_path, "rb") as f:
                batches = list(csv_reader.iter_csv_batches(f, BATCH, label_size=1, source=str(csv_path)))
        finally:
            csv_reader._pandas = saved
        return np.concatenate([features for features, _ in batches]), np.concatenate([labels for _, labels in batches])

    def pandas_csv():
        table = pd.read_csv(csv_path, header=None, engine="c").to_numpy(dtype=np.float32)
        return table[:, 1:], table[:, 0]

    results = []  # (format, reader, bytes read, seconds)
    seconds, array = best_of(1, sdk_reader)
    assert np.array_equal(array, x[:slow_rows])
    results.append(("recordIO", f"(a) SDK read_records + numpy ({slow_rows} rows)", record_bytes * slow_rows, seconds))
    seconds, array = best_of(3 * args.repeats, ours)  # well under a second each: more tries against noise
    assert np.array_equal(array, x)
    results.append(("recordIO", "(b) algobox iter_record_batches + decode_batch", rec_bytes, seconds))
    seconds, array = best_of(3 * args.repeats, raw_copy)
    assert np.array_equal(array, x)
    results.append(("recordIO", "(c) raw numpy.frombuffer copy (limit)", rec_bytes, seconds))
    seconds, array = best_of(1, lambda: ours(slow_path, fast=False))
    assert np.array_equal(array, x[:slow_rows])
    results.append(("recordIO", f"(d) algobox general decoder ({slow_rows} rows)", record_bytes * slow_rows, seconds))
    expected = None
    for name, reader in (("(e) pandas.read_csv, C engine", pandas_csv),
                         ("(e) algobox iter_csv_batches (pandas installed)", lambda: ours_csv(True)),
                         ("(e) algobox iter_csv_batches (numpy fallback)", lambda: ours_csv(False))):
        seconds, (features, labels) = best_of(args.repeats, reader)
        if expected is None:
            expected = features, labels
        assert np.array_equal(features, expected[0]) and np.array_equal(labels, expected[1]), name
        results.append(("CSV", name, csv_bytes, seconds))

    print(f"\n{args.rows} rows x {args.dim} float32 features + 1 label; recordIO file {rec_bytes / 1e6:.1f} MB, "
          f"CSV file {csv_bytes / 1e6:.1f} MB; {os.cpu_count()} CPUs")
    print(f"| {'format':<8} | {'reader':<52} | {'MB':>7} | {'seconds':>8} | {'MB/s':>7} |")
    print(f"|{'-' * 10}|{'-' * 54}|{'-' * 9}|{'-' * 10}|{'-' * 9}|")
    speed = {}
    for fmt, name, nbytes, seconds in results:
        speed[name[:3] if fmt == "recordIO" else name] = nbytes / 1e6 / seconds
        print(f"| {fmt:<8} | {name:<52} | {nbytes / 1e6:>7.1f} | {seconds:>8.3f} | {nbytes / 1e6 / seconds:>7.0f} |")
    csv_names = [name for fmt, name, _, _ in results if fmt == "CSV"]
    print(f"\nrecordIO: algobox / SDK = {speed['(b)'] / speed['(a)']:.0f}x (goal >= 10x); "
          f"algobox / raw copy = {speed['(b)'] / speed['(c)']:.2f}; fast / general path = "
          f"{speed['(b)'] / speed['(d)']:.0f}x")
    print(f"CSV: algobox / pandas = {speed[csv_names[1]] / speed[csv_names[0]]:.2f} with pandas installed "
          f"(goal >= 1), {speed[csv_names[2]] / speed[csv_names[0]]:.2f} on numpy's loadtxt alone")
    for path in (rec_path, csv_path, slow_path):
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
