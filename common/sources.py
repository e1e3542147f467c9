"""Where a channel's bytes come from: files in File mode, one FIFO per epoch in Pipe mode."""

import gzip
import io
import logging
import os
import stat
import time

from .errors import ChannelError

log = logging.getLogger(__name__)

PIPE_WAIT_ENV = "ALGOBOX_PIPE_WAIT_SECONDS"
GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 20


def list_files(directory):
    """Every data file below a File-mode channel directory, recursively, hidden ones skipped, sorted."""
    found = []
    for current, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                found.append(os.path.join(current, name))
    return sorted(found)


def _maybe_gunzip(raw, compressed):
    """Wrap a buffered binary stream in gzip when told so or when it starts with gzip's magic."""
    if compressed or raw.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def wait_for_fifo(path, timeout):
    """Pipe mode: the platform creates ``<channel>_<epoch>``; wait for it a bounded time."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not path.exists():
        if time.monotonic() > deadline:
            raise ChannelError(f"Pipe-mode input {path} did not appear within {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    if not stat.S_ISFIFO(path.stat().st_mode) and not path.is_file():
        raise ChannelError(f"Pipe-mode input {path} is neither a FIFO nor a file")


def iter_sources(channel, paths, epoch=0):
    """Yield ``(name, binary stream)`` for one epoch of a channel; each stream is closed after use.

    File mode reads every file under the channel directory in a stable order; Pipe mode opens the FIFO
    ``<channel>_<epoch>``. Streams are gunzipped when the channel says Gzip or the bytes say so.
    """
    compressed = channel.config.compression == "Gzip"
    if channel.input_mode == "Pipe":
        fifo = paths.channel_fifo(channel.name, epoch)
        wait_for_fifo(fifo, float(os.environ.get(PIPE_WAIT_ENV, "60")))
        raw = open(fifo, "rb", buffering=0)
        stream = io.BufferedReader(raw, buffer_size=READ_BUFFER)
        try:
            yield str(fifo), _maybe_gunzip(stream, compressed)
        finally:
            stream.close()
        return
    directory = paths.channel_dir(channel.name)
    if not directory.is_dir():
        raise ChannelError(f"Channel {channel.name!r} has no directory {directory}")
    files = list_files(directory)
    if not files:
        raise ChannelError(f"Channel {channel.name!r} is empty: no data files under {directory}")
    for path in files:
        if os.path.getsize(path) == 0:
            log.warning("Skipping empty file %s in channel %s", path, channel.name)
            continue
        with open(path, "rb", buffering=READ_BUFFER) as stream:
            yield path, _maybe_gunzip(stream, compressed)
