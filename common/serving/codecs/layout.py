"""Responses of millions of records, laid out by numpy, a chunk of records at a time.

A text response is records of constant bytes (keys, brackets, commas) around one *token* per column (a
number, or a vector's ``[...]``). Each column's tokens for a chunk come from one call that formats the whole
column (orjson for JSON numbers, one ``%`` for a chunk of CSV lines), and the chunk's bytes from numpy (a
padded byte matrix, see ``assemble``) or ``bytes.replace`` on orjson's text: no Python object per record,
and only one chunk's bytes held at a time (the body is streamed).

The number formats are exactly those of the per-record encoders: orjson's for JSON (orjson formats a numpy
float64 as it does a Python float), ``%.9g`` or ``repr`` for CSV.
"""

import functools
import operator
from dataclasses import dataclass

import numpy as np

from .rows import NonFiniteOutput

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is in the runtime's requirements
    orjson = None

MAX_DISTINCT = 1 << 18  # distinct records held as bytes objects at most (repeated rows, see ``distinct_arrays``)
CHUNK_ROWS = 1 << 15  # records per chunk: about 1.5 MB of JSON for two scalar columns
COMMA, OPEN, CLOSE = b",[]"


@dataclass
class Tokens:
    """One token per record: the ``lengths[i]`` bytes of ``buffer`` (a uint8 array) from ``starts[i]``."""

    buffer: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray


def numeric(values, name):
    """A column as a numpy array the vectorised path formats exactly as ``rows.column_list`` does (integers stay
    integers, booleans and floats are formatted as float64, floats checked finite), or None for anything else (strings, nested
    lists, 3-D arrays): those take the per-record path."""
    if isinstance(values, list) and values and not isinstance(values[0], (int, float, np.number)):
        return None
    array = np.asarray(values)
    if array.ndim not in (1, 2):
        return None
    if array.dtype.kind in "iu":
        return array
    if array.dtype.kind not in "bf":
        return None
    if array.dtype.kind == "b":
        array = array.astype(np.float64)  # floats (float32 too) are widened chunk by chunk, when formatted
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))[0])
        raise NonFiniteOutput(f"The model's {name!r} for record {bad} is not finite; the record's features are "
                              "outside the range this model can answer for")
    return array


def numeric_columns(columns, names):
    """``{name: array}`` for the named columns when all are numeric (see ``numeric``), else None."""
    if orjson is None:
        return None
    arrays = {}
    for name in names:
        array = numeric(columns[name], name)
        if array is None:
            return None
        arrays[name] = array
    return arrays


def split_tokens(data, delimiter, count, skip=0, trailing=0):
    """Tokens of ``data`` (bytes) separated by one ``delimiter`` byte, after ``skip`` leading and before
    ``trailing`` final bytes."""
    buffer = np.frombuffer(data, np.uint8)
    cuts = np.flatnonzero(buffer[skip:len(buffer) - trailing] == delimiter) + skip
    if len(cuts) != count - 1:
        raise ValueError(f"expected {count} tokens, found {len(cuts) + 1}")
    starts = np.empty(count, np.int64)
    starts[0] = skip
    starts[1:] = cuts + 1
    ends = np.empty(count, np.int64)
    ends[:-1] = cuts
    ends[-1] = len(buffer) - trailing
    return Tokens(buffer, starts, ends - starts)


WHOLE_BOUND = 1e16  # orjson writes a whole float64 under this as its integer and ".0"; 1e16 as 1e+16


def whole(array):
    """Does orjson write every value of a float array as the value's integer and ".0" (whole numbers under
    WHOLE_BOUND, no -0.0)? Such a column is formatted from int64 (orjson writes integers about twice as fast)."""
    return bool(array.dtype.kind == "f" and (np.abs(array) < WHOLE_BOUND).all() and (np.trunc(array) == array).all()
                and not (np.signbit(array) & (array == 0)).any())


def json_pieces(array):
    """A numeric column's pieces for ``assemble``: its tokens (``json_tokens``), and after each the ``.0`` of a
    1-D column of whole floats, formatted as integers (``whole``)."""
    if array.ndim == 1 and whole(array):
        return [json_tokens(array.astype(np.int64)), b".0"]
    return [json_tokens(array)]


