"""From validated hyperparameters to the library's parameters: removed names mapped, values checked by xgboost.

The schema (hyperparameters.json) checks types and ranges; what only the library knows (updater names, metric
names, objective-specific values, constraint strings) is checked by configuring a Booster on a tiny matrix
before any data is read. An error names the hyperparameter and carries the library's own reason, without the
C++ source path or stack trace.
"""

import json
import logging
import re
from dataclasses import dataclass, field

import numpy as np

from common.errors import HyperparameterError

log = logging.getLogger(__name__)

# Ours, not the library's: they steer training and never reach xgboost.train's params.
CONTROL = ("num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination", "use_dask_gpu_training")
REMOVED = {
    "lambda_bias": "lambda_bias was removed from xgboost (gblinear has no separate bias penalty); ignored",
    "sketch_eps": "sketch_eps was removed from xgboost (approx and hist use max_bin); ignored",
    "deterministic_histogram": "deterministic_histogram was removed from xgboost (histograms are deterministic); "
                               "ignored",
    "dsplit": "dsplit was removed from xgboost (data is split by rows between hosts); ignored",
    "prob_buffer_row": "prob_buffer_row was removed from xgboost; ignored",
}
MAXIMIZE = ("auc", "aucpr", "map", "ndcg", "pre", "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro",
            "precision", "precision_macro", "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
            "interval-regression-accuracy")
MINIMIZE = ("rmse", "rmsle", "mae", "mape", "mphe", "mse", "logloss", "error", "merror", "mlogloss", "poisson-nloglik",
            "gamma-nloglik", "cox-nloglik", "gamma-deviance", "tweedie-nloglik", "aft-nloglik",
            "quantile")
CLASSIFICATION = ("binary:", "multi:", "rank:")


@dataclass
class Settings:
    """What training needs: the library's params and our own controls."""

    params: dict
    num_round: int
    early_stopping_rounds: int | None
    csv_weights: bool
    eval_metrics: list
    monotone: object = None  # a dict {index: constraint} to expand once the feature count is known
    notices: list = field(default_factory=list)

    @property
    def objective(self):
        return self.params.get("objective", "reg:squarederror")

    @property
    def quantile(self):
        """Build a QuantileDMatrix (hist) or keep raw values (exact, approx, gblinear)."""
        return self.params.get("booster", "gbtree") != "gblinear" and \
            self.params.get("tree_method", "hist") in ("hist", "auto")

    def library_params(self, num_feature=None):
        params = dict(self.params)
        if self.eval_metrics:
            params["eval_metric"] = list(self.eval_metrics)
        if self.monotone is not None and num_feature is not None:
            params["monotone_constraints"] = expand_monotone(self.monotone, num_feature)
        return params


def _notice(notices, text):
    notices.append(text)
    log.warning("Hyperparameter notice: %s", text)


