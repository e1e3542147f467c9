"""What an algorithm declares: hyperparameter schema, checks, channels, readers, codecs, metrics, entry points.

References are ``"module:attribute"`` strings so that declaring an algorithm imports none of its heavy
dependencies (torch, TensorFlow); they are imported only when training or serving starts.

An algorithm is a folder ``containers/<name>/`` holding ``spec.py`` (with ``SPEC``) and
``hyperparameters.json``; that one rule is used by the CLI, the image scripts and the tests. A spec may also
live anywhere importable and be named as ``module:SPEC`` on the command line (tests do that).
"""

import importlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import contenttypes
from .hyperparameters import HyperparameterSchema

ALGORITHMS_PACKAGE = "containers"
DIRECTIONS = ("Minimize", "Maximize")
NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_FIELD = re.compile(r"\{(\w+)\}")
_FIELD_PATTERNS = {"host": r"\S+", "epoch": r"\d+", "model": r"\d+", "iteration": r"\d+"}

QUALITY_LINE = "#quality_metric: host={host}, {channel} {metric} <loss>={value}"
PLAIN_LINE = "#metric {name}={value}"

CPU_INSTANCE_TYPES = ("ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge", "ml.m5.12xlarge",
                      "ml.c5.xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge", "ml.c5.9xlarge", "ml.c5.18xlarge")
GPU_INSTANCE_TYPES = ("ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge", "ml.g5.xlarge", "ml.g5.2xlarge")


@dataclass(frozen=True)
class Metric:
    """A metric declared once: its name(s), its direction, and the log line that carries it.

    ``line`` is a template with ``{value}`` and any of ``{host}``, ``{name}``, ``{channel}``, ``{metric}``,
    ``{epoch}``; the MetricDefinitions regex is derived from the same template, so the two never disagree.
    ``regex`` is given instead when a library writes the line (XGBoost's ``[3]#011validation-auc:0.9``).
    ``aliases`` publish the same value under other names (the guide's 2018 spelling and today's); each name
    gets its own line and its own MetricDefinition.
    """

    name: str
    direction: str = "Minimize"
    line: str | None = PLAIN_LINE
    regex: str | None = None
    aliases: tuple = ()
    tunable: bool = True

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name}: direction must be Minimize or Maximize, not {self.direction!r}")
        if self.line is None and self.regex is None:
            raise ValueError(f"metric {self.name}: give a line template or a regex")

    @classmethod
    def quality(cls, channel, metric, direction="Minimize", aliases=(), tunable=True):
        """The built-ins' ``#quality_metric: host=algo-1, test msd <loss>=0.01`` line for ``test:msd``."""
        return cls(f"{channel}:{metric}", direction, QUALITY_LINE, aliases=tuple(aliases), tunable=tunable)

    @property
    def names(self):
        return (self.name, *self.aliases)

    @staticmethod
    def _parts(name):
        channel, _, metric = name.partition(":")
        return {"name": name, "channel": channel, "metric": metric or channel}

    @staticmethod
    def _escape(text):
        return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)

    def regex_for(self, name):
        if self.regex is not None:
            return self.regex if name == self.name else self.regex.replace(self._escape(self.name), self._escape(name))
        known = self._parts(name)
        pattern, last = "", 0
        for match in _FIELD.finditer(self.line):
            pattern += self._escape(self.line[last:match.start()])
            key = match.group(1)
            if key == "value":
                pattern += NUMBER
            elif key in known:
                pattern += self._escape(known[key])
            else:
                pattern += _FIELD_PATTERNS.get(key, r"\S+")
            last = match.end()
        return pattern + self._escape(self.line[last:])

    def definitions(self):
        """``[{"Name": ..., "Regex": ...}]`` for every name."""
        return [{"Name": name, "Regex": self.regex_for(name)} for name in self.names]

    def lines(self, value, **fields):
        """The log line for each name (none when a library writes the line itself)."""
        if self.line is None:
            return []
        text = f"{float(value):.6g}" if not isinstance(value, int) else str(value)
        return [self.line.format(value=text, **{**self._parts(name), **fields}) for name in self.names]


