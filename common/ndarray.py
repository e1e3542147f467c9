"""Read and write MXNet's NDArray file format (``mx.nd.save`` / ``mx.nd.load``) without MXNet.

SageMaker's built-in k-means and PCA store their model as ``model_algo-1`` in this format, and
users open it with ``mx.ndarray.load``. :func:`save` writes the same bytes as ``mx.nd.save`` of
MXNet 1.9.1; :func:`load` reads what any MXNet since 0.10 wrote, returning numpy arrays.

The layout (all integers little-endian; checked byte for byte against real MXNet output, see
``scripts/make_mxnet_fixtures.py`` and ``tests/fixtures/mxnet/``)::

    file    := u64 0x112 (list magic) | u64 reserved (0, ignored on read)
               | u64 n | record * n
               | u64 m | (u64 len | utf-8 bytes[len]) * m      # names: m == 0 (a list) or m == n
    record (V2, MXNet >= 0.12; V3 = the same under numpy shape semantics, mx.npx.set_np()):
               u32 magic 0xF993FAC9 (V3: 0xF993FACA) | i32 storage type (0 dense)
               | i32 ndim | i64 dim * ndim
               | i32 dev_type (1 = cpu) | i32 dev_id | i32 type flag | raw data, C order
    record (V1, MXNet 0.11):  u32 magic 0xF993FAC8 | i32 ndim | i64 dim * ndim | ctx | type | data
    record (legacy, <= 0.10): u32 ndim (no magic) | u32 dim * ndim | ctx | type | data

Note ndim is 32 bits even though the dims are 64 bits. Sparse records (V2/V3 only) carry more::

    sparse record := u32 magic | i32 storage type (1 row_sparse, 2 csr)
               | i32 ndim | i64 dim * ndim                  # storage shape: of the values
               | i32 ndim | i64 dim * ndim                  # shape: of the dense array
               | i32 dev_type | i32 dev_id | i32 type flag
               | (i32 aux type flag | i32 ndim | i64 dim * ndim) * naux
               | values, C order | aux data * naux
    row_sparse: naux 1, the row indices (int64); values (rows, *shape[1:])
    csr:        naux 2, indptr then column indices (int64); values (nnz,)

:func:`load` returns them dense (as ``.asnumpy()`` does in MXNet); :func:`save` writes dense only.

Type flags (mshadow): 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64,
7 bool; 8-11 (int16, uint16, uint32, uint64) are read but not written because MXNet 1.9.1's
Python front end cannot use them; 12 (bfloat16) has no numpy type and is rejected.

Quirks of MXNet 1.9.1 that this module handles:

* ``mx.nd.save`` of a 0-d array writes a V2 record with ndim 0 followed by its data, but
  ``mx.nd.load`` takes V2 ndim 0 to mean "no array" and stops reading the record there, so
  MXNet cannot read its own file back. :func:`save` therefore refuses 0-d arrays unless
  ``np_shape=True`` (V3 records, which MXNet reads under ``mx.npx.set_np()``); :func:`load`
  reads such a V2 record as the 0-d array that was written.
* A dict with no entries is saved exactly like an empty list, so loading it gives ``[]``.
* Bytes after the names are ignored, as MXNet does.

Every count and size read from a file is checked against the bytes left before anything is
allocated, so a corrupt or hostile file raises :class:`NDArrayFormatError`, never a crash or
a huge allocation.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Mapping


import numpy as np

from .atomic import atomic_write

__all__ = ["NDArrayFormatError", "load", "save"]

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA

STORAGE_DEFAULT = 0
_STORAGE_NAMES = {-1: "undefined", 0: "default", 1: "row_sparse", 2: "csr"}

# mshadow type flag -> little-endian numpy dtype.
_FLAG_TO_DTYPE = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
}
_WRITABLE_FLAGS = range(8)  # the dtypes MXNet 1.9.1's Python front end maps
_DTYPE_TO_FLAG = {dt.newbyteorder("="): flag
                  for flag, dt in _FLAG_TO_DTYPE.items() if flag in _WRITABLE_FLAGS}

# More dimensions than this is not a real array (numpy < 2 allows 32); it also tells a legacy
# record, whose first word is its ndim, from an unknown magic.
MAX_NDIM = 32

_MIN_RECORD_BYTES = 16  # legacy 0-d record: ndim + ctx + type flag; every other kind is longer


class NDArrayFormatError(ValueError):
    """The file is not a readable MXNet NDArray file, or the arrays cannot be written as one."""


# ---------------------------------------------------------------------------------------------
# reading


class _Reader:
    """Reads a binary stream whose remaining length is known, refusing to read past its end."""

    def __init__(self, f, size: int, name: str):
        self._f = f
        self.remaining = size
        self.offset = 0
        self._name = name

    def fail(self, message: str, offset: int | None = None) -> NDArrayFormatError:
        at = self.offset if offset is None else offset
        return NDArrayFormatError(f"{self._name}: {message} (at byte {at})")

    def need(self, nbytes: int, what: str) -> None:
        if nbytes > self.remaining:
            raise self.fail(f"file is truncated: {what} needs {nbytes} bytes but only "
                            f"{self.remaining} remain")

    def read_bytes(self, nbytes: int, what: str) -> bytes:
        self.need(nbytes, what)
        data = self._f.read(nbytes)
        if len(data) != nbytes:
            raise self.fail(f"file is truncated: could not read {what}")
        self.offset += nbytes
        self.remaining -= nbytes
        return data

    def unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self.read_bytes(struct.calcsize(fmt), what))

    def u32(self, what: str) -> int:
        return self.unpack("<I", what)[0]

    def i32(self, what: str) -> int:
        return self.unpack("<i", what)[0]

    def u64(self, what: str) -> int:
        return self.unpack("<Q", what)[0]

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        nbytes = count * dtype.itemsize
        self.need(nbytes, what)
        out = np.empty(count, dtype=dtype)
        view = memoryview(out.view(np.uint8))
        done = 0
        while done < nbytes:
            got = self._f.readinto(view[done:])
            if not got:
                raise self.fail(f"file is truncated: could not read {what}")
            done += got
        self.offset += nbytes
        self.remaining -= nbytes
        return out


def _open_for_reading(source):
    """-> (binary file, bytes left in it, display name, whether we must close it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return io.BytesIO(data), len(data), "<bytes>", True
    if isinstance(source, (str, os.PathLike)):
        f = open(source, "rb")
        return f, os.fstat(f.fileno()).st_size, os.fspath(source), True
    if not hasattr(source, "read"):
        raise TypeError(f"load() needs a path, a binary file or bytes, not {type(source).__name__}")
    name = str(getattr(source, "name", "<stream>"))
    try:
        start = source.tell()
        end = source.seek(0, io.SEEK_END)
        source.seek(start)
        if not hasattr(source, "readinto"):
            raise OSError
        return source, end - start, name, False
    except (OSError, AttributeError, ValueError):
        data = source.read()  # not seekable: its length is only known once read
        if isinstance(data, str):
            raise TypeError("load() needs a binary file, not a text file") from None
        return io.BytesIO(data), len(data), name, True


def _read_dims(r: _Reader, ndim: int, fmt: str, label: str) -> list[int]:
    if ndim < 0:
        raise r.fail(f"{label} has a negative ndim ({ndim}), i.e. an unknown shape")
    if ndim > MAX_NDIM:
        raise r.fail(f"{label} claims {ndim} dimensions (at most {MAX_NDIM} are supported)")
    return list(r.unpack(f"<{ndim}{fmt}", f"the {ndim} dims of {label}"))


def _read_record(r: _Reader, index: int) -> np.ndarray:
    label = f"array #{index}"
    start = r.offset
    magic = r.u32(f"the magic of {label}")
    if magic in (V2_MAGIC, V3_MAGIC):
        stype = r.i32(f"the storage type of {label}")
        if stype != STORAGE_DEFAULT:
            if stype not in _SPARSE_AUX:
                kind = _STORAGE_NAMES.get(stype)
                what = f"unknown storage type {stype}" if kind is None else f"{kind} storage"
                raise r.fail(f"{label} has {what} (only default, row_sparse and csr can be read)", start)
            return _read_sparse(r, label, start, stype)
        dims = _read_dims(r, r.i32(f"the ndim of {label}"), "q", label)
        if any(d < 0 for d in dims):
            # MXNet marks an unknown dim with -1; such an array has no data in the file.
            raise r.fail(f"{label} has unknown or negative dims {tuple(dims)} (an uninitialised "
                         f"MXNet array, which holds no data)", start)
        # V2 with ndim 0: written by mx.nd.save of a 0-d array; see the module docstring.
    elif magic == V1_MAGIC:
        dims = _read_dims(r, r.i32(f"the ndim of {label}"), "q", label)
        if any(d < 0 for d in dims):
            raise r.fail(f"{label} has negative dims {tuple(dims)}", start)
    elif magic <= MAX_NDIM:  # legacy record: the first word is ndim, dims are uint32
        dims = _read_dims(r, magic, "I", label)
    else:
        raise r.fail(f"{label} has unrecognized magic 0x{magic:08X}; expected 0x{V2_MAGIC:08X} "
                     f"(V2), 0x{V3_MAGIC:08X} (V3), 0x{V1_MAGIC:08X} (V1) or a legacy ndim "
                     f"<= {MAX_NDIM}", start)
    r.unpack("<ii", f"the context of {label}")  # dev_type, dev_id: MXNet loads to CPU anyway
    flag = r.i32(f"the type flag of {label}")
    dtype = _FLAG_TO_DTYPE.get(flag)
    if dtype is None:
        what = "bfloat16, which numpy cannot represent" if flag == 12 else "not a known dtype"
        raise r.fail(f"{label} has type flag {flag} ({what})", start)
    count = math.prod(dims)
    data = r.array(dtype, count, f"the {count} {dtype.name} values of {label} {tuple(dims)}")
    if not dtype.isnative:
        data = data.astype(dtype.newbyteorder("="))
    try:
        return data.reshape(dims)
    except ValueError as e:
        raise r.fail(f"{label} has an unusable shape {tuple(dims)}: {e}", start) from None


_SPARSE_AUX = {1: 1, 2: 2}  # storage type -> number of index arrays
MAX_DENSE_BYTES = 1 << 36  # a sparse record is returned dense: refuse absurd dense sizes (64 GiB)


def _read_shape(r: _Reader, label: str, what: str, start: int) -> list[int]:
    dims = _read_dims(r, r.i32(f"the {what} ndim of {label}"), "q", f"the {what} of {label}")
    if any(d < 0 for d in dims):
        raise r.fail(f"{label} has unknown or negative {what} dims {tuple(dims)}", start)
    return dims


def _read_sparse(r: _Reader, label: str, start: int, stype: int) -> np.ndarray:
    """A row_sparse or csr record, returned as the dense array it stands for."""
    kind = _STORAGE_NAMES[stype]
    storage = _read_shape(r, label, "storage shape", start)
    shape = _read_shape(r, label, "shape", start)
    if not shape:
        raise r.fail(f"{label} ({kind}) has no shape (an empty MXNet array)", start)
    r.unpack("<ii", f"the context of {label}")
    dtype = _FLAG_TO_DTYPE.get(r.i32(f"the type flag of {label}"))
    if dtype is None:
        raise r.fail(f"{label} ({kind}) has an unknown type flag", start)
    aux = []
    for i in range(_SPARSE_AUX[stype]):
        aux_dtype = _FLAG_TO_DTYPE.get(r.i32(f"the type flag of index array {i} of {label}"))
        aux_shape = _read_shape(r, label, f"index array {i} shape", start)
        if aux_dtype is None or aux_dtype.kind not in "iu" or len(aux_shape) != 1:
            raise r.fail(f"{label} ({kind}) has an unusable index array {i} "
                         f"({aux_dtype}, shape {tuple(aux_shape)})", start)
        aux.append((aux_dtype, aux_shape[0]))
    if math.prod(shape) * dtype.itemsize > MAX_DENSE_BYTES:
        raise r.fail(f"{label} ({kind}) stands for a dense array of shape {tuple(shape)}, "
                     f"over {MAX_DENSE_BYTES >> 30} GiB", start)
    values = r.array(dtype, math.prod(storage), f"the values of {label} ({kind}) {tuple(storage)}")
    index = [r.array(t, n, f"index array {i} of {label} ({kind})").astype(np.int64)
             for i, (t, n) in enumerate(aux)]
    if not dtype.isnative:
        values = values.astype(dtype.newbyteorder("="))
    out = np.zeros(shape, dtype.newbyteorder("="))
    if stype == 1:  # row_sparse: values (len(rows), *shape[1:]) for the listed rows
        rows = index[0]
        if storage[:1] != [rows.size] or storage[1:] != shape[1:]:
            raise r.fail(f"{label} (row_sparse): values {tuple(storage)} do not fit {rows.size} rows "
                         f"of shape {tuple(shape)}", start)
        if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
            raise r.fail(f"{label} (row_sparse): a row index is outside 0..{shape[0] - 1}", start)
        out[rows] = values.reshape([rows.size, *shape[1:]])
        return out
    indptr, columns = index  # csr
    if len(shape) != 2 or indptr.size != shape[0] + 1 or columns.size != values.size \
            or indptr[0] != 0 or indptr[-1] != values.size or np.any(np.diff(indptr) < 0) \
            or (columns.size and (columns.min() < 0 or columns.max() >= shape[1])):
        raise r.fail(f"{label} (csr) has inconsistent indptr/indices for shape {tuple(shape)}", start)
    out[np.repeat(np.arange(shape[0]), np.diff(indptr)), columns] = values
    return out


def load(source) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Read an MXNet NDArray file, like ``mx.nd.load``.

    ``source`` is a path, a binary file object (read from its current position) or bytes.
    Returns a list of numpy arrays, or a dict name -> array when the file stores names (a file
    with no arrays gives ``[]``). Raises :class:`NDArrayFormatError` for anything malformed.
    """
    f, size, name, owned = _open_for_reading(source)
    try:
        r = _Reader(f, size, name)
        if size < 16 or r.u64("the file magic") != LIST_MAGIC:
            if size < 8:
                raise r.fail(f"not an MXNet NDArray file: only {size} bytes", 0)
            raise r.fail("not an MXNet NDArray file: the first 8 bytes are not the list magic "
                         f"0x{LIST_MAGIC:X}", 0)
        r.u64("the reserved header word")
        count = r.u64("the array count")
        if count * _MIN_RECORD_BYTES > r.remaining:
            raise r.fail(f"file is truncated or corrupt: it claims {count} arrays, more than "
                         f"its {r.remaining} remaining bytes can hold")
        arrays = [_read_record(r, i) for i in range(count)]
        nnames = r.u64("the name count")
        if nnames not in (0, count):
            raise r.fail(f"the file has {nnames} names for {count} arrays (must be 0 or equal)")
        r.need(nnames * 8, f"{nnames} names")
        names = []
        for i in range(nnames):
            length = r.u64(f"the length of name #{i}")
            raw = r.read_bytes(length, f"name #{i} ({length} bytes)")
            try:
                names.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise r.fail(f"name #{i} is not valid UTF-8") from None
    finally:
        if owned:
            f.close()
    if names:
        return dict(zip(names, arrays))  # a repeated name keeps the last array, as in MXNet
    return arrays


# ---------------------------------------------------------------------------------------------
# writing


def _encode(array, label: str, np_shape: bool) -> tuple[bytes, np.ndarray]:
    """-> (record header, little-endian C-contiguous data) for one array."""
    if not isinstance(array, (np.ndarray, np.generic)):
        raise TypeError(f"{label} must be a numpy array, not {type(array).__name__}")
    array = np.asarray(array)
    flag = _DTYPE_TO_FLAG.get(array.dtype.newbyteorder("="))  # any byte order is fine
    if flag is None:
        supported = ", ".join(dt.name for dt in _DTYPE_TO_FLAG)
        raise NDArrayFormatError(f"{label} has dtype {array.dtype}, which MXNet NDArray files "
                                 f"cannot hold (supported: {supported})")
    if array.ndim == 0 and not np_shape:
        raise NDArrayFormatError(
            f"{label} is 0-d; MXNet 1.9.1 cannot load a 0-d array saved without numpy shape "
            "semantics. Reshape it to (1,), or save with np_shape=True and load it in MXNet "
            "under mx.npx.set_np()")
    if array.ndim > MAX_NDIM:
        raise NDArrayFormatError(f"{label} has {array.ndim} dims (at most {MAX_NDIM})")
    header = struct.pack(f"<Iii{array.ndim}qiii", V3_MAGIC if np_shape else V2_MAGIC,
                         STORAGE_DEFAULT, array.ndim, *array.shape, 1, 0, flag)
    data = np.ascontiguousarray(array, dtype=_FLAG_TO_DTYPE[flag])
    return header, data


def save(target, arrays, *, np_shape: bool = False) -> None:
    """Write numpy arrays as an MXNet NDArray file, byte-identical to MXNet 1.9.1's ``mx.nd.save``.

    ``target`` is a path or a binary file object. ``arrays`` is a list or tuple of arrays, a
    dict str -> array (its order is kept; MXNet loads it back as a dict), or one array (saved
    as a list of one, as ``mx.nd.save`` does). Arrays are written dense, on cpu(0).
    ``np_shape=True`` writes V3 records, which is what ``mx.nd.save`` writes under
    ``mx.npx.set_np()``; MXNet only loads those under numpy shape semantics, but they can
    hold 0-d arrays.
    """
    if isinstance(arrays, (np.ndarray, np.generic)):
        arrays = [arrays]
    if isinstance(arrays, Mapping):
        names = list(arrays.keys())
        values = list(arrays.values())
        for key in names:
            if not isinstance(key, str):
                raise TypeError(f"array names must be str, not {type(key).__name__} ({key!r})")
            if "\0" in key:
                raise NDArrayFormatError(f"array name {key!r} contains a NUL character, which "
                                         "MXNet's C API would cut the name at")
        labels = [f"array {key!r}" for key in names]
    elif isinstance(arrays, (list, tuple)):
        names, values = [], list(arrays)
        labels = [f"array #{i}" for i in range(len(values))]
    else:
        raise TypeError("save() needs a list or tuple of numpy arrays, a dict str -> numpy array "
                        f"or one numpy array, not {type(arrays).__name__}")
    records = [_encode(v, label, np_shape) for v, label in zip(values, labels)]  # check all first

    def write(f):
        f.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(records)))
        for header, data in records:
            f.write(header)
            if data.size:
                f.write(data.reshape(-1).view(np.uint8))
        f.write(struct.pack("<Q", len(names)))
        for key in names:
            raw = key.encode("utf-8")
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)

    if isinstance(target, (str, os.PathLike)):
        with atomic_write(target) as f:  # a full disk never leaves a truncated model under its name
            write(f)
    elif hasattr(target, "write"):
        write(target)
    else:
        raise TypeError(f"save() needs a path or a binary file, not {type(target).__name__}")