def json_tokens(array):
    """A numeric column's JSON tokens: each number (1-D) or each row's ``[...]`` (2-D), as orjson writes them."""
    if array.ndim == 2 and array.size and whole(array):  # b"[[1,2],[3,4]]" -> b"[[1.0,2.0],[3.0,4.0]]"
        data = orjson.dumps(np.ascontiguousarray(array.astype(np.int64)), option=orjson.OPT_SERIALIZE_NUMPY)
        data = data[:-2].replace(b",", b".0,").replace(b"].0,[", b".0],[") + b".0]]"
    else:
        if array.dtype.kind == "f":
            array = array.astype(np.float64, copy=False)  # orjson writes a float32 array as float32 (shorter)
        data = orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)
    if array.ndim == 1:
        return split_tokens(data, COMMA, len(array), skip=1, trailing=1)
    buffer = np.frombuffer(data, np.uint8)
    starts = np.flatnonzero(buffer == OPEN)[1:]
    ends = np.flatnonzero(buffer == CLOSE)[:-1] + 1
    return Tokens(buffer, starts.astype(np.int64), (ends - starts).astype(np.int64))


def _merged(pieces):
    out = []
    for piece in pieces:
        if isinstance(piece, bytes):
            if not piece:
                continue
            if out and isinstance(out[-1], bytes):
                out[-1] += piece
                continue
        out.append(piece)
    return out


@functools.lru_cache(maxsize=64)
def _keep(width):
    """Row ``k`` keeps the first ``k`` of ``width`` bytes (0xFF) and zeroes the rest: the mask of a token of k bytes."""
    return ((np.arange(width + 1)[:, None] > np.arange(width)[None, :]) * 0xFF).astype(np.uint8)


def _copy_tokens(tokens, width, out):
    """Each token into its row of ``out`` (rows of ``width`` bytes), zero-padded: the ``width`` bytes from its
    start, through a sliding-window view of the buffer, masked to its length; the last tokens, whose window would
    run past the buffer's end, one by one (at most ``width`` of them)."""
    buffer, starts, lengths = tokens.buffer, tokens.starts, tokens.lengths
    limit = len(buffer) - width
    if limit < 0:
        buffer, limit = np.concatenate([buffer, np.zeros(width, np.uint8)]), len(buffer)
    windows = np.lib.stride_tricks.sliding_window_view(buffer, width)
    np.bitwise_and(windows[np.minimum(starts, limit)], _keep(width)[lengths], out=out)
    for row in range(int(np.searchsorted(starts, limit, side="right")), len(starts)):
        start, length = int(starts[row]), int(lengths[row])
        out[row] = 0
        out[row, :length] = buffer[start:start + length]


def assemble(pieces, count):
    """The bytes of ``count`` records, each the concatenation of ``pieces``: constant bytes, or Tokens (one per
    record). Numpy lays the records out as rows of a zero-padded byte matrix (a template row of the constants;
    each token in a column as wide as its longest, copied through a sliding-window view of its buffer: one index
    per token, not per byte) and drops the padding (no text here holds a NUL byte: orjson escapes it, numbers
    have none)."""
    pieces = _merged(pieces)
    widths = [len(piece) if isinstance(piece, bytes) else int(piece.lengths.max(initial=0)) for piece in pieces]
    template = np.zeros(sum(widths), np.uint8)
    offset = 0
    for piece, width in zip(pieces, widths):
        if isinstance(piece, bytes):
            template[offset:offset + width] = np.frombuffer(piece, np.uint8)
        offset += width
    matrix = np.empty((count, len(template)), np.uint8)
    matrix[:] = template
    offset = 0
    for piece, width in zip(pieces, widths):
        if not isinstance(piece, bytes) and width:
            _copy_tokens(piece, width, matrix[:, offset:offset + width])
        offset += width
    flat = matrix.ravel()
    return flat[flat != 0].tobytes()


def records_stream(count, records_for, separator, head=b"", tail=b"", rows=None):
    """The chunks of a body: ``head``, then ``count`` records joined by ``separator``, then ``tail``;
    ``records_for(start, stop, separator, trailing)`` gives the bytes of records ``start:stop`` joined by
    ``separator``, and one more after the last when ``trailing`` (every chunk but the last: no copy to add it)."""
    rows = rows or CHUNK_ROWS
    if head:
        yield head
    for start in range(0, count, rows):
        stop = min(count, start + rows)
        yield records_for(start, stop, separator, stop < count)
    if tail:
        yield tail


