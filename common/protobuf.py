"""The ``aialgs.data.Record`` protobuf (SageMaker's recordIO-protobuf payload) and its batch codec.

The message classes are built at import time from a descriptor (no generated code) in a private pool, so they
coexist with the SageMaker SDK's own classes and interoperate with them byte for byte.

Records whose map entries each hold one dense tensor of a fixed length (what the SDK writes for a dense
matrix, what the algorithms answer) have the same bytes in every record except the numbers; such batches are
decoded and encoded with numpy on a (records, bytes) array, without building messages (``_Layout``). Other
batches of plain records (sparse rows of any nnz, with or without labels) are parsed for all records at once with
numpy over their concatenated bytes (``_vector_decode``); only what neither path accepts is parsed record by record.
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


# --- the vectorised path: many records' protobuf wire format parsed at once with numpy ---
#
# Records of any layout (sparse rows of differing nnz, keys of several varint bytes, with or without labels) are
# parsed level by level (Record, map entry, Value, tensor) for all records together: each pass over a level reads
# the next field of every message still open. Only the fields and wire types decode_batch reads are accepted, and
# only in the shapes it accepts without error; anything else returns None and the general path decides (and
# names the record in its error).

_PAD = 32  # zero bytes after the buffer: varints read past a message's end stop there, and are caught


def _varints(buf, pos):
    """(values uint64, positions after them) of the varints at ``pos``; None if one is over 10 bytes."""
    byte = buf[pos]
    value = (byte & 0x7F).astype(np.uint64)
    end = pos + 1
    more = np.flatnonzero(byte >= 0x80)
    shift = 7
    while len(more):
        if shift > 63:
            return None
        byte = buf[end[more]]
        value[more] |= (byte & 0x7F).astype(np.uint64) << np.uint64(shift)
        end[more] += 1
        more = more[byte >= 0x80]
        shift += 7
    return value, end


def _tags(*tags):
    """A lookup table of the one-byte tags of length-delimited fields that a message may hold."""
    table = np.zeros(0x80, bool)
    table[list(tags)] = True
    return table


def _scan(buf, starts, ends, allowed):
    """The length-delimited fields of the messages ``buf[starts[i]:ends[i]]``: a dict tag -> (message, start, end)
    arrays, one entry per occurrence, [start, end) the field's payload. None when a message holds a tag that
    ``allowed`` (from :func:`_tags`) does not, or is malformed."""
    owner = np.arange(len(starts))
    pos, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    found = []
    while True:
        open_ = pos < ends
        if not open_.all():
            owner, pos, ends = owner[open_], pos[open_], ends[open_]
        if not len(pos):
            break
        tags = _varints(buf, pos)
        if tags is None:
            return None
        tag, pos = tags
        if (tag >= 0x80).any() or not allowed[tag.astype(np.intp)].all():
            return None
        lengths = _varints(buf, pos)
        if lengths is None:
            return None
        length, pos = lengths
        if (pos > ends).any() or (length > (ends - pos).astype(np.uint64)).any():
            return None
        end = pos + length.astype(np.int64)
        found.append((tag, owner, pos, end))
        pos = end
    if not found:
        return {}
    tag, owner, start, end = (np.concatenate(column) for column in zip(*found))
    masks = {t: tag == t for t in np.flatnonzero(allowed)}
    return {int(t): (owner[m], start[m], end[m]) for t, m in masks.items() if m.any()}


def _one_each(fields, tag, count, required=True):
    """(start, end) of field ``tag`` per message (indexed by message) when each of ``count`` messages holds it
    once (or, with ``required=False``, at most once: absent ones are empty spans at 0); else None."""
    owner, start, end = fields.get(tag, (np.zeros(0, np.int64),) * 3)
    if len(owner) > count or (required and len(owner) != count):
        return None
    if len(owner) == count and (owner == np.arange(count)).all():
        return start, end
    present = np.zeros(count, np.int64)
    np.add.at(present, owner, 1)
    if (present > 1).any():
        return None
    full_start, full_end = np.zeros(count, np.int64), np.zeros(count, np.int64)
    full_start[owner], full_end[owner] = start, end
    return full_start, full_end


def _gather(buf, start, end):
    """The bytes of every span [start, end), concatenated, and the spans' lengths."""
    lengths = end - start
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.uint8), lengths
    shift = np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
    return buf[np.arange(total, dtype=np.int64) + shift], lengths


