"""CSV training/inference data: no header, the first ``label_size`` columns are labels, the rest features.

Read in blocks of whole lines (bounded memory) and parsed by pandas' C parser where the image installs
pandas (about 3x faster), else numpy's C ``loadtxt``; a bad line is then found and reported with its file
and line number.
"""

import io

import numpy as np

from .errors import DataError

BLOCK_BYTES = 16 << 20


def _blocks(stream):
    """Chunks of whole lines, each with the number of lines before it."""
    rest = b""
    lines_before = 0
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield block, lines_before
        lines_before += block.count(b"\n")
    if rest.strip():
        yield rest, lines_before


def _find_bad_line(block, lines_before, columns, source):
    for number, line in enumerate(block.split(b"\n"), start=lines_before + 1):
        if not line.strip():
            continue
        fields = line.split(b",")
        if columns is not None and len(fields) != columns:
            raise DataError(f"CSV line has {len(fields)} columns, expected {columns}", source=source,
                            record=number)
        for field in fields:
            try:
                float(field)
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


def _parse_text(block):
    pandas = _pandas()
    if pandas is None:
        return np.loadtxt(io.StringIO(block.decode("utf-8")), delimiter=",", dtype=np.float32, ndmin=2,
                          comments=None)
    try:
        frame = pandas.read_csv(io.BytesIO(block), header=None, engine="c",  # float64 parses fastest
                                skip_blank_lines=True)
    except pandas.errors.EmptyDataError:
        return np.zeros((0, 0), np.float32)
    except pandas.errors.ParserError as exc:
        raise ValueError(str(exc)) from None
    return frame.to_numpy(dtype=np.float32)


def _parse(block, lines_before, columns, source):
    try:
        array = _parse_text(block)
    except ValueError:
        _find_bad_line(block, lines_before, columns, source)
        raise DataError(f"CSV cannot be parsed after line {lines_before}", source=source) from None
    if (columns is not None and array.size and array.shape[1] != columns) or np.isnan(array).any():
        _find_bad_line(block, lines_before, columns, source)  # ragged or empty fields read as NaN
    return array


def iter_csv_batches(stream, batch_size, label_size=0, source=None):
    """Yield ``(features, labels)`` float32 blocks of at most ``batch_size`` rows (labels None if label_size 0)."""
    columns = None
    for block, lines_before in _blocks(stream):
        array = _parse(block, lines_before, columns, source)
        if not array.size:
            continue
        columns = array.shape[1]
        if label_size >= columns:
            raise DataError(f"CSV has {columns} columns, not more than label_size={label_size}", source=source,
                            record=lines_before + 1)
        for start in range(0, array.shape[0], batch_size):
            part = array[start:start + batch_size]
            labels = None
            if label_size:
                labels = part[:, 0] if label_size == 1 else part[:, :label_size]
            yield np.ascontiguousarray(part[:, label_size:]), labels
