"""The ``aialgs.data.Record`` protobuf (SageMaker's recordIO-protobuf payload) and its batch codec.

The message classes are built at import time from a descriptor (no generated code) in a private pool, so they
coexist with the SageMaker SDK's own classes and interoperate with them byte for byte.

Records whose map entries each hold one dense tensor of a fixed length (what the SDK writes for a dense
matrix, what the algorithms answer) have the same bytes in every record except the numbers; such batches are
decoded and encoded with numpy on a (records, bytes) array, without building messages (``_Layout``).
"""

import numpy as np
import scipy.sparse as sp
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .errors import AlgorithmError, DataError

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor():
    fd = descriptor_pb2.FileDescriptorProto(name="algobox/aialgs_record.proto", package="aialgs.data",
                                            syntax="proto2")

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent else fd.message_type).add(name=name)
        for field_name, number, kind, label, extra in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            for key, value in extra.items():
                if key == "packed":
                    field.options.packed = value
                else:
                    setattr(field, key, value)
        return msg

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    for name, kind in (("Float32Tensor", _F.TYPE_FLOAT), ("Float64Tensor", _F.TYPE_DOUBLE),
                       ("Int32Tensor", _F.TYPE_INT32)):
        message(name, [("values", 1, kind, rep, {"packed": True}),
                       ("keys", 2, _F.TYPE_UINT64, rep, {"packed": True}),
                       ("shape", 3, _F.TYPE_UINT64, rep, {"packed": True})])
    message("Bytes", [("value", 1, _F.TYPE_BYTES, rep, {}), ("content_type", 2, _F.TYPE_STRING, opt, {})])
    value = message("Value", [
        (name, number, _F.TYPE_MESSAGE, opt, {"type_name": f".aialgs.data.{kind}", "oneof_index": 0})
        for name, number, kind in (("float32_tensor", 2, "Float32Tensor"), ("float64_tensor", 3, "Float64Tensor"),
                                   ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes"))
    ])
    value.oneof_decl.add(name="value")
    record = message("Record", [
        ("features", 1, _F.TYPE_MESSAGE, rep, {"type_name": ".aialgs.data.Record.FeaturesEntry"}),
        ("label", 2, _F.TYPE_MESSAGE, rep, {"type_name": ".aialgs.data.Record.LabelEntry"}),
        ("uid", 3, _F.TYPE_STRING, opt, {}),
        ("metadata", 4, _F.TYPE_STRING, opt, {}),
        ("configuration", 5, _F.TYPE_STRING, opt, {}),
    ])
    for entry in ("FeaturesEntry", "LabelEntry"):
        nested = message(entry, [("key", 1, _F.TYPE_STRING, opt, {}),
                                 ("value", 2, _F.TYPE_MESSAGE, opt, {"type_name": ".aialgs.data.Value"})], record)
        nested.options.map_entry = True
    return fd


def _message_classes():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    get = getattr(message_factory, "GetMessageClass", None)
    if get is None:  # protobuf < 4.21
        get = message_factory.MessageFactory(pool).GetPrototype
    names = ("Record", "Value", "Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes")
    return [get(pool.FindMessageTypeByName(f"aialgs.data.{name}")) for name in names]


Record, Value, Float32Tensor, Float64Tensor, Int32Tensor, Bytes = _message_classes()
TENSOR_KINDS = ("float32_tensor", "float64_tensor", "int32_tensor")


# --- fixed byte layouts ---

def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Value field tag and element type; int32 only where every value is one varint byte (0..127)
_VALUE_FIELD = {"float32_tensor": (0x12, np.dtype("<f4")), "float64_tensor": (0x1A, np.dtype("<f8")),
                "int32_tensor": (0x3A, np.dtype("u1"))}


class _Layout:
    """Bytes of a Record made of map entries ``(field, key, tensor kind, count)``, each holding one dense tensor
    of ``count`` values: constant bytes (tags, lengths, keys) and, after each entry's constant head, its values."""

    def __init__(self, entries):
        self.entries = list(entries)
        self.heads, self.slots = [], []  # (offset, bytes), (offset, count, dtype)
        offset = 0
        for field, key, kind, count in self.entries:
            tag, dtype = _VALUE_FIELD[kind]
            nbytes = count * dtype.itemsize
            tensor = b"\x0a" + _varint(nbytes) if count else b""
            value = bytes([tag]) + _varint(len(tensor) + nbytes)
            value_len = len(value) + len(tensor) + nbytes
            key_bytes = key.encode()
            entry = b"\x0a" + _varint(len(key_bytes)) + key_bytes + b"\x12" + _varint(value_len)
            entry_len = len(entry) + value_len
            head = bytes([field << 3 | 2]) + _varint(entry_len) + entry + value + tensor
            self.heads.append((offset, head))
            offset += len(head)
            self.slots.append((offset, count, dtype))
            offset += nbytes
        self.length = offset

    def matches(self, rows):
        """Do all rows of an (n, length) uint8 array carry this layout's constant bytes?"""
        return rows.shape[1] == self.length and all(
            (rows[:, offset:offset + len(head)] == np.frombuffer(head, np.uint8)).all() for offset, head in self.heads)

    def values(self, rows, index):
        """Entry ``index`` of every row as float32 (n, count), or None if an int32 value is not one byte."""
        offset, count, dtype = self.slots[index]
        raw = np.ascontiguousarray(rows[:, offset:offset + count * dtype.itemsize])
        if dtype == np.uint8 and (raw >= 0x80).any():
            return None
        return raw.view(dtype).astype(np.float32, copy=False)

    def encode(self, arrays):
        """(n, length) uint8 rows holding float32 ``arrays`` (one (n, count) array per entry)."""
        n = arrays[0].shape[0] if arrays else 0
        rows = np.empty((n, self.length), np.uint8)
        for (offset, head), (start, count, dtype), array in zip(self.heads, self.slots, arrays):
            if dtype != np.float32:
                raise AlgorithmError("only float32 tensors are encoded")
            rows[:, offset:start] = np.frombuffer(head, np.uint8)
            rows[:, start:start + 4 * count] = np.ascontiguousarray(array, "<f4").reshape(n, count).view(np.uint8)
        return rows


def _dense_entries(entries, field):
    """``(field, "values", kind, count)`` for a map holding only a dense ``values`` tensor; [] if empty; None else."""
    if not entries:
        return []
    if list(entries) != ["values"]:
        return None
    value = entries["values"]
    kind = value.WhichOneof("value")
    if kind not in _VALUE_FIELD:
        return None
    tensor = getattr(value, kind)
    if tensor.keys or tensor.shape or not tensor.values:
        return None
    return [(field, "values", kind, len(tensor.values))]


def _fast_decode(payloads):
    """(features, labels) when every payload is the same dense-layout record, else None.

    ``payloads``: a list of bytes, or an (n, length) uint8 array of equal-length payloads."""
    if isinstance(payloads, np.ndarray):
        rows, first = payloads, payloads[0].tobytes()
    else:
        first = payloads[0]
        if any(len(p) != len(first) for p in payloads):
            return None
        rows = None
    try:
        record = Record.FromString(first)
    except Exception:  # the general path reports it, with the record number
        return None
    if record.HasField("uid") or record.HasField("metadata") or record.HasField("configuration"):
        return None
    features = _dense_entries(record.features, 1)
    labels = _dense_entries(record.label, 2)
    if not features or labels is None:
        return None
    layout = _Layout(features + labels)
    if layout.length != len(first):
        return None
    if rows is None:
        rows = np.frombuffer(b"".join(payloads), np.uint8).reshape(len(payloads), len(first))
    if not layout.matches(rows):
        return None
    values = layout.values(rows, 0)
    label_values = layout.values(rows, 1) if labels else None
    if values is None or (labels and label_values is None):
        return None
    if label_values is not None and label_values.shape[1] == 1:
        label_values = label_values.ravel()
    return values, label_values


def _fast_sparse(payloads, feature_dim, source, first_record):
    """A CSR matrix when ``payloads`` is an (n, length) array of sparse float32 records without labels that
    share every byte but their values and one-byte keys (the SDK's sparse matrix rows of equal nnz), else None."""
    if not isinstance(payloads, np.ndarray) or len(payloads) < 2:
        return None
    first = payloads[0].tobytes()
    try:
        record = Record.FromString(first)
    except Exception:  # the general path reports it
        return None
    if (record.HasField("uid") or record.HasField("metadata") or record.HasField("configuration") or record.label
            or list(record.features) != ["values"] or record.features["values"].WhichOneof("value") != "float32_tensor"):
        return None
    tensor = record.features["values"].float32_tensor
    nnz, shape = len(tensor.values), list(tensor.shape)
    if not nnz or len(tensor.keys) != nnz or len(shape) != 1 or any(k >= 0x80 for k in tensor.keys):
        return None
    layout = (b"\x0a" + _varint(4 * nnz) + np.asarray(tensor.values, "<f4").tobytes() + b"\x12" + _varint(nnz)
              + bytes(tensor.keys) + b"\x1a" + _varint(len(_varint(shape[0]))) + _varint(shape[0]))
    start = first.find(layout)
    if start < 0 or first.find(layout, start + 1) >= 0:
        return None
    values_at = start + 1 + len(_varint(4 * nnz))
    keys_at = values_at + 4 * nnz + 1 + len(_varint(nnz))
    constant = np.ones(len(first), bool)
    constant[values_at:values_at + 4 * nnz] = False
    constant[keys_at:keys_at + nnz] = False
    if not (payloads[:, constant] == payloads[0, constant]).all():
        return None
    keys = payloads[:, keys_at:keys_at + nnz]
    if (keys >= 0x80).any():
        return None
    dim = shape[0]
    if feature_dim is not None and dim != feature_dim:
        raise DataError(f"record has {dim} features, expected feature_dim={feature_dim}", source=source,
                        record=first_record)
    if int(keys.max()) >= dim:
        row = int(np.flatnonzero((keys >= dim).any(axis=1))[0])
        raise DataError(f"sparse record has key {int(keys[row].max())} outside its shape [{dim}]", source=source,
                        record=first_record + row)
    n = len(payloads)
    data = np.ascontiguousarray(payloads[:, values_at:values_at + 4 * nnz]).view("<f4").astype(np.float32).ravel()
    matrix = sp.csr_matrix((data, keys.astype(np.int64).ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, dim))
    matrix.sum_duplicates()
    return matrix


# --- the general path ---

def _tensor_of(value, what, source, record):
    kind = value.WhichOneof("value")
    if kind not in TENSOR_KINDS:
        raise DataError(f"{what} holds {kind or 'nothing'}, expected a Float32/Float64/Int32 tensor",
                        source=source, record=record)
    return getattr(value, kind)


def _row_of(tensor, feature_dim, source, record):
    """(values, None) for a dense feature tensor, (values, (keys, dim)) for a sparse one."""
    values = np.asarray(tensor.values, dtype=np.float32)
    shape = list(tensor.shape)
    if not tensor.keys and (not shape or values.size == int(np.prod(shape))):
        if feature_dim is not None and values.size != feature_dim:
            raise DataError(f"record has {values.size} features, expected feature_dim={feature_dim}",
                            source=source, record=record)
        return values, None
    keys = np.asarray(tensor.keys, dtype=np.uint64)
    if keys.size != values.size:
        raise DataError(f"sparse record has {keys.size} keys but {values.size} values", source=source, record=record)
    dim = shape[-1] if shape else feature_dim
    if dim is None:
        raise DataError("sparse record has no shape", source=source, record=record)
    if feature_dim is not None and dim != feature_dim:
        raise DataError(f"record has {dim} features, expected feature_dim={feature_dim}", source=source,
                        record=record)
    if keys.size and int(keys.max()) >= dim:
        raise DataError(f"sparse record has key {int(keys.max())} outside its shape [{dim}]", source=source,
                        record=record)
    return values, (keys.astype(np.int64), dim)


def _parse(payload, source, number):
    try:
        return Record.FromString(payload)
    except Exception as exc:  # DecodeError, or others on some garbage
        raise DataError(f"not a valid aialgs.data.Record protobuf ({exc})", source=source, record=number) from None


def _slow_decode(payloads, feature_dim, source, first_record):
    rows, labels = [], []
    for number, payload in enumerate(payloads, start=first_record):
        record = _parse(payload, source, number)
        if "values" not in record.features:
            raise DataError("record has no 'values' feature", source=source, record=number)
        tensor = _tensor_of(record.features["values"], "features['values']", source, number)
        values, sparse = _row_of(tensor, feature_dim, source, number)
        width = sparse[1] if sparse else values.size
        if rows and width != rows[0][2]:
            raise DataError(f"record has {width} features, the batch's first record {first_record} has "
                            f"{rows[0][2]}", source=source, record=number)
        rows.append((values, sparse, width))
        label = None
        if "values" in record.label:
            label = np.asarray(_tensor_of(record.label["values"], "label['values']", source, number).values,
                               dtype=np.float32)
        if labels and (label is None) != (labels[0] is None):
            raise DataError("some records in the batch have a label and some do not", source=source, record=number)
        if labels and label is not None and label.size != labels[0].size:
            raise DataError(f"record has {label.size} labels, the batch's first record has {labels[0].size}",
                            source=source, record=number)
        labels.append(label)
    return _features_of(rows, feature_dim), _labels_of(labels)


def _features_of(rows, feature_dim):
    """A dense array when every row is dense, else CSR (dense rows converted)."""
    if not rows:
        return np.zeros((0, feature_dim or 0), np.float32)
    if all(sparse is None for _, sparse, _ in rows):
        return np.stack([values for values, _, _ in rows])
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([values.size for values, _, _ in rows])
    indices = np.concatenate([sparse[0] if sparse else np.arange(values.size) for values, sparse, _ in rows])
    data = np.concatenate([values for values, _, _ in rows])
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(rows), rows[0][2]), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def _labels_of(labels):
    if not labels or labels[0] is None:
        return None
    array = np.stack(labels)
    return array.ravel() if array.shape[1] == 1 else array


