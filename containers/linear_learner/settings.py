"""Hyperparameters -> resolved settings: every ``auto`` becomes a documented value (README table), checks.

torch-free, so that a bad hyperparameter fails in a moment.
"""

import itertools
import logging
from dataclasses import dataclass, field

from common.errors import HyperparameterError

log = logging.getLogger(__name__)

DEFAULT_LOSS = {"binary_classifier": "logistic", "multiclass_classifier": "softmax_loss", "regressor": "squared_loss"}
LOSSES = {
    "binary_classifier": ("logistic", "hinge_loss"),
    "multiclass_classifier": ("softmax_loss",),
    "regressor": ("squared_loss", "absolute_loss", "eps_insensitive_squared_loss", "eps_insensitive_absolute_loss",
                  "quantile_loss", "huber_loss"),
}
# Base learning rate of ``learning_rate=auto``, per optimizer, and the spread of the model grid around it.
AUTO_LEARNING_RATE = {"adam": 0.01, "rmsprop": 0.01, "sgd": 0.1}
LEARNING_RATE_SPREAD = (1.0, 10.0, 0.3, 3.0)
AUTO_WD = (1e-4, 0.0, 1e-3, 1e-2)
AUTO_L1 = (0.0, 1e-4)
AUTO_NUM_MODELS = 32
AUTO_NUM_CALIBRATION_SAMPLES = 10_000_000
AUTO_POSITIVE_EXAMPLE_WEIGHT = "balanced"  # what ``positive_example_weight=auto`` resolves to
SELECTION_ALIASES = {"f1": "f_beta", "cross_entropy_loss": "loss_function"}


@dataclass
class Settings:
    """What training uses; per-model values are tuples of length ``num_models``."""

    predictor_type: str
    loss: str
    feature_dim: object  # int, or "auto" until the first batch is read
    num_classes: int
    outputs: int  # columns of the linear function: 1, or num_classes
    epochs: int
    mini_batch_size: int
    optimizer: str
    learning_rates: tuple
    wds: tuple
    l1s: tuple
    momentum: float
    beta_1: float
    beta_2: float
    bias_lr_mult: float
    bias_wd_mult: float
    use_bias: bool
    init_method: str
    init_scale: float
    init_sigma: float
    init_bias: float
    use_lr_scheduler: bool
    lr_scheduler_step: int
    lr_scheduler_factor: float
    lr_scheduler_minimum_lr: float
    normalize_data: bool
    unbias_data: object  # True/False, or "auto": shift dense data only (decided when the first batch is seen)
    normalize_label: bool
    unbias_label: bool
    num_point_for_scaler: int
    positive_example_weight: object  # a float or "balanced"
    balance_multiclass_weights: bool
    selection: str
    f_beta: float
    target_precision: float
    target_recall: float
    num_calibration_samples: int
    early_stopping_patience: int
    early_stopping_tolerance: float
    accuracy_top_k: int
    margin: float
    quantile: float
    loss_insensitivity: float
    huber_delta: float
    tuning: bool = False
    notes: list = field(default_factory=list)

    @property
    def num_models(self):
        return len(self.learning_rates)

    def model_hyperparameters(self, index):
        """The settings of one of the parallel models, as Amazon logs its best model."""
        return {"optimizer": self.optimizer, "learning_rate": self.learning_rates[index], "wd": self.wds[index],
                "l1": self.l1s[index], "lr_scheduler_step": self.lr_scheduler_step,
                "lr_scheduler_factor": self.lr_scheduler_factor,
                "lr_scheduler_minimum_lr": self.lr_scheduler_minimum_lr}


def _pick(value, auto):
    return auto if value == "auto" else value


def _grid(values, default_values, spread=None):
    """Candidates for one grid axis: the user's value first (with close values when ``spread``), or defaults."""
    if values != "auto":
        if spread is None:
            return (values,)
        return tuple(values * s for s in spread)
    return tuple(default_values)


def model_grid(num_models, learning_rate, wd, l1, optimizer, vary_regularization=True):
    """``num_models`` (learning rate, wd, l1) triples; model 0 has the given (or base) values.

    The grid is learning rate x wd x l1, enumerated so that the first models differ in learning rate, then wd,
    then l1; a fixed value stays fixed unless all three are fixed, when the learning rate varies around it.
    Fewer distinct points than models repeat the grid (the repeats differ in their random initial weights).
    """
    all_fixed = learning_rate != "auto" and wd != "auto" and l1 != "auto"
    base_lr = AUTO_LEARNING_RATE[optimizer] if learning_rate == "auto" else learning_rate
    lrs = tuple(base_lr * s for s in LEARNING_RATE_SPREAD) if learning_rate == "auto" or all_fixed else (base_lr,)
    wds = _grid(wd, AUTO_WD if vary_regularization else AUTO_WD[:1])
    l1s = _grid(l1, AUTO_L1 if vary_regularization else AUTO_L1[:1])
    points = [(a, b, c) for c, b, a in itertools.product(l1s, wds, lrs)]
    chosen = [points[i % len(points)] for i in range(num_models)]
    return tuple(p[0] for p in chosen), tuple(p[1] for p in chosen), tuple(p[2] for p in chosen)


