"""Where a channel's bytes come from: files in File mode, one FIFO per epoch in Pipe mode.

Every fault of the files is reported by name: unreadable directories and files, dangling links and link
loops are client errors (nothing is skipped silently), corrupt gzip data is a data error naming the file,
and a FIFO the platform never creates is a platform error. Pipe reads and the wait for a FIFO both honour
the stop event (SIGTERM), so a stalled writer cannot hold a job past the platform's grace period.
"""

import gzip
import io
import logging
import os
import select
import stat
import time
import zlib

from .errors import ChannelError, ConfigError, DataError, PlatformError

log = logging.getLogger(__name__)

PIPE_WAIT_ENV = "ALGOBOX_PIPE_WAIT_SECONDS"
GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 20
POLL_SECONDS = 0.2


class Stopped(Exception):
    """Raised inside a read when the job was asked to stop (SIGTERM); readers end the epoch."""


def list_files(directory):
    """Every data file below a File-mode channel directory, recursively, hidden ones skipped, sorted.

    Directory links are followed once: a link back to a directory already being read is refused."""
    found = []

    def fail(error):
        raise ChannelError(f"Cannot read directory {error.filename} in the channel: {error.strerror}") from error

    seen = set()
    for current, dirs, files in os.walk(directory, followlinks=True, onerror=fail):
        real = os.path.realpath(current)
        if real in seen:
            raise ChannelError(f"{current} is a link back to a directory already read ({real}): a link loop")
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(current, name)
            if os.path.islink(path) and not os.path.exists(path):
                raise ChannelError(f"{path} is a link to {os.readlink(path)!r}, which does not exist")
            found.append(path)
    return sorted(found)


class _CheckedGzip(gzip.GzipFile):
    """GzipFile whose corrupt-data errors name the file (DataError) instead of zlib's bare words."""

    def _guard(self, method, *args):
        try:
            return method(*args)
        except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
            raise DataError(f"corrupt or truncated gzip data: {type(exc).__name__}: {exc}",
                            source=self.name or None) from exc

    def read(self, size=-1):
        return self._guard(super().read, size)

    def read1(self, size=-1):
        return self._guard(super().read1, size)

    def peek(self, n):
        return self._guard(super().peek, n)

    def readinto(self, b):
        return self._guard(super().readinto, b)

    def readinto1(self, b):
        return self._guard(super().readinto1, b)


def _maybe_gunzip(raw, compressed, name):
    """Wrap a buffered binary stream in gzip when told so or when it starts with gzip's magic."""
    if compressed or raw.peek(2)[:2] == GZIP_MAGIC:
        return _CheckedGzip(filename=name, fileobj=raw, mode="rb")
    return raw


FIFO_BYTES = 1 << 20  # the pipe size asked for (Linux's default limit for unprivileged processes)


class _StoppableFifo(io.RawIOBase):
    """A FIFO read that wakes every POLL_SECONDS to honour the stop event (a blocked read() would not)."""

    def __init__(self, path, stop):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.stop = stop
        self.name = str(path)
        try:  # Linux: a 1 MiB pipe instead of 64 KiB, 16x fewer reads (and wake-ups of the writer) per epoch
            import fcntl

            fcntl.fcntl(self.fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), FIFO_BYTES)
        except (ImportError, OSError):
            pass

    def readable(self):
        return True

    def readinto(self, buffer):
        while True:
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            ready, _, _ = select.select([self.fd], [], [], POLL_SECONDS)
            if not ready:
                continue
            try:
                return os.readv(self.fd, [buffer])  # straight into the caller's buffer
            except BlockingIOError:
                continue

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


def pipe_wait_seconds(environ=None):
    environ = os.environ if environ is None else environ
    value = environ.get(PIPE_WAIT_ENV, "60")
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{PIPE_WAIT_ENV}={value!r} must be a number of seconds") from None
    if not seconds >= 0:
        raise ConfigError(f"{PIPE_WAIT_ENV}={value!r} must be a non-negative number of seconds")
    return seconds


def wait_for_fifo(path, timeout, stop=None):
    """Pipe mode: the platform creates ``<channel>_<epoch>``; wait for it a bounded time (False if stopped)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not path.exists():
        if stop is not None and stop.is_set():
            return False
        if time.monotonic() > deadline:
            raise PlatformError(f"Pipe-mode input {path} did not appear within {timeout:.0f} s "
                                f"(the platform creates it; {PIPE_WAIT_ENV} sets the wait)")
        time.sleep(delay)
        delay = min(delay * 2, POLL_SECONDS)
    if not stat.S_ISFIFO(path.stat().st_mode) and not path.is_file():
        raise ChannelError(f"Pipe-mode input {path} is neither a FIFO nor a file")
    return True


def _open_file(path):
    try:
        return open(path, "rb", buffering=READ_BUFFER)
    except OSError as exc:
        raise ChannelError(f"Cannot read data file {path}: {exc.strerror or exc}") from exc


def iter_sources(channel, paths, epoch=0, stop=None):
    """Yield ``(name, binary stream)`` for one epoch of a channel; each stream is closed after use.

    File mode reads every file under the channel directory in a stable order; Pipe mode opens the FIFO
    ``<channel>_<epoch>``. Streams are gunzipped when the channel says Gzip or the bytes say so.
    A stop request (SIGTERM) ends the epoch: the sources end, or a stalled Pipe read raises Stopped, which
    ends here as the end of the data.
    """
    compressed = channel.config.compression == "Gzip"
    if channel.input_mode == "Pipe":
        fifo = paths.channel_fifo(channel.name, epoch)
        if not wait_for_fifo(fifo, pipe_wait_seconds(), stop):
            return
        raw = _StoppableFifo(fifo, stop) if stat.S_ISFIFO(fifo.stat().st_mode) else open(fifo, "rb", buffering=0)
        stream = io.BufferedReader(raw, buffer_size=READ_BUFFER)
        try:
            yield str(fifo), _maybe_gunzip(stream, compressed, str(fifo))
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
        if stop is not None and stop.is_set():
            return
        if os.path.getsize(path) == 0:
            log.warning("Skipping empty file %s in channel %s", path, channel.name)
            continue
        with _open_file(path) as stream:
            yield path, _maybe_gunzip(stream, compressed, path)
