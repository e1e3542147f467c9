"""libsvm text: ``<label>[:<weight>] <index>:<value> ...`` per line, read as float32 CSR batches.

Indices are zero- or one-based; like the xgboost library (dmlc's parser with ``indexing_mode`` auto), a file
whose first block holds no index 0 is taken as one-based and shifted down by one. A later index 0 in a file
taken as one-based is a data error naming the line. ``qid:<n>`` tokens (ranking) are skipped. Lines are split
in Python (one call per line) and the numbers parsed by numpy in one call per block.
"""

import re

import numpy as np
import scipy.sparse as sp

from .csv_reader import _blocks
from .errors import DataError

_QID = re.compile(rb"(^|\s)qid:\S+")
MAX_INDEX = 2**31 - 2


def _numbers(text, expected, what, lines, source, lines_before):
    """Parse whitespace-separated numbers; find the offending line when the count is off."""
    try:
        values = np.array(text.split(), dtype=np.float64) if text else np.zeros(0)
    except ValueError:
        values = None
    if values is None or values.size != expected:
        _find_bad_line(lines, source, lines_before)
        raise DataError(f"libsvm {what} cannot be parsed after line {lines_before}", source=source)
    return values


def _find_bad_line(lines, source, lines_before):
    for number, line in lines:
        label, _, rest = line.partition(b" ")
        head = label.split(b":")
        try:
            [float(x) for x in head]
        except ValueError:
            raise DataError(f"libsvm label {label.decode('utf-8', 'replace')!r} is not a number",
                            source=source, record=lines_before + number) from None
        if len(head) > 2:
            raise DataError(f"libsvm label {label.decode('utf-8', 'replace')!r} has more than label:weight",
                            source=source, record=lines_before + number)
        for token in rest.split():
            index, colon, value = token.partition(b":")
            try:
                if not colon:
                    raise ValueError
                int(index)
                float(value)
            except ValueError:
                raise DataError(f"libsvm token {token.decode('utf-8', 'replace')!r} is not <index>:<value>",
                                source=source, record=lines_before + number) from None


def parse_block(block, source=None, lines_before=0, one_based=None):
    """``(indptr, indices, values, labels, weights or None, one_based)`` of a block of whole lines."""
    lines = []
    for number, raw in enumerate(block.split(b"\n"), start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if b"qid:" in line:
            line = _QID.sub(b" ", line).strip()
        lines.append((number, b" ".join(line.split())))  # tabs and runs of spaces -> one space
    heads, tails, counts = [], [], []
    has_weights = False
    for _, line in lines:
        head, _, tail = line.partition(b" ")
        if b":" in head:
            has_weights = True
        heads.append(head)
        tails.append(tail)
        counts.append(tail.count(b":"))
    head_text = b" ".join(h if b":" in h else h + b":1" for h in heads) if has_weights else b" ".join(heads)
    head_values = _numbers(head_text.replace(b":", b" "), len(heads) * (2 if has_weights else 1), "labels",
                           lines, source, lines_before)
    pairs = _numbers(b" ".join(tails).replace(b":", b" "), 2 * sum(counts), "features", lines, source,
                     lines_before).reshape(-1, 2)
    if has_weights:
        labels, weights = head_values[0::2].astype(np.float32), head_values[1::2].astype(np.float32)
    else:
        labels, weights = head_values.astype(np.float32), None
    indices = pairs[:, 0]
    if indices.size and (not np.all(indices == np.floor(indices)) or indices.min() < 0 or indices.max() > MAX_INDEX):
        _find_bad_line(lines, source, lines_before)
        bad = int(np.flatnonzero((indices != np.floor(indices)) | (indices < 0) | (indices > MAX_INDEX))[0])
        row = int(np.searchsorted(np.cumsum(counts), bad, side="right"))
        raise DataError(f"libsvm index {float(indices[bad]):g} is not a whole number in [0, {MAX_INDEX}]", source=source,
                        record=lines_before + lines[row][0])
    indices = indices.astype(np.int64)
    if one_based is None:
        one_based = bool(indices.size) and int(indices.min()) > 0
    if one_based:
        if indices.size and int(indices.min()) == 0:
            row = int(np.searchsorted(np.cumsum(counts), int(np.flatnonzero(indices == 0)[0]), side="right"))
            raise DataError("libsvm index 0 in a file whose first lines are one-based (no index 0); use one "
                            "convention per file", source=source, record=lines_before + lines[row][0])
        indices -= 1
    indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return indptr, indices, pairs[:, 1].astype(np.float32), labels, weights, one_based


def iter_libsvm_batches(stream, batch_size, feature_dim=None, source=None):
    """Yield ``(CSR features, labels, weights or None, first_row)`` of at most ``batch_size`` rows."""
    one_based = None
    rows_before = 0
    for block, lines_before in _blocks(stream):
        indptr, indices, values, labels, weights, one_based = parse_block(block, source, lines_before, one_based)
        n = len(labels)
        if not n:
            continue
        width = int(indices.max()) + 1 if indices.size else 0
        if feature_dim is not None:
            if width > feature_dim:
                row = int(np.searchsorted(indptr, int(np.argmax(indices)), side="right")) - 1
                raise DataError(f"libsvm feature index {width - 1 + int(one_based)} is outside feature_dim="
                                f"{feature_dim}", source=source, record=rows_before + row)
            width = feature_dim
        matrix = sp.csr_matrix((values, indices, indptr), shape=(n, width))
        matrix.sum_duplicates()
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield (matrix[start:stop], labels[start:stop], None if weights is None else weights[start:stop],
                   rows_before + start)
        rows_before += n
