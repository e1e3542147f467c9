"""What the schema cannot say about DeepAR's hyperparameters (run at setup, before torch is imported)."""

import logging

from common.errors import HyperparameterError

from .frequency import Frequency

log = logging.getLogger(__name__)


def check(hp):
    freq = Frequency.parse(hp["time_freq"])
    quantiles = hp["test_quantiles"]
    if len(set(quantiles)) != len(quantiles):
        raise HyperparameterError(f"Invalid hyperparameter test_quantiles={quantiles}: a quantile is listed twice")
    if hp["likelihood"] == "deterministic-L1":
        log.info("likelihood=deterministic-L1 learns a point forecast: every sample path, quantile and the mean "
                 "are that point")
    if hp["prediction_length"] > 400:
        log.warning("prediction_length=%d: the guide advises against horizons over 400 (slow and less accurate)",
                    hp["prediction_length"])
    log.info("time_freq=%s: date features %s; lags %s", freq, ", ".join(freq.features), freq.lags())
