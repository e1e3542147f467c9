"""The ``aialgs.data.Record`` protobuf (SageMaker's recordIO-protobuf payload) and its batch codec.

The message classes are built at import time from a descriptor (no generated code), in a private pool,
so they coexist with the SageMaker SDK's own classes and interoperate with them byte for byte. The common
dense float32 record is decoded and encoded by a vectorised fast path that never builds a message.
"""

import numpy as np
import scipy.sparse as sp
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .errors import DataError

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor():
    fd = descriptor_pb2.FileDescriptorProto(name="algobox/aialgs_record.proto", package="aialgs.data",
                                            syntax="proto2")

    def message(name, fields, parent=None):
        msg = (parent.nested_type if parent else fd.message_type).add(name=name)
        for number, (field_name, kind, label, extra) in enumerate(fields, start=1):
            field = msg.field.add(name=field_name, number=extra.pop("number", number), type=kind, label=label)
            for key, value in extra.items():
                if key == "packed":
                    field.options.packed = value
                else:
                    setattr(field, key, value)
        return msg

    rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
    for name, kind in (("Float32Tensor", _F.TYPE_FLOAT), ("Float64Tensor", _F.TYPE_DOUBLE),
                       ("Int32Tensor", _F.TYPE_INT32)):
        message(name, [("values", kind, rep, {"packed": True}), ("keys", _F.TYPE_UINT64, rep, {"packed": True}),
                       ("shape", _F.TYPE_UINT64, rep, {"packed": True})])
    message("Bytes", [("value", _F.TYPE_BYTES, rep, {}), ("content_type", _F.TYPE_STRING, opt, {})])
    value = message("Value", [
        ("float32_tensor", _F.TYPE_MESSAGE, opt, {"number": 2, "type_name": ".aialgs.data.Float32Tensor",
                                                  "oneof_index": 0}),
        ("float64_tensor", _F.TYPE_MESSAGE, opt, {"number": 3, "type_name": ".aialgs.data.Float64Tensor",
                                                  "oneof_index": 0}),
        ("int32_tensor", _F.TYPE_MESSAGE, opt, {"number": 7, "type_name": ".aialgs.data.Int32Tensor",
                                                "oneof_index": 0}),
        ("bytes", _F.TYPE_MESSAGE, opt, {"number": 9, "type_name": ".aialgs.data.Bytes", "oneof_index": 0}),
    ])
    value.oneof_decl.add(name="value")
    record = message("Record", [
        ("features", _F.TYPE_MESSAGE, rep, {"type_name": ".aialgs.data.Record.FeaturesEntry"}),
        ("label", _F.TYPE_MESSAGE, rep, {"type_name": ".aialgs.data.Record.LabelEntry"}),
        ("uid", _F.TYPE_STRING, opt, {}),
        ("metadata", _F.TYPE_STRING, opt, {}),
        ("configuration", _F.TYPE_STRING, opt, {}),
    ])
    for entry in ("FeaturesEntry", "LabelEntry"):
        nested = message(entry, [("key", _F.TYPE_STRING, opt, {}),
                                 ("value", _F.TYPE_MESSAGE, opt, {"type_name": ".aialgs.data.Value"})], record)
        nested.options.map_entry = True
    return fd


def _classes():
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file_descriptor())
    get = getattr(message_factory, "GetMessageClass", None)
    if get is None:  # protobuf < 4.21
        factory = message_factory.MessageFactory(pool)
        get = factory.GetPrototype
    names = ("Record", "Value", "Float32Tensor", "Float64Tensor", "Int32Tensor", "Bytes")
    return [get(pool.FindMessageTypeByName(f"aialgs.data.{name}")) for name in names]


Record, Value, Float32Tensor, Float64Tensor, Int32Tensor, Bytes = _classes()
TENSOR_KINDS = ("float32_tensor", "float64_tensor", "int32_tensor")


# --- the fast path: byte layout of a Record holding one dense float32 "values" feature (and label) ---

def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _map_entry(tag, floats):
    """Bytes before the floats of ``<map field tag> {"values": Value{float32_tensor{values}}}``."""
    nbytes = 4 * floats
    tensor_head = b"\x0a" + _varint(nbytes)  # Float32Tensor.values (packed)
    tensor_len = len(tensor_head) + nbytes
    value_head = b"\x12" + _varint(tensor_len)  # Value.float32_tensor
    value_len = len(value_head) + tensor_len
    entry_value_head = b"\x12" + _varint(value_len)  # the map entry's value
    entry_len = 8 + len(entry_value_head) + value_len  # 8 = key tag, length, "values"
    return bytes([tag]) + _varint(entry_len) + b"\x0a\x06values" + entry_value_head + value_head + tensor_head


