"""The failure file: a short category and message first (users see 1024 characters), details after."""

import logging
import traceback

from .errors import AlgoboxError

log = logging.getLogger(__name__)
VISIBLE_CHARS = 1024


def summary(exc):
    """``ClientError: <message>`` for our errors, ``AlgorithmError: <type>: <message>`` for the rest."""
    if isinstance(exc, AlgoboxError):
        return f"{exc.category}: {exc}"
    return f"AlgorithmError: {type(exc).__name__}: {exc}"


def write_failure(paths, exc):
    """Write /opt/ml/output/failure; never raises (a failure while failing must not hide the first)."""
    text = summary(exc)
    if len(text) > VISIBLE_CHARS - 1:
        text = text[: VISIBLE_CHARS - 4] + "..."
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(f"{text}\n\n{details}", encoding="utf-8")
    except OSError as err:
        log.error("Could not write %s: %s", paths.failure_file, err)
    return text
