"""libsvm text: ``<label>[:<weight>] <index>:<value> ...`` per line, parsed vectorised into float32 CSR rows.

The whole buffer is read by numpy, never split line by line in Python: byte classes find the tokens
(whitespace-separated), the colons inside them and the numbers (runs between spaces and colons); every
number is then checked against the grammar ``[+-]digits[.digits][(e|E)[+-]digits]`` (or nan/inf/infinity)
and converted from its digits in bulk (correctly rounded to float32, as ``float()`` is). A request of 3,000,000
label-only lines decodes in about 0.45 s with a 130 MB traced peak, the result included (split line by line it
took 15.8 s and ~680 MB); dmlc-core's C++ libsvm parser is still about 4x faster on plain numeric files
(benchmarks/bench_libsvm.py). Only when something is
malformed are lines looked at one by one, and only the few that bisection leaves (about log2(lines) vectorised
passes over halves), to name the first bad line.

Indices are zero- or one-based; like dmlc-core's libsvm parser (``indexing_mode`` auto), a file
whose first block holds no index 0 is taken as one-based and shifted down by one. A later index 0 in a file
taken as one-based is a data error naming the line. ``#`` starts a comment to the end of the line.
``qid:<n>`` tokens (ranking: the query id of the line's row) are skipped, refused with ``qid="refuse"``, or
returned with ``qid="keep"`` as ``Parsed.qid`` (int64, one per row; None when no line has one; with some, every
line needs exactly one). Only buffers holding ``qid:`` pay for it (a few vectorised passes over the buffer).
"""

import re

import numpy as np
import scipy.sparse as sp

from .errors import DataError

MAX_INDEX = 2**31 - 2
MIXED_WEIGHTS = "some libsvm lines give a weight (label:weight) and others do not"
PIECE_BYTES = 256 << 10  # line-aligned pieces parsed at a time: bounds the per-byte temporaries (~20 bytes each)

SPACE, COLON, DIGIT, DOT, SIGN, EXP, LETTER, OTHER = range(8)  # separators first: cls <= COLON
_CLASS = np.full(256, OTHER, np.uint8)
_CLASS[list(b" \t\r\n\v\f")] = SPACE
_CLASS[list(b"0123456789")] = DIGIT
_CLASS[ord(".")] = DOT
_CLASS[list(b"+-")] = SIGN
_CLASS[list(b"eE")] = EXP
_CLASS[ord(":")] = COLON
_CLASS[list(b"nNaAiIfFtTyY")] = LETTER  # nan, inf, infinity
_NONZERO_DIGIT = np.zeros(256, bool)
_NONZERO_DIGIT[list(b"123456789")] = True
_ALLOWED = bytes(i for i in range(256) if _CLASS[i] != OTHER)
with np.errstate(over="ignore"):
    _POW10 = 10.0 ** np.arange(400, dtype=np.float64)  # past 1e308: inf
_QID = re.compile(rb"(?:^|(?<=\s))qid:\S*")
MIXED_QID = "some libsvm lines give a query id (qid:) and others do not"
MAX_QID = 2**63 - 1
QID_DIGITS = 19  # the digits of MAX_QID
_COMMENT = re.compile(rb"#[^\n]*")
_TOKEN = re.compile(rb"\S*")
_SEPARATOR = re.compile(rb"[\s:]")


class _Malformed(Exception):
    """Somewhere in this buffer is a malformed line (found afterwards, by bisection)."""


class _MixedWeights(Exception):
    """With ``weights="all"``: this line (1-based in the buffer) has no weight while others have one."""

    def __init__(self, line):
        super().__init__(line)
        self.line = line