class DenseLayout:
    """Where the floats sit in a dense float32 Record of ``dim`` features and ``label_dim`` labels."""

    def __init__(self, dim, label_dim=0):
        self.dim, self.label_dim = dim, label_dim
        self.feature_head = _map_entry(0x0A, dim)
        self.label_head = _map_entry(0x12, label_dim) if label_dim else b""
        self.feature_offset = len(self.feature_head)
        self.label_offset = self.feature_offset + 4 * dim + len(self.label_head)
        self.length = self.label_offset + 4 * label_dim

    def matches(self, rows):
        """Do all rows (an (n, length) uint8 array) carry exactly this layout's fixed bytes?"""
        head = np.frombuffer(self.feature_head, np.uint8)
        if not (rows[:, : self.feature_offset] == head).all():
            return False
        if self.label_dim:
            start = self.feature_offset + 4 * self.dim
            label = np.frombuffer(self.label_head, np.uint8)
            return bool((rows[:, start:start + len(self.label_head)] == label).all())
        return True

    def encode(self, features, labels=None):
        n = features.shape[0]
        rows = np.empty((n, self.length), np.uint8)
        rows[:, : self.feature_offset] = np.frombuffer(self.feature_head, np.uint8)
        rows[:, self.feature_offset: self.feature_offset + 4 * self.dim] = (
            np.ascontiguousarray(features, "<f4").view(np.uint8).reshape(n, -1))
        if self.label_dim:
            start = self.feature_offset + 4 * self.dim
            rows[:, start: self.label_offset] = np.frombuffer(self.label_head, np.uint8)
            rows[:, self.label_offset:] = np.ascontiguousarray(labels, "<f4").reshape(n, -1).view(np.uint8)
        return rows


def _fast_decode(payloads):
    """(features, labels) when every payload is a same-layout dense float32 record, else None.

    ``payloads`` is a list of bytes or a (n, length) uint8 array of equal-length payloads.
    """
    if isinstance(payloads, np.ndarray):
        rows = payloads
        first = rows[0].tobytes()
    else:
        first = payloads[0]
        if any(len(p) != len(first) for p in payloads):
            return None
        rows = None
    length = len(first)
    record = Record.FromString(first)
    if list(record.features) != ["values"] or set(record.label) - {"values"}:
        return None
    value = record.features["values"]
    if value.WhichOneof("value") != "float32_tensor" or value.float32_tensor.keys or not value.float32_tensor.values:
        return None
    label_dim = 0
    if "values" in record.label:
        label = record.label["values"]
        if label.WhichOneof("value") != "float32_tensor" or label.float32_tensor.keys:
            return None
        label_dim = len(label.float32_tensor.values)
        if not label_dim:
            return None
    layout = DenseLayout(len(value.float32_tensor.values), label_dim)
    if layout.length != length:
        return None
    if rows is None:
        rows = np.frombuffer(b"".join(payloads), np.uint8).reshape(len(payloads), length)
    if not layout.matches(rows):
        return None
    end = layout.feature_offset + 4 * layout.dim
    features = np.ascontiguousarray(rows[:, layout.feature_offset:end]).view("<f4").astype(np.float32, copy=False)
    labels = None
    if label_dim:
        labels = np.ascontiguousarray(rows[:, layout.label_offset:]).view("<f4").astype(np.float32, copy=False)
        labels = labels.ravel() if label_dim == 1 else labels
    return features, labels


# --- the general path ---

def _tensor_of(value, what, source, record):
    kind = value.WhichOneof("value")
    if kind not in TENSOR_KINDS:
        raise DataError(f"{what} holds {kind or 'nothing'}, expected a Float32/Float64/Int32 tensor",
                        source=source, record=record)
    return getattr(value, kind)


def _row_of(tensor, feature_dim, source, record):
    """(dense values, None) or (values, (keys, dim)) for one record's feature tensor."""
    values = np.asarray(tensor.values, dtype=np.float32)
    shape = list(tensor.shape)
    sparse = bool(tensor.keys) or (shape and values.size != int(np.prod(shape)))
    if not sparse:
        if feature_dim is not None and values.size != feature_dim:
            raise DataError(f"record has {values.size} features, expected feature_dim={feature_dim}",
                            source=source, record=record)
        return values, None
    keys = np.asarray(tensor.keys, dtype=np.int64)
    if keys.size != values.size:
        raise DataError(f"sparse record has {keys.size} keys but {values.size} values", source=source,
                        record=record)
    dim = int(tensor.shape[-1]) if tensor.shape else feature_dim
    if dim is None:
        raise DataError("sparse record has no shape", source=source, record=record)
    if feature_dim is not None and dim != feature_dim:
        raise DataError(f"record has {dim} features, expected feature_dim={feature_dim}", source=source,
                        record=record)
    if keys.size and int(keys.max()) >= dim:
        raise DataError(f"sparse record has key {int(keys.max())} outside its shape [{dim}]", source=source,
                        record=record)
    return values, (keys, dim)


