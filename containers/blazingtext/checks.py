"""What the schema cannot say about BlazingText's hyperparameters (run at setup, before fastText or torch)."""

import logging

from common.errors import HyperparameterError

log = logging.getLogger(__name__)


def check(hp):
    mode = hp["mode"]
    if mode == "supervised":
        if hp["min_epochs"] > hp["epochs"] and hp["early_stopping"]:
            log.info("min_epochs=%d exceeds epochs=%d: early stopping never triggers", hp["min_epochs"], hp["epochs"])
        return
    if hp["min_char"] > hp["max_char"]:
        raise HyperparameterError(f"Invalid hyperparameter min_char={hp['min_char']}: it must not exceed "
                                  f"max_char={hp['max_char']}")
    if mode == "batch_skipgram" and hp["subwords"]:
        raise HyperparameterError("Invalid hyperparameter subwords=True: subword embeddings are learnt in cbow and "
                                  "skipgram modes only, not in batch_skipgram (as the guide says)")
    if hp["sampling_threshold"] > 1e-3:
        log.warning("sampling_threshold=%g is above the recommended range (0, 1e-3]", hp["sampling_threshold"])
