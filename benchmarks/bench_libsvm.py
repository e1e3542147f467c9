"""libsvm parsing: common/libsvm.py (vectorised numpy) against xgboost's own parser, on one file.

    flock /tmp/algobox-bench.lock .venv/bin/python benchmarks/bench_libsvm.py [--rows 1000000] [--nnz 10] [--runs 5]

The file: --rows lines of ``label index:value ...`` with --nnz one-based indices out of 1,000 and values
written as ``%.6g`` (about 100 MB at 1M x 10). Each run parses the whole file into float32 CSR + labels:
- xgboost: the way containers/xgboost/data.py read libsvm before it used common's reader: 64 MB line-aligned
  blocks, each written to a file and loaded with ``xgb.DMatrix("...?format=libsvm&indexing_mode=0")``, then
  ``get_data()`` / ``get_label()``;
- ours: ``common.libsvm.iter_parsed`` over the file (16 MB blocks), then ``Parsed.matrix()``.
Both must agree on every label and index, and on every value to one float32 ulp (xgboost's own number parser
rounds a few percent of values one ulp off; ours rounds as Python's float() does). Runs are interleaved (xgboost, ours, xgboost, ours, ...); the median of ours / xgboost is printed, with each
side's median seconds and the in-process peak of ours (tracemalloc, one extra run). About 1-2 minutes at the defaults on a quiet 2-core machine.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import libsvm  # noqa: E402

BLOCK_BYTES = 64 << 20


def make_file(path, rows, nnz, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            labels = rng.integers(0, 2, n)
            indices = np.sort(rng.choice(1000, size=(n, nnz)), axis=1) + 1
            values = rng.normal(size=(n, nnz))
            lines = [f"{lab} " + " ".join(f"{i}:{v:.6g}" for i, v in zip(idx, val))
                     for lab, idx, val in zip(labels, indices, values)]
            f.write(("\n".join(lines) + "\n").encode())


def blocks(path, size):
    rest = b""
    with open(path, "rb") as f:
        while True:
            data = f.read(size)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            yield data[:cut]
            rest = data[cut:]
    if rest.strip():
        yield rest + b"\n"


def xgboost_parse(path, workdir):
    import xgboost as xgb

    matrices, labels = [], []
    block_path = os.path.join(workdir, "block.libsvm")
    for block in blocks(path, BLOCK_BYTES):
        with open(block_path, "wb") as f:
            f.write(block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            matrix = xgb.DMatrix(f"{block_path}?format=libsvm&indexing_mode=0", silent=True)
        os.unlink(block_path)
        matrices.append(sp.csr_matrix(matrix.get_data(), dtype=np.float32))
        labels.append(matrix.get_label())
    return matrices, labels


def ours_parse(path):
    matrices, labels = [], []
    with open(path, "rb") as f:
        for parsed, _ in libsvm.iter_parsed(f, str(path)):
            matrices.append(parsed.matrix())
            labels.append(parsed.labels)
    return matrices, labels


def stacked(matrices, labels):
    width = max(m.shape[1] for m in matrices)
    full = sp.vstack([sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], width)) for m in matrices])
    return full.tocsr(), np.concatenate(labels)


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--nnz", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-libsvm-") as workdir:
        path = Path(workdir) / "data.libsvm"
        make_file(path, args.rows, args.nnz)
        print(f"file: {args.rows:,} rows x {args.nnz} nnz, {path.stat().st_size / 1e6:.0f} MB")
        theirs, ours = stacked(*xgboost_parse(path, workdir)), stacked(*ours_parse(path))
        a, b = theirs[0], ours[0]
        assert a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        assert np.array_equal(theirs[1], ours[1]), "labels disagree"
        np.testing.assert_allclose(a.data, b.data, rtol=2.5e-7, atol=0)  # one float32 ulp at most
        print(f"values that differ (by one float32 ulp): {np.count_nonzero(a.data != b.data):,} of {a.nnz:,}; "
              "xgboost's own float parser is not correctly rounded, ours is (as float())")
        del theirs, ours
        xgb_s, ours_s = [], []
        for _ in range(args.runs):
            xgb_s.append(timed(xgboost_parse, path, workdir))
            ours_s.append(timed(ours_parse, path))
        ratios = [o / x for o, x in zip(ours_s, xgb_s)]
        tracemalloc.start()
        ours_parse(path)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"xgboost: median {statistics.median(xgb_s):.2f} s; ours: median {statistics.median(ours_s):.2f} s "
              f"(peak {peak:.0f} MB incl. the result)")
        print(f"ours / xgboost: median {statistics.median(ratios):.2f} (runs: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
