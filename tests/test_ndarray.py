"""common.ndarray against files written by real MXNet (tests/fixtures/mxnet/, made by
scripts/make_mxnet_fixtures.py), plus round trips and malformed input. No MXNet needed."""

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from common import ndarray
from common.ndarray import NDArrayFormatError

FIXTURES = Path(__file__).parent / "fixtures" / "mxnet"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())["fixtures"]
READABLE = [name for name, f in EXPECTED.items() if f["kind"] != "error"]
BYTE_IDENTICAL = [name for name in READABLE if EXPECTED[name]["byte_identical_save"]]

HEADER = struct.pack("<QQ", 0x112, 0)


def contents(name):
    """The arrays a fixture holds, as expected.json records them."""
    spec = EXPECTED[name]
    arrays = [np.array(a["values"], dtype=a["dtype"]).reshape(a["shape"]) for a in spec["arrays"]]
    if spec["kind"] == "dict":
        return {a["name"]: arr for a, arr in zip(spec["arrays"], arrays)}
    return arrays


def assert_same(got, want):
    assert type(got) is type(want)
    if isinstance(want, dict):
        assert list(got) == list(want)
        got, want = list(got.values()), list(want.values())
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes()  # exact, down to -0.0 and NaN bits


def saved(arrays, **kw):
    buf = io.BytesIO()
    ndarray.save(buf, arrays, **kw)
    return buf.getvalue()


def record(dims, flag=0, data=b"", magic=0xF993FAC9, stype=0):
    """One V2 record, as mx.nd.save writes it."""
    return (struct.pack(f"<Iii{len(dims)}q", magic, stype, len(dims), *dims)
            + struct.pack("<iii", 1, 0, flag) + data)


def file_of(records, names=()):
    out = HEADER + struct.pack("<Q", len(records)) + b"".join(records)
    out += struct.pack("<Q", len(names))
    for n in names:
        out += struct.pack("<Q", len(n)) + n
    return out


# -- real MXNet files ------------------------------------------------------------------------


def test_fixtures_were_written_by_mxnet_1_9_1():
    doc = json.loads((FIXTURES / "expected.json").read_text())
    assert doc["mxnet"] == "1.9.1"
    assert {"kmeans_model_algo-1", "pca_model_algo-1", "empty_list"} <= set(EXPECTED)


@pytest.mark.parametrize("name", READABLE)
def test_load_fixture(name):
    assert_same(ndarray.load(FIXTURES / name), contents(name))


@pytest.mark.parametrize("name", BYTE_IDENTICAL)
def test_save_is_byte_identical_to_mx_nd_save(name, tmp_path):
    ndarray.save(tmp_path / name, contents(name), np_shape=EXPECTED[name]["np_shape"])
    assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes()


def test_kmeans_model():
    model = ndarray.load(FIXTURES / "kmeans_model_algo-1")
    assert isinstance(model, list) and len(model) == 1
    assert model[0].dtype == np.float32 and model[0].shape == (3, 4)
    assert model[0][0].tolist() == [0.5, -1.25, 3.0, 7.75]


def test_pca_model():
    model = ndarray.load(FIXTURES / "pca_model_algo-1")
    assert list(model) == ["v", "s", "mean"]
    assert {k: v.shape for k, v in model.items()} == {"v": (5, 2), "s": (2,), "mean": (1, 5)}
    assert all(v.dtype == np.float32 for v in model.values())
    assert model["s"].tolist() == [12.5, 3.25]


def test_every_dtype_in_fixture():
    model = ndarray.load(FIXTURES / "dtypes_dict")
    assert {k: v.dtype.name for k, v in model.items()} == {k: k for k in model}
    assert model["int64"].tolist() == [-(2 ** 62), 2 ** 40 + 3]


def test_empty_list_and_empty_dict():
    assert ndarray.load(FIXTURES / "empty_list") == []
    assert saved({}) == saved([]) == (FIXTURES / "empty_list").read_bytes()


def test_old_formats_load():
    legacy = ndarray.load(FIXTURES / "legacy_mxnet-0.10.0")  # no magic, uint32 dims
    assert legacy[0].shape == (2, 3) and legacy[1].tolist() == [7, -8, 9, 0]
    v1 = ndarray.load(FIXTURES / "v1_mxnet-0.11.0")  # magic 0xF993FAC8, int64 dims
    assert list(v1) == ["w", "idx", "x"] and v1["x"].dtype == np.float64


