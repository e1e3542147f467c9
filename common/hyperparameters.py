"""Hyperparameters: string values from the platform, converted and validated against a JSON Schema.

An algorithm ships ``hyperparameters.json``: a JSON Schema object whose properties describe the *typed*
values (``{"type": "integer", "minimum": 1}``, ``{"enum": ["random", "kmeans++"]}``,
``{"oneOf": [{"const": "auto"}, {"type": "integer", "minimum": 1}]}``) and carry ``default``s.
The platform sends every value as a string; we convert each string to the first type its schema allows,
then let jsonschema judge, so messages read like the built-in algorithms' own.
"""

import json
import re

import jsonschema

from .errors import HyperparameterError

INJECTED_PREFIXES = ("_", "sagemaker_")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # no nan/inf: they slip past min/max


def _unwrap(value):
    """Undo the JSON encoding the SDK's local mode applies (``'"10"'`` -> ``'10'``)."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


def _allowed_types(schema):
    """The JSON types a property schema admits, in the order to try converting a string."""
    found = []

    def visit(node):
        if not isinstance(node, dict):
            return
        declared = node.get("type")
        if isinstance(declared, str):
            found.append(declared)
        elif isinstance(declared, list):
            found.extend(declared)
        for key in ("enum", "const"):
            values = node.get(key) if key == "enum" else [node[key]] if key in node else []
            for value in values or []:
                found.append(_json_type(value))
        for key in ("oneOf", "anyOf", "allOf"):
            for branch in node.get(key, []):
                visit(branch)

    visit(schema)
    return list(dict.fromkeys(found))


def _json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _convert(text, schema):
    """The typed value of one string, by the types its schema allows (string matches win)."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    allowed = _allowed_types(schema)
    if "string" in allowed:
        validator = jsonschema.Draft202012Validator(schema)
        if validator.is_valid(text):
            return text
        if stripped != text and validator.is_valid(stripped):
            return stripped
    for kind in allowed:
        if kind == "integer" and _INT.match(stripped):
            return int(stripped)
        if kind == "integer" and _FLOAT.match(stripped) and float(stripped).is_integer():
            return int(float(stripped))
        if kind == "number" and _FLOAT.match(stripped):
            return float(stripped)
        if kind == "boolean" and stripped.lower() in ("true", "false"):
            return stripped.lower() == "true"
        if kind in ("array", "object"):
            try:
                decoded = json.loads(stripped)
            except json.JSONDecodeError:
                continue
            if _json_type(decoded) == kind:
                return decoded
    return text


class HyperparameterSchema:
    """Validates one algorithm's hyperparameters and fills in its defaults."""

    def __init__(self, schema):
        jsonschema.Draft202012Validator.check_schema(schema)
        self.schema = schema
        self.properties = schema.get("properties", {})
        self.validator = jsonschema.Draft202012Validator(schema)

    @classmethod
    def from_file(cls, path):
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def defaults(self):
        return {name: prop["default"] for name, prop in self.properties.items() if "default" in prop}

    def parse(self, raw):
        """Typed, validated hyperparameters with defaults; platform-injected keys are set aside."""
        values = {}
        for name, value in raw.items():
            if name.startswith(INJECTED_PREFIXES):
                continue
            value = _unwrap(value)
            values[name] = _convert(value, self.properties[name]) if name in self.properties else value
        errors = sorted(self.validator.iter_errors(values), key=lambda e: (list(e.path), e.message))
        if errors:
            raise HyperparameterError(self._describe(errors[0], raw), )
        return {**self.defaults(), **values}

    def _describe(self, error, raw):
        if not error.path:
            message = error.message
            if error.validator == "additionalProperties":
                message += f". Allowed hyperparameters: {', '.join(sorted(self.properties))}"
            return f"Invalid hyperparameters: {message}"
        name = error.path[0]
        prop = self.properties.get(name, {})
        allowed = prop.get("description") or json.dumps({k: v for k, v in prop.items() if k != "default"})
        return (
            f"Invalid hyperparameter {name}={raw.get(name)!r}: {error.message}. "
            f"Allowed: {allowed}"
        )
