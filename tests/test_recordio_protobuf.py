"""recordIO framing and the aialgs.data.Record codec, against the SageMaker SDK as the reference client."""

import gzip
import io
import os
import struct
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from common import protobuf, recordio
from common.errors import DataError

RNG = np.random.default_rng(7)


def frame(flag, payload):
    """A hand-made RecordIO part."""
    return struct.pack("<II", recordio.MAGIC, flag << 29 | len(payload)) + payload + b"\0" * (-len(payload) % 4)


def read_all(data, source="mem"):
    return list(recordio.iter_records(io.BytesIO(data), source=source))


class Trickle(io.RawIOBase):
    """A non-seekable stream that hands out at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data, step):
        self.data, self.pos, self.step = data, 0, step

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def sdk_dense_payloads(features, labels=None):
    return read_all(sdk.dense_recordio(features, labels))


# --- framing ---

def test_framing_round_trip_through_small_chunks_and_trickling_streams(monkeypatch):
    magic = recordio.MAGIC_BYTES
    payloads = [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)) * 3, magic, b"xy" + magic + b"z",
                b"abcd" + magic + b"efgh" + magic, magic * 3] + [RNG.bytes(int(n)) for n in RNG.integers(0, 300, 40)]
    buffer = io.BytesIO()
    recordio.write_records(buffer, payloads)
    data = buffer.getvalue()
    assert len(data) % 4 == 0
    monkeypatch.setattr(recordio, "CHUNK", 5)
    assert read_all(data) == payloads
    assert list(recordio.iter_records(io.BufferedReader(Trickle(data, 3), buffer_size=7))) == payloads
    assert list(recordio.iter_records(Trickle(data, 1))) == payloads
    batches = list(recordio.iter_record_batches(io.BytesIO(data), 4))
    assert [bytes(p) if isinstance(p, bytes) else p.tobytes() for b in batches for p in b] == payloads


def test_magic_at_a_four_byte_boundary_is_split_like_dmlc():
    magic = recordio.MAGIC_BYTES
    payload = b"abcd" + magic + b"efg" + magic + b"x" + magic  # aligned at 4 and 16, not at 11
    assert recordio.encode_record(payload) == frame(1, b"abcd") + frame(2, b"efg" + magic + b"x") + frame(3, b"")
    assert recordio.encode_record(b"abc" + magic) == frame(0, b"abc" + magic)  # unaligned: whole


def test_multi_part_records_written_by_hand_are_joined_with_the_magic():
    data = (frame(0, b"one") + frame(1, b"ab") + frame(2, b"cd") + frame(2, b"") + frame(3, b"ef")
            + frame(1, b"") + frame(3, b"") + frame(0, b"last"))
    magic = recordio.MAGIC_BYTES
    assert read_all(data) == [b"one", b"ab" + magic + b"cd" + magic + magic + b"ef", magic, b"last"]


@pytest.mark.parametrize("data,message,record", [
    (frame(0, b"ok") + frame(2, b"x") + frame(3, b"y"), "starts with a middle part", 1),
    (frame(0, b"ok") + frame(3, b"y"), "starts with a last part", 1),
    (frame(1, b"x") + frame(0, b"y"), "cut short by a new record", 0),
    (frame(0, b"ok") + frame(1, b"x") + frame(1, b"y"), "cut short by a new record", 1),
    (frame(0, b"ok") + frame(1, b"x") + frame(2, b"y"), "stream ends inside a multi-part", 1),
    (frame(0, b"ok") + struct.pack("<II", recordio.MAGIC, 5 << 29 | 1) + b"x\0\0\0", "bad RecordIO part flag 5", 1),
])
def test_bad_part_sequences_name_the_record(data, message, record):
    with pytest.raises(DataError, match=message) as error:
        read_all(data, source="parts.rec")
    assert f"(file parts.rec, record {record})" in str(error.value)


def test_absurd_length_is_reported_without_reading_it():
    data = frame(0, b"fine") + struct.pack("<II", recordio.MAGIC, recordio.LENGTH_MASK)
    with pytest.raises(DataError, match="over the .*-byte limit") as error:
        read_all(data, source="big.rec")
    assert "(file big.rec, record 1)" in str(error.value)


@pytest.mark.parametrize("keep,message,record", [(197, "truncated RecordIO record", 4),
                                                 (125, "truncated RecordIO header", 3),
                                                 (128, "truncated RecordIO record", 3)])
def test_truncated_files_name_the_record(keep, message, record):
    data = sdk.dense_recordio(np.ones((5, 4), np.float32))  # 5 records of 8 + 32 bytes
    assert len(data) == 5 * 40
    with pytest.raises(DataError, match=message) as error:
        read_all(data[:keep], source="cut.rec")
    assert f"(file cut.rec, record {record})" in str(error.value)
    with pytest.raises(DataError, match=message):  # the batched framing reports it too
        list(recordio.iter_record_batches(io.BytesIO(data[:keep]), 100, source="cut.rec"))


def test_corrupt_magic_names_the_record_also_inside_a_same_length_run():
    data = bytearray(sdk.dense_recordio(np.ones((6, 4), np.float32)))
    data[40 * 4] ^= 0xFF
    with pytest.raises(DataError, match="bad magic") as error:
        read_all(bytes(data), source="bad.rec")
    assert "(file bad.rec, record 4)" in str(error.value)
    batches = recordio.iter_record_batches(io.BytesIO(bytes(data)), 100, source="bad.rec")
    assert len(next(batches)) == 4
    with pytest.raises(DataError, match=r"bad magic .*\(file bad.rec, record 4\)"):
        next(batches)


def test_gzip_file(tmp_path):
    x = RNG.normal(size=(300, 5)).astype(np.float32)
    path = tmp_path / "train.rec.gz"
    with gzip.open(path, "wb") as f:
        f.write(sdk.dense_recordio(x))
    with gzip.open(path, "rb") as f:
        batches = list(recordio.iter_record_batches(f, 128, source=str(path)))
    assert [len(b) for b in batches] == [128, 128, 44]
    assert np.array_equal(np.concatenate([protobuf.decode_batch(b)[0] for b in batches]), x)


def test_fifo_is_read_as_it_arrives():
    x = RNG.normal(size=(1000, 3)).astype(np.float32)
    data = sdk.dense_recordio(x)
    read_end, write_end = os.pipe()

    def writer():
        with os.fdopen(write_end, "wb") as f:
            for start in range(0, len(data), 1000):
                f.write(data[start:start + 1000])
                f.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    with os.fdopen(read_end, "rb") as f:
        batches = list(recordio.iter_record_batches(f, 300, source="fifo"))
    thread.join()
    assert np.array_equal(np.concatenate([protobuf.decode_batch(b)[0] for b in batches]), x)


# --- the SDK's files ---

@pytest.mark.parametrize("dtype,label_dtype", [(np.float32, None), (np.float32, np.float32), (np.float64, np.float64),
                                               (np.float32, np.int64), (np.int64, np.float32)])
def test_sdk_dense_files_decode_to_the_same_arrays(dtype, label_dtype):
    x = (RNG.normal(size=(40, 6)) * 50).astype(dtype)
    y = None if label_dtype is None else RNG.integers(0, 100, 40).astype(label_dtype)
    payloads = sdk_dense_payloads(x, y)
    for fast in (True, False):
        features, labels = protobuf.decode_batch(payloads, fast=fast)
        assert features.dtype == np.float32 and np.array_equal(features, x.astype(np.float32))
        if y is None:
            assert labels is None
        else:
            assert labels.dtype == np.float32 and np.array_equal(labels, y.astype(np.float32))
    takes_fast_path = dtype != np.int64  # Int32Tensor features (the SDK's type for int64) are varints of varying length
    assert (protobuf._fast_decode(payloads) is not None) == takes_fast_path


@pytest.mark.parametrize("labels", [False, True])
def test_sdk_sparse_files_decode_to_csr_and_our_encoder_matches_them(labels):
    dense = sp.random(60, 25, density=0.15, dtype=np.float32, random_state=3).toarray()
    dense[5] = 0  # an empty row keeps its place
    matrix = sp.csr_matrix(dense)
    y = RNG.integers(0, 4, 60).astype(np.float32) if labels else None
    data = sdk.sparse_recordio(matrix, y)
    features, decoded_labels = protobuf.decode_batch(read_all(data), feature_dim=25)
    assert sp.issparse(features) and features.dtype == np.float32 and features.shape == (60, 25)
    assert np.array_equal(features.toarray(), matrix.toarray())
    assert (decoded_labels is None) if y is None else np.array_equal(decoded_labels, y)
    assert b"".join(recordio.encode_record(p) for p in protobuf.encode_sparse(matrix, y)) == data


def test_dense_records_in_a_sparse_batch_are_converted():
    dense = sdk_dense_payloads(np.array([[1, 0, 2]], np.float32))
    sparse = read_all(sdk.sparse_recordio(sp.csr_matrix(np.array([[0, 5, 0], [0, 0, 0]], np.float32))))
    features, _ = protobuf.decode_batch(sparse + dense, source="mixed")
    assert sp.issparse(features)
    assert features.toarray().tolist() == [[0, 5, 0], [0, 0, 0], [1, 0, 2]]


@pytest.mark.parametrize("dim", [1, 2, 7, 31, 32, 100, 784, 4097])
@pytest.mark.parametrize("label_dim", [0, 1, 3])
def test_dense_encoder_is_byte_equal_to_the_sdk(dim, label_dim):
    n = 20
    x = RNG.normal(size=(n, dim)).astype(np.float32)
    ours = protobuf.encode_dense(x, RNG.normal(size=(n, label_dim)).astype(np.float32) if label_dim else None)
    if label_dim <= 1:  # the SDK writes one label per record
        y = np.array([protobuf.Record.FromString(p).label["values"].float32_tensor.values[0] for p in ours],
                     np.float32) if label_dim else None
        assert b"".join(recordio.encode_record(p) for p in ours) == sdk.dense_recordio(x, y)
    reference = [protobuf._encode_message({"values": x[i]}, {"values": list(
        protobuf.Record.FromString(p).label["values"].float32_tensor.values)} if label_dim else None)
        for i, p in enumerate(ours)]
    assert ours == reference


@pytest.mark.parametrize("dim", [1, 3, 15, 16, 127, 128, 1000, 16385])
@pytest.mark.parametrize("label_dim", [0, 1, 2, 130])
def test_fast_path_equals_slow_path(dim, label_dim):
    n = 13
    x = RNG.normal(size=(n, dim)).astype(np.float32)
    y = RNG.normal(size=(n, label_dim)).astype(np.float32) if label_dim else None
    payloads = protobuf.encode_dense(x, y)
    rows = next(recordio.iter_record_batches(io.BytesIO(b"".join(map(recordio.encode_record, payloads))), 100))
    assert isinstance(rows, np.ndarray) and rows.shape[0] == n
    slow = protobuf.decode_batch(payloads, fast=False)
    for batch in (payloads, rows):
        assert protobuf._fast_decode(batch) is not None
        fast = protobuf.decode_batch(batch)
        assert fast[0].dtype == np.float32 and fast[0].flags.c_contiguous
        assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[0], x)
        if y is None:
            assert fast[1] is None and slow[1] is None
        else:
            assert np.array_equal(fast[1], slow[1]) and fast[1].shape == slow[1].shape
            assert np.array_equal(fast[1].reshape(n, -1), y)


def _same_decoding(payloads, feature_dim=None):
    vector = protobuf._vector_decode(payloads, feature_dim)
    assert vector is not None
    slow = protobuf.decode_batch(payloads, feature_dim, fast=False)
    assert sp.issparse(vector[0]) == sp.issparse(slow[0]) and vector[0].dtype == slow[0].dtype == np.float32
    if sp.issparse(slow[0]):
        assert vector[0].shape == slow[0].shape and (vector[0] != slow[0]).nnz == 0
        assert np.array_equal(vector[0].indices, slow[0].indices) and np.array_equal(vector[0].indptr, slow[0].indptr)
    else:
        assert np.array_equal(vector[0], slow[0])
    assert (vector[1] is None and slow[1] is None) or (vector[1].shape == slow[1].shape
                                                       and np.array_equal(vector[1], slow[1]))
    return vector


@pytest.mark.parametrize("labels", [None, "float32", "int64"])
def test_vectorised_path_equals_the_general_path_on_sdk_sparse_rows(labels):
    """Rows of varying nnz (some empty), keys of one to three varint bytes, labels or none: one numpy pass."""
    matrix = sp.random(300, 70_000, density=0.0002, dtype=np.float32, random_state=5, format="lil")
    matrix[7, 69_999] = 2.5
    matrix[5, :] = 0
    matrix = matrix.tocsr()
    y = None if labels is None else RNG.integers(0, 3, 300).astype(labels)
    payloads = read_all(sdk.sparse_recordio(matrix, y))
    assert len(set(map(len, payloads))) > 1 and np.diff(matrix.indptr).min() == 0
    features, decoded = _same_decoding(payloads, 70_000)
    assert np.array_equal(features.toarray(), matrix.toarray())
    framed = next(recordio.iter_record_batches(io.BytesIO(sdk.sparse_recordio(matrix, y)), 1000))
    assert isinstance(framed, list) and framed == payloads  # framed with numpy in one run


def test_vectorised_path_equals_the_general_path_on_varint_and_double_tensors():
    x = RNG.integers(-300, 70_000, size=(50, 4))  # Int32Tensor: varints of 1 to 10 bytes (negatives)
    _same_decoding(sdk_dense_payloads(x, RNG.normal(size=50)))
    two_labels = [protobuf._encode_message({"values": row}, {"values": [i, -i]}) for i, row in enumerate(x)]
    _same_decoding(two_labels)
    doubles = []
    for i in range(20):
        record = protobuf.Record()
        tensor = record.features["values"].float64_tensor
        tensor.values.extend([0.1 * i, 1e-3 * i])
        tensor.keys.extend([i, 1000 + i])
        tensor.shape.append(5000)
        doubles.append(record.SerializeToString())
    features, _ = _same_decoding(doubles)
    assert sp.issparse(features) and features[3, 1003] == np.float32(3e-3)


def test_what_the_vectorised_path_declines_the_general_path_reports():
    records = []
    for key in (3, 200, 99_999):
        record = protobuf.Record()
        tensor = record.features["values"].float32_tensor
        tensor.values.append(1.0)
        tensor.keys.append(key)
        tensor.shape.append(1000)
        records.append(record.SerializeToString())
    assert protobuf._vector_decode(records, None) is None
    with pytest.raises(DataError, match=r"key 99999 outside its shape \[1000\] \(file k.rec, record 12\)"):
        protobuf.decode_batch(records, source="k.rec", first_record=10)
    with pytest.raises(DataError, match=r"expected feature_dim=999 \(file k.rec, record 0\)"):
        protobuf.decode_batch(records[:2], feature_dim=999, source="k.rec")
    truncated = records[:1] + [records[1][:-2]]
    assert protobuf._vector_decode(truncated, None) is None
    with pytest.raises(DataError, match=r"not a valid aialgs.data.Record .*record 1\)"):
        protobuf.decode_batch(truncated, source="k.rec")


def test_near_miss_layouts_take_the_general_path():
    x = RNG.normal(size=(4, 3)).astype(np.float32)
    with_uid = []
    for row in x:
        record = protobuf.Record(uid="u")
        record.features["values"].float32_tensor.values.extend(row.tolist())
        with_uid.append(record.SerializeToString())
    other_label = [protobuf._encode_message({"values": row}, {"score": [1.0]}) for row in x]
    shaped = []
    for row in x:
        record = protobuf.Record()
        record.features["values"].float32_tensor.values.extend(row.tolist())
        record.features["values"].float32_tensor.shape.append(3)
        shaped.append(record.SerializeToString())
    mixed_lengths = protobuf.encode_dense(x[:2]) + protobuf.encode_dense(x[2:, :2])
    for payloads in (with_uid, other_label, shaped):
        assert protobuf._fast_decode(payloads) is None
        features, labels = protobuf.decode_batch(payloads)
        assert np.array_equal(features, x) and labels is None
    with pytest.raises(DataError, match="record has 2 features, the batch's first record 0 has 3"):
        protobuf.decode_batch(mixed_lengths)


def test_wrong_feature_count_names_source_and_absolute_record():
    payloads = sdk_dense_payloads(np.ones((3, 785), np.float32))
    for fast in (True, False):
        with pytest.raises(DataError, match="record has 785 features, expected feature_dim=784") as error:
            protobuf.decode_batch(payloads, feature_dim=784, source="train.rec", first_record=10, fast=fast)
        assert "(file train.rec, record 10)" in str(error.value)
    sparse = read_all(sdk.sparse_recordio(sp.csr_matrix(np.eye(2, 5, dtype=np.float32))))
    with pytest.raises(DataError, match="record has 5 features, expected feature_dim=4"):
        protobuf.decode_batch(sparse, feature_dim=4, source="s.rec")
    odd = protobuf.encode_dense(np.ones((2, 4), np.float32)) + protobuf.encode_dense(np.ones((1, 5), np.float32))
    with pytest.raises(DataError, match=r"has 5 features, expected feature_dim=4 \(file f.rec, record 102\)"):
        protobuf.decode_batch(odd, feature_dim=4, source="f.rec", first_record=100)


def test_garbage_payload_and_missing_values_name_the_record():
    good = protobuf.encode_dense(np.ones((2, 3), np.float32))
    for fast in (True, False):
        with pytest.raises(DataError, match=r"not a valid aialgs.data.Record .*\(file g.rec, record 7\)"):
            protobuf.decode_batch(good + [b"\xff" * len(good[0])], source="g.rec", first_record=5, fast=fast)
    no_values = protobuf._encode_message({"other": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"no 'values' feature \(file g.rec, record 1\)"):
        protobuf.decode_batch([good[0], no_values], source="g.rec")
    as_bytes = protobuf.Record()
    as_bytes.features["values"].bytes.value.append(b"jpeg")
    with pytest.raises(DataError, match="holds bytes, expected a Float32/Float64/Int32 tensor"):
        protobuf.decode_batch([as_bytes.SerializeToString()], source="g.rec")


def test_nan_and_inf_are_passed_through():
    x = np.array([[np.nan, 1], [np.inf, -np.inf]], np.float32)
    features, _ = protobuf.decode_batch(protobuf.encode_dense(x))
    assert np.array_equal(features, x, equal_nan=True)


# --- answers to inference requests ---

def test_sdk_reads_our_outputs_and_they_match_protobufs_own_bytes():
    columns = {"closest_cluster": np.array([1, 0, 2]), "distance_to_cluster": np.array([0.5, 1.5, 2.5]),
               "projection": RNG.normal(size=(3, 4)).astype(np.float32)}
    payloads = protobuf.encode_outputs(columns)
    assert payloads == [protobuf._encode_message(label={k: v[i] for k, v in columns.items()}) for i in range(3)]
    records = sdk.records(b"".join(recordio.encode_record(p) for p in payloads))
    assert [r.label["closest_cluster"].float32_tensor.values[0] for r in records] == [1, 0, 2]
    assert [r.label["distance_to_cluster"].float32_tensor.values[0] for r in records] == [0.5, 1.5, 2.5]
    assert np.array_equal([r.label["projection"].float32_tensor.values for r in records], columns["projection"])
    assert protobuf.encode_outputs({"empty": np.zeros((2, 0))}) == [protobuf._encode_message(label={"empty": []})] * 2


def test_int_labels_of_several_varint_bytes_take_the_general_path():
    x = RNG.normal(size=(6, 2)).astype(np.float32)
    y = np.array([1, 127, 128, 300, -5, 70000])
    payloads = sdk_dense_payloads(x, y)
    assert protobuf._fast_decode(payloads) is None
    features, labels = protobuf.decode_batch(payloads)
    assert np.array_equal(features, x) and labels.tolist() == y.tolist()
    same_length = sdk_dense_payloads(x[:3], np.array([128, 129, 200]))  # two varint bytes each
    assert protobuf._fast_decode(same_length) is None
    assert protobuf.decode_batch(same_length)[1].tolist() == [128, 129, 200]
