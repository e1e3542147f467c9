"""SIGTERM during training: ask the algorithm to stop at the next batch boundary."""

import logging
import signal
import threading

log = logging.getLogger(__name__)


def install_stop_handler():
    """Return an Event that is set when SIGTERM or SIGINT arrives."""
    stop = threading.Event()

    def handle(signum, _frame):
        log.warning("Received %s: stopping at the next batch boundary and saving the model",
                    signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