class Parsed:
    """Rows of one buffer: labels, weights (None when no line has one), CSR indices (as written) and values,
    each row's line number (1-based, counting the lines before the buffer), and with ``qid="keep"`` each row's
    query id (None when no line has one)."""

    def __init__(self, labels, weights, indptr, indices, values, lines, qid=None):
        self.labels = labels
        self.weights = weights
        self.indptr = indptr
        self.indices = indices
        self.values = values
        self.lines = lines
        self.qid = qid

    @property
    def rows(self):
        return self.labels.shape[0]

    def width(self):
        return int(self.indices.max()) + 1 if self.indices.size else 0

    def matrix(self, width=None, shift=0):
        """Float32 CSR of ``width`` columns (the widest index used when None), indices shifted down by ``shift``."""
        indices = self.indices - shift if shift else self.indices
        width = self.width() - shift if width is None else width
        return sp.csr_matrix((self.values, indices.astype(np.int32), self.indptr), shape=(self.rows, max(width, 0)))


# ------------------------------------------------------------------------------------------ numbers

def _numbers(block):
    """Every number of a buffer whose numbers are separated by whitespace and colons, as float64, and whether
    each was written as a plain non-negative integer (digits only); raises _Malformed for a bad one."""
    raw = np.frombuffer(block, np.uint8)
    values, integers = [], []
    start = 0
    while start < raw.size:
        stop = min(raw.size, start + PIECE_BYTES)
        if stop < raw.size:  # cut at a separator, so that no number spans two parts
            found = _SEPARATOR.search(block, stop)
            stop = found.start() + 1 if found else raw.size
        part_values, part_integers = _numbers_part(raw[start:stop])
        values.append(part_values)
        integers.append(part_integers)
        start = stop
    if len(values) == 1:
        return values[0], integers[0]
    return np.concatenate(values) if values else np.zeros(0), np.concatenate(integers) if integers else np.zeros(0, bool)