def _packed_varints(data, lengths):
    """(values uint64, count per span) of packed varint spans concatenated in ``data``; None if one runs over
    its span or over 10 bytes."""
    last = data < 0x80
    ends = np.cumsum(lengths)
    filled = lengths > 0
    if not last[ends[filled] - 1].all():
        return None
    total = np.concatenate([[0], np.cumsum(last)])
    counts = total[ends] - total[ends - lengths]
    if last.all():
        return data.astype(np.uint64), counts
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    sizes = np.diff(np.append(starts, len(data)))
    longest = int(sizes.max())
    if longest > 10:
        return None
    values = (data[starts] & 0x7F).astype(np.uint64)
    for j in range(1, longest):
        more = np.flatnonzero(sizes > j)
        values[more] |= (data[starts[more] + j] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    return values, counts


_TENSOR_TAGS = {0x12: "float32_tensor", 0x1A: "float64_tensor", 0x3A: "int32_tensor"}
_VALUES = b"values"
_RECORD_TAGS = _tags(0x0A, 0x12, 0x1A, 0x22, 0x2A)  # features, label entries; uid, metadata, configuration
_ENTRY_TAGS = _tags(0x0A, 0x12)  # key, value
_VALUE_TAGS = _tags(*_TENSOR_TAGS)
_TENSOR_FIELD_TAGS = _tags(0x0A, 0x12, 0x1A)  # packed values, keys, shape


class _Tensors:
    """One tensor per message, parsed: values (float32, concatenated) with their count per tensor, keys (int64)
    with counts, shapes (int64) with counts."""

    def __init__(self, values, value_counts, keys, key_counts, shape, shape_counts):
        self.values, self.value_counts = values, value_counts
        self.keys, self.key_counts = keys, key_counts
        self.shape, self.shape_counts = shape, shape_counts


def _map_values(buf, entries, count):
    """The ``values`` tensor of ``count`` maps given as their entries' (owner, start, end): one entry per map,
    keyed "values", holding one Float32/Float64/Int32 tensor of one kind throughout; else None."""
    entry_fields = _scan(buf, entries[1], entries[2], _ENTRY_TAGS)
    if entry_fields is None:
        return None
    key = _one_each(entry_fields, 0x0A, len(entries[0]))
    value = _one_each(entry_fields, 0x12, len(entries[0]))
    if key is None or value is None or (key[1] - key[0] != len(_VALUES)).any():
        return None
    key_bytes, _ = _gather(buf, *key)
    if (key_bytes.reshape(-1, len(_VALUES)) != np.frombuffer(_VALUES, np.uint8)).any():
        return None
    value = _one_each({0: (entries[0], *value)}, 0, count)  # the entry of each map, in map order
    if value is None:
        return None
    value_fields = _scan(buf, *value, _VALUE_TAGS)
    if value_fields is None or len(value_fields) != 1:
        return None
    (tag, _), = value_fields.items()
    tensor = _one_each(value_fields, tag, count)
    if tensor is None:
        return None
    fields = _scan(buf, *tensor, _TENSOR_FIELD_TAGS)
    if fields is None:
        return None
    spans = [_one_each(fields, t, count, required=False) for t in (0x0A, 0x12, 0x1A)]
    if any(span is None for span in spans):
        return None
    data, lengths = _gather(buf, *spans[0])
    kind = _TENSOR_TAGS[tag]
    if kind == "int32_tensor":
        decoded = _packed_varints(data, lengths)
        if decoded is None:
            return None
        values = decoded[0].view(np.int64).astype(np.int32).astype(np.float32)
        value_counts = decoded[1]
    else:
        dtype = np.dtype("<f4" if kind == "float32_tensor" else "<f8")
        if (lengths % dtype.itemsize).any():
            return None
        values = data.view(dtype).astype(np.float32, copy=False)
        value_counts = lengths // dtype.itemsize
    keys = _packed_varints(*_gather(buf, *spans[1]))
    shape = _packed_varints(*_gather(buf, *spans[2]))
    if keys is None or shape is None or (keys[0] >= 1 << 63).any():
        return None
    return _Tensors(values, value_counts, keys[0].astype(np.int64), keys[1], shape[0].astype(np.int64), shape[1])


def _buffer(payloads):
    """(uint8 buffer padded with zeros, starts, ends) of a list of payloads or an (n, length) uint8 array."""
    if isinstance(payloads, np.ndarray):
        n, length = payloads.shape
        buf = np.zeros(n * length + _PAD, np.uint8)
        buf[:n * length] = payloads.reshape(-1)
        starts = np.arange(n, dtype=np.int64) * length
        return buf, starts, starts + length
    lengths = np.fromiter(map(len, payloads), np.int64, len(payloads))
    ends = np.cumsum(lengths)
    buf = np.frombuffer(b"".join(payloads) + bytes(_PAD), np.uint8)
    return buf, ends - lengths, ends


def _vector_decode(payloads, feature_dim):
    """(features, labels) as decode_batch gives them, parsed with numpy for all records at once; None when the
    batch holds anything but records of one ``values`` feature tensor (dense rows of one width, or sparse rows
    with keys and a one-dimensional shape) and labels in all or none, or anything decode_batch rejects."""
    buf, starts, ends = _buffer(payloads)
    n = len(starts)
    fields = _scan(buf, starts, ends, _RECORD_TAGS)
    if fields is None or 0x0A not in fields:
        return None
    features = _map_values(buf, fields[0x0A], n)
    if features is None:
        return None
    labels = None
    if 0x12 in fields:
        label = _map_values(buf, fields[0x12], n)
        if label is None or (label.value_counts != label.value_counts[0]).any():
            return None
        labels = label.values.reshape(n, int(label.value_counts[0]))
        if labels.shape[1] == 1:
            labels = labels.ravel()
    counts = features.value_counts
    if (features.shape_counts > 1).any():
        return None
    if not features.key_counts.any():  # dense: no keys, and no shape or a shape of the values' count
        shaped = features.shape_counts == 1
        widths = np.zeros(n, np.int64)
        widths[shaped] = features.shape
        if (widths[shaped] != counts[shaped]).any() or (counts != counts[0]).any():
            return None
        if feature_dim is not None and counts[0] != feature_dim:
            return None
        return features.values.reshape(n, int(counts[0])), labels
    # sparse: keys as many as values, and the shape in every record, all the same
    if (features.key_counts != counts).any() or (features.shape_counts != 1).any():
        return None
    dim = int(features.shape[0])
    if (features.shape != dim).any() or (feature_dim is not None and dim != feature_dim):
        return None
    if len(features.keys) and int(features.keys.max()) >= dim:
        return None
    indptr = np.concatenate([[0], np.cumsum(counts)])
    matrix = sp.csr_matrix((features.values, features.keys, indptr), shape=(n, dim))
    matrix.sum_duplicates()
    return matrix, labels


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
        decoded = _vector_decode(payloads, feature_dim)
        if decoded is not None:
            return decoded
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


def dense_rows(features):
    """``encode_dense(features)`` (no labels) as one (n, length) uint8 array; None for rows of no values."""
    features = _rows_of(features)
    if features.shape[1] == 0:
        return None
    return _Layout([(1, "values", "float32_tensor", features.shape[1])]).encode([features])


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


def output_rows(columns):
    """``encode_outputs`` as one (n, length) uint8 array, every Record the same length (numpy, no per-record
    object); None where the records are not all alike (an empty tensor), or there are no columns."""
    names = sorted(columns)
    arrays = [np.asarray(columns[name], dtype=np.float32) for name in names]
    if not arrays:
        return None
    n = arrays[0].shape[0]
    if any(array.ndim not in (1, 2) or array.shape[0] != n for array in arrays):
        return None  # encode_outputs says what is wrong
    arrays = [array.reshape(n, -1) for array in arrays]
    entries = [(2, name, "float32_tensor", array.shape[1]) for name, array in zip(names, arrays)]
    if any(count == 0 for *_, count in entries):
        return None
    return _Layout(entries).encode(arrays)
