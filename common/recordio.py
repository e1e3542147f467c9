"""RecordIO framing (MXNet/dmlc): magic 0xced7230a, a length word whose top 3 bits flag multi-part records,
the payload, zero padding to 4 bytes. Reads any binary stream (file, gzip, FIFO) in bounded memory.

Runs of same-length records (what the SDK writes for dense data) are framed with numpy in one step and
handed on as a 2-D uint8 array, one row per payload; anything else goes record by record.
"""

import struct

import numpy as np

from .errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
CHUNK = 1 << 20


def _padded(length):
    return (length + 3) & ~3


class _Scanner:
    """A read buffer over a stream that yields records one by one or as fixed-length runs."""

    def __init__(self, stream, source):
        self.stream = stream
        self.source = source
        self.buf = b""
        self.pos = 0
        self.number = 0
        self.eof = False

    def _fill(self, need):
        """Make ``need`` bytes available from ``pos`` if the stream has them; return what is available."""
        have = len(self.buf) - self.pos
        if have >= need or self.eof:
            return have
        parts = [self.buf[self.pos:]]
        while have < need:
            data = self.stream.read(max(CHUNK, need - have))
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)
        self.pos = 0
        return have

    def _error(self, message):
        return DataError(message, source=self.source, record=self.number)

    def _header(self):
        """(flag, length) of the record at ``pos``, or None at the end of the stream."""
        have = self._fill(8)
        if have == 0:
            return None
        if have < 8:
            raise self._error("truncated RecordIO header")
        magic, word = struct.unpack_from("<II", self.buf, self.pos)
        if magic != MAGIC:
            raise self._error(f"not RecordIO: bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})")
        return word >> 29, word & LENGTH_MASK

    def _part(self, length):
        size = 8 + _padded(length)
        have = self._fill(size)
        if have < size:
            raise self._error(f"truncated RecordIO record: {have - 8} of {_padded(length)} bytes")
        payload = self.buf[self.pos + 8:self.pos + 8 + length]
        self.pos += size
        return payload

    def record(self):
        """The next whole payload (multi-part records joined with the magic between parts), or None."""
        header = self._header()
        if header is None:
            return None
        flag, length = header
        if flag == 0:
            payload = self._part(length)
            self.number += 1
            return payload
        if flag != 1:
            raise self._error(f"multi-part record starts with part flag {flag}")
        parts = [self._part(length)]
        while True:
            header = self._header()
            if header is None:
                raise self._error("stream ends inside a multi-part record")
            flag, length = header
            if flag not in (2, 3):
                raise self._error(f"multi-part record continues with part flag {flag}")
            parts.append(self._part(length))
            if flag == 3:
                self.number += 1
                return MAGIC_BYTES.join(parts)

    def fixed_run(self, limit):
        """Up to ``limit`` consecutive whole records of the same length as a (n, length) uint8 array."""
        header = self._header()
        if header is None or header[0] != 0 or limit < 2:
            return None
        length = header[1]
        stride = 8 + _padded(length)
        count = min(limit, self._fill(limit * stride) // stride)
        if count < 2:
            return None
        rows = np.frombuffer(self.buf, np.uint8, count=count * stride, offset=self.pos).reshape(count, stride)
        words = rows[:, :8].copy().view("<u4")
        same = (words[:, 0] == MAGIC) & (words[:, 1] == words[0, 1])
        run = count if same.all() else int(np.argmin(same))
        if run < 2:
            return None
        self.pos += run * stride
        self.number += run
        return rows[:run, 8:8 + length]


def iter_records(stream, source=None):
    """Yield each record's payload as bytes."""
    scanner = _Scanner(stream, source)
    while (payload := scanner.record()) is not None:
        yield payload


def iter_record_batches(stream, batch_size, source=None):
    """Batches of up to ``batch_size`` payloads: a (n, length) uint8 array for a run of same-length
    records, else a list of bytes."""
    scanner = _Scanner(stream, source)
    while True:
        run = scanner.fixed_run(batch_size)
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
    """One whole (single-part) record."""
    length = len(payload)
    if length > LENGTH_MASK:
        raise ValueError(f"record of {length} bytes is too large for RecordIO")
    return struct.pack("<II", MAGIC, length) + payload + b"\x00" * (-length % 4)


def write_records(stream, payloads):
    for payload in payloads:
        stream.write(encode_record(payload))
