"""Callbacks around ``xgboost.train``: the built-in's metric lines, and stopping on SIGTERM on every host at once."""

import logging

import numpy as np
import xgboost as xgb

log = logging.getLogger(__name__)


def format_line(epoch, evals_log):
    """``[12]\\ttrain-rmse:0.12345\\tvalidation-rmse:0.23456``: xgboost's own evaluation line.

    CloudWatch shows the tabs as ``#011``, which is what the built-in's MetricDefinitions regexes match
    (``.*\\[[0-9]+\\].*#011validation-rmse:(\\S+)``).
    """
    parts = [f"[{epoch}]"]
    for data, metrics in evals_log.items():
        for metric, history in metrics.items():
            value = history[-1]
            if isinstance(value, tuple):
                value = value[0]
            parts.append(f"{data}-{metric}:{value:.5f}")
    return "\t".join(parts)


class EvaluationLog(xgb.callback.TrainingCallback):
    def __init__(self, is_master):
        super().__init__()
        self.is_master = is_master

    def after_iteration(self, model, epoch, evals_log):
        if self.is_master and evals_log:
            log.info("%s", format_line(epoch, evals_log))
        return False


class StopOnSignal(xgb.callback.TrainingCallback):
    """Ends training after the current round when SIGTERM came to any host (all hosts stop together)."""

    def __init__(self, stop, cluster):
        super().__init__()
        self.stop = stop
        self.cluster = cluster
        self.stopped_at = None

    def after_iteration(self, model, epoch, evals_log):
        flag = 1.0 if self.stop.is_set() else 0.0
        if self.cluster.world_size > 1:
            flag = float(self.cluster.allreduce_max(np.array([flag]))[0])
        if flag:
            self.stopped_at = epoch
            log.warning("Stop requested: ending after round %d; the model of %d rounds will be saved", epoch,
                        epoch + 1)
            return True
        return False
