"""RecordIO framing (MXNet/dmlc): magic 0xced7230a, a length word whose top 3 bits flag multi-part records,
the payload, zero padding to 4 bytes. Reads any binary stream (file, gzip, FIFO) in bounded memory.
"""

import struct

from .errors import DataError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
MAX_RECORD_BYTES = 1 << 29
CHUNK = 1 << 20


def _read_exact(stream, n):
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    have = len(data)
    while have < n:
        more = stream.read(n - have)
        if not more:
            break
        parts.append(more)
        have += len(more)
    return b"".join(parts)


def iter_records(stream, source=None):
    """Yield each record's payload; multi-part records are joined (with the magic between parts)."""
    number = 0
    pending = None
    while True:
        header = _read_exact(stream, 8)
        if not header:
            if pending is not None:
                raise DataError("stream ends inside a multi-part record", source=source, record=number)
            return
        if len(header) < 8:
            raise DataError("truncated RecordIO header", source=source, record=number)
        magic, word = struct.unpack("<II", header)
        if magic != MAGIC:
            raise DataError(f"not RecordIO: bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})",
                            source=source, record=number)
        flag, length = word >> 29, word & LENGTH_MASK
        padded = (length + 3) & ~3
        body = _read_exact(stream, padded)
        if len(body) < padded:
            raise DataError(f"truncated RecordIO record: {len(body)} of {padded} bytes", source=source,
                            record=number)
        payload = body[:length]
        if flag == 0:
            if pending is not None:
                raise DataError("multi-part record not finished", source=source, record=number)
            number += 1
            yield payload
        elif flag == 1:
            if pending is not None:
                raise DataError("multi-part record restarted", source=source, record=number)
            pending = [payload]
        elif flag in (2, 3):
            if pending is None:
                raise DataError("multi-part record continues without a start", source=source, record=number)
            pending.append(payload)
            if flag == 3:
                number += 1
                yield MAGIC_BYTES.join(pending)
                pending = None
        else:
            raise DataError(f"bad RecordIO part flag {flag}", source=source, record=number)


def iter_record_batches(stream, batch_size, source=None):
    """Lists of up to ``batch_size`` payloads."""
    batch = []
    for payload in iter_records(stream, source):
        batch.append(payload)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
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