def test_zero_d_arrays():
    # MXNet 1.9.1 writes a 0-d V2 record it cannot read back; we read it ...
    assert EXPECTED["scalar_v2"]["mxnet_load_error"]
    [scalar] = ndarray.load(FIXTURES / "scalar_v2")
    assert scalar.shape == () and scalar.dtype == np.float32 and scalar == 3.0
    # ... but refuse to write one unless asked for numpy shape semantics (V3).
    with pytest.raises(NDArrayFormatError, match="0-d"):
        saved([np.array(3.0, np.float32)])
    with pytest.raises(NDArrayFormatError, match="0-d"):
        saved({"x": np.float32(3.0)})
    v3 = saved([np.array(3.0, np.float32)], np_shape=True)
    assert v3[24:28] == struct.pack("<I", 0xF993FACA)
    assert_same(ndarray.load(v3), [np.array(3.0, np.float32)])


@pytest.mark.parametrize("name, storage", [("row_sparse", ["row_sparse"]), ("csr", ["csr"]),
                                           ("sparse_mixed", ["csr", "default", "row_sparse"])])
def test_sparse_storage_loads_dense_like_asnumpy(name, storage):
    assert EXPECTED[name]["storage"] == storage
    assert_same(ndarray.load(FIXTURES / name), contents(name))


def test_row_sparse_rows_land_where_mxnet_put_them():
    got = ndarray.load(FIXTURES / "sparse_mixed")
    assert got["rsp64"].dtype == np.float64 and got["rsp64"].shape == (5, 3, 2)
    assert not got["rsp64"][[1, 2, 4]].any() and got["rsp64"][3, 2, 1] == 5.5
    assert not got["rsp_empty"].any() and got["rsp_empty"].shape == (4, 2)
    np.testing.assert_array_equal(got["csr_wide"], [[0, 0, 0, 0, 0, 0, -1.5], [0] * 7, [2, 0, 0, 0, 0, 0, 3.25]])


def sparse_record(stype, storage, shape, values, aux):
    """One V2 sparse record: storage shape, shape, context, type, (aux type, aux shape)*, values, aux data."""
    head = struct.pack(f"<Iii{len(storage)}qi{len(shape)}q", 0xF993FAC9, stype, len(storage), *storage,
                       len(shape), *shape) + struct.pack("<iii", 1, 0, 0)
    for a in aux:
        head += struct.pack("<iiq", 6, 1, len(a))
    return head + np.asarray(values, np.float32).tobytes() + b"".join(np.asarray(a, np.int64).tobytes() for a in aux)


@pytest.mark.parametrize("name", ["row_sparse", "csr", "sparse_mixed"])
def test_every_truncation_of_a_sparse_file_is_refused(name):
    data = (FIXTURES / name).read_bytes()
    for n in range(len(data)):
        with pytest.raises(NDArrayFormatError, match="truncated|only|not an MXNet"):
            ndarray.load(data[:n])


@pytest.mark.parametrize("record, message", [
    (sparse_record(1, [1, 2], [3, 2], [1, 2], [[3]]), r"row index is outside 0\.\.2"),
    (sparse_record(1, [2, 2], [3, 2], [1, 2, 3, 4], [[0]]), r"do not fit 1 rows"),
    (sparse_record(2, [2], [2, 2], [1, 2], [[0, 1, 3], [0, 1]]), "inconsistent indptr"),
    (sparse_record(2, [2], [2, 2], [1, 2], [[0, 1, 2], [0, 2]]), "inconsistent indptr"),
    (sparse_record(1, [1, 2], [1 << 40, 1 << 20], [1, 2], [[0]]), "over 64 GiB"),
])
def test_malformed_sparse_records_are_refused(record, message):
    with pytest.raises(NDArrayFormatError, match=message):
        ndarray.load(file_of([record]))


# -- round trips -----------------------------------------------------------------------------

ROUND_TRIPS = {
    "list": [np.arange(12, dtype=np.float32).reshape(3, 4)],
    "dict": {"v": np.ones((4, 2), np.float32), "s": np.array([2.0, 1.0], np.float32),
             "mean": np.zeros((1, 4), np.float32)},
    "dtypes": [np.array([1.5, -2.5], t) for t in ("float32", "float64", "float16")]
    + [np.array([-3, 4], t) for t in ("int32", "int64", "int8")]
    + [np.array([0, 255], np.uint8), np.array([True, False])],
    "shapes": [np.zeros((0,), np.float32), np.zeros((3, 0, 2), np.int64),
               np.arange(32, dtype=np.float64).reshape(2, 2, 2, 2, 2), np.ones((1,), np.int8)],
    "unicode names": {"naïve": np.ones(2, np.float32), "": np.zeros(1, np.int32)},
    "empty": [],
}