def resolve(hp, tuning=False):
    """Settings from parsed hyperparameters; raises HyperparameterError for combinations the schema cannot see."""
    predictor = hp["predictor_type"]
    notes = []
    loss = DEFAULT_LOSS[predictor] if hp["loss"] == "auto" else hp["loss"]
    if loss not in LOSSES[predictor]:
        raise HyperparameterError(
            f"Invalid hyperparameter loss={hp['loss']!r} for predictor_type={predictor}: "
            f"allowed: auto, {', '.join(LOSSES[predictor])}")
    num_classes = 2 if predictor == "binary_classifier" else 1
    if predictor == "multiclass_classifier":
        if "num_classes" not in hp:
            raise HyperparameterError("Missing hyperparameter num_classes: it is required when "
                                      "predictor_type=multiclass_classifier")
        num_classes = hp["num_classes"]
        if num_classes < 3:
            raise HyperparameterError(f"Invalid hyperparameter num_classes={num_classes}: it must be at least 3 for "
                                      "multiclass_classifier (use binary_classifier for two classes)")
    if "positive_example_weight_mult" in hp and "positive_example_weight" in hp and \
            hp["positive_example_weight_mult"] != hp["positive_example_weight"] and hp["positive_example_weight"] != 1.0:
        raise HyperparameterError(
            "Hyperparameters positive_example_weight and positive_example_weight_mult are two names of one setting; "
            f"got {hp['positive_example_weight']!r} and {hp['positive_example_weight_mult']!r}: give one")
    weight = hp.get("positive_example_weight_mult", hp["positive_example_weight"])
    if weight == "auto":
        weight = AUTO_POSITIVE_EXAMPLE_WEIGHT
    optimizer = "adam" if hp["optimizer"] == "auto" else hp["optimizer"]
    num_models = AUTO_NUM_MODELS if hp["num_models"] == "auto" else hp["num_models"]
    if tuning:
        if num_models != 1:
            notes.append(f"num_models={hp['num_models']} set to 1: a hyperparameter tuning job is running")
        num_models = 1
    lrs, wds, l1s = model_grid(num_models, hp["learning_rate"], hp["wd"], hp["l1"], optimizer)
    regressor = predictor == "regressor"
    use_bias = hp["use_bias"]
    selection = SELECTION_ALIASES.get(hp["binary_classifier_model_selection_criteria"],
                                      hp["binary_classifier_model_selection_criteria"])
    unbias_label = _pick(hp["unbias_label"], regressor and use_bias)
    normalize_label = _pick(hp["normalize_label"], regressor)
    if not regressor and (unbias_label is True or normalize_label is True):
        notes.append("normalize_label/unbias_label apply to regressors only; ignored for classification")
        unbias_label = normalize_label = False
    settings = Settings(
        predictor_type=predictor, loss=loss, feature_dim=hp["feature_dim"], num_classes=num_classes,
        outputs=hp["num_classes"] if predictor == "multiclass_classifier" else 1,
        epochs=hp["epochs"], mini_batch_size=hp["mini_batch_size"], optimizer=optimizer,
        learning_rates=lrs, wds=wds, l1s=l1s,
        momentum=_pick(hp["momentum"], 0.0), beta_1=_pick(hp["beta_1"], 0.9), beta_2=_pick(hp["beta_2"], 0.999),
        bias_lr_mult=_pick(hp["bias_lr_mult"], 10.0), bias_wd_mult=_pick(hp["bias_wd_mult"], 0.0),
        use_bias=use_bias, init_method=hp["init_method"], init_scale=hp["init_scale"],
        init_sigma=hp["init_sigma"], init_bias=hp["init_bias"],
        use_lr_scheduler=hp["use_lr_scheduler"], lr_scheduler_step=_pick(hp["lr_scheduler_step"], 100),
        lr_scheduler_factor=_pick(hp["lr_scheduler_factor"], 0.99),
        lr_scheduler_minimum_lr=_pick(hp["lr_scheduler_minimum_lr"], 1e-5),
        normalize_data=_pick(hp["normalize_data"], True),
        unbias_data=hp["unbias_data"] if not (hp["unbias_data"] == "auto" and not use_bias) else False,
        normalize_label=normalize_label, unbias_label=unbias_label,
        num_point_for_scaler=hp["num_point_for_scaler"],
        positive_example_weight=weight, balance_multiclass_weights=hp["balance_multiclass_weights"],
        selection=selection, f_beta=hp["f_beta"], target_precision=hp["target_precision"],
        target_recall=hp["target_recall"],
        num_calibration_samples=_pick(hp["num_calibration_samples"], AUTO_NUM_CALIBRATION_SAMPLES),
        early_stopping_patience=hp["early_stopping_patience"],
        early_stopping_tolerance=hp["early_stopping_tolerance"], accuracy_top_k=hp["accuracy_top_k"],
        margin=hp["margin"], quantile=hp["quantile"], loss_insensitivity=hp["loss_insensitivity"],
        huber_delta=hp["huber_delta"], tuning=tuning, notes=notes,
    )
    if predictor != "binary_classifier" and weight not in (1.0,) and hp.get("positive_example_weight_mult",
                                                                             hp["positive_example_weight"]) != 1.0:
        notes.append("positive_example_weight applies to binary_classifier only; ignored")
    if settings.accuracy_top_k > settings.num_classes and predictor == "multiclass_classifier":
        notes.append(f"accuracy_top_k={settings.accuracy_top_k} exceeds num_classes; top-k accuracy is 1")
    return settings


def check(hp):
    """Cross-hyperparameter rules (raises HyperparameterError)."""
    resolve(hp)
