"""Training data for xgboost: each format read a block at a time into (features, labels, weights) chunks.

- text/libsvm: ``label[:weight] index:value ...``, parsed by xgboost's own libsvm parser (its URI loader),
  one line-aligned block of at most BLOCK_BYTES at a time; indices as written (the library's zero-based
  default) and, when the channel's first block never uses index 0, shifted down by one (one-based), the
  library's own detection rule, decided once per channel so that every block agrees. ``qid:<n>`` (ranking)
  gives each row its query id.
- text/csv: label first, then with ``csv_weights=1`` the weight, then features; empty fields and NaN are
  missing values; pandas' C parser. The leading columns follow the objective (:class:`Layout`): ranking adds
  a query id column after the label (and weight), survival:aft has two label columns, the lower and upper bound.
- application/x-recordio-protobuf: the runtime's Record decoder (dense or sparse features, ``values`` label).
- application/x-parquet: pyarrow, label first (then the weight with csv_weights=1); Pipe mode spools the
  stream to a temporary file first, as parquet's footer is at its end.

Chunks are dense float32 arrays (NaN = missing) or float32 CSR matrices (absent = missing).
"""

import io
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp

from common import contenttypes, protobuf, recordio
from common import libsvm as common_libsvm
from common.csv_reader import line_blocks
from common.errors import ChannelError, DataError
from common.sources import Stopped, iter_sources

from . import library

log = logging.getLogger(__name__)

LIBSVM = contenttypes.LIBSVM
CSV = contenttypes.CSV
RECORDIO = contenttypes.RECORDIO_PROTOBUF
PARQUET = "application/x-parquet"
BLOCK_BYTES = 64 << 20
RECORDS_PER_CHUNK = 100_000
PARSE_THREADS = 2  # CSV blocks parsed at once


@dataclass
class Chunk:
    features: object  # float32 ndarray (rows, d) or CSR
    labels: np.ndarray  # survival:aft: the lower bounds
    weights: np.ndarray | None = None
    source: str = ""
    qid: np.ndarray | None = None  # ranking: the query id of each row (int64)
    upper: np.ndarray | None = None  # survival:aft: the upper bounds (inf: right-censored)

    def __len__(self):
        return self.features.shape[0]

    @property
    def width(self):
        return self.features.shape[1]


def _blocks(stream, size=BLOCK_BYTES):
    """Blocks of whole lines, each with the number of lines before it; the last line ended (the library's
    parser reads the block from a file)."""
    return line_blocks(stream, size, terminate=True)


class Indexing:
    """A libsvm channel's index base, settled by its first block (shared by every source of the channel)."""

    def __init__(self, channel):
        self.channel = channel
        self.shift = None

    def settle(self, matrices, source):
        """The block's matrices (its pieces, in order) with the channel's index base applied."""
        if self.shift is None:
            used = [m.indices.min() for m in matrices if m.indices.size]
            smallest = int(min(used)) if used else None
            self.shift = 1 if smallest is not None and smallest >= 1 else 0
            log.info("Channel %s: libsvm indices are %s (smallest index in the first block of %s: %s)",
                     self.channel, "one-based, shifted down by one" if self.shift else "zero-based", source,
                     "none" if smallest is None else smallest)
        if not self.shift:
            return list(matrices)
        shifted = []
        for matrix in matrices:
            if matrix.indices.size and matrix.indices.min() == 0:
                raise DataError("libsvm feature index 0 in a channel whose first block is one-based (no index 0); "
                                "write all files of a channel with the same index base", source=source)
            rows, cols = matrix.shape
            shifted.append(sp.csr_matrix((matrix.data, matrix.indices - 1, matrix.indptr),
                                         shape=(rows, max(cols - 1, 0))))
        return shifted


_XGB_PREFIX = re.compile(r"^\[[0-9:]+\] [^ ]+: ")


def library_message(exc):
    """The first meaningful line of an XGBoostError, without the timestamp, source path and stack trace."""
    text = str(exc).split("Stack trace:")[0].strip()
    lines = [_XGB_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:600] or type(exc).__name__