@pytest.mark.parametrize("label", ROUND_TRIPS)
def test_round_trip_path(label, tmp_path):
    ndarray.save(tmp_path / "f", ROUND_TRIPS[label])
    assert_same(ndarray.load(tmp_path / "f"), ROUND_TRIPS[label])
    assert_same(ndarray.load(str(tmp_path / "f")), ROUND_TRIPS[label])


def test_round_trip_file_objects_and_bytes(tmp_path):
    want = ROUND_TRIPS["dict"]
    data = saved(want)
    assert_same(ndarray.load(data), want)
    assert_same(ndarray.load(bytearray(data)), want)
    stream = io.BytesIO(b"junk" + data + b"more")
    stream.seek(4)  # reads from the current position; trailing bytes are ignored, as in MXNet
    assert_same(ndarray.load(stream), want)
    with open(tmp_path / "f", "wb") as f:
        ndarray.save(f, want)
    with open(tmp_path / "f", "rb") as f:
        assert_same(ndarray.load(f), want)

    class Unseekable(io.RawIOBase):
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            return self._data.readinto(b)

    assert_same(ndarray.load(io.BufferedReader(Unseekable(data))), want)


def test_tuple_and_single_array():
    a = np.arange(4, dtype=np.float32)
    assert saved((a,)) == saved([a]) == saved(a)


def test_save_writes_little_endian_c_order():
    a = np.arange(6, dtype=">i4").reshape(2, 3).T  # big-endian and not C-contiguous
    data = saved([a])
    assert data == saved([np.ascontiguousarray(a, "<i4")])
    assert data[-8 - 24:-8] == np.ascontiguousarray(a, "<i4").tobytes()
    got = ndarray.load(data)[0]
    assert got.dtype == np.int32 and got.dtype.isnative and got.flags.c_contiguous
    assert got.tolist() == a.tolist()


def test_loaded_arrays_are_writable():
    arr = ndarray.load(FIXTURES / "kmeans_model_algo-1")[0]
    arr[0, 0] = 1.0


def test_repeated_name_keeps_last_like_mxnet():
    data = file_of([record([1], 4, struct.pack("<i", 1)), record([1], 4, struct.pack("<i", 2))],
                   [b"a", b"a"])
    assert {k: v.tolist() for k, v in ndarray.load(data).items()} == {"a": [2]}


# -- malformed files -------------------------------------------------------------------------


def test_error_is_a_value_error():
    assert issubclass(NDArrayFormatError, ValueError)


@pytest.mark.parametrize("name", ["kmeans_model_algo-1", "pca_model_algo-1", "np_shape_v3",
                                  "legacy_mxnet-0.10.0", "v1_mxnet-0.11.0"])
def test_every_truncation_is_refused(name):
    data = (FIXTURES / name).read_bytes()
    for n in range(len(data)):
        with pytest.raises(NDArrayFormatError, match="truncated|only|not an MXNet"):
            ndarray.load(data[:n])


def test_truncated_message_names_the_file(tmp_path):
    (tmp_path / "model_algo-1").write_bytes((FIXTURES / "kmeans_model_algo-1").read_bytes()[:70])
    with pytest.raises(NDArrayFormatError,
                       match=r"model_algo-1: file is truncated: the 12 float32 values of array "
                             r"#0 \(3, 4\) needs 48 bytes but only 6 remain \(at byte 64\)"):
        ndarray.load(tmp_path / "model_algo-1")


def test_empty_file():
    with pytest.raises(NDArrayFormatError, match="not an MXNet NDArray file: only 0 bytes"):
        ndarray.load(b"")


@pytest.mark.parametrize("data", [b"\x93NUMPY" + bytes(40), struct.pack("<QQQQ", 0x113, 0, 0, 0),
                                  b"PK\x03\x04" + bytes(60)])
def test_wrong_file_magic(data):
    with pytest.raises(NDArrayFormatError, match="first 8 bytes are not the list magic 0x112"):
        ndarray.load(data)


def test_wrong_record_magic():
    data = file_of([struct.pack("<I", 0xDEADBEEF) + bytes(40)])
    with pytest.raises(NDArrayFormatError, match="array #0 has unrecognized magic 0xDEADBEEF"):
        ndarray.load(data)


