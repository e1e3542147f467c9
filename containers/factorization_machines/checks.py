"""What the schema cannot say about Factorization Machines hyperparameters (torch-free, runs before training)."""

from common.errors import HyperparameterError

GROUPS = ("bias", "linear", "factors")
NEEDS = {"uniform": "scale", "constant": "value"}


def check(hp):
    """Each group's init method must have the value it reads: uniform needs *_init_scale, constant *_init_value."""
    for group in GROUPS:
        method = hp[f"{group}_init_method"]
        needed = NEEDS.get(method)
        if needed and hp.get(f"{group}_init_{needed}") is None:
            raise HyperparameterError(
                f"Invalid hyperparameters: {group}_init_method={method} needs {group}_init_{needed}, which is "
                f"not set (the guide gives it no default)")
