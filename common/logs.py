"""Logs in the built-in algorithms' style, metric lines for MetricDefinitions, progress and timings."""

import json
import logging
import sys
import time
from contextlib import contextmanager

FORMAT = "[%(asctime)s %(levelname)s %(thread)d %(filename)s:%(lineno)d] %(message)s"
DATE_FORMAT = "%m/%d/%Y %H:%M:%S"

log = logging.getLogger("algobox")


def configure(level=logging.INFO, stream=None):
    """Send every logger's records to stdout (CloudWatch reads the container's output) in our format."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _number(value):
    return f"{float(value):.6g}" if not isinstance(value, int) else str(value)


def quality_metric(host, channel, metric, value):
    """``#quality_metric: host=algo-1, test msd <loss>=0.0123`` — matched by the built-in regexes."""
    log.info("#quality_metric: host=%s, %s %s <loss>=%s", host, channel, metric, _number(value))


def test_score(host, metric, value):
    """``#test_score (algo-1) : ('msd', 0.0123)`` — the built-in algorithms' summary line."""
    log.info("#test_score (%s) : ('%s', %s)", host, metric, _number(value))


def metric(name, value, **labels):
    """A generic ``#metric name=value`` line, e.g. ``#metric train:accuracy=0.91 epoch=3``."""
    extra = "".join(f" {k}={v}" for k, v in labels.items())
    log.info("#metric %s=%s%s", name, _number(value), extra)


def metrics_json(values):
    """The built-in ``#metrics {...}`` JSON line used for timings and counters."""
    log.info("#metrics %s", json.dumps({"Metrics": values}, sort_keys=True))


class Timings:
    """Per-stage wall-clock timings, logged as each stage ends and summed at the end."""

    def __init__(self):
        self.seconds = {}

    @contextmanager
    def stage(self, name):
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed
            log.info("Stage %s took %.3f s", name, elapsed)

    def report(self):
        metrics_json({f"{k}.time": {"sum": round(v * 1000, 3), "unit": "ms"} for k, v in self.seconds.items()})


class Progress:
    """Counts records through a long pass and logs throughput every ``interval`` seconds."""

    def __init__(self, what, interval=10.0):
        self.what = what
        self.interval = interval
        self.records = 0
        self.batches = 0
        self.start = self.last = time.perf_counter()

    def update(self, records):
        self.records += records
        self.batches += 1
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._log(now)

    def _log(self, now):
        elapsed = max(now - self.start, 1e-9)
        log.info(
            "%s: %d batches, %d records, %.1f s, %.0f records/s",
            self.what, self.batches, self.records, elapsed, self.records / elapsed,
        )

    def done(self):
        self._log(time.perf_counter())
        return self.records
