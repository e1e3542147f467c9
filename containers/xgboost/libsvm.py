"""libsvm text, ``label[:weight] index:value ...`` per line, parsed a block at a time with numpy.

The block's bytes are scanned once for token boundaries and colons; every number is then read by numpy's C
parser in one call (colons turned into spaces), and the token structure says which number is a label, a
weight, an index or a value. A malformed line is found afterwards, line by line, for the error message.
Indices are returned as written; the caller decides between zero- and one-based.
"""

import warnings

import numpy as np
import scipy.sparse as sp

from common.errors import DataError

_SPACE = np.zeros(256, bool)
_SPACE[[ord(" "), ord("\t"), ord("\r"), ord("\n")]] = True
_COLON_TO_SPACE = bytes.maketrans(b":", b" ")


class Parsed:
    """One block: labels, weights (None when no line has one), indices and values in CSR layout."""

    def __init__(self, labels, weights, indptr, indices, values):
        self.labels = labels
        self.weights = weights
        self.indptr = indptr
        self.indices = indices
        self.values = values

    @property
    def rows(self):
        return self.labels.shape[0]

    def matrix(self, num_feature, shift):
        indices = self.indices - shift if shift else self.indices
        return sp.csr_matrix((self.values, indices.astype(np.int32), self.indptr), shape=(self.rows, num_feature))


def _bad_line(block, lines_before, source):
    """Raise a DataError for the first malformed line of a block."""
    for number, line in enumerate(block.split(b"\n"), start=lines_before + 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith(b"#"):
            continue
        head = tokens[0].split(b":")
        try:
            [float(x) for x in head]
        except ValueError:
            raise DataError(f"libsvm label {tokens[0].decode(errors='replace')!r} is not a number", source=source,
                            record=number) from None
        if len(head) > 2:
            raise DataError("libsvm label must be 'label' or 'label:weight'", source=source, record=number)
        for token in tokens[1:]:
            parts = token.split(b":")
            text = token.decode(errors="replace")
            if parts[0] == b"qid":
                raise DataError("libsvm 'qid:' (ranking groups) is not supported in this image", source=source,
                                record=number)
            if len(parts) != 2:
                raise DataError(f"libsvm feature {text!r} must be index:value", source=source, record=number)
            try:
                index, value = int(parts[0]), float(parts[1])
            except ValueError:
                raise DataError(f"libsvm feature {text!r} must be a whole index and a number", source=source,
                                record=number) from None
            if index < 0:
                raise DataError(f"libsvm feature index {index} is negative", source=source, record=number)
            del value
    raise DataError("libsvm block cannot be parsed", source=source, record=lines_before + 1)


def parse(block, lines_before=0, source=None):
    """Parse whole lines of libsvm bytes (no partial last line)."""
    if b"qid:" in block:
        _bad_line(block, lines_before, source)
    if b"#" in block:  # comments to the end of the line
        block = b"\n".join(line.split(b"#", 1)[0] for line in block.split(b"\n"))
    raw = np.frombuffer(block, np.uint8)
    space = _SPACE[raw]
    start = ~space
    start[1:] &= space[:-1]
    token_starts = np.flatnonzero(start)
    if token_starts.size == 0:
        empty = np.zeros(0, np.float32)
        return Parsed(empty, None, np.zeros(1, np.int64), np.zeros(0, np.int64), empty)
    colons = np.flatnonzero(raw == ord(":"))
    # which token each colon belongs to, and how many colons each token has
    colon_token = np.searchsorted(token_starts, colons, side="right") - 1
    colon_count = np.bincount(colon_token, minlength=token_starts.size)
    newlines = np.flatnonzero(raw == ord("\n"))
    token_line = np.searchsorted(newlines, token_starts)  # line number of each token within the block
    first_of_line = np.ones(token_starts.size, bool)
    first_of_line[1:] = token_line[1:] != token_line[:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns (and stops) at the first token that is not a number
        try:
            numbers = np.fromstring(block.translate(_COLON_TO_SPACE), dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            _bad_line(block, lines_before, source)
    expected = token_starts.size + colons.size
    if numbers.size != expected or np.any(colon_count[~first_of_line] != 1) or np.any(colon_count > 2):
        _bad_line(block, lines_before, source)
    offsets = np.arange(token_starts.size) + np.concatenate(([0], np.cumsum(colon_count)[:-1]))
    label_tokens = np.flatnonzero(first_of_line)
    labels = numbers[offsets[label_tokens]].astype(np.float32)
    weights = None
    has_weight = colon_count[label_tokens] == 1
    if has_weight.any():
        if not has_weight.all():
            line = int(np.flatnonzero(~has_weight)[0])
            raise DataError("some libsvm lines give a weight (label:weight) and others do not", source=source,
                            record=lines_before + int(token_line[label_tokens[line]]) + 1)
        weights = numbers[offsets[label_tokens] + 1].astype(np.float32)
    feature_tokens = offsets[~first_of_line]
    index_values = numbers[feature_tokens]
    indices = index_values.astype(np.int64)
    if indices.size and (np.any(indices != index_values) or indices.min() < 0):
        _bad_line(block, lines_before, source)
    values = numbers[feature_tokens + 1].astype(np.float32)
    per_line = np.bincount(np.cumsum(first_of_line) - 1, weights=~first_of_line, minlength=labels.size)
    indptr = np.zeros(labels.size + 1, np.int64)
    np.cumsum(per_line.astype(np.int64), out=indptr[1:])
    return Parsed(labels, weights, indptr, indices, values)


def parse_request(body):
    """A serving request: rows of ``[label] index:value ...``; a first token without a colon is a label."""
    lines = []
    for line in body.split(b"\n"):
        tokens = line.split(b"#", 1)[0].split()
        if not tokens:
            continue
        if b":" not in tokens[0]:
            tokens = tokens[1:]
        lines.append(b"0 " + b" ".join(tokens))
    if not lines:
        raise DataError("libsvm request holds no rows")
    return parse(b"\n".join(lines) + b"\n", source="request")