def _numbers_part(raw):
    n = raw.size
    cls = _CLASS[raw]
    sep = cls <= COLON
    start = ~sep
    start[1:] &= sep[:-1]
    end = ~sep
    end[:-1] &= sep[1:]
    del sep
    starts = np.flatnonzero(start)
    ends = np.flatnonzero(end) + 1
    del end
    fields = starts.size
    if not fields:
        return np.zeros(0), np.zeros(0, bool)
    field_of = None
    values = np.zeros(fields, np.float64)
    numeric = None
    if np.any(cls == LETTER):
        field_of = _field_ids(n, starts)
        numeric = np.ones(fields, bool)
        numeric[field_of[np.flatnonzero(cls == LETTER)]] = False
        _named_numbers(raw, starts, ends - starts, ~numeric, values)
    # a sign opens the number or its exponent, and a digit (or the mantissa's point) follows it
    sign_at = np.flatnonzero(cls == SIGN)
    if sign_at.size:
        after = np.full(sign_at.size, SPACE, np.uint8)
        inner = sign_at + 1 < n
        after[inner] = cls[sign_at[inner] + 1]
        after_exp = np.zeros(sign_at.size, bool)
        inner = sign_at > 0
        after_exp[inner] = cls[sign_at[inner] - 1] == EXP
        if not np.all((start[sign_at] & ((after == DIGIT) | (after == DOT) | (after == LETTER))) |
                      (after_exp & (after == DIGIT))):
            raise _Malformed
    del start
    # each field's point and exponent mark (at most one of each; -1 / the field's end when it has none)
    point = np.full(fields, -1, np.int64)
    mark = ends.copy()  # the mantissa ends at the exponent mark, or at the field's end
    exp_sign = exp_negative = None
    for kind, where in ((DOT, point), (EXP, mark)):
        at = np.flatnonzero(cls == kind)
        if at.size:
            if field_of is None:
                field_of = _field_ids(n, starts)
            owner = field_of[at]
            if np.any(owner[1:] == owner[:-1]):
                raise _Malformed
            where[owner] = at
            if kind == EXP:  # the exponent: an optional sign, then at least one digit
                exp_sign = np.zeros(fields, bool)
                after = np.minimum(at + 1, n - 1)
                exp_sign[owner] = (cls[after] == SIGN) & (at + 1 < n)
                exp_negative = exp_sign & (raw[np.minimum(mark + 1, n - 1)] == ord("-"))
                if np.any(ends[owner] - at - 1 - exp_sign[owner] < 1):
                    raise _Malformed
    lead_sign = cls[starts] == SIGN
    has_point = point >= 0
    # the mantissa: at least one digit; its point before the mark (a sign after it is caught above)
    bad = (mark - starts - has_point - lead_sign < 1) | (point > mark)
    if numeric is not None:
        bad &= numeric
    if bad.any():
        raise _Malformed
    integers = ~has_point & ~lead_sign & (mark == ends)
    if numeric is not None:
        integers &= numeric
    # digits: mantissa digits weigh 10**(mantissa digits after them), exponent digits 10**(digits after them)
    at = np.flatnonzero(_NONZERO_DIGIT[raw])
    del cls
    if not at.size:  # zeros only (label-only lines, say)
        number = np.zeros(fields)
        if numeric is None:
            return number, integers
        values[numeric] = number[numeric]
        return values, integers
    digit = raw[at].astype(np.float64)
    digit -= ord("0")
    if field_of is None:
        field_of = _field_ids(n, starts)
    owner = field_of[at]
    del field_of
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if exp_sign is None:  # no exponents anywhere
            after = mark[owner] - at - 1
            if point is not None:
                after -= at < point[owner]
            mantissa = np.bincount(owner, weights=digit * _POW10[np.minimum(after, 399)], minlength=fields)
            exponent = -np.where(has_point, mark - point - 1, 0).astype(np.float64)
        else:
            in_exponent = at > mark[owner]
            mantissa_at = ~in_exponent
            where, whose = at[mantissa_at], owner[mantissa_at]
            after = mark[whose] - where - 1 - (where < point[whose])
            mantissa = np.bincount(whose, weights=digit[mantissa_at] * _POW10[np.minimum(after, 399)],
                                   minlength=fields)
            where, whose = at[in_exponent], owner[in_exponent]
            exponent = np.bincount(whose, weights=digit[in_exponent] * _POW10[np.minimum(ends[whose] - where - 1, 399)],
                                   minlength=fields)
            exponent[exp_negative] = -exponent[exp_negative]
            exponent -= np.where(has_point, mark - point - 1, 0)
        if np.any(exponent):
            scale = _POW10[np.minimum(np.abs(exponent), 399).astype(np.int64)]  # past 1e308: inf (x -> inf, 0)
            number = np.where(exponent >= 0, mantissa * scale, mantissa / scale)
            number[mantissa == 0] = 0.0
        else:
            number = mantissa
    if lead_sign.any():
        negative = lead_sign & (raw[starts] == ord("-"))
        number[negative] = -number[negative]
    if numeric is None:
        return number, integers
    values[numeric] = number[numeric]
    return values, integers


def _field_ids(n, starts):
    """For every byte, the index of the field it is in (or the last before it)."""
    mark = np.zeros(n, np.int32)
    mark[starts] = 1
    ids = np.cumsum(mark, dtype=np.int32)
    ids -= 1
    np.maximum(ids, 0, out=ids)
    return ids


def _packed(name):
    return np.frombuffer(name.ljust(8, b"\0"), np.uint64)[0]


_NAMES = {3: ((_packed(b"nan"), np.nan), (_packed(b"inf"), np.inf)), 8: ((_packed(b"infinity"), np.inf),)}


def _named_numbers(raw, starts, lengths, named, values):
    """nan, inf, infinity (any case, optionally signed) into ``values``; anything else with letters: _Malformed."""
    at, length = starts[named], lengths[named]
    signed = _CLASS[raw[at]] == SIGN
    negative = signed & (raw[at] == ord("-"))
    body, size = at + signed, length - signed
    padded = np.concatenate((raw, np.zeros(8, np.uint8)))
    text = np.lib.stride_tricks.sliding_window_view(padded, 8)[body] | 0x20  # 8 bytes from each, lower case
    text[np.arange(8) >= size[:, None]] = 0
    words = text.view(np.uint64)[:, 0]
    found = np.zeros(at.size, bool)
    result = np.zeros(at.size)
    for width, names in _NAMES.items():
        for word, value in names:
            match = (size == width) & (words == word)
            found |= match
            result[match] = value
    if not found.all():
        raise _Malformed
    result[negative] = -result[negative]
    values[named] = result