def decode_batch(payloads, feature_dim=None, source=None, first_record=0, fast=True):
    """(features, labels) of Record payloads: features a float32 (n, d) array, or a float32 CSR matrix when any
    record is sparse; labels float32 (n,) or (n, k), or None when the records have none.

    ``payloads``: a list of bytes, or an (n, length) uint8 array of equal-length payloads (as
    ``recordio.iter_record_batches`` gives). ``fast=False`` skips the byte-layout fast path."""
    if fast and len(payloads):
        decoded = _fast_decode(payloads)
        if decoded is not None:
            features, labels = decoded
            if feature_dim is not None and features.shape[1] != feature_dim:
                raise DataError(f"record has {features.shape[1]} features, expected feature_dim={feature_dim}",
                                source=source, record=first_record)
            return features, labels
        sparse = _fast_sparse(payloads, feature_dim, source, first_record)
        if sparse is not None:
            return sparse, None
    if isinstance(payloads, np.ndarray):  # lazily: a bad first record of a million fails at once
        payloads = (row.tobytes() for row in payloads)
    return _slow_decode(payloads, feature_dim, source, first_record)


# --- encoders ---

def _rows_of(array, n=None):
    array = np.asarray(array, dtype=np.float32)
    if n is None:
        return array.reshape(1, -1) if array.ndim == 1 else array
    return array.reshape(n, -1)