def assembled(pieces, count, separator, trailing=False):
    """``count`` records of ``pieces`` (see ``assemble``) joined by ``separator`` (and one after the last when
    ``trailing``)."""
    body = assemble(list(pieces) + [separator], count)
    return body[:len(body) - len(separator)] if separator and not trailing else body


def json_object_pieces(arrays, names, start, stop):
    """``{"name": token, ...}`` of records ``start:stop`` of numeric columns, keys as orjson writes them."""
    pieces = []
    for number, name in enumerate(names):
        pieces.append((b"{" if number == 0 else b",") + orjson.dumps(name) + b":")
        pieces.extend(json_pieces(arrays[name][start:stop]))
    pieces.append(b"}" if names else b"{}")
    return pieces


def json_objects(arrays, names, start, stop, separator, trailing=False):
    """Records ``start:stop`` as JSON objects joined by ``separator`` (and one after the last when ``trailing``):
    by ``bytes.replace`` on orjson's text of the columns where their shape allows (``_replaced``), else laid out
    by ``assemble``."""
    body = _replaced(arrays, names, start, stop, separator, trailing)
    if body is None:
        body = assembled(json_object_pieces(arrays, names, start, stop), stop - start, separator, trailing)
    return body


def _float64(array):
    return array.astype(np.float64, copy=False) if array.dtype.kind == "f" else array


