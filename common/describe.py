"""``algobox <algorithm> describe``: the SageMaker ``CreateAlgorithm`` request for an algorithm.

TrainingSpecification and InferenceSpecification are built from the spec and the hyperparameter schema
alone (SupportedHyperParameters with types, ranges and defaults; channels; MetricDefinitions; tunable
objectives; request and response types), so registering an algobox image as a SageMaker Algorithm
resource needs nothing written by hand.
"""

import json

from .channels import COMPRESSIONS

MAX_DESCRIPTION = 1024


def _text(value, limit=MAX_DESCRIPTION):
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[:limit - 3] + "..."


def _branches(schema):
    if "oneOf" in schema or "anyOf" in schema:
        out = []
        for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
            out.extend(_branches(branch))
        return out
    return [schema]


def _number(value):
    return str(int(value)) if isinstance(value, int) or (isinstance(value, float) and value.is_integer()) else repr(value)


def hyperparameter(name, schema, required):
    """One SupportedHyperParameters entry from a property's JSON Schema."""
    branches = _branches(schema)
    types = [b.get("type") for b in branches]
    consts = [b["const"] for b in branches if "const" in b] + [v for b in branches for v in b.get("enum", [])]
    entry = {"Name": name, "Description": _text(schema.get("description") or name), "IsTunable": False,
             "IsRequired": required}
    numeric = [b for b in branches if b.get("type") in ("integer", "number")]
    if "default" in schema:
        default = schema["default"]
        entry["DefaultValue"] = _text(json.dumps(default) if isinstance(default, (list, dict)) else
                                      ("true" if default is True else "false" if default is False else default), 2500)
    if numeric and not consts and not any(t in ("string", "array", "boolean") for t in types):
        branch = numeric[0]
        kind = "Integer" if branch["type"] == "integer" else "Continuous"
        spec = {}
        low = branch.get("minimum", branch.get("exclusiveMinimum"))
        high = branch.get("maximum", branch.get("exclusiveMaximum"))
        if low is None or high is None:
            entry["Type"] = kind
            if low is not None or high is not None:
                spec = {"MinValue": _number(low if low is not None else -(2**31)),
                        "MaxValue": _number(high if high is not None else 2**31 - 1)}
        else:
            entry["Type"] = kind
            spec = {"MinValue": _number(low), "MaxValue": _number(high)}
        if spec:
            key = "IntegerParameterRangeSpecification" if kind == "Integer" else "ContinuousParameterRangeSpecification"
            entry["Range"] = {key: spec}
        entry["IsTunable"] = bool(spec) and bool(schema.get("x-tunable", True))
        return entry
    if types == ["boolean"]:
        entry["Type"] = "Categorical"
        entry["Range"] = {"CategoricalParameterRangeSpecification": {"Values": ["true", "false"]}}
        return entry
    if consts and all(b.get("type") is None for b in branches if "const" not in b and "enum" not in b):
        entry["Type"] = "Categorical"
        entry["Range"] = {"CategoricalParameterRangeSpecification": {"Values": [str(c) for c in consts][:30]}}
        return entry
    entry["Type"] = "FreeText"
    return entry


def training_specification(spec, image):
    schema = spec.hyperparameters.schema
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    channels = [{
        "Name": channel.name,
        "Description": _text(channel.description or f"the {channel.name} channel"),
        "IsRequired": channel.required,
        "SupportedContentTypes": list(channel.content_types),
        "SupportedCompressionTypes": list(COMPRESSIONS),
        "SupportedInputModes": list(channel.input_modes),
    } for channel in spec.channels]
    training = {
        "TrainingImage": image,
        "SupportedHyperParameters": [hyperparameter(name, prop, name in required) for name, prop in properties.items()],
        "SupportedTrainingInstanceTypes": list(spec.instance_types),
        "SupportsDistributedTraining": spec.distributed,
        "MetricDefinitions": [d for metric in spec.metrics for d in metric.definitions()],
        "TrainingChannels": channels,
    }
    objectives = [{"Type": direction, "MetricName": name} for name, direction in spec.tunable_metrics()]
    if objectives:
        training["SupportedTuningJobObjectiveMetrics"] = objectives
    return training


def inference_specification(spec, image):
    return {
        "Containers": [{"Image": image}],
        "SupportedTransformInstanceTypes": list(spec.inference_instance_types),
        "SupportedRealtimeInferenceInstanceTypes": list(spec.inference_instance_types),
        "SupportedContentTypes": list(spec.request_types),
        "SupportedResponseMIMETypes": list(spec.response_types),
    }


def create_algorithm_request(spec, image):
    return {
        "AlgorithmName": ("algobox-" + spec.name)[:63],
        "AlgorithmDescription": _text(spec.description or f"algobox {spec.name}: a drop-in for the SageMaker "
                                                           "built-in algorithm"),
        "TrainingSpecification": training_specification(spec, image),
        "InferenceSpecification": inference_specification(spec, image),
        "CertifyForMarketplace": False,
    }
