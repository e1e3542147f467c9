"""Run a generator in a background thread, a bounded queue ahead of its consumer.

Reading, decoding and shuffling a channel (numpy, which releases the GIL in its loops) then overlaps the models'
steps (torch, which does too): on two cores an epoch takes about the longer of the two instead of their sum.
Errors raised by the generator are raised again in the consumer; closing the consumer stops the thread.
"""

import queue
import threading

_DONE = object()


class _Failed:
    def __init__(self, error):
        self.error = error


def prefetched(generator, depth=8):
    """The items of ``generator``, produced in a daemon thread at most ``depth`` items ahead. The thread starts
    now, before the first item is asked for (so reading can begin while the caller does something else)."""
    items = queue.Queue(maxsize=depth)
    closed = threading.Event()

    def put(item):
        while not closed.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in generator:
                if not put(item):
                    break
        except BaseException as error:  # handed to the consumer
            put(_Failed(error))
            return
        finally:
            if closed.is_set():
                generator.close()
        put(_DONE)

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    return Prefetched(items, closed, thread)


class Prefetched:
    """The consumer's side: an iterator; ``close`` (also at the end, on an error, or when garbage collected)
    stops the producer thread, whether or not an item was asked for."""

    def __init__(self, items, closed, thread):
        self.items = items
        self.closed = closed
        self.thread = thread
        self.finished = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        item = self.items.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, _Failed):
            self.close()
            raise item.error
        return item

    def close(self):
        if not self.finished:
            self.finished = True
            self.closed.set()
            self.thread.join(timeout=5)

    def __del__(self):
        self.closed.set()
