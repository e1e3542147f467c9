"""The trained DeepAR model: ``model.json`` (what the arrays look like) and ``model.pt`` (the network's weights).

Serving forecasts every series of a request as one batch of sample paths (forecast.py). A request is a
:class:`ForecastRequest`: the instances' raw JSON objects and the configuration; ``prepare`` checks them
against the model (cat when trained with it, dynamic_feat of len(target) + prediction_length) and answers
400 naming the instance.
"""

import json
import logging
import os

import numpy as np

from common.errors import ClientError
from common.serving.codecs import CodecError

from .dataset import Layout
from .frequency import Frequency
from .series import RecordError, cat_problem, parse_record

log = logging.getLogger(__name__)

CONFIG_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
FORMAT = "algobox-deepar-1"
OUTPUT_TYPES = ("mean", "quantiles", "samples")
DEFAULT_CONFIGURATION = {"num_samples": 100, "output_types": ["mean", "quantiles"],
                         "quantiles": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]}
CONFIG_ENV = "DEEPAR_INFERENCE_CONFIG"
MAX_SAMPLES = 10_000


class ForecastRequest(list):
    """The instances (raw JSON objects) of one request, and its configuration (None: the container's default)."""

    def __init__(self, instances, configuration=None):
        super().__init__(instances)
        self.configuration = configuration


def check_configuration(configuration, what="configuration"):
    """The guide's configuration object, normalised; every fault raises CodecError (400)."""
    if not isinstance(configuration, dict):
        raise CodecError(f"{what} must be a JSON object with num_samples, output_types and quantiles")
    unknown = sorted(set(configuration) - {"num_samples", "output_types", "quantiles"})
    if unknown:
        raise CodecError(f"{what} has unknown field(s) {', '.join(unknown)}; use num_samples, output_types, quantiles")
    merged = {**DEFAULT_CONFIGURATION, **configuration}
    samples = merged["num_samples"]
    if isinstance(samples, str) and samples.strip().isdigit():
        samples = int(samples)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= MAX_SAMPLES:
        raise CodecError(f"{what}.num_samples must be an integer from 1 to {MAX_SAMPLES}, not {samples!r}")
    types = merged["output_types"]
    if not isinstance(types, list) or not types or any(t not in OUTPUT_TYPES for t in types):
        raise CodecError(f"{what}.output_types must be a non-empty list of {', '.join(OUTPUT_TYPES)}, not {types!r}")
    levels = merged["quantiles"]
    if not isinstance(levels, list):
        raise CodecError(f"{what}.quantiles must be a list of quantiles such as [\"0.1\", \"0.9\"]")
    keys = []
    for level in levels:
        try:
            value = float(level)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(level, bool) or not 0.0 <= value <= 1.0:
            raise CodecError(f"{what}.quantiles holds {level!r}; quantiles are numbers from 0 to 1")
        keys.append((str(level), value))
    if "quantiles" in types and not keys:
        raise CodecError(f"{what}.output_types asks for quantiles but {what}.quantiles is empty")
    return {"num_samples": samples, "output_types": list(dict.fromkeys(types)), "quantiles": keys}


def environment_configuration(environ=None):
    """DEEPAR_INFERENCE_CONFIG (batch transform), or the guide's default when it is not set."""
    text = (environ if environ is not None else os.environ).get(CONFIG_ENV)
    if text is None or not text.strip():
        return check_configuration({})
    try:
        document = json.loads(text)
        return check_configuration(document, CONFIG_ENV)
    except (ValueError, CodecError) as exc:
        raise ClientError(f"{CONFIG_ENV} is not a valid configuration: {exc}") from None