def _slow_decode(payloads, feature_dim, source, first_record):
    rows, labels = [], []
    for index, payload in enumerate(payloads):
        number = first_record + index
        try:
            record = Record.FromString(payload)
        except Exception as exc:  # protobuf raises DecodeError, or others on garbage
            raise DataError(f"not a valid aialgs.data.Record protobuf ({exc})", source=source, record=number) from None
        if "values" not in record.features:
            raise DataError("record has no 'values' feature", source=source, record=number)
        rows.append(_row_of(_tensor_of(record.features["values"], "features['values']", source, number),
                            feature_dim, source, number))
        if "values" in record.label:
            tensor = _tensor_of(record.label["values"], "label['values']", source, number)
            labels.append(np.asarray(tensor.values, dtype=np.float32))
        else:
            labels.append(None)
    if all(info is None for _, info in rows):
        lengths = {v.size for v, _ in rows}
        if len(lengths) > 1:
            raise DataError(f"records in one batch have different feature counts {sorted(lengths)}",
                            source=source, record=first_record)
        features = np.stack([v for v, _ in rows]) if rows else np.zeros((0, feature_dim or 0), np.float32)
    else:
        dims = {info[1] if info else v.size for v, info in rows}
        if len(dims) > 1:
            raise DataError(f"records in one batch have different feature counts {sorted(dims)}",
                            source=source, record=first_record)
        dim = dims.pop()
        indptr = np.zeros(len(rows) + 1, np.int64)
        indptr[1:] = np.cumsum([v.size for v, _ in rows])
        indices = np.concatenate([info[0] if info else np.arange(v.size) for v, info in rows])
        data = np.concatenate([v for v, _ in rows])
        features = sp.csr_matrix((data, indices, indptr), shape=(len(rows), dim), dtype=np.float32)
        features.sum_duplicates()
    label_array = None
    if any(label is not None for label in labels):
        if any(label is None for label in labels) or len({label.size for label in labels}) > 1:
            raise DataError("records in one batch have missing or differently sized labels", source=source,
                            record=first_record)
        label_array = np.stack(labels)
        if label_array.shape[1] == 1:
            label_array = label_array.ravel()
    return features, label_array


def decode_batch(payloads, feature_dim=None, source=None, first_record=0, fast=True):
    """Features (float32 array, or CSR if any record is sparse) and labels (or None) of Record payloads
    (a list of bytes, or a (n, length) uint8 array of equal-length payloads from ``iter_record_batches``)."""
    if fast and len(payloads):
        try:
            decoded = _fast_decode(payloads)
        except Exception:
            decoded = None
        if decoded is not None:
            features, labels = decoded
            if feature_dim is not None and features.shape[1] != feature_dim:
                raise DataError(f"record has {features.shape[1]} features, expected feature_dim={feature_dim}",
                                source=source, record=first_record)
            return features, labels
    if isinstance(payloads, np.ndarray):
        payloads = [row.tobytes() for row in payloads]
    return _slow_decode(payloads, feature_dim, source, first_record)


# --- encoders ---

def encode_dense(features, labels=None):
    """One Record payload per row (float32 ``values`` feature, optional float32 ``values`` label)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim == 1:
        features = features.reshape(1, -1)
    label_dim = 0
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float32).reshape(features.shape[0], -1)
        label_dim = labels.shape[1]
    if features.shape[1] == 0:
        return [_encode_record({"values": row}, {"values": lab} if labels is not None else None)
                for row, lab in zip(features, labels if labels is not None else [None] * len(features))]
    rows = DenseLayout(features.shape[1], label_dim).encode(features, labels)
    return [row.tobytes() for row in rows]


def encode_sparse(matrix, labels=None):
    """One Record per row of a CSR matrix: a sparse float32 ``values`` feature with keys and shape."""
    matrix = sp.csr_matrix(matrix)
    out = []
    for i in range(matrix.shape[0]):
        record = Record()
        tensor = record.features["values"].float32_tensor
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        tensor.values.extend(matrix.data[start:end].astype(np.float32).tolist())
        tensor.keys.extend(matrix.indices[start:end].tolist())
        tensor.shape.append(matrix.shape[1])
        if labels is not None:
            record.label["values"].float32_tensor.values.extend(np.atleast_1d(labels[i]).astype(np.float32).tolist())
        out.append(record.SerializeToString(deterministic=True))
    return out


def _encode_record(features=None, label=None):
    record = Record()
    for target, columns in ((record.features, features), (record.label, label)):
        for name, values in (columns or {}).items():
            target[name].float32_tensor.values.extend(np.atleast_1d(values).astype(np.float32).tolist())
    return record.SerializeToString(deterministic=True)


def encode_outputs(columns):
    """One Record per row whose ``label[name]`` is a float32 tensor — the built-in inference response."""
    names = list(columns)
    arrays = [np.asarray(columns[name], dtype=np.float32) for name in names]
    n = arrays[0].shape[0] if arrays else 0
    return [_encode_record(label={name: array[i] for name, array in zip(names, arrays)}) for i in range(n)]