_LIBSVM_CHARS = b"0123456789.-+eE: \t\r\n"


def _libsvm_chunks(stream, source, indexing, workdir, layout=None):
    """Blocks through the library's parser (about 4x faster than common's vectorised one, see
    benchmarks/bench_libsvm.py); a block with any other character (letters: nan, inf, comments, typos)
    through common's, which reads nan/inf and comments and names a malformed line (the library's parser would
    read ``2:x`` as 0 and drop a line that starts with a letter). ``qid:<n>`` tokens give each row its query id
    (common's :func:`~common.libsvm.query_ids`, on either path); ranking objectives need one on every line,
    others ignore them (logged once). The library parses on one thread (and releases the GIL): a large block is
    cut at line ends into PARSE_THREADS pieces parsed at once (each through its own file), one chunk each; the
    block stays the unit of the index base, and a block whose pieces disagree on weights is parsed whole.

    A plain local file (File mode, not gzip) is cut into blocks and pieces by byte offsets, and each parse thread
    reads its own piece (``os.pread``): the reading thread copies nothing. Other streams (Pipe mode, gzip) are
    read a block at a time by this thread. Either way the next block's pieces are parsed while this block's are
    handed on, and a piece is parsed as if it began the file: an error in it names the line counted from the
    file's start."""
    from concurrent.futures import ThreadPoolExecutor

    ranking = layout is not None and layout.qid
    ignored = False
    lines_before = 0
    parse = partial(_parse_piece, source=source, workdir=workdir)
    blocks = _file_blocks(stream) if _is_plain_file(stream) else _stream_blocks(stream)
    with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="parse") as pool:
        for pieces in _ahead(blocks, lambda pieces: [pool.submit(parse, piece) for piece in pieces]):
            parsed, counts = [], []
            for piece, future in pieces:
                try:
                    *result, lines = future.result()
                except DataError as exc:
                    raise exc.after_lines(lines_before + sum(counts)) from None
                parsed.append(tuple(result))
                counts.append(lines)
            firsts = [lines_before + sum(counts[:k]) for k in range(len(counts))]
            if len({weights is None for _, _, weights, _ in parsed}) > 1:  # common's parser names the line
                block = b"".join(piece.read() for piece, _ in pieces)
                parsed, firsts = [_parse_libsvm_block(block, lines_before, source, workdir, strict=True)], firsts[:1]
                del block
            if ranking and any(qid is None for *_, qid in parsed):
                first = next(n for n, (*_, qid) in zip(firsts, parsed) if qid is None)
                raise DataError("ranking objectives need a query id on every libsvm line (label qid:<n> "
                                "index:value ...); this block has none", source=source, record=first + 1)
            if not ranking and any(qid is not None for *_, qid in parsed):
                if not ignored:
                    log.warning("Channel data %s: libsvm qid: tokens ignored (query groups are for rank:* "
                                "objectives)", source)
                    ignored = True
            lines_before += sum(counts)
            features = indexing.settle([f for f, *_ in parsed], source)
            for matrix, (_, labels, weights, qid) in zip(features, parsed):
                yield Chunk(matrix, labels, weights, source, qid if ranking else None)


SPLIT_BYTES = 8 << 20  # a libsvm block at least this large is parsed in pieces


def _ahead(blocks, submit):
    """``[(piece, future), ...]`` of each block in order, the next block's pieces submitted before this block's
    are handed on (two blocks in the parse threads' queue at most). An error of the stream (a stop during a
    Pipe read) comes after the blocks read before it."""
    pending = deque()
    error = None
    try:
        for pieces in blocks:
            pending.append(list(zip(pieces, submit(pieces))))
            if len(pending) > 1:
                yield pending.popleft()
    except Exception as exc:  # noqa: BLE001 - raised below, after the blocks read before it
        error = exc
    while pending:
        yield pending.popleft()
    if error is not None:
        raise error


