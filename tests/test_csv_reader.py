"""CSV data: labels first, bounded blocks, and bad lines named by file and line — with and without pandas."""

import gzip
import io

import numpy as np
import pytest

from common import csv_reader
from common.errors import DataError


@pytest.fixture(params=["pandas", "numpy"])
def parser(request, monkeypatch):
    if request.param == "numpy":
        monkeypatch.setattr(csv_reader, "_pandas", lambda: None)
    return request.param


def read(data, batch_size=1000, label_size=0):
    parts = list(csv_reader.iter_csv_batches(io.BytesIO(data), batch_size, label_size, source="d.csv"))
    features = np.concatenate([f for f, _ in parts]) if parts else None
    labels = np.concatenate([l for _, l in parts]) if parts and parts[0][1] is not None else None
    return parts, features, labels


def test_labels_come_from_the_first_columns(parser):
    _, features, labels = read(b"1,10,11\n0,20,21\n", label_size=1)
    assert labels.tolist() == [1, 0] and features.tolist() == [[10, 11], [20, 21]]
    _, features, labels = read(b"1,2,10\n3,4,20\n", label_size=2)
    assert labels.tolist() == [[1, 2], [3, 4]] and features.tolist() == [[10], [20]]


def test_blank_lines_missing_final_newline_and_nan_values(parser):
    _, features, _ = read(b"1,2\n\n3,4\n5,nan")
    assert features.shape == (3, 2) and np.isnan(features[2, 1])


def test_blocks_and_batches_keep_every_row_in_order(parser, monkeypatch):
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 64)
    rows = np.arange(600, dtype=np.float32).reshape(300, 2)
    text = "".join(f"{a:g},{b:g}\n" for a, b in rows).encode()
    parts, features, _ = read(text, batch_size=7)
    assert np.array_equal(features, rows) and max(len(f) for f, _ in parts) <= 7


@pytest.mark.parametrize("text,message,line", [
    (b"1,2\n3,4\n5\n", "CSV line has 1 columns, expected 2", 3),
    (b"1,2\n3,4,5\n", "CSV line has 3 columns, expected 2", 2),
    (b"1,2\n3,abc\n", "CSV value 'abc' on line 2 is not a number", 2),
    (b"1,2\n3,\n", "CSV value '' on line 2 is not a number", 2),
    (b"a,b\n1,2\n", "CSV value 'a' on line 1 is not a number", 1),
    (b"1,2\nNA,2\n", "CSV value 'NA' on line 2 is not a number", 2),
])
def test_bad_rows_name_the_line_and_file(parser, text, message, line):
    with pytest.raises(DataError) as error:
        read(text)
    assert message in str(error.value) and f"(file d.csv, record {line})" in str(error.value)


def test_errors_in_later_blocks_count_lines_from_the_start(parser, monkeypatch):
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 32)
    lines = [b"1,2"] * 40 + [b"1,x"] + [b"1,2"] * 5
    with pytest.raises(DataError, match="on line 41 is not a number"):
        read(b"\n".join(lines) + b"\n")


def test_label_size_must_leave_features(parser):
    with pytest.raises(DataError, match="not more than label_size=2"):
        read(b"1,2\n", label_size=2)


def test_gzip_stream(parser):
    data = gzip.compress(b"1,2\n3,4\n")
    parts = list(csv_reader.iter_csv_batches(gzip.GzipFile(fileobj=io.BytesIO(data)), 10))
    assert parts[0][0].tolist() == [[1, 2], [3, 4]]


def test_memory_is_bounded_by_the_block_not_the_file(monkeypatch):
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 1024)

    class Counting(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            assert n != -1, "the reader must never ask for the whole stream"
            Counting.largest = max(Counting.largest, n)
            return super().read(n)

    stream = Counting(b"1,2\n" * 100_000)
    first = next(csv_reader.iter_csv_batches(stream, 10))
    assert first[0].shape == (10, 2) and Counting.largest <= 1024 and stream.tell() < 10_000