@dataclass
class AlgorithmSpec:
    name: str
    channels: tuple
    train_entry: str
    model_class: str
    request_types: tuple = ()
    response_types: tuple = ()
    default_accept: str = contenttypes.JSON
    # A request without an Accept (or with */*) is answered in its own content type when that is a response type
    # (BlazingText: "the content-type and accept parameters must be equal"); else in default_accept.
    accept_follows_content_type: bool = False
    response_key: str = "predictions"
    csv_columns: tuple | None = None
    metrics: tuple = ()
    tuning_objective: str | None = None
    checks: str | None = None
    readers: tuple = ()
    codecs: tuple = ()
    commands: dict = field(default_factory=dict)
    description: str = ""
    instance_types: tuple = CPU_INSTANCE_TYPES + GPU_INSTANCE_TYPES
    inference_instance_types: tuple = CPU_INSTANCE_TYPES
    distributed: bool = True
    # Modules the serving master imports before forking its workers, so that a heavy import (TensorFlow) happens
    # once and is shared instead of once per worker; they must not start threads or touch devices when imported.
    serving_preload: tuple = ()
    folder: Path | None = None
    hyperparameter_schema: dict | None = None

    @cached_property
    def hyperparameters(self):
        if self.hyperparameter_schema is not None:
            return HyperparameterSchema(self.hyperparameter_schema)
        return HyperparameterSchema.from_file(Path(self.folder) / "hyperparameters.json")

    # --- entry points ---
    def load_train(self):
        return load_object(self.train_entry)

    def load_model_class(self):
        return load_object(self.model_class)

    def load_checks(self):
        return load_object(self.checks) if self.checks else None

    def load_readers(self):
        """Register the algorithm's own training readers (their content types and aliases)."""
        from .readers import register_reader

        for reference in self.readers:
            register_reader(load_object(reference))

    # --- metrics ---
    def metric(self, name):
        for metric in self.metrics:
            if name in metric.names:
                return metric
        raise KeyError(f"{self.name} declares no metric {name!r}; declared: {', '.join(self.metric_names())}")

    def metric_names(self):
        return [name for metric in self.metrics for name in metric.names]

    def tunable_metrics(self):
        return [(name, metric.direction) for metric in self.metrics if metric.tunable for name in metric.names]

    # --- serving ---
    def codecs_registry(self):
        registry = self.__dict__.get("_codecs")
        if registry is None:
            from .serving.codecs import COMMON, Registry

            registry = Registry(parent=COMMON)
            for reference in self.codecs:
                registry.register(load_object(reference))
            self.__dict__["_codecs"] = registry
        return registry

    def encode_options(self):
        options = self.__dict__.get("_encode_options")
        if options is None:
            from .serving.codecs import EncodeOptions

            options = self.__dict__["_encode_options"] = EncodeOptions(self.response_key, self.csv_columns)
        return options

    def parse_media(self, mime):
        return contenttypes.parse(mime)

    def validate(self):
        """Every declared request/response type has a codec for that direction; metrics are unique."""
        registry = self.codecs_registry()
        problems = []
        for mime in self.request_types:
            codec = registry.find(mime)
            if codec is None or not codec.can_decode():
                problems.append(f"request type {mime} has no decoding codec")
        for mime in self.response_types:
            codec = registry.find(mime)
            if codec is None or not codec.can_encode():
                problems.append(f"response type {mime} has no encoding codec")
        if self.response_types and self.default_accept not in self.response_types:
            problems.append(f"default_accept {self.default_accept} is not among the response types")
        names = self.metric_names()
        if len(names) != len(set(names)):
            problems.append("a metric name is declared twice")
        if self.tuning_objective and self.tuning_objective not in names:
            problems.append(f"tuning_objective {self.tuning_objective} is not a declared metric")
        if problems:
            raise ValueError(f"algorithm {self.name}: " + "; ".join(problems))
        return self


def load_object(reference):
    """Import ``"package.module:attribute"``."""
    module_name, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def module_name(algorithm):
    return algorithm.replace("-", "_")


def _root():
    return Path(importlib.import_module(ALGORITHMS_PACKAGE).__file__).parent


def is_algorithm(folder):
    """The one rule: a folder of containers/ with a spec.py is an algorithm."""
    folder = Path(folder)
    return folder.is_dir() and not folder.name.startswith(("_", ".")) and (folder / "spec.py").is_file()


def available():
    """Names of the algorithms in ``containers/`` (folders holding a spec.py)."""
    return sorted(p.name.replace("_", "-") for p in _root().iterdir() if is_algorithm(p))


def load_spec(algorithm):
    """The AlgorithmSpec named ``SPEC`` in ``containers/<algorithm>/spec.py``, or the one ``module:ATTR`` names."""
    if ":" in algorithm:
        spec = load_object(algorithm)
        if spec.folder is None and spec.hyperparameter_schema is None:
            spec.folder = Path(importlib.import_module(algorithm.partition(":")[0]).__file__).parent
        return spec
    names = available()
    if algorithm.replace("_", "-") not in names:
        raise LookupError(f"Unknown algorithm {algorithm!r}; available: {', '.join(names)}")
    module = importlib.import_module(f"{ALGORITHMS_PACKAGE}.{module_name(algorithm)}.spec")
    spec = module.SPEC
    if spec.folder is None:
        spec.folder = Path(module.__file__).parent
    return spec
