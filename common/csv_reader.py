"""CSV training/inference data: no header, numbers (or strings), read in blocks of whole lines.

Blocks are parsed by pandas' C parser where the image installs pandas (about 3x faster), else numpy's C
``loadtxt``; a bad line is then found and reported with its file and line number. The parser is called as
``read_csv`` calls it but without the DataFrame around it (``_TextReader``: for a 1,000 x 50 request that frame
cost half as much again as the parse), with ``read_csv`` itself wherever the shortcut cannot promise its exact
float32 values. Costs are bounded before parsing: when the expected column count is known, a row of another width
is refused from its field count alone (a 6 MB row of 3 million fields costs microseconds, not a minute and
gigabytes).

``missing=True`` (XGBoost-style data): an empty field and ``nan`` are NaN; ragged rows are still errors. The
parser pads a short row with NaN, so every row's field count is checked: from one count of the block's commas
when its bytes allow (``_rows_complete``), else line by line.
``strings=True``: rows as numpy object arrays of str (e.g. ``entity,ip`` rows), through the same parser.
"""

import io
import re

import numpy as np

from .errors import DataError

BLOCK_BYTES = 16 << 20
MAX_COLUMNS = 1_000_000  # no algorithm takes wider rows; past this a row is refused before parsing


def _read_block(stream, size=None):
    """Up to ``size`` bytes (BLOCK_BYTES), and the error that cut the read short (a stop request during a stalled
    Pipe read), so the whole lines read before it are still parsed."""
    size = size or BLOCK_BYTES
    read1 = getattr(stream, "read1", None)
    if read1 is None:
        return stream.read(size), None
    parts, got = [], 0
    try:
        while got < size:
            chunk = read1(size - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    except Exception as exc:  # noqa: BLE001 - re-raised once the lines before it are yielded
        return b"".join(parts), exc
    return b"".join(parts), None


def _count_newlines(block):
    """``block.count(b"\\n")``, by numpy where its temporary is small (a fifth of the time for a request's body)."""
    if len(block) > 4 << 20:
        return block.count(b"\n")
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))


def line_blocks(stream, size=None, terminate=False):
    """Blocks of whole lines (about ``size`` bytes each, default BLOCK_BYTES; a longer line is a block of its
    own), each with the number of lines before it. ``terminate``: a last line without a newline gets one (for
    parsers that need every line ended)."""
    rest = b""
    lines_before = 0
    while True:
        data, error = _read_block(stream, size)
        if error is not None:
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut:
                yield data[:cut], lines_before
            raise error
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        held, rest = [data[:cut]], data[cut:]
        data = None  # the generator keeps no block while the consumer has it (memory: one copy at a time)
        lines = _count_newlines(held[0])
        yield held.pop(), lines_before
        lines_before += lines
    if rest.strip():
        yield rest + b"\n" if terminate else rest, lines_before


def _blocks(stream):
    return line_blocks(stream)


_NONBLANK = re.compile(rb"[^ \t\r\n\v\f]")


def _first_line_fields(block):
    """Fields of the first non-blank line and its number, counted without parsing (None for a blank block)."""
    found = _NONBLANK.search(block)
    if found is None:
        return None
    start = block.rfind(b"\n", 0, found.start()) + 1
    end = block.find(b"\n", found.start())
    line = block[start:] if end < 0 else block[start:end]
    return line.count(b",") + 1, block.count(b"\n", 0, start) + 1


def _check_width(block, lines_before, columns, source):
    first = _first_line_fields(block)
    if first is None:
        return
    fields, line = first
    limit = columns if columns is not None else MAX_COLUMNS
    if (columns is not None and fields != columns) or fields > MAX_COLUMNS:
        raise DataError(f"CSV line has {fields} columns, expected {limit if columns is not None else f'at most {limit}'}",
                        source=source, record=lines_before + line)


def _line_field_counts(block):
    """(line number within the block from 1, fields) of every non-blank line, vectorised."""
    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    if not len(data) or data[-1] != 10:
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    commas = np.flatnonzero(data == 44)  # commas before a position: a search, not a running count of every byte
    fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    blank = (ends - starts) == 0
    if blank.any() or (data == 13).any() or (data == 32).any():  # whitespace-only lines count as blank
        blank = np.array([not block[s:e].strip() for s, e in zip(starts, ends)])
    numbers = np.arange(1, len(starts) + 1)
    return numbers[~blank], fields[~blank]


