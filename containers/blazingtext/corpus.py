"""The training text as fastText wants it: one local file. A single plain file in File mode is used where it lies
(no copy: fastText reads it directly); several files, Gzip or Pipe mode are streamed through the text reader
into one file in a work folder (the guide's "concatenate them into one file", done for the user)."""

import logging
import os

from common import logs
from common.errors import DataError
from common.sources import list_files

log = logging.getLogger(__name__)
LINES_PER_BATCH = 8192
LABEL = b"__label__"
SCAN_CHUNK = 1 << 24
GZIP_MAGIC = b"\x1f\x8b"


def _as_is(context, name):
    """The channel's one plain file, if it can be read where it lies."""
    channel = context.channels[name]
    if channel.input_mode != "File" or channel.config.compression != "None":
        return None
    files = [p for p in list_files(context.paths.channel_dir(name)) if os.path.getsize(p) > 0]
    if len(files) != 1:
        return None
    with open(files[0], "rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            return None
    return str(files[0])


def text_file(context, name, workdir):
    """``(path, lines or None)``: a local file holding the whole channel, one sentence per line."""
    path = _as_is(context, name)
    if path is not None:
        log.info("Channel %s: fastText reads %s directly (%.1f MB)", name, path, os.path.getsize(path) / 1e6)
        return path, None
    path = os.path.join(workdir, f"{name}.txt")
    progress = logs.Progress(name)
    lines = 0
    with open(path, "w", encoding="utf-8") as out:
        for batch in context.batches(name, LINES_PER_BATCH, sharded=False):
            out.write("\n".join(batch.features))
            out.write("\n")
            lines += len(batch)
            progress.update(len(batch))
    progress.done()
    log.info("Channel %s: %d lines gathered into %s", name, lines, path)
    return path, lines


def require_labels(path, name):
    """Supervised data must hold ``__label__`` tokens (fastText would train a classifier of no classes)."""
    with open(path, "rb") as handle:
        tail = b""
        while True:
            chunk = handle.read(SCAN_CHUNK)
            if not chunk:
                break
            if LABEL in tail + chunk:
                return
            tail = chunk[-len(LABEL):]
    raise DataError(f"Channel {name!r} holds no labels: supervised mode needs a __label__<class> token in each line "
                    "(for example '__label__4 linux ready for prime time')", source=path)