def _replaced(arrays, names, start, stop, separator, trailing=False):
    """One column (numbers or vectors), or two columns of floats, as JSON objects by ``bytes.replace`` on
    orjson's text of the column (or of both as an (n, 2) array); None for other shapes (``assemble`` then:
    faster where an integer column would need its ".0" removed)."""
    columns = [arrays[name][start:stop] for name in names]
    keys = [b"{" + orjson.dumps(name) + b":" for name in names]
    end = separator if trailing else b""
    if len(columns) == 1:
        data = orjson.dumps(np.ascontiguousarray(_float64(columns[0])), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        if columns[0].ndim == 1:
            return b"".join((keys[0], data.replace(b",", b"}" + separator + keys[0]), b"}", end))
        return b"".join((keys[0], data.replace(b"],[", b"]}" + separator + keys[0] + b"["), b"}", end))
    if len(columns) != 2 or any(column.ndim != 1 or column.dtype.kind != "f" for column in columns):
        return None
    pairs = np.column_stack([column.astype(np.float64) for column in columns])
    data = orjson.dumps(pairs, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2]  # b"a0,b0],[a1,b1"
    data = data.replace(b"],[", b"\x00").replace(b",", b"," + keys[1][1:]).replace(b"\x00", b"}" + separator + keys[0])
    return b"".join((keys[0], data, b"}", end))


def repr_differs(array):
    """Where orjson's token of a float differs from ``repr``'s (elementwise): they differ only in exponent notation
    (orjson writes ``0.00001`` and ``1e-7`` where repr writes ``1e-05`` and ``1e-07``: below 1e-4 or from 1e16 in
    magnitude) and for non-finite values (orjson writes null)."""
    magnitude = np.abs(array)
    return ~(((magnitude >= 1e-4) & (magnitude < 1e16)) | (array == 0))


def csv_stream(arrays, names, float_format="%.9g", rows=None):
    """CSV lines of numeric columns in chunks, one record per line, a 2-D column's row as that many fields:
    integers as ``%d``, floats as ``float_format`` (``%.9g``, or ``%r`` for ``repr``), no final newline."""
    rows = rows or CHUNK_ROWS
    fields = []  # (array, column or None, pattern)
    for name in names:
        array = arrays[name]
        pattern = "%d" if array.dtype.kind in "iu" else float_format
        if array.ndim == 1:
            fields.append((array, None, pattern))
        else:
            fields.extend((array, column, pattern) for column in range(array.shape[1]))
    line = ",".join(pattern for *_, pattern in fields) + "\n"
    count = len(arrays[names[0]]) if names else 0
    all_repr = bool(fields) and all(pattern in ("%r", "%d") for *_, pattern in fields)

    def chunks():
        for start in range(0, count, rows):
            stop = min(count, start + rows)
            text = _repr_lines(fields, start, stop) if all_repr else None  # no final newline
            if text is not None:
                yield text + b"\n" if stop < count else text
                continue
            flat = [None] * ((stop - start) * len(fields))
            for number, (array, column, _) in enumerate(fields):
                part = array[start:stop] if column is None else array[start:stop, column]
                flat[number::len(fields)] = part.tolist()
            text = (line * (stop - start) % tuple(flat)).encode()
            yield text if stop < count else text[:-1]

    return chunks()


def _repr_lines(fields, start, stop):
    """``%r`` lines of float fields, or ``%d`` lines of integer fields, through orjson (else None), no final
    newline: its tokens are repr's digits (both the shortest round trip), with repr itself for the values whose
    notation differs (``repr_differs``)."""
    parts = [array[start:stop] if column is None else array[start:stop, column] for array, column, _ in fields]
    block = parts[0] if len(parts) == 1 else np.column_stack(parts)  # one field: 1-D, one line per value
    if block.dtype.kind == "f":
        if any(pattern != "%r" for *_, pattern in fields):
            return None
        block = block.astype(np.float64, copy=False)
    elif block.dtype.kind not in "iu" or any(pattern != "%d" for *_, pattern in fields):
        return None
    if orjson is None:
        return None
    differs = np.flatnonzero(repr_differs(block)) if block.dtype.kind == "f" else ()
    if not len(differs):
        data = orjson.dumps(np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY)
        if block.ndim == 1:
            return data[1:-1].replace(b",", b"\n")
        return data[2:-2].replace(b"],[", b"\n")
    values = np.ascontiguousarray(block).reshape(-1)
    tokens = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    for index in differs.tolist():
        tokens[index] = repr(float(values[index])).encode()
    if block.ndim == 1:
        return b"\n".join(tokens)
    text = np.frombuffer(bytearray(b",".join(tokens)), np.uint8)  # no token holds a comma
    text[np.flatnonzero(text == COMMA)[block.shape[1] - 1::block.shape[1]]] = ord("\n")  # each record's end
    return text.tobytes()


def distinct_arrays(columns, names):
    """For a prediction of repeated rows (``Prediction.inverse``: columns of the D distinct records): the named
    columns as numeric arrays when each distinct record can be formatted once and its bytes repeated (numeric
    columns, finite, at least one, D at most ``MAX_DISTINCT``), else None (the columns are then expanded, and a
    non-finite value is reported for the first record that holds it)."""
    if orjson is None or not names or len(columns[names[0]]) > MAX_DISTINCT:
        return None
    try:
        return numeric_columns(columns, names)
    except NonFiniteOutput:
        return None


def distinct_records(count, records_for, separator):
    """The bytes of each of ``count`` records, from ``records_for`` (see ``records_stream``) run on them joined by
    ``separator`` (a byte no record holds), split; plus an empty one last (``repeated_stream``'s trailing one)."""
    pieces = []
    for start in range(0, count, CHUNK_ROWS):
        stop = min(count, start + CHUNK_ROWS)
        pieces.extend(records_for(start, stop, separator, False).split(separator))
    if len(pieces) != count:
        raise ValueError(f"expected {count} records, found {len(pieces)}")  # pragma: no cover - a separator inside
    pieces.append(b"")
    return pieces


def repeated_stream(pieces, inverse, separator, head=b"", tail=b"", rows=None):
    """``records_stream``'s chunks for records that repeat: record i is ``pieces[inverse[i]]`` (the distinct records'
    bytes, an empty one last: ``distinct_records``), each chunk one ``join`` of the chunk's records (C speed, no
    Python step per record), with the separator after the last record of every chunk but the last."""
    rows = rows or CHUNK_ROWS
    count = len(inverse)
    empty = len(pieces) - 1
    if head:
        yield head
    for start in range(0, count, rows):
        stop = min(count, start + rows)
        picked = inverse[start:stop].tolist()
        if stop < count:
            picked.append(empty)
        yield separator.join(operator.itemgetter(*picked)(pieces)) if len(picked) > 1 else pieces[picked[0]]
    if tail:
        yield tail