def _rows_complete(block, rows, width):
    """True when every line of the parsed block provably has ``width`` fields, from one count of its commas: with
    no quote, carriage return, space or tab in the block, a parsed row's fields are its line's commas plus one, the
    parser refuses a line of more fields than the first, and so ``rows * (width - 1)`` commas leave no line short.
    False means "not proven" (a short line, or bytes that need the line-by-line count)."""
    if b'"' in block or b"\r" in block or b" " in block or b"\t" in block:
        return False
    return int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 44)) == rows * (width - 1)


def _find_bad_line(block, lines_before, columns, source, missing):
    for number, line in enumerate(block.split(b"\n"), start=lines_before + 1):
        if not line.strip():
            continue
        fields = line.split(b",")
        if columns is not None and len(fields) != columns:
            raise DataError(f"CSV line has {len(fields)} columns, expected {columns}", source=source,
                            record=number)
        for field in fields:
            if missing and field.strip().strip(b'"').lower() in (b"", b"nan", b"na", b"null"):
                continue
            try:
                float(field.strip().strip(b'"'))
            except ValueError:
                text = field.decode("utf-8", "replace").strip()
                raise DataError(f"CSV value {text!r} on line {number} is not a number", source=source,
                                record=number) from None
        columns = len(fields)
    return columns


def _pandas():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


class _TextReader:
    """pandas' C parser without ``read_csv``'s frame around it: for the blocks of a small request, building the
    DataFrame (a Python object per column, then ``to_numpy``) costs a third as much as the parse itself.

    ``TextReader`` is pandas' internal class, so it is used only as ``read_csv`` would use it: the arguments
    ``read_csv(header=None, engine="c")`` passes it, the same chunks (``read_csv`` infers each column's dtype per
    chunk; a column whose chunks differ in dtype, or that is not numbers, goes to ``read_csv``), and only after one
    check at first use that it gives ``read_csv``'s float32 values bit for bit (else never)."""

    SAMPLE = b"1,2.5,,nan,1e-7,True\n-3,0.1,NA,4,-0.0,False\n7,1e38,8,,0.30000001,True\n"

    def __init__(self, pandas):
        self.pandas = pandas
        self.kwargs = None
        try:
            from pandas._libs.parsers import TextReader
            from pandas.io.parsers.readers import STR_NA_VALUES

            self.reader = TextReader
            self.kwargs = {
                "delimiter": ",", "escapechar": None, "quotechar": '"', "quoting": 0, "doublequote": True,
                "skipinitialspace": False, "lineterminator": None, "header": None, "index_col": None,
                "names": None, "skiprows": set(), "na_values": set(STR_NA_VALUES), "keep_default_na": True,
                "true_values": None, "false_values": None, "converters": {}, "dtype": None, "thousands": None,
                "comment": None, "decimal": ".", "usecols": None, "skip_blank_lines": True,
                "encoding_errors": "strict", "on_bad_lines": 0, "dtype_backend": "numpy", "na_filter": True,
                "float_precision": None, "na_fvalues": set(), "allow_leading_cols": True,
            }
            ours = self.parse(self.SAMPLE)
            theirs = pandas.read_csv(io.BytesIO(self.SAMPLE), header=None, engine="c").to_numpy(dtype=np.float32)
            if ours is None or ours.shape != theirs.shape or ours.tobytes() != theirs.tobytes():
                self.kwargs = None
        except Exception:  # noqa: BLE001 - another pandas: read_csv it is
            self.kwargs = None

    def parse(self, block):
        """float32 rows, or None where ``read_csv`` must decide (errors included: its messages are the ones shown)."""
        try:
            chunks = self.reader(io.BytesIO(block), **self.kwargs).read_low_memory(None)
        except Exception:  # noqa: BLE001 - bad rows, no rows: read_csv reports them
            return None
        if not chunks or not chunks[0] or any(chunk.keys() != chunks[0].keys() for chunk in chunks):
            return None
        rows = sum(len(chunk[0]) for chunk in chunks)
        array = np.empty((rows, len(chunks[0])), np.float32)
        for index in chunks[0]:
            kinds = {getattr(getattr(chunk[index], "dtype", None), "kind", None) for chunk in chunks}
            if len(kinds) != 1 or not kinds <= set("biuf") or len({chunk[index].dtype for chunk in chunks}) != 1:
                return None  # a column read_csv would concatenate across dtypes (or not numbers): its call
            start = 0
            for chunk in chunks:
                values = chunk[index]
                array[start:start + len(values), index] = values
                start += len(values)
        return array