# ------------------------------------------------------------------------------------------ lines

def _scan(block, labels, weights):
    """A buffer of whole lines (no comments, no qid) -> arrays; raises _Malformed when a line is bad."""
    raw = np.frombuffer(block, np.uint8)
    empty = np.zeros(0, np.float32)
    if block.translate(None, _ALLOWED):
        raise _Malformed
    space = _CLASS[raw] == SPACE
    start = ~space
    start[1:] &= space[:-1]
    del space
    tokens = np.flatnonzero(start)
    del start
    if not tokens.size:
        return empty, None, np.zeros(1, np.int64), np.zeros(0, np.int64), empty, np.zeros(0, np.int32)
    at = np.flatnonzero(raw == ord(":"))
    colons = np.zeros(tokens.size, np.int64)
    if at.size:
        colons = np.bincount(_field_ids(raw.size, tokens)[at], minlength=tokens.size)  # a colon between two numbers, never at a token's edge or next to another colon
        before = _CLASS[raw[np.maximum(at - 1, 0)]]
        after = _CLASS[raw[np.minimum(at + 1, raw.size - 1)]]
        if (at[0] == 0 or at[-1] == raw.size - 1 or np.any((before == SPACE) | (before == COLON)) or
                np.any((after == SPACE) | (after == COLON))):
            raise _Malformed
    newline = np.zeros(raw.size, np.int32)
    newline[raw == ord("\n")] = 1
    line = np.cumsum(newline, dtype=np.int32)[tokens]  # the line (0-based in the buffer) of every token
    del newline
    first = np.ones(tokens.size, bool)
    first[1:] = line[1:] != line[:-1]
    if labels == "optional":  # a first token without a colon is a label (dropped); with one, a feature
        label = first & (colons == 0)
        feature = ~label
        if np.any(colons[feature] != 1):
            raise _Malformed
    else:
        label = first
        feature = ~first
        if np.any(colons[feature] != 1) or np.any(colons[label] > 1):
            raise _Malformed
    numbers, integers = _numbers(block)
    offsets = np.zeros(tokens.size, np.int64)
    np.cumsum(colons[:-1] + 1, out=offsets[1:])
    if numbers.size != int(colons.sum()) + tokens.size:
        raise _Malformed
    row = np.cumsum(first, dtype=np.int64) - 1
    rows = int(row[-1]) + 1
    lines = line[first] + 1
    if labels == "optional":
        label_of_row = np.zeros(rows, np.float32)
        label_of_row[row[label]] = numbers[offsets[label]]
        labelled_weights = None
    else:
        label_of_row = numbers[offsets[label]].astype(np.float32)
        weighted = colons[label] == 1
        labelled_weights = None
        if weighted.any():
            if weights == "all" and not weighted.all():
                raise _MixedWeights(int(lines[np.flatnonzero(~weighted)[0]]))
            labelled_weights = np.ones(rows, np.float32)
            labelled_weights[weighted] = numbers[offsets[label][weighted] + 1]
    index_at = offsets[feature]
    index = numbers[index_at]
    if index_at.size and (not integers[index_at].all() or index.max() > MAX_INDEX):
        raise _Malformed
    with np.errstate(over="ignore"):  # past float32: inf, refused later where the model needs finite values
        values = numbers[index_at + 1].astype(np.float32)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.bincount(row[feature], minlength=rows), out=indptr[1:])
    return label_of_row, labelled_weights, indptr, index.astype(np.int64), values, lines