class _Parts:
    """A piece of a stream: the parts the reading thread read, joined by the thread that parses it."""

    def __init__(self, parts):
        self.parts = parts

    def read(self):
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class _Range:
    """A piece of a plain file by byte offsets, read by the thread that parses it; ``terminate``: the file's last
    line has no newline, so one is added (the library's parser reads a file and needs every line ended)."""

    def __init__(self, fd, offset, length, terminate=False):
        self.fd, self.offset, self.length, self.terminate = fd, offset, length, terminate

    def read(self):
        parts, got = [], 0
        while got < self.length:
            part = os.pread(self.fd, self.length - got, self.offset + got)
            if not part:
                raise DataError("the data file shrank while it was read")
            parts.append(part)
            got += len(part)
        if self.terminate:
            parts.append(b"\n")
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_piece(piece, source, workdir):
    """In a parse thread: a piece's (features, labels, weights, qid, line count), parsed as if it began the file."""
    data = piece.read()
    return (*_parse_libsvm_block(data, 0, source, workdir), data.count(b"\n"))


_PART_BYTES = 1 << 20  # read from a stream at a time


def _stream_blocks(stream):
    """The pieces of each block of a stream, as :func:`_file_blocks` cuts a file, from the parts this thread
    reads (``read1``: what a Pipe's FIFO or the gzip stream has, up to _PART_BYTES), which are not joined here:
    a block ends after the first part, past BLOCK_BYTES, that holds a newline (cut after its last one), and
    only the parts at a cut are sliced. An error of the stream (a stop during a stalled Pipe read) comes after
    the whole lines read before it."""
    read = getattr(stream, "read1", stream.read)
    parts, size = [], 0
    while True:
        try:
            part = read(_PART_BYTES)
        except Exception:  # noqa: BLE001 - the lines before it first
            pieces = _cut(parts, size, terminate=False)
            if pieces:
                yield pieces
            raise
        if not part:
            break
        parts.append(part)
        size += len(part)
        if size < BLOCK_BYTES:
            continue
        end = part.rfind(b"\n") + 1
        if not end:  # a line longer than a block: it ends in a later part
            continue
        rest = part[end:]
        parts[-1] = part[:end]
        yield _split(parts, size - len(rest))
        parts, size = ([rest], len(rest)) if rest else ([], 0)
    pieces = _cut(parts, size, terminate=True)
    if pieces:
        yield pieces


def _cut(parts, size, terminate):
    """The pieces of the whole lines of the last parts of a stream; ``terminate``: a last line without a newline
    ends with one (blank bytes after the last newline are dropped), else the bytes after the last newline too."""
    for k in range(len(parts) - 1, -1, -1):
        end = parts[k].rfind(b"\n") + 1
        if end:
            break
    else:
        k, end = -1, 0
    tail = parts[k + 1:] if end == 0 else [parts[k][end:], *parts[k + 1:]]
    whole = parts[:k] + [parts[k][:end]] if end else []
    if terminate and any(piece.strip() for piece in tail):
        whole, tail = parts + [b"\n"], []
    whole = [piece for piece in whole if piece]
    return _split(whole, sum(map(len, whole))) if whole else None


def _split(parts, size):
    """A block's parts as PARSE_THREADS pieces of about equal size cut after newlines (one when smaller than
    SPLIT_BYTES)."""
    count = PARSE_THREADS if size >= SPLIT_BYTES else 1
    pieces, current, offset = [], [], 0
    target = size * len(pieces + [None]) // count
    for part in parts:
        while len(pieces) < count - 1 and offset + len(part) > target:
            at = part.find(b"\n", max(target - offset, 0))
            if at < 0:
                break
            current.append(part[:at + 1])
            pieces.append(_Parts(current))
            current, offset, part = [], offset + at + 1, part[at + 1:]
            target = size * (len(pieces) + 1) // count
        current.append(part)
        offset += len(part)
    current = [part for part in current if part]
    if current:
        pieces.append(_Parts(current))
    return pieces