_FAST = {}


def _fast_reader(pandas):
    reader = _FAST.get(id(pandas))
    if reader is None:
        reader = _FAST[id(pandas)] = _TextReader(pandas)
    return reader if reader.kwargs is not None else None


def _parse_text(block, strings):
    pandas = _pandas()
    if pandas is not None and not strings:
        fast = _fast_reader(pandas)
        array = fast.parse(block) if fast is not None else None
        if array is not None:
            return array
    if pandas is None:
        text = io.StringIO(block.decode("utf-8"))
        if strings:
            return np.loadtxt(text, delimiter=",", dtype=str, ndmin=2, comments=None).astype(object)
        return np.loadtxt(text, delimiter=",", dtype=np.float32, ndmin=2, comments=None)
    try:
        if strings:
            frame = pandas.read_csv(io.BytesIO(block), header=None, engine="c", dtype=str, keep_default_na=False,
                                    skip_blank_lines=True)
            return frame.to_numpy(dtype=object)
        frame = pandas.read_csv(io.BytesIO(block), header=None, engine="c",  # float64 parses fastest
                                skip_blank_lines=True)
    except pandas.errors.EmptyDataError:
        return np.zeros((0, 0), object if strings else np.float32)
    except (pandas.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    return frame.to_numpy(dtype=np.float32)


def _parse(block, lines_before, columns, source, missing, strings):
    _check_width(block, lines_before, columns, source)
    try:
        array = _parse_text(block, strings)
    except ValueError:
        _find_bad_line(block, lines_before, columns, source, missing)
        raise DataError(f"CSV cannot be parsed after line {lines_before}", source=source) from None
    if strings:
        if columns is not None and array.size and array.shape[1] != columns:
            _find_bad_line(block, lines_before, columns, source, True)
        return array
    if columns is not None and array.size and array.shape[1] != columns:
        _find_bad_line(block, lines_before, columns, source, missing)
    if not missing:
        if np.isnan(array).any():  # empty fields or a ragged row read as NaN
            _find_bad_line(block, lines_before, columns if columns is not None else array.shape[1], source, False)
        return array
    if array.size and not _rows_complete(block, *array.shape):  # NaN is legal here, so a short (ragged) row
        numbers, fields = _line_field_counts(block)                # must be found from its field count
        wrong = np.flatnonzero(fields != array.shape[1])
        if wrong.size:
            raise DataError(f"CSV line has {int(fields[wrong[0]])} columns, expected {array.shape[1]}",
                            source=source, record=lines_before + int(numbers[wrong[0]]))
    return array


def iter_csv_blocks(stream, source=None, *, missing=False, strings=False, columns=None):
    """Yield ``(array, first_row)``: float32 (or object) 2-D blocks of whole rows and the number of rows before.

    ``columns``: the expected number of columns, when known (checked before parsing)."""
    rows_before = 0
    for block, lines_before in _blocks(stream):
        array = _parse(block, lines_before, columns, source, missing, strings)
        if not array.size:
            continue
        columns = array.shape[1]
        yield array, rows_before
        rows_before += array.shape[0]


def iter_csv_batches(stream, batch_size, label_size=0, source=None):
    """Yield ``(features, labels)`` float32 blocks of at most ``batch_size`` rows (labels None if label_size 0)."""
    for array, first in iter_csv_blocks(stream, source):
        if label_size >= array.shape[1]:
            raise DataError(f"CSV has {array.shape[1]} columns, not more than label_size={label_size}",
                            source=source, record=first + 1)
        for start in range(0, array.shape[0], batch_size):
            part = array[start:start + batch_size]
            labels = None
            if label_size:
                labels = part[:, 0] if label_size == 1 else part[:, :label_size]
            yield np.ascontiguousarray(part[:, label_size:]), labels
