"""Training-data decoding throughput, printed as ratios from one run.

    .venv/bin/python benchmarks/bench_recordio.py [--rows 200000] [--dim 100]

recordIO-protobuf (dense float32 with labels, written by the SageMaker SDK): the SDK's own
``read_records`` plus conversion to numpy (the reference; goal: ours at least 10x), our
``iter_record_batches`` + ``decode_batch`` (batch 5000), our general (non-fast-path) decoder, and a raw
``numpy.frombuffer`` copy of the same floats (the physical limit). CSV: our ``iter_csv_batches`` against
``pandas.read_csv`` (C engine) on the same file (goal: at least parity).
"""

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

from common import csv_reader, protobuf, recordio  # noqa: E402

BATCH = 5000


def best_of(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import pandas as pd
    from sdk import dense_recordio, read_records

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    y = rng.integers(0, 10, args.rows).astype(np.float32)
    data = dense_recordio(x, y)
    mb = len(data) / 1e6

    def sdk_reader():
        records = read_records(io.BytesIO(data))
        return np.array([r.features["values"].float32_tensor.values for r in records], dtype=np.float32)

    def ours(fast=True):
        return np.concatenate([protobuf.decode_batch(b, fast=fast)[0]
                               for b in recordio.iter_record_batches(io.BytesIO(data), BATCH)])

    raw_bytes = x.tobytes()

    def raw():
        return np.frombuffer(raw_bytes, dtype=np.float32).reshape(args.rows, args.dim).copy()

    results = {}
    results["SageMaker SDK read_records + numpy"] = best_of(sdk_reader, 1)
    results["algobox (fast path)"] = best_of(ours, args.repeats)
    results["algobox (general path)"] = best_of(lambda: ours(False), 1)
    results["raw numpy.frombuffer copy"] = best_of(raw, args.repeats)
    for name, (_, array) in results.items():
        assert np.array_equal(array, x), name
    print(f"recordIO-protobuf: {args.rows} x {args.dim} float32 + label, {mb:.1f} MB")
    print(f"{'reader':<38}{'seconds':>9}{'MB/s':>9}")
    for name, (seconds, _) in results.items():
        print(f"{name:<38}{seconds:>9.3f}{mb / seconds:>9.0f}")
    sdk_s, ours_s, raw_s = (results[k][0] for k in ("SageMaker SDK read_records + numpy", "algobox (fast path)",
                                                    "raw numpy.frombuffer copy"))
    print(f"ratio algobox/SDK = {sdk_s / ours_s:.1f}x (goal >= 10x); algobox at {raw_s / ours_s:.0%} of the "
          f"raw copy's MB/s")

    buffer = io.StringIO()
    np.savetxt(buffer, np.column_stack([y, x]), delimiter=",", fmt="%.7g")
    text = buffer.getvalue().encode()
    csv_mb = len(text) / 1e6

    def ours_csv():
        return np.concatenate([f for f, _ in csv_reader.iter_csv_batches(io.BytesIO(text), BATCH, label_size=1)])

    def pandas_csv():
        return pd.read_csv(io.BytesIO(text), header=None, engine="c", dtype=np.float32).to_numpy()[:, 1:]

    csv_ours = best_of(ours_csv, args.repeats)
    csv_pandas = best_of(pandas_csv, args.repeats)
    assert np.allclose(csv_ours[1], csv_pandas[1])
    print(f"\nCSV: {csv_mb:.1f} MB, label_size=1")
    print(f"{'algobox iter_csv_batches':<38}{csv_ours[0]:>9.3f}{csv_mb / csv_ours[0]:>9.0f}")
    print(f"{'pandas.read_csv (C engine)':<38}{csv_pandas[0]:>9.3f}{csv_mb / csv_pandas[0]:>9.0f}")
    print(f"ratio algobox/pandas = {csv_pandas[0] / csv_ours[0]:.2f} (goal >= 1)")


if __name__ == "__main__":
    main()