def test_absurd_array_count():
    data = HEADER + struct.pack("<Q", 2 ** 63) + bytes(64)
    with pytest.raises(NDArrayFormatError, match=r"claims 9223372036854775808 arrays"):
        ndarray.load(data)


@pytest.mark.parametrize("ndim, message", [(1000, "claims 1000 dimensions"),
                                           (-5, "negative ndim"), (2 ** 31 - 1, "dimensions")])
def test_absurd_ndim(ndim, message):
    data = file_of([struct.pack("<Iii", 0xF993FAC9, 0, ndim) + bytes(64)])
    with pytest.raises(NDArrayFormatError, match=message):
        ndarray.load(data)


@pytest.mark.parametrize("dims", [[2 ** 62, 2 ** 62], [2 ** 63 - 1], [10 ** 9, 10 ** 9, 10 ** 9]])
def test_absurd_dims_do_not_allocate(dims):
    data = file_of([record(dims, data=bytes(16))])
    with pytest.raises(NDArrayFormatError, match="truncated: the .* values of array #0 .* needs"):
        ndarray.load(data)


def test_negative_dim():
    with pytest.raises(NDArrayFormatError, match=r"unknown or negative dims \(2, -1\)"):
        ndarray.load(file_of([record([2, -1], magic=0xF993FACA)]))


@pytest.mark.parametrize("stype, message", [(5, "unknown storage type 5"),
                                            (-1, "undefined storage"),
                                            (3, "unknown storage type 3")])
def test_bad_storage_type(stype, message):
    with pytest.raises(NDArrayFormatError, match=message):
        ndarray.load(file_of([record([1], data=bytes(4), stype=stype)]))


@pytest.mark.parametrize("flag, message", [(12, "bfloat16"), (99, "type flag 99"),
                                           (-1, "type flag -1")])
def test_bad_type_flag(flag, message):
    with pytest.raises(NDArrayFormatError, match=message):
        ndarray.load(file_of([record([1], flag, bytes(8))]))


def test_more_mshadow_types_load():
    data = file_of([record([2], 8, struct.pack("<hh", -1, 2)),
                    record([1], 11, struct.pack("<Q", 2 ** 64 - 1))])
    got = ndarray.load(data)
    assert got[0].dtype == np.int16 and got[0].tolist() == [-1, 2]
    assert got[1].dtype == np.uint64 and got[1].tolist() == [2 ** 64 - 1]


def test_bad_names():
    one = [record([1], 0, bytes(4))]
    with pytest.raises(NDArrayFormatError, match="2 names for 1 arrays"):
        ndarray.load(file_of(one, [b"a", b"b"]))
    absurd = HEADER + struct.pack("<Q", 1) + one[0] + struct.pack("<QQ", 1, 2 ** 60)
    with pytest.raises(NDArrayFormatError, match=r"truncated: name #0 \(1152921504606846976 bytes"):
        ndarray.load(absurd)
    many = HEADER + struct.pack("<Q", 0) + struct.pack("<Q", 2 ** 62)
    with pytest.raises(NDArrayFormatError, match="names for 0 arrays"):
        ndarray.load(many)
    with pytest.raises(NDArrayFormatError, match="name #0 is not valid UTF-8"):
        ndarray.load(file_of(one, [b"\xff\xfe"]))


# -- save refuses what MXNet could not hold --------------------------------------------------


@pytest.mark.parametrize("array", [np.zeros(2, np.complex64), np.array(["a"]),
                                   np.array([None], object), np.zeros(2, np.uint16)])
def test_save_refuses_unsupported_dtype(array):
    with pytest.raises(NDArrayFormatError, match=f"dtype {array.dtype}.*supported: float32"):
        saved([array])


def test_save_refuses_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="must be a numpy array, not list"):
        saved([[1.0, 2.0]])
    with pytest.raises(TypeError, match="names must be str"):
        saved({1: np.zeros(1, np.float32)})
    with pytest.raises(NDArrayFormatError, match="NUL"):
        saved({"a\0b": np.zeros(1, np.float32)})
    with pytest.raises(TypeError, match="list or tuple"):
        saved("not arrays")
    # nothing is written when an array is refused
    with pytest.raises(NDArrayFormatError):
        ndarray.save(tmp_path / "f", [np.zeros(1, np.float32), np.zeros(1, np.complex128)])
    assert not (tmp_path / "f").exists()
