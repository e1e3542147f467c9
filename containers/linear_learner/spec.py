"""Linear Learner, declared: channels, content types, codecs, metrics. The math is in linear.py/trainer.py."""

from common import contenttypes as ct
from common import tabular
from common.spec import AlgorithmSpec, Metric

from .metrics import DECLARED

EPOCH_LINE = "#quality_metric: host={host}, epoch={epoch}, {channel} {metric} <loss>={value}"


def declared_metrics():
    """Each metric under its logged key and its other names (the guide's 2018 spelling and today's).

    ``validation:objective_loss`` is logged every epoch (and last for the selected model); the other validation
    metrics once, for the selected model; test metrics once, at the end.
    """
    seen, out = set(), []
    for rows in DECLARED.values():
        for key, aliases, direction in rows:
            if key in seen:
                continue
            seen.add(key)
            out.append(Metric.quality("test", key, direction, aliases=[f"test:{a}" for a in aliases]))
            names = [f"validation:{a}" for a in aliases]
            if key == "objective_loss":
                out.append(Metric("validation:objective_loss", direction, EPOCH_LINE, aliases=tuple(names)))
            else:
                out.append(Metric.quality("validation", key, direction, aliases=names))
    return tuple(out)


SPEC = AlgorithmSpec(
    name="linear-learner",
    description="Linear Learner (binary/multiclass classification and regression; many models trained at once, "
                "selected and calibrated on validation data), the SageMaker built-in's contract",
    channels=tabular.channels(validation=True, test=True, types=tabular.TRAINING_TYPES + (ct.LIBSVM,),
                              label_size=1),
    train_entry="containers.linear_learner.train:train",
    model_class="containers.linear_learner.model:LinearModel",
    checks="containers.linear_learner.settings:check",
    request_types=tabular.REQUEST_TYPES,
    response_types=tabular.RESPONSE_TYPES + (ct.CSV,),
    response_key="predictions",
    codecs=("containers.linear_learner.codecs:LinearJSONCodec",
            "containers.linear_learner.codecs:LinearJSONLinesCodec",
            "containers.linear_learner.codecs:LinearCSVCodec"),
    metrics=declared_metrics(),
    commands={"export": "containers.linear_learner.export:main"},
)