def _clean(block, qid, source, lines_before):
    """The buffer without comments and qid tokens, and with ``qid="keep"`` :func:`query_ids` of it (or None)."""
    if b"#" in block:
        block = _COMMENT.sub(b"", block)
    found_ids = None
    if b"qid:" in block:
        found = _QID.search(block)
        if found:
            if qid == "refuse":
                raise DataError("libsvm 'qid:' (ranking groups) is not supported here", source=source,
                                record=lines_before + block.count(b"\n", 0, found.start()) + 1)
            if qid == "keep":
                found_ids = query_ids(block, source, lines_before)
            block = _QID.sub(b"", block)
    return block, found_ids


def query_ids(block, source=None, lines_before=0):
    """``(line, qid)`` arrays of every ``qid:<n>`` token of a buffer of whole lines (comments removed): the line
    0-based in the buffer, ascending, at most one per line; a query id that is not a whole number in
    [0, 2**63 - 1], or a second one on a line, is a data error naming the line. Vectorised: the tokens are
    found by their bytes, and their digits read from a window of QID_DIGITS + 1 bytes each."""
    raw = np.frombuffer(block, np.uint8)
    at = np.flatnonzero(raw[:-3] == ord("q")) if raw.size > 3 else np.zeros(0, np.int64)
    if at.size:
        at = at[(raw[at + 1] == ord("i")) & (raw[at + 2] == ord("d")) & (raw[at + 3] == ord(":"))]
        at = at[(at == 0) | (_CLASS[raw[np.maximum(at - 1, 0)]] == SPACE)]  # a token's start, as in _QID
    if not at.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    newlines = np.flatnonzero(raw == ord("\n"))
    lines = np.searchsorted(newlines, at)
    twice = np.flatnonzero(lines[1:] == lines[:-1])
    if twice.size:
        raise DataError("libsvm line has more than one qid:", source=source,
                        record=lines_before + int(lines[twice[0] + 1]) + 1)
    padded = np.concatenate((raw, np.full(QID_DIGITS + 1, ord(" "), np.uint8)))
    window = np.lib.stride_tricks.sliding_window_view(padded, QID_DIGITS + 1)[at + 4]  # the bytes after qid:
    ends = _CLASS[window] == SPACE
    length = np.argmax(ends, axis=1)  # the token's end (none within the window: 0, refused below)
    digits = window.astype(np.int64) - ord("0")
    inside = np.arange(QID_DIGITS + 1) < length[:, None]
    ok = (length > 0) & np.all(~inside | ((digits >= 0) & (digits <= 9)), axis=1)
    ids = np.zeros(at.size, np.uint64)
    for j in range(QID_DIGITS):  # Horner over the columns, each row stopping at its length
        more = inside[:, j]
        ids[more] = ids[more] * np.uint64(10) + digits[more, j].astype(np.uint64)
    ok &= (length < QID_DIGITS) | (ids <= MAX_QID)  # 19 digits: may pass 2**63 - 1
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        text = _TOKEN.match(block, int(at[bad]) + 4).group()
        raise DataError(f"libsvm query id {text.decode('utf-8', 'replace')!r} is not a whole number in "
                        f"[0, {MAX_QID}]", source=source, record=lines_before + int(lines[bad]) + 1)
    return lines, ids.astype(np.int64)


def _row_qids(found_ids, parsed_lines, lines_before, source):
    """Each row's query id from :func:`query_ids`' (line, qid); every row needs one when any line has one."""
    lines, ids = found_ids
    if not lines.size:
        return None
    rows = parsed_lines.astype(np.int64) - lines_before - 1  # 0-based lines in the buffer
    at = np.minimum(np.searchsorted(lines, rows), lines.size - 1)
    missing = lines[at] != rows
    if missing.any():
        raise DataError(MIXED_QID, source=source, record=int(parsed_lines[np.flatnonzero(missing)[0]]))
    return ids[at]


def _pieces(block):
    """(piece, lines before it) of whole lines, about PIECE_BYTES each."""
    start, lines = 0, 0
    while start < len(block):
        stop = block.find(b"\n", start + PIECE_BYTES)
        stop = len(block) if stop < 0 else stop + 1
        piece = block[start:stop]
        yield piece, lines
        lines += piece.count(b"\n")
        start = stop


