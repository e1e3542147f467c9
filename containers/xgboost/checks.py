"""Rules between hyperparameters that the schema cannot state (no xgboost import: these fail in a moment)."""

from common.errors import HyperparameterError

from .params import split_metrics, tuning_metric

CLASSIFICATION_OR_RANKING = ("binary:", "multi:", "rank:")
SURVIVAL_METRICS = {"aft-nloglik": "survival:aft", "interval-regression-accuracy": "survival:aft",
                    "cox-nloglik": "survival:cox"}


def check(hp, tuning_objective=None):
    objective = hp.get("objective", "reg:squarederror")
    if objective == "reg:linear":
        objective = "reg:squarederror"
    num_class = hp.get("num_class")
    if objective.startswith("multi:") and num_class is None:
        raise HyperparameterError(f"Missing hyperparameter num_class: objective {objective} needs the number of "
                                  "classes (an integer >= 2)")
    if num_class is not None and not objective.startswith("multi:"):
        raise HyperparameterError(f"Invalid hyperparameter num_class={num_class}: it applies to multi:softmax and "
                                  f"multi:softprob only, not objective {objective}")
    metrics = split_metrics(hp.get("eval_metric", ""))
    tuned = tuning_metric(tuning_objective)
    if tuned:
        metrics.append(tuned)
    for metric in metrics:
        base = metric.split("@", 1)[0]
        if base in ("auc", "aucpr") and not objective.startswith(CLASSIFICATION_OR_RANKING):
            raise HyperparameterError(f"Invalid hyperparameter eval_metric={metric}: {base} applies to classification "
                                      f"and ranking objectives (binary:*, multi:*, rank:*), not {objective}")
        if base in ("error", "logloss") and not objective.startswith(("binary:", "reg:logistic")):
            if objective.startswith("multi:"):
                raise HyperparameterError(f"Invalid hyperparameter eval_metric={metric}: use m{base} for objective "
                                          f"{objective}")
        if base in ("merror", "mlogloss") and not objective.startswith("multi:"):
            raise HyperparameterError(f"Invalid hyperparameter eval_metric={metric}: it applies to multi:* objectives, "
                                      f"not {objective}")
        if base in SURVIVAL_METRICS and objective != SURVIVAL_METRICS[base]:
            raise HyperparameterError(f"Invalid hyperparameter eval_metric={metric}: it applies to objective "
                                      f"{SURVIVAL_METRICS[base]} only, not {objective}")
    booster = hp.get("booster", "gbtree")
    for name in ("sample_type", "normalize_type", "rate_drop", "one_drop", "skip_drop"):
        if name in hp and booster != "dart":
            raise HyperparameterError(f"Invalid hyperparameter {name}={hp[name]!r}: it applies to booster=dart only "
                                      f"(booster is {booster})")
    for name in ("feature_selector", "top_k"):
        if name in hp and booster != "gblinear":
            raise HyperparameterError(f"Invalid hyperparameter {name}={hp[name]!r}: it applies to booster=gblinear "
                                      f"only (booster is {booster})")
    if hp.get("grow_policy") == "lossguide" and hp.get("tree_method") == "exact":
        raise HyperparameterError("Invalid hyperparameter grow_policy=lossguide: it needs tree_method hist or approx, "
                                  "not exact")
