"""RecordIO framing (MXNet/dmlc): magic 0xced7230a, a length word whose top 3 bits flag the parts of a
multi-part record, the payload, zero padding to 4 bytes. Reads any binary stream (file, gzip, FIFO) in
chunks, in memory bounded by a chunk plus one record (or one batch).

A writer splits a payload into parts where it holds the magic word at a 4-byte boundary; the reader joins
the parts with the magic between them (as dmlc's does). Runs of whole records are framed with numpy in one
step: same-length ones (what the SageMaker SDK writes for dense data) are handed on as a 2-D uint8 array,
others (sparse rows) as a list of bytes.
"""

import struct

import numpy as np

from .errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3
CHUNK = 1 << 20
MAX_RECORD_BYTES = 256 << 20  # a (joined) record larger than this is taken for corruption
RUN_BYTES = 32 << 20  # the most one same-length run reads ahead


def padded(length):
    """A payload's length padded to the 4-byte boundary the next header starts at."""
    return (length + 3) & ~3


class _Scanner:
    """A read buffer over a stream that gives records one by one or as runs of same-length records."""

    def __init__(self, stream, source):
        # readinto1/read1: what a FIFO holds now, without waiting for a whole chunk
        self.readinto = getattr(stream, "readinto1", None) or getattr(stream, "readinto", None)
        self.read = getattr(stream, "read1", stream.read)
        self.source = source
        self.buf = memoryview(b"")  # a fresh buffer per fill: runs handed out are views into it
        self.pos = 0
        self.end = 0
        self.number = 0  # of the next record
        self.eof = False

    def _fill(self, need):
        """Make ``need`` bytes available from ``pos`` if the stream has them; return how many are."""
        have = self.end - self.pos
        if have >= need or self.eof:
            return have
        buf = memoryview(np.empty(max(need, have + CHUNK), np.uint8))  # not zero-filled
        buf[:have] = self.buf[self.pos:self.end]
        while have < need:
            if self.readinto is not None:
                count = self.readinto(buf[have:]) or 0
            else:
                data = self.read(len(buf) - have)
                count = len(data)
                buf[have:have + count] = data
            if not count:
                self.eof = True
                break
            have += count
        self.buf, self.pos, self.end = buf, 0, have
        return have

    def _error(self, message):
        return DataError(message, source=self.source, record=self.number)

    def _header(self):
        """(part flag, length) of the record at ``pos``, or None at the end of the stream."""
        have = self._fill(8)
        if have == 0:
            return None
        if have < 8:
            raise self._error(f"truncated RecordIO header: {have} of 8 bytes")
        magic, word = struct.unpack_from("<II", self.buf, self.pos)
        if magic != MAGIC:
            raise self._error(f"not RecordIO: bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})")
        flag, length = word >> 29, word & LENGTH_MASK
        if flag > LAST:
            raise self._error(f"bad RecordIO part flag {flag}")
        if length > MAX_RECORD_BYTES:
            raise self._error(f"RecordIO record length {length} is over the {MAX_RECORD_BYTES}-byte limit")
        return flag, length

    def _part(self, length):
        size = 8 + padded(length)
        have = self._fill(size)
        if have < size:
            raise self._error(f"truncated RecordIO record: {max(have - 8, 0)} of {padded(length)} payload bytes")
        payload = bytes(self.buf[self.pos + 8:self.pos + 8 + length])
        self.pos += size
        return payload

    def record(self):
        """The next whole payload (multi-part records joined with the magic between parts), or None at the end."""
        header = self._header()
        if header is None:
            return None
        flag, length = header
        if flag == WHOLE:
            payload = self._part(length)
            self.number += 1
            return payload
        if flag != FIRST:
            raise self._error(f"RecordIO record starts with a {'middle' if flag == MIDDLE else 'last'} part")
        parts = [self._part(length)]
        total = length
        while True:
            header = self._header()
            if header is None:
                raise self._error("stream ends inside a multi-part RecordIO record")
            flag, length = header
            if flag not in (MIDDLE, LAST):
                raise self._error("multi-part RecordIO record is cut short by a new record")
            total += 4 + length
            if total > MAX_RECORD_BYTES:
                raise self._error(f"multi-part RecordIO record is over the {MAX_RECORD_BYTES}-byte limit")
            parts.append(self._part(length))
            if flag == LAST:
                self.number += 1
                return MAGIC_BYTES.join(parts)

    def run(self, limit):
        """Up to ``limit`` consecutive whole records, framed with numpy: an (n, length) uint8 array when they have
        one length, else a list of bytes; None when fewer than two are whole in the buffer.

        Headers are found as the magic words at 4-byte steps whose lengths chain each to the next: a magic word
        inside a payload (which writers split, but may not) breaks the chain, and the run ends before it."""
        header = self._header()
        if header is None or header[0] != WHOLE or limit < 2:
            return None
        stride = 8 + padded(header[1])
        have = self._fill(max(2 * stride, min((limit + 1) * stride, RUN_BYTES)))
        words = np.frombuffer(self.buf, "<u4", count=have // 4, offset=self.pos)
        at = np.flatnonzero(words[:-1] == MAGIC)[:limit + 1]  # candidate headers, in words from pos
        word = words[at + 1]
        flags, lengths = word >> 29, (word & LENGTH_MASK).astype(np.int64)
        after = at + 2 + (lengths + 3) // 4  # where each candidate's record ends
        chained = (after[:-1] == at[1:]) & (flags[:-1] == WHOLE)
        last = len(chained) if chained.all() else int(np.argmin(chained))  # the last header the chain proves
        count = last + 1 if flags[last] == WHOLE and after[last] <= len(words) else last
        count = min(count, limit)
        if count < 2:
            return None
        start, end = self.pos, self.pos + 4 * int(after[count - 1])
        self.pos = end
        self.number += count
        lengths = lengths[:count]
        if (lengths == lengths[0]).all():
            rows = np.frombuffer(self.buf, np.uint8, count=end - start, offset=start).reshape(count, stride)
            return rows[:, 8:8 + int(lengths[0])]
        blob = bytes(self.buf[start:end])
        return [blob[s:s + n] for s, n in zip((4 * at[:count] + 8).tolist(), lengths.tolist())]


def iter_records(stream, source=None):
    """Yield each record's payload as bytes; DataError names ``source`` and the record number (from 0)."""
    scanner = _Scanner(stream, source)
    while (payload := scanner.record()) is not None:
        yield payload


def iter_record_batches(stream, batch_size, source=None):
    """Batches of up to ``batch_size`` payloads, in order: an (n, length) uint8 array (one row per payload) for
    a run of same-length records, else a list of bytes. Either works with ``protobuf.decode_batch``."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    scanner = _Scanner(stream, source)
    while True:
        run = scanner.run(batch_size)
        if run is not None:
            yield run
            continue
        batch = []
        while len(batch) < batch_size and (payload := scanner.record()) is not None:
            batch.append(payload)
        if not batch:
            return
        yield batch


def encode_record(payload):
    """One RecordIO record. As dmlc's writer does, a payload holding the magic word at a 4-byte boundary is
    written in parts split there (so a reader that resynchronises on the magic never starts inside it)."""
    length = len(payload)
    if length > MAX_RECORD_BYTES:
        raise ValueError(f"record of {length} bytes is over the {MAX_RECORD_BYTES}-byte limit")
    splits = []
    if MAGIC_BYTES in payload:
        words = np.frombuffer(payload, "<u4", count=length // 4)
        splits = (np.flatnonzero(words == MAGIC) * 4).tolist()
    out = []
    start = 0
    for split in splits:
        out += [struct.pack("<II", MAGIC, (FIRST if start == 0 else MIDDLE) << 29 | split - start),
                payload[start:split]]
        start = split + 4
    tail = length - start
    out += [struct.pack("<II", MAGIC, (LAST if splits else WHOLE) << 29 | tail), payload[start:],
            b"\x00" * (-tail % 4)]
    return b"".join(out)


def encode_rows(rows):
    """``b"".join(encode_record(row.tobytes()) for row in rows)`` for an (n, length) uint8 array of payloads of
    one length, framed by numpy; rows holding the magic word at a 4-byte boundary are framed one by one."""
    count, length = rows.shape
    if length > MAX_RECORD_BYTES:
        raise ValueError(f"record of {length} bytes is over the {MAX_RECORD_BYTES}-byte limit")
    aligned = length // 4 * 4
    words = np.ascontiguousarray(rows[:, :aligned]).view("<u4") if aligned else np.zeros((count, 0), "<u4")
    if (words == MAGIC).any():
        return b"".join(encode_record(row.tobytes()) for row in rows)
    pad = -length % 4
    framed = np.zeros((count, 8 + length + pad), np.uint8)
    framed[:, :8] = np.frombuffer(struct.pack("<II", MAGIC, WHOLE << 29 | length), np.uint8)
    framed[:, 8:8 + length] = rows
    return framed.tobytes()


def write_records(stream, payloads):
    """Write each payload as a RecordIO record."""
    for payload in payloads:
        stream.write(encode_record(payload))