def parse_monotone(text):
    """``(1,0,-1)``/``[1,0,-1]`` (every feature) stay a string; ``{"3": 1}`` becomes {3: 1} (only the named)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            mapping = json.loads(stripped)
            constraints = {int(k): int(v) for k, v in mapping.items()}
        except (ValueError, TypeError, AttributeError):
            raise HyperparameterError(
                f"Invalid hyperparameter monotone_constraints={text!r}: expected {{\"<feature index>\": -1|0|1, ...}}"
            ) from None
        bad = {k: v for k, v in constraints.items() if v not in (-1, 0, 1) or k < 0}
        if bad:
            raise HyperparameterError(f"Invalid hyperparameter monotone_constraints={text!r}: indices must be >= 0 "
                                      f"and constraints -1, 0 or 1 (got {bad})")
        return constraints
    values = re.split(r"\s*,\s*", stripped.strip("()[] "))
    try:
        numbers = [int(v) for v in values if v != ""]
    except ValueError:
        raise HyperparameterError(f"Invalid hyperparameter monotone_constraints={text!r}: expected a list of -1, 0 "
                                  "and 1 such as (1,0,-1)") from None
    if any(v not in (-1, 0, 1) for v in numbers):
        raise HyperparameterError(f"Invalid hyperparameter monotone_constraints={text!r}: each constraint must be "
                                  "-1, 0 or 1")
    return "(" + ",".join(str(v) for v in numbers) + ")"


def expand_monotone(constraints, num_feature):
    if isinstance(constraints, str):
        return constraints
    too_big = [k for k in constraints if k >= num_feature]
    if too_big:
        raise HyperparameterError(f"Invalid hyperparameter monotone_constraints: feature index {too_big[0]} is not "
                                  f"below the {num_feature} features of the training data")
    values = [0] * num_feature
    for index, value in constraints.items():
        values[index] = value
    return "(" + ",".join(str(v) for v in values) + ")"


def parse_interactions(text):
    try:
        groups = json.loads(text.replace("(", "[").replace(")", "]"))
        ok = isinstance(groups, list) and all(isinstance(g, list) and all(isinstance(i, int) and i >= 0 for i in g)
                                               for g in groups)
    except ValueError:
        ok = False
    if not ok:
        raise HyperparameterError(f"Invalid hyperparameter interaction_constraints={text!r}: expected a nested list "
                                  "of feature indices such as [[0,1],[2,3,4]]")
    return json.dumps(groups)


def split_metrics(text):
    return [m.strip() for m in text.split(",") if m.strip()]


def tuning_metric(objective):
    """The metric behind a tuning job's ``_tuning_objective_metric``, e.g. validation:auc -> auc."""
    if not objective:
        return None
    name = str(objective).strip()
    return name.split(":", 1)[1] if ":" in name else name


def resolve(hp, tuning_objective=None):
    """Typed hyperparameters (schema-checked) -> Settings, with removed names mapped and noticed."""
    notices = []
    params = {}
    for name, value in hp.items():
        if name in CONTROL:
            continue
        if name in REMOVED:
            _notice(notices, f"{REMOVED[name]} ({name}={value!r})")
            continue
        params[name] = value
    if params.get("objective") == "reg:linear":
        _notice(notices, "objective reg:linear was renamed reg:squarederror; using reg:squarederror")
        params["objective"] = "reg:squarederror"
    if "silent" in params:
        silent = params.pop("silent")
        if silent == 1 and "verbosity" not in params:
            params["verbosity"] = 0
        _notice(notices, f"silent was removed from xgboost; silent={silent} maps to verbosity="
                         f"{params.get('verbosity', 1)}")
    if "gpu_id" in params:
        ordinal = params.pop("gpu_id")
        params.setdefault("device", f"cuda:{ordinal}")
        _notice(notices, f"gpu_id was removed from xgboost; using device={params['device']}")
    if params.get("tree_method") == "gpu_hist":
        params["tree_method"] = "hist"
        params.setdefault("device", "cuda")
        _notice(notices, "tree_method gpu_hist was removed from xgboost; using tree_method=hist with device="
                         f"{params['device']}")
    if "predictor" in params:
        predictor = params.pop("predictor")
        if predictor == "gpu_predictor":
            params.setdefault("device", "cuda")
        _notice(notices, f"predictor was removed from xgboost (prediction follows device); predictor={predictor} "
                         f"{'maps to device=cuda' if predictor == 'gpu_predictor' else 'is ignored'}")
    if params.get("device") == "gpu":
        params["device"] = "cuda"
    if hp.get("use_dask_gpu_training"):
        raise HyperparameterError("Invalid hyperparameter use_dask_gpu_training=true: this image trains on one GPU "
                                  "or on several CPU hosts through xgboost's collective; Dask is not offered")
    monotone = None
    if "monotone_constraints" in params:
        monotone = parse_monotone(params.pop("monotone_constraints"))
    if "interaction_constraints" in params:
        params["interaction_constraints"] = parse_interactions(params["interaction_constraints"])
    if "updater" in params:
        params["updater"] = ",".join(u.strip() for u in params["updater"].split(",") if u.strip())
    metrics = split_metrics(params.pop("eval_metric", ""))
    tuned = tuning_metric(tuning_objective)
    if tuned and tuned not in metrics:
        metrics.append(tuned)  # the tuning job's objective must be computed
    elif tuned:
        metrics.remove(tuned)
        metrics.append(tuned)  # and be the last: early stopping follows the last metric
    if "quantile_alpha" in params:
        params["quantile_alpha"] = _float_or_list(params["quantile_alpha"])
    return Settings(params, hp["num_round"], hp.get("early_stopping_rounds"), bool(hp.get("csv_weights", 0)),
                    metrics, monotone, notices)


