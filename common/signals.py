"""SIGTERM during training: stop at once while there is nothing to save, else at the next batch boundary.

Until the algorithm starts its work (its first read of a channel, or ``context.started()``), nothing could be
saved, so the signal interrupts the main thread right away (an import of TensorFlow or a network build can
take many seconds). After that, the signal only sets the event: the algorithm stops at its next batch boundary
and saves the model of what it has read.
"""

import logging
import signal
import threading

from .errors import AlgorithmError

log = logging.getLogger(__name__)


class StoppedBeforeWork(AlgorithmError):
    """SIGTERM arrived before the algorithm read any data: there is no model to save."""


class StopSignal(threading.Event):
    """An Event set by SIGTERM/SIGINT; ``interruptible`` while nothing could be saved yet."""

    def __init__(self):
        super().__init__()
        self.interruptible = True

    def started(self):
        """The algorithm has begun work whose result it saves when stopped: signals no longer interrupt."""
        self.interruptible = False


def install_stop_handler():
    """Return a StopSignal that is set when SIGTERM or SIGINT arrives."""
    stop = StopSignal()

    def handle(signum, _frame):
        name = signal.Signals(signum).name
        already = stop.is_set()
        stop.set()
        if stop.interruptible and not already:
            log.warning("Received %s before any data was read: stopping now", name)
            raise StoppedBeforeWork(f"Training was stopped ({name}) before it read any data; no model was saved")
        log.warning("Received %s: stopping at the next batch boundary and saving the model", name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