def parse(block, source=None, lines_before=0, *, labels="required", qid="skip", weights="ones"):
    """Parse whole lines of libsvm bytes into a :class:`Parsed` (indices as written).

    ``labels="optional"`` (requests): a line's first token is its label when it has no colon (and dropped).
    ``weights="ones"``: a line without ``:weight`` weighs 1 when others have one; ``"all"``: that is an error.
    ``qid``: ``"skip"`` query ids, ``"refuse"`` them (a data error naming the line), or ``"keep"`` them in
    ``Parsed.qid``.
    """
    block = bytes(block)
    block, found_ids = _clean(block, qid, source, lines_before)
    parsed = _parse_clean(block, source, lines_before, labels, weights)
    if found_ids is not None:
        parsed.qid = _row_qids(found_ids, parsed.lines, lines_before, source)
    return parsed


def _parse_clean(block, source, lines_before, labels, weights):
    parts = []
    for piece, before in _pieces(block):
        try:
            parsed = _scan(piece, labels, weights)
        except _Malformed:
            _raise_first_bad_line(piece, source, lines_before + before, labels)
        except _MixedWeights as exc:
            raise DataError(MIXED_WEIGHTS, source=source, record=lines_before + before + exc.line) from None
        parts.append((parsed, before))
    if not parts:
        empty = np.zeros(0, np.float32)
        return Parsed(empty, None, np.zeros(1, np.int64), np.zeros(0, np.int64), empty, np.zeros(0, np.int32))
    if len(parts) == 1:
        (labels_, weights_, indptr, indices, values, lines), before = parts[0]
        return Parsed(labels_, weights_, indptr, indices, values, lines + (lines_before + before))
    return _join(parts, lines_before, weights, source)


def _join(parts, lines_before, weights, source):
    any_weights = any(p[1] is not None for p, _ in parts)
    if any_weights and weights == "all" and not all(p[1] is not None for p, _ in parts if p[0].size):
        bad = next((p, b) for p, b in parts if p[1] is None and p[0].size)
        raise DataError(MIXED_WEIGHTS, source=source, record=int(bad[0][5][0]) + lines_before + bad[1])
    labels = np.concatenate([p[0] for p, _ in parts])
    weight = None
    if any_weights:
        weight = np.concatenate([p[1] if p[1] is not None else np.ones(p[0].size, np.float32) for p, _ in parts])
    counts = np.concatenate([np.diff(p[2]) for p, _ in parts])
    indptr = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate([p[3] for p, _ in parts])
    values = np.concatenate([p[4] for p, _ in parts])
    lines = np.concatenate([p[5] + (lines_before + before) for p, before in parts])
    return Parsed(labels, weight, indptr, indices, values, lines)


def _raise_first_bad_line(piece, source, lines_before, labels):
    """Bisect the lines of a malformed piece (vectorised passes over halves) down to the first bad line, and
    raise a DataError that says what is wrong with it."""
    lines = piece.split(b"\n") if piece.count(b"\n") < 64 else None
    low, high = 0, piece.count(b"\n") + 1  # the first bad line is in [low, high)
    offsets = None
    if lines is None:
        ends = np.flatnonzero(np.frombuffer(piece, np.uint8) == ord("\n"))
        offsets = np.concatenate(([0], ends + 1, [len(piece)]))
    while high - low > 1:
        middle = (low + high) // 2
        if offsets is not None:
            text = piece[offsets[low]:offsets[middle]]
        else:
            text = b"\n".join(lines[low:middle]) + b"\n"
        try:
            _scan(text, labels, "ones")
        except _Malformed:
            high = middle
        else:
            low = middle
    line = piece[offsets[low]:offsets[low + 1]] if offsets is not None else lines[low]
    raise DataError(_describe(line.strip(), labels), source=source, record=lines_before + low + 1)