def _encode_message(features=None, label=None):
    record = Record()
    for target, columns in ((record.features, features), (record.label, label)):
        for name, values in (columns or {}).items():
            target[name].float32_tensor.values.extend(np.ravel(values).astype(np.float32).tolist())
    return record.SerializeToString(deterministic=True)


def encode_dense(features, labels=None):
    """One Record payload per row: float32 ``features['values']`` and, with labels, float32 ``label['values']``
    (byte-equal to the SDK's ``write_numpy_to_dense_tensor`` for float32 input)."""
    features = _rows_of(features)
    entries, arrays = [(1, "values", "float32_tensor", features.shape[1])], [features]
    if labels is not None:
        labels = _rows_of(labels, features.shape[0])
        entries.append((2, "values", "float32_tensor", labels.shape[1]))
        arrays.append(labels)
    if any(count == 0 for *_, count in entries):  # an empty tensor: let protobuf write it
        return [_encode_message({"values": row}, None if labels is None else {"values": labels[i]})
                for i, row in enumerate(features)]
    return [row.tobytes() for row in _Layout(entries).encode(arrays)]


def encode_sparse(matrix, labels=None):
    """One Record per row of a sparse matrix: float32 ``values`` with ``keys`` and ``shape`` [columns]."""
    matrix = sp.csr_matrix(matrix)
    if labels is not None:
        labels = _rows_of(labels, matrix.shape[0])
    out = []
    for i in range(matrix.shape[0]):
        record = Record()
        tensor = record.features["values"].float32_tensor
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        tensor.values.extend(matrix.data[start:end].astype(np.float32).tolist())
        tensor.keys.extend(matrix.indices[start:end].tolist())
        tensor.shape.append(matrix.shape[1])
        if labels is not None:
            record.label["values"].float32_tensor.values.extend(labels[i].tolist())
        out.append(record.SerializeToString(deterministic=True))
    return out


def encode_outputs(columns):
    """One Record per row whose ``label[name]`` is a float32 tensor of that row of ``columns[name]`` (1-D: one
    value, 2-D: a row): the built-in algorithms' recordIO-protobuf inference response."""
    names = sorted(columns)  # the order deterministic serialization gives map entries
    arrays = [np.asarray(columns[name], dtype=np.float32) for name in names]
    if not arrays:
        return []
    n = arrays[0].shape[0]
    if any(array.ndim not in (1, 2) or array.shape[0] != n for array in arrays):
        raise AlgorithmError(f"output columns must be 1-D or 2-D with {n} rows: "
                             f"{ {name: array.shape for name, array in zip(names, arrays)} }")
    arrays = [array.reshape(n, -1) for array in arrays]
    entries = [(2, name, "float32_tensor", array.shape[1]) for name, array in zip(names, arrays)]
    if any(count == 0 for *_, count in entries):
        return [_encode_message(label={name: array[i] for name, array in zip(names, arrays)}) for i in range(n)]
    return [row.tobytes() for row in _Layout(entries).encode(arrays)]