def _is_plain_file(stream):
    """A regular file read as it is (File mode, not gzip): its blocks can be cut by offsets."""
    import io
    import stat

    if not isinstance(stream, io.BufferedReader) or not isinstance(getattr(stream, "raw", None), io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except OSError:
        return False


_SCAN_BYTES = 1 << 20  # read at a time when looking for a line's end


def _file_blocks(stream):
    """The pieces of each block of a plain file by offsets: a block of at most BLOCK_BYTES of whole lines (a
    longer line: a block of its own), split into PARSE_THREADS pieces after newlines when at least SPLIT_BYTES;
    a last line without a newline gets one, blank bytes after the last newline are dropped."""
    fd = stream.fileno()
    size = os.fstat(fd).st_size
    last = _line_end_before(fd, 0, size, size, forward=False)  # just after the last newline
    end = size if size > last and os.pread(fd, min(size - last, _SCAN_BYTES), last).strip() else last
    start = 0
    while start < end:
        stop = _line_end_before(fd, start, start + BLOCK_BYTES, end)
        count = PARSE_THREADS if stop - start >= SPLIT_BYTES else 1
        cuts = [start]
        for k in range(1, count):
            cut = _line_end_after(fd, start + (stop - start) * k // count, stop)
            if cut > cuts[-1]:
                cuts.append(cut)
        if stop > cuts[-1]:
            cuts.append(stop)
        yield [_Range(fd, a, b - a, terminate=b > last) for a, b in zip(cuts, cuts[1:])]
        start = stop


def _line_end_before(fd, start, limit, end, forward=True):
    """The offset just after the last newline in [start, limit) (``end`` when ``limit`` reaches it); none there:
    with ``forward`` just after the first newline at or after ``limit`` (a line longer than a block), else
    ``start``."""
    if limit >= end and forward:
        return end
    position = limit
    while position > start:
        low = max(start, position - _SCAN_BYTES)
        found = os.pread(fd, position - low, low).rfind(b"\n")
        if found >= 0:
            return low + found + 1
        position = low
    return _line_end_after(fd, limit, end) if forward else start


def _line_end_after(fd, offset, end):
    """The offset just after the first newline at or after ``offset`` (``end`` when there is none)."""
    while offset < end:
        window = os.pread(fd, min(_SCAN_BYTES, end - offset), offset)
        if not window:
            break
        found = window.find(b"\n")
        if found >= 0:
            return min(offset + found + 1, end)
        offset += len(window)
    return end


def _parse_libsvm_block(block, lines_before, source, workdir, strict=False):
    """One block as (float32 CSR, float32 labels, float32 weights or None, int64 query ids or None);
    ``strict``: through common's parser."""
    xgb = library.load()
    has_qid = b"qid:" in block
    plain = block.replace(b"qid:", b"") if has_qid else block
    matrix = None
    if not strict and not plain.translate(None, _LIBSVM_CHARS):
        # a directory of its own per parse thread: the library's loader lists the file's directory (it matches
        # the name as a pattern) and fails on a file another thread deletes meanwhile
        directory = os.path.join(workdir, f"parse-{threading.get_ident()}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "block.libsvm")
        with open(path, "wb") as f:
            f.write(block)
        try:
            with xgb.config_context(verbosity=0):  # the URI loader's deprecation notice (the parse threads have
                matrix = xgb.DMatrix(f"{path}?format=libsvm&indexing_mode=0", silent=True)  # no log callback)
        except xgb.core.XGBoostError:  # a qid: after the features, a typo: common's parser decides below
            matrix = None
        finally:
            os.unlink(path)
    qid = None
    if matrix is not None:
        labels = matrix.get_label()
        weights = matrix.get_weight()
        weights = weights if weights.size else None
        if weights is not None and not _every_line_weighted(block):
            matrix = None  # the library packs the weights it found at the front: common's parser names the line
    if matrix is not None:
        features = matrix.get_data()
        if has_qid:
            _, ids = common_libsvm.query_ids(block, source, lines_before)
            if ids.size == labels.shape[0]:  # one per line (at most one each), so one per row
                qid = ids
            else:  # a line without one: common's parser names it
                matrix = None
    if matrix is None:
        parsed = _parse_strictly(block, lines_before, source)
        features = parsed.matrix()
        labels, weights, qid = parsed.labels, parsed.weights, parsed.qid
    if features.shape[0] != labels.shape[0]:
        raise DataError("libsvm block has rows without a label", source=source)
    return (sp.csr_matrix(features, dtype=np.float32), labels.astype(np.float32),
            None if weights is None else np.asarray(weights, dtype=np.float32), qid)


_LABEL_WINDOW = 32  # bytes looked at from each line's start for its label's ``:weight``


def _every_line_weighted(block):
    """Whether every non-blank line of a plain block (no comments) has ``label:weight``: the first token of each
    line, read from a window of its first bytes, holds a colon. Unsure (a longer first token): False."""
    raw = np.frombuffer(block, np.uint8)
    starts = np.r_[0, np.flatnonzero(raw[:-1] == ord("\n")) + 1]
    padded = np.concatenate((raw, np.full(_LABEL_WINDOW, ord("\n"), np.uint8)))
    window = np.lib.stride_tricks.sliding_window_view(padded, _LABEL_WINDOW)[starts]
    space = (window == ord(" ")) | (window == ord("\t")) | (window == ord("\r")) | (window == ord("\n"))
    text = ~space
    if text[:, 0].all():
        begins = np.zeros(len(starts), np.int64)
    else:  # leading whitespace or blank lines
        begins = np.argmax(text, axis=1)
        blank = ~text.any(axis=1)
        if (blank & (window[:, -1] != ord("\n"))).any():
            return False
        window, space, begins = window[~blank], space[~blank], begins[~blank]
    column = np.arange(_LABEL_WINDOW)
    ends = np.argmax(space & (column >= begins[:, None]), axis=1)
    if not (space & (column >= begins[:, None])).any(axis=1).all():
        return False
    colon = (window == ord(":")) & (column >= begins[:, None]) & (column < ends[:, None])
    return bool(colon.any(axis=1).all())


def _parse_strictly(block, lines_before, source):
    """common's libsvm parser with this image's rules: every line labelled, weights on all lines or none (the
    library needs one per row), query ids (``qid:``) kept."""
    return common_libsvm.parse(block, source, lines_before, qid="keep", weights="all")


def _parse_csv_block(block, lines_before, source, dtype=np.float32):
    """A block's values as ``dtype``: float32 (what the library keeps; pandas rounds each number to float64, then
    to float32, as a float64 parse and a cast would), float64 when a query id column needs whole numbers."""
    import pandas

    try:
        frame = pandas.read_csv(io.BytesIO(block), header=None, engine="c", dtype=dtype,
                                skip_blank_lines=True, na_values=["nan", "NaN", "NAN", "?", ""],
                                keep_default_na=True)
    except pandas.errors.EmptyDataError:
        return np.zeros((0, 0))
    except (ValueError, pandas.errors.ParserError):
        _bad_csv_line(block, lines_before, source)
        raise DataError(f"CSV cannot be parsed after line {lines_before}", source=source) from None
    return frame.to_numpy()


def _parse_csv_features(block, lines_before, source, dtype, lead):
    """A parse thread's work on a block: its values and, where it has more than the ``lead`` columns, its features
    made row-major (the copy runs here, in parallel, not in the reading thread)."""
    array = _parse_csv_block(block, lines_before, source, dtype)
    return array, (_row_major(array, lead) if array.ndim == 2 and array.shape[1] > lead else None)


def _bad_csv_line(block, lines_before, source):
    columns = None
    for number, line in enumerate(block.split(b"\n"), start=lines_before + 1):
        if not line.strip():
            continue
        fields = line.split(b",")
        if columns is not None and len(fields) != columns:
            raise DataError(f"CSV line has {len(fields)} columns, expected {columns}", source=source, record=number)
        columns = len(fields)
        for field in fields:
            text = field.strip()
            if text and text.lower() not in (b"nan", b"?"):
                try:
                    float(text)
                except ValueError:
                    raise DataError(f"CSV value {text.decode(errors='replace')!r} is not a number", source=source,
                                    record=number) from None


@dataclass(frozen=True)
class Layout:
    """The leading columns of a CSV or parquet row, in this order: the label (survival:aft: the lower bound,
    then the upper bound), the weight (csv_weights=1), the query id (rank:*); then the features."""

    weights: bool = False
    qid: bool = False
    bounds: bool = False

    @classmethod
    def for_objective(cls, objective, weights=False):
        return cls(weights=bool(weights), qid=objective.startswith("rank:"), bounds=objective == "survival:aft")

    @property
    def names(self):
        return (["lower bound", "upper bound"] if self.bounds else ["label"]) + (["weight"] if self.weights else []) \
            + (["query id"] if self.qid else [])


def _column(array, index, name, source, first_line):
    values = array[:, index]
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"record has no {name} (column {index + 1} is empty, NaN or infinite)", source=source,
                        record=first_line + row)
    return values


def check_bounds(lower, upper, source, first_line):
    """survival:aft's upper bounds (float32), an empty/NaN one read as inf (right-censored), checked against
    the lower bounds: 0 <= lower <= upper, as the library needs (it takes logarithms)."""
    upper = np.asarray(upper, dtype=np.float32).copy()
    upper[np.isnan(upper)] = np.inf
    wrong = ~(upper >= lower) | ~(lower >= 0) | np.isinf(lower)
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise DataError(f"survival:aft bounds must satisfy 0 <= lower <= upper, lower finite; record has lower "
                        f"{lower[row]:g}, upper {upper[row]:g}", source=source, record=first_line + row)
    return upper


def _split_label(array, layout, source, first_line, features=None):
    """A Chunk's columns from a block whose columns are ``layout``'s leading ones, then the features (``features``:
    those columns already made row-major float32)."""
    names = layout.names
    if array.shape[1] <= len(names):
        raise DataError(f"row has {array.shape[1]} columns; expected the {', the '.join(names)} and at least one "
                        "feature", source=source, record=first_line)
    labels = array[:, 0].astype(np.float32)
    if np.isnan(labels).any():
        row = int(np.flatnonzero(np.isnan(labels))[0])
        raise DataError(f"record has no {names[0]} (empty or NaN first column)", source=source,
                        record=first_line + row)
    column = 1
    upper = None
    if layout.bounds:
        upper = check_bounds(labels, array[:, 1], source, first_line)
        column = 2
    weights = qid = None
    if layout.weights:
        weights = _column(array, column, "weight", source, first_line).astype(np.float32)
        column += 1
    if layout.qid:
        values = _column(array, column, "query id", source, first_line)
        qid = values.astype(np.int64)
        if (qid != values).any() or (qid < 0).any():
            row = int(np.flatnonzero((qid != values) | (qid < 0))[0])
            raise DataError(f"query id {values[row]:g} is not a non-negative integer", source=source,
                            record=first_line + row)
        column += 1
    if features is None:
        features = _row_major(array, column)
    return Chunk(features, labels, weights, source, qid, upper)


def _row_major(array, lead):
    """The features (the columns after ``lead``) as a row-major float32 array: the order the library reads fastest
    and the spill keeps (a pandas block is column-major, so this is a copy; the CSV parse threads make it)."""
    return np.ascontiguousarray(array[:, lead:], dtype=np.float32)


def parsed_ahead(blocks, parse, workers=PARSE_THREADS):
    """``(block, lines_before, parse(block, lines_before))`` in order, up to ``workers`` blocks parsed at once
    in threads (pandas' C parser releases the GIL, so reading uses a second core while the library's single-
    threaded work or the next read waits). An error of the stream (a stop during a Pipe read) comes after the
    blocks read before it, as from the splitter itself."""
    from concurrent.futures import ThreadPoolExecutor

    pending = deque()
    error = None
    with ThreadPoolExecutor(workers, thread_name_prefix="parse") as pool:
        try:
            for block, lines_before in blocks:
                pending.append((block, lines_before, pool.submit(parse, block, lines_before)))
                if len(pending) > workers:
                    block, lines_before, future = pending.popleft()
                    yield block, lines_before, future.result()
        except Exception as exc:  # noqa: BLE001 - raised below, after the blocks read before it
            error = exc
        while pending:
            block, lines_before, future = pending.popleft()
            yield block, lines_before, future.result()
    if error is not None:
        raise error


PREFETCH_BYTES = 16 << 20  # Pipe mode: how far the drain thread reads ahead of the parse (memory: kept small)
_PREFETCH_PIECE = 1 << 20


class Prefetched:
    """A Pipe-mode text stream drained by a thread, up to PREFETCH_BYTES ahead of the reader: the platform's
    writer fills a FIFO of 1 MiB, so without it every MiB would wait until the reader, between blocks and parses
    on busy cores, asks for the next. ``read1``/``read`` as a buffered stream; an error of the stream (a stop
    during a stalled read) comes after the bytes read before it."""

    def __init__(self, stream):
        import queue

        self.stream = stream
        self.pieces = queue.Queue(maxsize=max(PREFETCH_BYTES // _PREFETCH_PIECE, 1))
        self.abandoned = threading.Event()
        self.rest = b""
        self.done = False
        self.error = None
        self.thread = threading.Thread(target=self._drain, name="pipe-prefetch", daemon=True)
        self.thread.start()

    def _drain(self):
        try:
            while not self.abandoned.is_set():
                piece = self.stream.read1(_PREFETCH_PIECE)
                self.pieces.put(piece)
                if not piece:
                    return
        except BaseException as exc:  # noqa: BLE001 - raised in the reader's thread, in order
            self.pieces.put(exc)

    def read1(self, size=-1):
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        if not self.rest and not self.done:
            piece = self.pieces.get()
            if isinstance(piece, BaseException):
                self.done = True
                raise piece
            self.done = not piece
            self.rest = piece
        size = len(self.rest) if size is None or size < 0 else size
        out, self.rest = self.rest[:size], self.rest[size:]
        return out

    def read(self, size=-1):
        parts, got = [], 0
        while size is None or size < 0 or got < size:
            try:
                piece = self.read1(-1 if size is None or size < 0 else size - got)
            except BaseException as exc:  # noqa: BLE001 - the bytes before it first, the error at the next read
                if not parts:
                    raise
                self.error = exc
                break
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def close(self):
        """Stop the drain (it ends at its next piece) and drop what it read ahead."""
        self.abandoned.set()
        while True:
            try:
                self.pieces.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return


def _csv_chunks(stream, source, layout):
    columns = None
    parse = partial(_parse_csv_features, source=source, dtype=np.float64 if layout.qid else np.float32,
                    lead=len(layout.names))
    for block, lines_before, (array, features) in parsed_ahead(_blocks(stream, 16 << 20), parse):
        if not array.size:
            continue
        if columns is not None and array.shape[1] != columns:
            _bad_csv_line(block, lines_before, source)
            raise DataError(f"CSV block has {array.shape[1]} columns, earlier blocks {columns}", source=source,
                            record=lines_before + 1)
        columns = array.shape[1]
        yield _split_label(array, layout, source, lines_before + 1, features)


def _recordio_chunks(stream, source, layout):
    first = 0
    for payloads in recordio.iter_record_batches(stream, RECORDS_PER_CHUNK, source=source):
        features, labels = protobuf.decode_batch(payloads, None, source=source, first_record=first)
        if labels is None:
            raise DataError("recordIO-protobuf records carry no label; xgboost needs one per record", source=source,
                            record=first)
        labels = np.asarray(labels, dtype=np.float32).reshape(len(payloads), -1)
        upper = None
        if layout.bounds:  # survival:aft: label values [lower, upper]
            if labels.shape[1] != 2:
                raise DataError(f"survival:aft needs a label of two values (lower and upper bound) per record, not "
                                f"{labels.shape[1]}", source=source, record=first)
            upper = check_bounds(labels[:, 0], labels[:, 1], source, first)
        labels = np.ascontiguousarray(labels[:, 0])
        if sp.issparse(features):
            features = sp.csr_matrix(features, dtype=np.float32)
        else:
            features = np.asarray(features, dtype=np.float32)
        yield Chunk(features, labels, None, source, upper=upper)
        first += len(payloads)


def _parquet_chunks(path, source, layout):
    import pyarrow
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
        first = 1
        for batch in reader.iter_batches(batch_size=RECORDS_PER_CHUNK):
            array = np.column_stack([np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
                                     for column in batch.columns])
            yield _split_label(array, layout, source, first)
            first += len(array)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"parquet cannot be read: {exc}", source=source) from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"parquet columns must all be numeric: {exc}", source=source) from None


def check_layout(channel, layout):
    """Refuse, before reading, a content type that cannot carry what the objective needs."""
    mime = channel.media_type.mime
    if mime == CSV and channel.label_size not in ((1, 2) if layout.bounds else (1,)):
        wanted = "two label columns (the lower and upper bound)" if layout.bounds else "one label column"
        raise ChannelError(f"Channel {channel.name!r}: xgboost takes {wanted}, not label_size={channel.label_size}")
    if layout.qid and mime == RECORDIO:
        raise ChannelError(f"Channel {channel.name!r}: ranking objectives need a query id per row; {mime} does not "
                           "carry one in this image: use text/libsvm (qid:<n>), or text/csv or application/x-parquet "
                           "with the query id column after the label (and the weight)")
    if layout.bounds and mime == LIBSVM:
        raise ChannelError(f"Channel {channel.name!r}: survival:aft needs a lower and an upper bound per row, which "
                           "text/libsvm cannot carry: use text/csv or application/x-parquet (lower bound, upper bound "
                           "first) or recordIO-protobuf (a label of two values)")


def iter_chunks(channel, paths, *, layout=Layout(), workdir=None, epoch=0, indexing=None, stop=None):
    """Every chunk of one epoch of a channel, in file order."""
    mime = channel.media_type.mime
    check_layout(channel, layout)
    indexing = indexing or Indexing(channel.name)
    own_workdir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="algobox-xgboost-")
    count = 0
    try:
        with closing(iter_sources(channel, paths, epoch, stop)) as sources:
            for source, stream in sources:
                source = str(source)
                prefetched = None
                if channel.input_mode == "Pipe" and mime in (LIBSVM, CSV):
                    stream = prefetched = Prefetched(stream)
                if mime == LIBSVM:
                    pieces = _libsvm_chunks(stream, source, indexing, workdir, layout)
                elif mime == CSV:
                    pieces = _csv_chunks(stream, source, layout)
                elif mime == RECORDIO:
                    pieces = _recordio_chunks(stream, source, layout)
                elif mime == PARQUET:
                    pieces = parquet_from_stream(stream, source, layout, workdir, channel.input_mode)
                else:
                    raise ChannelError(f"Channel {channel.name!r}: content type {mime} is not supported")
                try:
                    for chunk in pieces:
                        if len(chunk):
                            count += 1
                            yield chunk
                except Stopped:  # SIGTERM while a Pipe-mode read waited: the data ends here
                    log.warning("Channel %s: reading stopped by a signal after %d chunks", channel.name, count)
                    return
                finally:
                    if prefetched is not None:
                        prefetched.close()
                        prefetched = None
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if not count:
        raise DataError(f"Channel {channel.name!r} holds no records")


def parquet_from_stream(stream, source, layout, workdir, input_mode):
    if input_mode == "File" and os.path.isfile(source) and not _is_gzip(source):
        yield from _parquet_chunks(source, source, layout)
        return
    spool = os.path.join(workdir, "spool.parquet")
    with open(spool, "wb") as f:
        shutil.copyfileobj(stream, f, 8 << 20)
    try:
        yield from _parquet_chunks(spool, source, layout)
    finally:
        os.unlink(spool)


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
