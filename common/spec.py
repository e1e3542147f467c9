"""What an algorithm declares: hyperparameter schema, channels, content types, metrics, entry points.

Entry points are ``"module:attribute"`` strings so that declaring an algorithm imports none of its heavy
dependencies (torch, TensorFlow); they are imported only when training or serving starts.
"""

import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .hyperparameters import HyperparameterSchema

ALGORITHMS_PACKAGE = "containers"


@dataclass(frozen=True)
class MetricDefinition:
    """A metric as a SageMaker MetricDefinitions entry: a name and the regex that finds it in the logs."""

    name: str
    regex: str


@dataclass
class AlgorithmSpec:
    name: str
    folder: Path
    channels: tuple
    train: str
    model: str
    request_types: tuple = ()
    encoders: dict = field(default_factory=dict)
    default_accept: str = "application/json"
    metrics: tuple = ()
    tuning_objective: str | None = None

    @cached_property
    def hyperparameters(self):
        return HyperparameterSchema.from_file(self.folder / "hyperparameters.json")

    def load_train(self):
        return load_object(self.train)

    def load_model_class(self):
        return load_object(self.model)


def load_object(reference):
    """Import ``"package.module:attribute"``."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def module_name(algorithm):
    return algorithm.replace("-", "_")


def available():
    """Names of the algorithms in ``containers/`` (folders holding a spec.py)."""
    root = Path(importlib.import_module(ALGORITHMS_PACKAGE).__file__).parent
    return sorted(p.name.replace("_", "-") for p in root.iterdir() if (p / "spec.py").is_file())


def load_spec(algorithm):
    """The AlgorithmSpec named ``SPEC`` in ``containers/<algorithm>/spec.py``."""
    names = available()
    if algorithm.replace("_", "-") not in names:
        raise LookupError(f"Unknown algorithm {algorithm!r}; available: {', '.join(names)}")
    module = importlib.import_module(f"{ALGORITHMS_PACKAGE}.{module_name(algorithm)}.spec")
    return module.SPEC
