"""What the schema cannot say about k-means' hyperparameters (run at setup, before torch is imported)."""

from common.errors import HyperparameterError

MAX_CENTERS_VALUES = 2_000_000_000  # k x extra_center_factor x feature_dim float32 values kept while streaming


def check(hp):
    k, d = hp["k"], hp["feature_dim"]
    factor = hp["extra_center_factor"]
    factor = max(4, -(-400 // k)) if factor == "auto" else factor
    if k * factor * d > MAX_CENTERS_VALUES:
        raise HyperparameterError(
            f"Invalid hyperparameters k={k}, extra_center_factor={hp['extra_center_factor']}, feature_dim={d}: "
            f"streaming keeps k x extra_center_factor x feature_dim = {k * factor * d:,} float32 values "
            f"({k * factor * d * 4 / 1e9:.0f} GB); at most {MAX_CENTERS_VALUES:,} are allowed")
