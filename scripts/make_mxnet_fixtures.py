"""Write tests/fixtures/mxnet/ with real MXNet, and prove common/ndarray.py matches MXNet.

Run it in a throwaway venv (MXNet must never be a dependency of algobox)::

    python3 -m venv /tmp/mxvenv
    PIP_CONSTRAINT= /tmp/mxvenv/bin/pip install --isolated 'mxnet==1.9.1' 'numpy<1.24'
    # optional: old MXNet builds, for the legacy (<= 0.10) and V1 (0.11) record formats
    PIP_CONSTRAINT= /tmp/mxvenv/bin/pip download --isolated --no-deps 'mxnet==0.10.0' -d /tmp/oldmx
    PIP_CONSTRAINT= /tmp/mxvenv/bin/pip download --isolated --no-deps 'mxnet==0.11.0' -d /tmp/oldmx
    /tmp/mxvenv/bin/python scripts/make_mxnet_fixtures.py --old-wheels /tmp/oldmx

What it does:

1. Writes each fixture with MXNet 1.9.1's ``mx.nd.save`` (and, with ``--old-wheels``, two with
   the libmxnet.so of MXNet 0.10.0 / 0.11.0 through its C API, since their Python front ends
   predate Python 3.11), and records the contents in ``expected.json``.
2. Checks that ``common.ndarray.save`` of the same contents gives the same bytes, and that
   ``common.ndarray.load`` of every fixture gives the recorded values.
3. Round trips: many dtypes/shapes/names written by our ``save`` are read back by
   ``mx.nd.load``, and written by ``mx.nd.save`` are read back by our ``load``, byte-compared.
4. Records MXNet's own behaviour on the odd cases (0-d arrays); sparse (row_sparse, csr) files
   are read back dense, as MXNet's ``asnumpy()`` gives them.

Without ``--old-wheels`` the legacy and V1 fixtures already in the folder are kept.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "mxnet"
sys.path.insert(0, str(ROOT))
from common import ndarray as ours  # noqa: E402  (numpy + stdlib only)

# -- fixture contents ------------------------------------------------------------------------


def kmeans_centroids():
    return np.array([[0.5, -1.25, 3.0, 7.75],
                     [1e-3, 2.5e5, -0.0, 1.0 / 3.0],
                     [-4.0, 0.125, 6.5, -9.875]], dtype=np.float32)


def pca_model():
    v = np.array([[0.6, -0.8], [0.8, 0.6], [0.0, 0.0], [0.1, -0.2], [-0.3, 0.4]], np.float32)
    return {"v": v, "s": np.array([12.5, 3.25], np.float32),
            "mean": np.array([[1.0, 2.0, -3.5, 0.25, 100.0]], np.float32)}


def dtypes_dict():
    return {
        "float64": np.array([[1.5, -2.25], [np.pi, 1e-300]], np.float64),
        "float16": np.array([[0.5, -1.0, 65504.0], [6.1e-5, 0.0, -2.0]], np.float16),
        "int32": np.array([-2147483648, 0, 2147483647], np.int32),
        "int64": np.array([-(2 ** 62), 2 ** 40 + 3], np.int64),
        "uint8": np.array([0, 1, 128, 255], np.uint8),
        "int8": np.array([-128, 0, 127], np.int8),
        "bool": np.array([True, False, True], np.bool_),
    }


def shapes_list():
    return [np.array([42.0], np.float32),                           # 1-d, one element
            np.arange(4, dtype=np.float32).reshape(2, 1, 2),        # 3-d
            np.arange(6, dtype=np.int32).reshape(1, 2, 1, 3),       # 4-d
            np.zeros((2, 0), np.float32)]                           # zero-size


def np_shape_list():  # V3 records: mx.nd.save under numpy shape semantics (mx.npx.set_np())
    return [np.array(2.5, np.float32), np.array(-7, np.int64), np.zeros((0, 3), np.float32),
            np.array([[1.0, 2.0]], np.float64)]


V2_FIXTURES = {  # name -> (contents, np_shape)
    "kmeans_model_algo-1": (lambda: [kmeans_centroids()], False),
    "pca_model_algo-1": (pca_model, False),
    "dtypes_dict": (dtypes_dict, False),
    "shapes_list": (shapes_list, False),
    "empty_list": (lambda: [], False),
    "np_shape_v3": (np_shape_list, True),
}

OLD_FIXTURES = {  # name -> (wheel version, contents); dtypes limited to what 0.10 knew
    "legacy_mxnet-0.10.0": ("0.10.0", lambda: [np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
                                               np.array([7, -8, 9, 0], np.int32)]),
    "v1_mxnet-0.11.0": ("0.11.0", lambda: {"w": np.array([[1.5, -2.0, 0.0]], np.float32),
                                           "idx": np.array([3, 1, 4], np.uint8),
                                           "x": np.arange(4, dtype=np.float64).reshape(1, 2, 2)}),
}


# -- helpers ---------------------------------------------------------------------------------


def describe(contents):
    """JSON-able record of a list/dict of arrays."""
    def one(a, name=None):
        d = {"dtype": a.dtype.name, "shape": list(a.shape), "values": a.reshape(-1).tolist()}
        if name is not None:
            d = {"name": name, **d}
        return d
    if isinstance(contents, dict):
        return {"kind": "dict", "arrays": [one(a, k) for k, a in contents.items()]}
    return {"kind": "list", "arrays": [one(a) for a in contents]}


def same(a, b):
    """Equal contents, dtypes and shapes (a list/dict of numpy arrays each)."""
    if isinstance(a, dict) != isinstance(b, dict) or len(a) != len(b):
        return False
    if isinstance(a, dict):
        if list(a) != list(b):
            return False
        a, b = list(a.values()), list(b.values())
    return all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
               for x, y in zip(a, b))


def check(cond, message):
    if not cond:
        raise SystemExit(f"FAILED: {message}")
    print(f"ok   {message}")


def ours_bytes(contents, np_shape=False):
    buf = io.BytesIO()
    ours.save(buf, contents, np_shape=np_shape)
    return buf.getvalue()


# -- MXNet 1.9.1 -----------------------------------------------------------------------------


def mx_save(mx, path, contents, np_shape=False):
    with mx.util.np_shape(np_shape):
        if isinstance(contents, dict):
            mx.nd.save(str(path), {k: mx.nd.array(v, dtype=v.dtype) for k, v in contents.items()})
        else:
            mx.nd.save(str(path), [mx.nd.array(v, dtype=v.dtype) for v in contents])


def mx_load(mx, path, np_shape=False):
    with mx.util.np_shape(np_shape):
        got = mx.nd.load(str(path))
        if isinstance(got, dict):
            return {k: v.asnumpy() for k, v in got.items()}
        return [v.asnumpy() for v in got]


def write_v2_fixtures(mx, expected):
    for name, (make, np_shape) in V2_FIXTURES.items():
        contents = make()
        path = OUT / name
        mx_save(mx, path, contents, np_shape)
        expected[name] = {"writer": f"mxnet {mx.__version__} mx.nd.save"
                                    + (" under np_shape(True)" if np_shape else ""),
                          "format": "V3" if np_shape else "V2", "np_shape": np_shape,
                          "byte_identical_save": True, **describe(contents)}
        check(path.read_bytes() == ours_bytes(contents, np_shape),
              f"{name}: common.ndarray.save gives the same bytes as mx.nd.save")
        check(same(mx_load(mx, path, np_shape), contents), f"{name}: mx.nd.load reads it back")


def sparse_fixtures(nd):
    """name -> MXNet sparse NDArrays to save (row_sparse and csr storage), as a list or a dict."""
    return {
        "row_sparse": [nd.sparse.row_sparse_array((np.array([[1.0, 2.0]], np.float32), np.array([1])),
                                                  shape=(3, 2))],
        "csr": {"c": nd.sparse.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([0, 1]),
                                           np.array([0, 1, 2])), shape=(2, 2))},
        "sparse_mixed": {  # what a sparse-trained model's params could hold: dense and row_sparse together
            "dense": nd.array(np.array([0.5], np.float32)),
            "rsp64": nd.sparse.row_sparse_array(
                (np.arange(12, dtype=np.float64).reshape(2, 3, 2) - 5.5, np.array([0, 3])), shape=(5, 3, 2),
                dtype=np.float64),
            "rsp_empty": nd.sparse.zeros("row_sparse", (4, 2)),
            "csr_wide": nd.sparse.csr_matrix((np.array([-1.5, 2.0, 3.25], np.float32), np.array([6, 0, 6]),
                                              np.array([0, 1, 1, 3])), shape=(3, 7)),
        },
    }


def write_sparse_fixtures(mx, expected):
    """Sparse storage: common.ndarray.load returns the dense arrays MXNet's asnumpy() gives."""
    for name, contents in sparse_fixtures(mx.nd).items():
        mx.nd.save(str(OUT / name), contents)
        dense = ({k: v.asnumpy() for k, v in contents.items()} if isinstance(contents, dict)
                 else [v.asnumpy() for v in contents])
        stypes = sorted({v.stype for v in (contents.values() if isinstance(contents, dict) else contents)})
        expected[name] = {"writer": f"mxnet {mx.__version__} mx.nd.save", "format": "V2",
                          "storage": stypes, "byte_identical_save": False, **describe(dense)}
        check(same(ours.load(OUT / name), dense), f"{name}: common.ndarray.load gives asnumpy() of {stypes}")


