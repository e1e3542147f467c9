"""recordIO framing and the aialgs.data.Record codec against the SageMaker SDK's own writer and reader."""

import gzip
import io
import struct

import numpy as np
import pytest
import scipy.sparse as sp

import sdk
from common import protobuf, recordio
from common.errors import DataError


def payloads_of(data):
    return list(recordio.iter_records(io.BytesIO(data), source="mem"))


@pytest.mark.parametrize("dim,labels", [(1, False), (7, True), (100, False), (784, True)])
def test_dense_encoder_is_byte_equal_to_the_sdk_and_fast_path_matches_slow(dim, labels):
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(50, dim)).astype(np.float32)
    y = rng.integers(0, 3, 50).astype(np.float32) if labels else None
    theirs = sdk.dense_recordio(x, y)
    assert b"".join(recordio.encode_record(p) for p in protobuf.encode_dense(x, y)) == theirs
    payloads = payloads_of(theirs)
    fast = protobuf.decode_batch(payloads)
    slow = protobuf.decode_batch(payloads, fast=False)
    assert protobuf._fast_decode(payloads) is not None
    assert np.array_equal(fast[0], x) and np.array_equal(slow[0], x)
    if labels:
        assert np.array_equal(fast[1], y) and np.array_equal(slow[1], y)
    else:
        assert fast[1] is None and slow[1] is None


def test_sparse_sdk_records_decode_to_csr():
    matrix = sp.random(40, 30, density=0.2, format="csr", dtype=np.float32, random_state=0)
    features, labels = protobuf.decode_batch(payloads_of(sdk.sparse_recordio(matrix)), feature_dim=30)
    assert sp.issparse(features) and np.allclose(features.toarray(), matrix.toarray())
    ours = b"".join(recordio.encode_record(p) for p in protobuf.encode_sparse(matrix))
    back, _ = protobuf.decode_batch(payloads_of(ours))
    assert np.allclose(back.toarray(), matrix.toarray())


def test_float64_and_int_labels_from_sdk_take_the_general_path():
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    features, labels = protobuf.decode_batch(payloads_of(sdk.dense_recordio(x, np.array([1, 2, 3, 4]))))
    assert features.dtype == np.float32 and features.tolist() == x.tolist() and labels.tolist() == [1, 2, 3, 4]


def test_sdk_reads_our_outputs():
    columns = {"closest_cluster": np.array([1.0, 2.0]), "projection": np.array([[1, 2], [3, 4]])}
    body = b"".join(recordio.encode_record(p) for p in protobuf.encode_outputs(columns))
    records = sdk.records(body)
    assert [list(r.label["projection"].float32_tensor.values) for r in records] == [[1, 2], [3, 4]]


def test_multi_part_records_are_joined_with_the_magic():
    payload = b"abcd" + recordio.MAGIC_BYTES + b"efgh"
    parts = [(1, b"abcd"), (3, b"efgh")]
    data = b"".join(struct.pack("<II", recordio.MAGIC, (flag << 29) | len(p)) + p for flag, p in parts)
    assert payloads_of(data) == [payload]


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d[:-3], "truncated RecordIO record"),
    (lambda d: d[:5], "truncated RecordIO header"),
    (lambda d: b"\x00\x00\x00\x00" + d[4:], "bad magic"),
    (lambda d: d[:8] + b"\xff" * (len(d) - 8), "not a valid aialgs.data.Record"),
])
def test_corrupt_input_names_the_record(mutate, message):
    data = mutate(sdk.dense_recordio(np.ones((3, 2), dtype=np.float32))[:24 * 1 + 8])
    with pytest.raises(DataError, match=message) as error:
        protobuf.decode_batch(payloads_of(data), source="mem", fast=False)
    assert "file mem, record 0" in str(error.value)


def test_wrong_feature_count_on_both_paths():
    payloads = payloads_of(sdk.dense_recordio(np.ones((3, 785), dtype=np.float32)))
    for fast in (True, False):
        with pytest.raises(DataError, match="has 785 features, expected feature_dim=784") as error:
            protobuf.decode_batch(payloads, feature_dim=784, source="train.pbr", first_record=10, fast=fast)
        assert "(file train.pbr, record 10)" in str(error.value)


def test_gzip_stream():
    data = gzip.compress(sdk.dense_recordio(np.ones((5, 2), dtype=np.float32)))
    assert len(list(recordio.iter_records(gzip.GzipFile(fileobj=io.BytesIO(data))))) == 5


def test_fixed_length_runs_are_framed_as_arrays_and_mixed_streams_still_work():
    dense = sdk.dense_recordio(np.arange(20, dtype=np.float32).reshape(10, 2))
    sparse = sdk.sparse_recordio(sp.csr_matrix(np.eye(3, 2, dtype=np.float32)))
    batches = list(recordio.iter_record_batches(io.BytesIO(dense + sparse + dense), 4))
    assert sum(len(b) for b in batches) == 23 and all(len(b) <= 4 for b in batches)
    assert isinstance(batches[0], np.ndarray) and any(isinstance(b, list) for b in batches)
    features = [protobuf.decode_batch(b)[0] for b in batches]
    rows = np.concatenate([f.toarray() if sp.issparse(f) else f for f in features])
    dense_rows = np.arange(20).reshape(10, 2)
    assert np.array_equal(rows, np.concatenate([dense_rows, np.eye(3, 2), dense_rows]))