class DeepARModel:
    """A DeepAR network and its layout, for serving."""

    allows_missing = True

    def __init__(self, network, layout, likelihood, meta=None):
        self.network = network
        self.layout = layout
        self.likelihood = likelihood
        self.meta = meta or {}
        self.default_configuration = environment_configuration()

    # --- files ---
    @staticmethod
    def describe(layout, likelihood, hyperparameters):
        return {"format": FORMAT, "time_freq": str(layout.freq), "lags": list(layout.lags),
                "context_length": layout.context_length, "prediction_length": layout.prediction_length,
                "cardinality": list(layout.cardinality), "num_dynamic_feat": layout.num_dynamic_feat,
                "likelihood": likelihood, "num_layers": hyperparameters["num_layers"],
                "num_cells": hyperparameters["num_cells"], "embedding_dimension": hyperparameters["embedding_dimension"],
                "dropout_rate": hyperparameters["dropout_rate"]}

    @staticmethod
    def save(model_dir, network, layout, likelihood, hyperparameters, atomic_open=None):
        import torch

        from common.atomic import atomic_write

        config = DeepARModel.describe(layout, likelihood, hyperparameters)
        with atomic_write(model_dir / WEIGHTS_FILE, "wb") as handle:
            torch.save({name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}, handle)
        with atomic_write(model_dir / CONFIG_FILE, "w") as handle:
            json.dump(config, handle, indent=1)

    @classmethod
    def load(cls, model_dir):
        import torch

        path = model_dir / CONFIG_FILE
        if not path.is_file() or not (model_dir / WEIGHTS_FILE).is_file():
            raise ClientError(f"No DeepAR model in {model_dir}: expected {CONFIG_FILE} and {WEIGHTS_FILE}")
        try:
            config = json.loads(path.read_text())
            if config.get("format") != FORMAT:
                raise ValueError(f"format {config.get('format')!r}, expected {FORMAT!r}")
            layout = Layout(Frequency.parse(config["time_freq"]), tuple(config["lags"]), int(config["context_length"]),
                            int(config["prediction_length"]), tuple(config["cardinality"]),
                            int(config["num_dynamic_feat"]))
            network = build_network(layout, config["likelihood"], config)
            state = torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
            network.load_state_dict(state)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ClientError(f"{model_dir} does not hold a DeepAR model this container can read: {exc}") from None
        for name, tensor in network.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ClientError(f"DeepAR model weight {name!r} holds NaN or infinite values; it cannot serve")
        network.eval()
        torch.set_num_threads(serving_threads())
        return cls(network, layout, config["likelihood"], config)

    # --- serving ---
    def warmup_inputs(self):
        layout = self.layout
        length = 2 * layout.context_length
        instance = {"start": "2020-01-01 00:00:00", "target": [1.0] * length}
        if layout.cardinality:
            instance["cat"] = [0] * len(layout.cardinality)
        if layout.num_dynamic_feat:
            instance["dynamic_feat"] = [[0.0] * (length + layout.prediction_length)] * layout.num_dynamic_feat
        return ForecastRequest([instance], {"num_samples": 2, "output_types": list(OUTPUT_TYPES),
                                            "quantiles": ["0.5"]})

    def parse_instance(self, number, document):
        layout = self.layout
        try:
            series = parse_record(document, use_cat=bool(layout.cardinality), use_dynamic=bool(layout.num_dynamic_feat),
                                  dynamic_extra=layout.prediction_length)
        except RecordError as exc:
            raise CodecError(f"instance {number}: {exc}") from None
        problem = cat_problem(series.cat, layout.cardinality)
        if problem:
            raise CodecError(f"instance {number}{problem}")
        if layout.num_dynamic_feat:
            if series.dynamic_feat is None:
                raise CodecError(f"instance {number} has no 'dynamic_feat'; this model was trained with "
                                 f"{layout.num_dynamic_feat} dynamic feature(s) of length len(target) + "
                                 f"prediction_length")
            if series.dynamic_feat.shape[0] != layout.num_dynamic_feat:
                raise CodecError(f"instance {number} has {series.dynamic_feat.shape[0]} 'dynamic_feat' arrays; the "
                                 f"model has {layout.num_dynamic_feat}")
        if self.likelihood == "beta" and (np.nanmin(series.target, initial=0.0) < 0
                                          or np.nanmax(series.target, initial=0.0) > 1):
            raise CodecError(f"instance {number}: this model's beta likelihood needs targets in [0, 1]")
        series.where = f"instance {number}"
        return series

    def prepare(self, inputs):
        configuration = getattr(inputs, "configuration", None)
        configuration = self.default_configuration if configuration is None else check_configuration(configuration)
        series = [self.parse_instance(i, document) for i, document in enumerate(inputs)]
        return PreparedRequest(series, configuration)

    def predict(self, request):
        """{"forecast": one dict per series with the requested outputs as float32 arrays (codecs.py writes them)}"""
        from .forecast import quantiles, sample_paths

        if not isinstance(request, PreparedRequest):
            request = self.prepare(request)
        configuration = request.configuration
        types = configuration["output_types"]
        paths = sample_paths(self.network, self.layout, list(request), configuration["num_samples"])
        records = []
        levels = quantiles(paths, [value for _, value in configuration["quantiles"]]) if "quantiles" in types else {}
        levels = {level: values.astype(np.float32) for level, values in levels.items()}
        means = paths.mean(axis=1, dtype=np.float64).astype(np.float32) if "mean" in types else None
        for i in range(paths.shape[0]):
            record = {}
            if "quantiles" in types:
                record["quantiles"] = {key: levels[value][i] for key, value in configuration["quantiles"]}
            if "samples" in types:
                record["samples"] = paths[i]
            if "mean" in types:
                record["mean"] = means[i]
            records.append(record)
        return {"forecast": records}


def serving_threads(environ=None):
    """The cores shared out over the server's workers (at least one each): workers that each ran one thread per
    core would oversubscribe the CPU under concurrent requests, where OpenMP's spin-waits cost the most."""
    from common.serving.settings import ServingSettings

    cores = len(os.sched_getaffinity(0))
    workers = ServingSettings.from_env(environ).workers
    return max(1, cores // max(1, workers))


class PreparedRequest(list):
    def __init__(self, series, configuration):
        super().__init__(series)
        self.configuration = configuration


def build_network(layout, likelihood, hp):
    from .network import DeepARNetwork

    return DeepARNetwork(lags=layout.lags, num_covariates=layout.num_covariates, cardinality=layout.cardinality,
                         embedding_dimension=int(hp["embedding_dimension"]), num_layers=int(hp["num_layers"]),
                         num_cells=int(hp["num_cells"]), dropout_rate=float(hp["dropout_rate"]),
                         likelihood=likelihood, context_length=layout.context_length,
                         prediction_length=layout.prediction_length)