def write_rejected_fixtures(mx, expected):
    """MXNet's 0-d V2 file that MXNet itself cannot load."""
    scalar = [np.array(3.0, np.float32)]
    mx_save(mx, OUT / "scalar_v2", scalar)
    try:
        mx_load(mx, OUT / "scalar_v2")
        mx_error = None
    except mx.base.MXNetError as e:
        mx_error = str(e).strip().splitlines()[-1]
    check(mx_error is not None, f"scalar_v2: MXNet 1.9.1 cannot load its own 0-d V2 file "
                                f"({mx_error})")
    check(same(ours.load(OUT / "scalar_v2"), scalar), "scalar_v2: common.ndarray.load reads it")
    expected["scalar_v2"] = {"writer": f"mxnet {mx.__version__} mx.nd.save", "format": "V2",
                             "byte_identical_save": False, "mxnet_load_error": mx_error,
                             **describe(scalar)}


def round_trips(mx):
    rng = np.random.default_rng(7)
    cases = {
        "every dtype, list": [rng.standard_normal((3, 5)).astype(t) for t in
                              ("float32", "float64", "float16")]
                             + [rng.integers(-100, 100, (4, 2)).astype(t) for t in
                                ("int32", "int64", "int8")]
                             + [rng.integers(0, 255, (7,)).astype(np.uint8),
                                rng.integers(0, 2, (2, 3)).astype(np.bool_)],
        "dict, unicode names": {"naïve": np.ones((2, 2), np.float32), "名前": np.arange(3.0),
                                "": np.zeros((1,), np.int32), "a b/c": np.zeros((0,), np.int64)},
        "big-endian and non-contiguous input": [np.arange(12, dtype=">f4").reshape(3, 4).T,
                                                np.arange(10, dtype=np.int64)[::3]],
        "larger k-means model": [rng.standard_normal((100, 784)).astype(np.float32)],
        "6-d": [np.arange(64, dtype=np.float32).reshape(2, 2, 2, 2, 2, 2)],
        "many arrays": [np.full((1,), i, np.int32) for i in range(300)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for label, contents in cases.items():
            theirs, mine = Path(tmp, "theirs"), Path(tmp, "mine")
            ours.save(mine, contents)
            got = mx_load(mx, mine)
            if isinstance(contents, dict):
                normal = contents
            else:  # what we expect back: native byte order, C order
                normal = [np.ascontiguousarray(a, a.dtype.newbyteorder("=")) for a in contents]
            check(same(got, normal), f"round trip '{label}': mx.nd.load reads our file")
            mx_save(mx, theirs, normal)
            check(same(ours.load(theirs), normal), f"round trip '{label}': we read mx.nd.save")
            check(theirs.read_bytes() == mine.read_bytes(), f"round trip '{label}': same bytes")
        # A file saved on another context keeps dev_id in the bytes; we ignore it on load.
        with mx.util.np_shape(False):
            mx.nd.save(str(Path(tmp, "cpu1")), [mx.nd.array([1, 2], ctx=mx.cpu(1))])
        check(same(ours.load(Path(tmp, "cpu1")), [np.array([1, 2], np.float32)]),
              "we read an array saved from cpu(1)")


# -- old MXNet builds (legacy and V1 records) ------------------------------------------------


_FLAGS = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4}


def old_writer(lib_path, out_path, fixture):
    """Runs in a child process: write OLD_FIXTURES[fixture] with an old libmxnet.so's C API."""
    lib = ctypes.CDLL(lib_path)
    lib.MXGetLastError.restype = ctypes.c_char_p
    contents = OLD_FIXTURES[fixture][1]()

    def call(rc):
        if rc != 0:
            raise RuntimeError(lib.MXGetLastError().decode())

    names = list(contents) if isinstance(contents, dict) else None
    values = list(contents.values()) if names else list(contents)
    handles = []
    for a in values:
        h = ctypes.c_void_p()
        shape = (ctypes.c_uint * a.ndim)(*a.shape)
        call(lib.MXNDArrayCreateEx(shape, ctypes.c_uint(a.ndim), 1, 0, 0, _FLAGS[a.dtype.name],
                                   ctypes.byref(h)))
        a = np.ascontiguousarray(a)
        call(lib.MXNDArraySyncCopyFromCPU(h, a.ctypes.data_as(ctypes.c_void_p),
                                          ctypes.c_size_t(a.size)))
        handles.append(h)
    keys = (ctypes.c_char_p * len(names))(*[k.encode() for k in names]) if names else None
    call(lib.MXNDArraySave(out_path.encode(), ctypes.c_uint(len(handles)),
                           (ctypes.c_void_p * len(handles))(*handles), keys))


def write_old_fixtures(mx, wheels_dir, expected):
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, make) in OLD_FIXTURES.items():
            wheel = glob.glob(os.path.join(wheels_dir, f"mxnet-{version}-*.whl"))
            if not wheel:
                raise SystemExit(f"no mxnet-{version} wheel in {wheels_dir}")
            lib = Path(tmp, version, "libmxnet.so")
            lib.parent.mkdir()
            with zipfile.ZipFile(wheel[0]) as z:
                lib.write_bytes(z.read("mxnet/libmxnet.so"))
            subprocess.run([sys.executable, __file__, "--old-writer", str(lib), str(OUT / name),
                            name], check=True)
            contents = make()
            kind = "legacy" if version == "0.10.0" else "V1"
            expected[name] = {"writer": f"libmxnet.so {version} MXNDArraySave (C API)",
                              "format": kind, "byte_identical_save": False, **describe(contents)}
            head = (OUT / name).read_bytes()[24:28]
            magic = int.from_bytes(head, "little")
            check((magic == ours.V1_MAGIC) == (kind == "V1"),
                  f"{name}: first record starts 0x{magic:08X} ({kind})")
            check(same(ours.load(OUT / name), contents), f"{name}: common.ndarray.load reads it")
            check(same(mx_load(mx, OUT / name), contents), f"{name}: mx.nd.load 1.9.1 reads it")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old-wheels", help="folder with mxnet 0.10.0 and 0.11.0 wheels")
    parser.add_argument("--old-writer", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.old_writer:
        old_writer(*args.old_writer)
        return

    import mxnet as mx  # only here: the child process above must not load MXNet 1.9.1

    OUT.mkdir(parents=True, exist_ok=True)
    expected_path = OUT / "expected.json"
    old = json.loads(expected_path.read_text())["fixtures"] if expected_path.exists() else {}
    expected = {}
    write_v2_fixtures(mx, expected)
    write_sparse_fixtures(mx, expected)
    write_rejected_fixtures(mx, expected)
    if args.old_wheels:
        write_old_fixtures(mx, args.old_wheels, expected)
    else:
        for name in OLD_FIXTURES:
            if name in old and (OUT / name).exists():
                expected[name] = old[name]
                print(f"kept {name} (no --old-wheels)")
    round_trips(mx)
    text = json.dumps({
        "generated_by": "scripts/make_mxnet_fixtures.py",
        "mxnet": mx.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "fixtures": expected}, indent=1)
    # one line per innermost list (shapes and values), to keep the file small and readable
    text = re.sub(r"\[\s*([^\[\]{}]*?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    expected_path.write_text(text + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    check(total < 10_000, f"fixtures total {total} bytes")


if __name__ == "__main__":
    main()
