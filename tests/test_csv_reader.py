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


def test_the_fast_parse_is_taken_with_the_pandas_installed(monkeypatch):
    """The fast path checks itself against read_csv once and silently steps aside if they differ: a pandas
    release that changed TextReader must show here (pandas>=2.1,<4 is what the images install), not as a 2.4x
    slower CSV request."""
    import pandas

    assert csv_reader._fast_reader(pandas) is not None, f"pandas {pandas.__version__}: TextReader fast path off"

    def no_read_csv(*args, **kwargs):
        raise AssertionError("read_csv was called for a plain numeric block")

    monkeypatch.setattr(pandas, "read_csv", no_read_csv)
    body = b"".join(b",".join(b"%d.25" % (i + j) for j in range(50)) + b"\n" for i in range(1000))
    rows = parse_blocks(body)
    assert rows.shape == (1000, 50) and rows[999, 49] == 1048.25


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


# ------------------------------------------------ the request path's fast parse and ragged-row check (missing=True)

def parse_blocks(data, missing=True, columns=None):
    parts = [a for a, _ in csv_reader.iter_csv_blocks(io.BytesIO(data), source="r", missing=missing,
                                                       columns=columns)]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def bodies_of_every_number_format():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((300, 6)) * 10.0 ** rng.integers(-40, 38, (300, 6))).astype(np.float32)
    for fmt in ("%.7g", "%.9g", "%.17g", "%r", "%.3f", "%e"):
        yield "\n".join(",".join(fmt % float(v) for v in row) for row in x).encode()
    ints = rng.integers(-2**62, 2**62, (50, 3))
    yield "\n".join(",".join(str(v) for v in row) for row in ints).encode()  # integers past 2**24 and 2**53
    yield b"1,2.5,,nan,1e-7,True\n-3,0.1,NA,4,-0.0,False\n7,1e38,8,null,0.30000001,True\n-inf,inf,3,N/A,1,False\n"
    # more rows than pandas reads at once (one dtype per chunk): integers first, decimals later in one column
    yield b"1\n" * 600_000 + b"0.1\n" * 10


@pytest.mark.parametrize("body", list(bodies_of_every_number_format()), ids=lambda b: f"{len(b)}B")
def test_fast_parse_gives_read_csvs_float32_values_bit_for_bit(body, monkeypatch):
    import pandas

    fast = parse_blocks(body)
    frame = pandas.read_csv(io.BytesIO(body), header=None, engine="c")
    expected = frame.to_numpy(dtype=np.float32)
    assert fast.dtype == np.float32 and fast.shape == expected.shape
    assert fast.tobytes() == expected.tobytes()  # every bit, NaNs included
    monkeypatch.setattr(csv_reader, "_fast_reader", lambda pandas: None)  # read_csv itself
    assert parse_blocks(body).tobytes() == fast.tobytes()


@pytest.mark.parametrize("text,message,line", [
    (b"1,2,3\n4,5\n", "CSV line has 2 columns, expected 3", 2),
    (b"1,2,3\n4,5,\n6,7\n", "CSV line has 2 columns, expected 3", 3),
    (b"1,,3\n\n,5\n", "CSV line has 2 columns, expected 3", 3),
    (b"1,2,3\r\n4,5\r\n", "CSV line has 2 columns, expected 3", 2),
    (b"1, 2, 3\n4, 5\n", "CSV line has 2 columns, expected 3", 2),
    (b'1,"2,3"\n4\n', "CSV line has 1 columns, expected 3", 2),  # a quoted comma counts as written, as before
])
def test_missing_values_never_hide_a_short_row(parser, text, message, line):
    with pytest.raises(DataError) as error:
        parse_blocks(text)
    assert message in str(error.value) and f"record {line})" in str(error.value)


def test_a_ragged_row_is_found_in_a_thousand_row_request(parser):
    rows = [",".join(["1.5"] * 50)] * 1000
    rows[499] = ",".join(["1.5"] * 49)
    rows[700] = ",".join(["1.5"] * 50 + [""])  # one too many: the parser's own error, then the line
    with pytest.raises(DataError, match=r"CSV line has 49 columns, expected 50.*record 500\)"):
        parse_blocks("\n".join(rows).encode())


def test_the_comma_count_proves_every_row_full_or_asks_the_line_by_line_count():
    rng = np.random.default_rng(3)
    # quotes and lone carriage returns keep the line-by-line count as it was (the parser's lines are not the text's)
    plain = [b"1", b"2.5", b"", b"nan", b",", b",", b"\n", b"\n"]
    alphabets = [np.array(plain, dtype=object), np.array(plain + [b" ", b"\t", b"\r\n"], dtype=object)]
    checked = 0
    for attempt in range(3000):
        alphabet = alphabets[attempt % 2]
        block = b"".join(rng.choice(alphabet, rng.integers(1, 30))) + b"\n"  # one block: every line ended
        try:
            array = parse_blocks(block)
        except (DataError, IndexError):
            continue
        numbers, fields = csv_reader._line_field_counts(block)
        assert (fields == array.shape[1]).all(), block  # what was accepted has every line full
        checked += 1
    assert checked > 300