def _describe(line, labels):
    """What is wrong with one malformed line, in words."""
    tokens = line.split()
    if labels != "optional" or (tokens and b":" not in tokens[0]):
        head, tokens = tokens[0], tokens[1:]
        text = head.decode("utf-8", "replace")
        parts = head.split(b":")
        if len(parts) > 2:
            return f"libsvm label {text!r} has more than label:weight"
        if not all(_is_number(p) for p in parts):
            return f"libsvm label {text!r} is not a number"
    for token in tokens:
        text = token.decode("utf-8", "replace")
        index, colon, value = token.partition(b":")
        if not colon or not _is_number(value) or b":" in value:
            return f"libsvm token {text!r} is not <index>:<value>"
        if not index:
            return f"libsvm token {text!r} is not <index>:<value>"
        if not index.isdigit():
            return f"libsvm index {index.decode('utf-8', 'replace')} is not a whole number in [0, {MAX_INDEX}]"
        if int(index) > MAX_INDEX:
            return f"libsvm index {int(index)} is not a whole number in [0, {MAX_INDEX}]"
    return f"libsvm line {line[:80].decode('utf-8', 'replace')!r} cannot be parsed"


def _is_number(text):
    if not text or text.translate(None, _ALLOWED) or b":" in text:
        return False
    try:
        _numbers_part(np.frombuffer(text, np.uint8))
    except _Malformed:
        return False
    return True


# ------------------------------------------------------------------------------------------ readers

def parse_block(block, source=None, lines_before=0, one_based=None):
    """``(indptr, indices, values, labels, weights or None, one_based)`` of a block of whole lines, indices
    shifted down by one when one-based (decided from this block when ``one_based`` is None)."""
    parsed = parse(block, source, lines_before)
    indptr, indices, values, labels, weights, one_based = based(parsed, one_based, source)
    return indptr, indices, values, labels, weights, one_based


def iter_parsed(stream, source=None, **options):
    """``(Parsed, rows before it)`` for every block of whole lines of a stream (indices as written)."""
    from .csv_reader import _blocks

    rows_before = 0
    for block, lines_before in _blocks(stream):
        parsed = parse(block, source, lines_before, **options)
        if parsed.rows:
            yield parsed, rows_before
            rows_before += parsed.rows


def iter_libsvm_batches(stream, batch_size, feature_dim=None, source=None):
    """Yield ``(CSR features, labels, weights or None, first_row)`` of at most ``batch_size`` rows."""
    from .csv_reader import _blocks

    one_based = None
    rows_before = 0
    for block, lines_before in _blocks(stream):
        parsed = parse(block, source, lines_before)
        n = parsed.rows
        if not n:
            continue
        indptr, indices, values, labels, weights, one_based = based(parsed, one_based, source)
        width = int(indices.max()) + 1 if indices.size else 0
        if feature_dim is not None:
            if width > feature_dim:
                row = int(np.searchsorted(indptr, int(np.argmax(indices)), side="right")) - 1
                raise DataError(f"libsvm feature index {width - 1 + int(one_based)} is outside feature_dim="
                                f"{feature_dim}", source=source, record=int(parsed.lines[row]))
            width = feature_dim
        matrix = sp.csr_matrix((values, indices.astype(np.int32), indptr), shape=(n, width))
        matrix.sum_duplicates()
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield (matrix[start:stop], labels[start:stop], None if weights is None else weights[start:stop],
                   rows_before + start)
        rows_before += n


def based(parsed, one_based, source=None):
    """``(indptr, indices, values, labels, weights, one_based)`` with one-based indices shifted down by one
    (decided from these rows when ``one_based`` is None: no index 0 means one-based)."""
    indices = parsed.indices
    if one_based is None:
        one_based = bool(indices.size) and int(indices.min()) > 0
    if one_based:
        if indices.size and int(indices.min()) == 0:
            row = int(np.searchsorted(parsed.indptr, int(np.flatnonzero(indices == 0)[0]), side="right")) - 1
            raise DataError("libsvm index 0 in a file whose first lines are one-based (no index 0); use one "
                            "convention per file", source=source, record=int(parsed.lines[row]))
        indices = indices - 1
    return parsed.indptr, indices, parsed.values, parsed.labels, parsed.weights, one_based
