"""Hyperparameters: string values from the platform, converted and validated against a JSON Schema.

An algorithm ships ``hyperparameters.json``: a JSON Schema object whose properties describe the *typed*
values (``{"type": "integer", "minimum": 1}``, ``{"enum": ["auto", "none"]}``,
``{"oneOf": [{"const": "auto"}, {"type": "integer", "minimum": 1}]}``) and carry ``default``s.
The platform sends every value as a string; we convert each string to the first type its schema allows,
then let jsonschema judge, so messages read like the built-in algorithms' own.
"""

import json
import math
import re

import jsonschema

from .errors import HyperparameterError

INJECTED_PREFIXES = ("_", "sagemaker_")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # no nan/inf: they slip past min/max
MAX_INT = 2**63 - 1   # integers beyond int64 are nobody's hyperparameter
MAX_EXACT = 2**53     # 1e300 written for an integer is refused, not turned into a 301-digit int
MAX_NUMBER_TEXT = 64  # longer numeric strings are refused before conversion (int() of 5000 digits is slow)


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


def _convert_value(value, allowed):
    """A JSON value given as such (hyperparameters.json may hold numbers): ``5.0`` for an integer is 5."""
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if "integer" in allowed and "number" not in allowed and value.is_integer() and abs(value) <= MAX_EXACT:
            return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ValueError("is beyond the 64-bit integer range")
    return value


def _convert(text, schema):
    """The typed value of one string, by the types its schema allows (string matches win)."""
    allowed = _allowed_types(schema)
    if not isinstance(text, str):
        return _convert_value(text, allowed)
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_TEXT and ("integer" in allowed or "number" in allowed) \
            and re.fullmatch(r"[+-]?[\d.eE+-]+", stripped[:MAX_NUMBER_TEXT + 1]):
        raise ValueError(f"is a number of {len(stripped)} characters; too large for any hyperparameter")
    if "string" in allowed:
        validator = jsonschema.Draft202012Validator(schema)
        if validator.is_valid(text):
            return text
        if stripped != text and validator.is_valid(stripped):
            return stripped
    for kind in allowed:
        if kind == "integer" and _INT.match(stripped):
            number = int(stripped)
            if abs(number) > MAX_INT:
                raise ValueError("is beyond the 64-bit integer range")
            return number
        if kind == "integer" and _FLOAT.match(stripped) and float(stripped).is_integer() \
                and abs(float(stripped)) <= MAX_EXACT:
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
            if name not in self.properties:
                values[name] = value
                continue
            try:
                values[name] = _convert(value, self.properties[name])
            except ValueError as exc:
                shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
                raise HyperparameterError(f"Invalid hyperparameter {name}={shown}: {exc}. "
                                          f"Allowed: {self._allowed(name)}") from None
        errors = sorted(self.validator.iter_errors(values), key=lambda e: (list(e.path), e.message))
        if errors:
            raise HyperparameterError(self._describe(errors[0], raw), )
        return {**self.defaults(), **values}

    def _allowed(self, name):
        prop = self.properties.get(name, {})
        return prop.get("description") or json.dumps({k: v for k, v in prop.items() if k != "default"})

    def injected(self, raw):
        """The platform-injected keys (``_tuning_objective_metric``, ``sagemaker_*``), unwrapped."""
        return {name: _unwrap(value) for name, value in raw.items() if name.startswith(INJECTED_PREFIXES)}

    def _describe(self, error, raw):
        if not error.path:
            message = error.message
            if error.validator == "additionalProperties":
                message += f". Allowed hyperparameters: {', '.join(sorted(self.properties))}"
            return f"Invalid hyperparameters: {message}"
        name = error.path[0]
        prop = self.properties.get(name, {})
        allowed = prop.get("description") or json.dumps({k: v for k, v in prop.items() if k != "default"})
        shown = repr(raw.get(name))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return f"Invalid hyperparameter {name}={shown}: {error.message[:300]}. Allowed: {allowed}"