def _float_or_list(text):
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return value
    raise HyperparameterError(f"Invalid hyperparameter quantile_alpha={text!r}: expected a number or a list of "
                              "numbers in (0, 1)")


def _tiny_matrix(params, num_feature):
    """A few rows any objective accepts, so that configuring a Booster checks every parameter."""
    import xgboost as xgb

    objective = params.get("objective", "reg:squarederror")
    rows = 8
    rng = np.random.default_rng(0)
    features = rng.random((rows, num_feature)).astype(np.float32)
    if objective.startswith("multi:"):
        labels = np.arange(rows) % int(params.get("num_class", 2))
    elif objective in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "reg:squaredlogerror"):
        labels = np.arange(rows) % 2 + 1.0
    else:
        labels = np.arange(rows) % 2
    matrix = xgb.DMatrix(features, label=labels.astype(np.float32))
    if objective.startswith("rank:"):
        matrix.set_group([rows])
    if objective == "survival:aft":
        matrix.set_float_info("label_lower_bound", labels + 1.0)
        matrix.set_float_info("label_upper_bound", labels + 2.0)
    return matrix


def _configure(params, num_feature=4):
    import xgboost as xgb

    matrix = _tiny_matrix(params, num_feature)
    booster = xgb.Booster(params, [matrix])
    booster.update(matrix, 0)
    booster.eval_set([(matrix, "check")], 0)


def validate(settings, num_feature=4):
    """Configure a Booster with these params; on failure find the hyperparameter the library refuses."""
    import xgboost as xgb

    from .data import library_message

    params = settings.library_params()
    if isinstance(settings.monotone, str):
        params["monotone_constraints"] = settings.monotone
    if "monotone_constraints" in params or "interaction_constraints" in params:
        num_feature = max(num_feature, _constraint_width(params))
    base = {k: params[k] for k in ("objective", "num_class", "booster") if k in params}
    base["verbosity"] = 0
    device = str(params.get("device", "cpu"))
    if device.startswith("cuda") and not xgb.build_info().get("USE_CUDA"):
        raise HyperparameterError(f"Invalid hyperparameter device={device}: this image's xgboost is built without "
                                  "CUDA; use the GPU image or device=cpu")
    try:
        _configure({**params, "verbosity": 0}, num_feature)
        return
    except xgb.core.XGBoostError as exc:
        whole = library_message(exc)
    for name in [n for n in params if n not in base and n != "verbosity"] + [n for n in base if n != "verbosity"]:
        trial = {**base, name: params[name]} if name not in base else {"verbosity": 0, name: params[name]}
        if name == "num_class":
            trial["objective"] = params.get("objective", "multi:softprob")
        try:
            _configure(trial, num_feature)
        except xgb.core.XGBoostError as exc:
            shown = ",".join(params[name]) if isinstance(params[name], list) else params[name]
            raise HyperparameterError(f"Invalid hyperparameter {name}={shown!r}: {library_message(exc)}") from None
    raise HyperparameterError(f"Invalid combination of hyperparameters: {whole}")


def _constraint_width(params):
    width = 0
    monotone = params.get("monotone_constraints")
    if isinstance(monotone, str):
        width = len([v for v in monotone.strip("()").split(",") if v.strip()])
    interactions = params.get("interaction_constraints")
    if interactions:
        indices = [i for group in json.loads(interactions) for i in group]
        width = max(width, max(indices, default=-1) + 1)
    return width


def direction(metric):
    """'Maximize' or 'Minimize' for a metric name such as auc, ndcg@5 or error@0.7."""
    base = metric.split("@", 1)[0]
    return "Maximize" if base in MAXIMIZE else "Minimize"
