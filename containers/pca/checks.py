"""What the schema cannot say about PCA's hyperparameters (run at setup, before torch is imported)."""

import logging

from common.errors import HyperparameterError

log = logging.getLogger(__name__)


def check(hp):
    k, d = hp["num_components"], hp["feature_dim"]
    if k > d:
        raise HyperparameterError(
            f"Invalid hyperparameter num_components={k}: it must not exceed feature_dim={d} "
            "(there are at most feature_dim principal components)")
    if hp["algorithm_mode"] == "regular" and hp["extra_components"] != -1:
        log.info("extra_components=%d is ignored: it applies to algorithm_mode=randomized only",
                 hp["extra_components"])
    if hp["algorithm_mode"] == "regular" and d > 20_000:
        log.warning("Regular mode keeps a feature_dim x feature_dim summary (%.1f GB at feature_dim=%d); "
                    "algorithm_mode=randomized needs O(num_components x feature_dim)", 12 * d * d / 1e9, d)
