"""Example inputs that a process accepts as they are, made from its input schemas.

They fill the execute form of the HTML page and the request examples of the API
document, so that a user who sends one unchanged gets a job that runs: values come
from the schema's own default, examples or enum first, numbers are the smallest
sensible ones inside their bounds (never the maximum: a `delay` would wait that
long), and only required inputs are given.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from jsonschema import Draft202012Validator

from process_api.processes.registry import Process

#: values of string formats a validator checks.
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "uri": "https://example.org/",
    "uri-reference": "https://example.org/",
    "email": "user@example.org",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
#: how deeply nested objects and arrays are filled in.
_MAX_DEPTH = 8


def _given(schema: dict[str, Any]) -> tuple[bool, Any]:
    """A value the schema itself offers, if any."""
    for key in ("default", "const", "example"):
        if key in schema:
            return True, schema[key]
    for key in ("examples", "enum"):
        values = schema.get(key)
        if isinstance(values, list) and values:
            return True, values[0]
    return False, None


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """The preferred value (1, or 1.5 for numbers) if the bounds allow it, else the lowest
    allowed value, else the highest."""
    low, high = schema.get("minimum"), schema.get("maximum")
    step = 1 if integer else 0.5
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = schema["exclusiveMinimum"] + step
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = schema["exclusiveMaximum"] - step
    value: float = 1 if integer else 1.5
    if isinstance(low, int | float) and value < low:
        value = low
    elif isinstance(high, int | float) and value > high:
        value = high
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0:
        value = math.ceil(value / multiple) * multiple
    return math.ceil(value) if integer else value


def _string(schema: dict[str, Any]) -> str:
    if schema.get("contentEncoding") == "base64":
        return base64.b64encode(b"example").decode()
    text = _FORMATS.get(str(schema.get("format")), "text")
    length = schema.get("minLength")
    if isinstance(length, int) and len(text) < length:
        text = text.ljust(length, "x")
    limit = schema.get("maxLength")
    if isinstance(limit, int) and len(text) > limit:
        text = text[:limit]
    return text


def _type_of(schema: dict[str, Any]) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, list):
        declared = next((t for t in declared if t != "null"), None)
    if declared is None and "properties" in schema:
        return "object"
    if declared is None and "items" in schema:
        return "array"
    return declared if isinstance(declared, str) else None


def _one_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema with `allOf` merged in, or its first `oneOf`/`anyOf` option taken; None
    when it has neither."""
    every = schema.get("allOf")
    if isinstance(every, list) and all(isinstance(part, dict) for part in every):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in every:
            merged.update(part)
        return merged
    for key in ("oneOf", "anyOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and isinstance(options[0], dict):
            return {**schema, key: None, **options[0]}
    return None


def _array(schema: dict[str, Any], depth: int) -> list[Any]:
    count = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 1
    if depth >= _MAX_DEPTH or not count:
        return []
    item = example_value(schema.get("items", {}), depth + 1)
    if schema.get("uniqueItems") and isinstance(item, int | float):
        return [item + index for index in range(count)]
    return [item] * count


def _object(schema: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth >= _MAX_DEPTH:
        return {}
    properties = schema.get("properties") or {}
    required = [name for name in schema.get("required") or [] if isinstance(name, str)]
    return {name: example_value(properties.get(name, {}), depth + 1) for name in required}


def example_value(schema: Any, depth: int = 0) -> Any:
    """A value valid against the schema, for the schemas process files use."""
    if not isinstance(schema, dict):
        return "value"
    found, value = _given(schema)
    if found:
        return value
    single = _one_schema(schema)
    if single is not None:
        return example_value(single, depth)
    kind = _type_of(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "array":
        return _array(schema, depth)
    if kind == "object":
        return _object(schema, depth)
    return {"boolean": True, "null": None}.get(kind or "", _string(schema))


def _valid(schema: dict[str, Any], value: Any) -> bool:
    checker = Draft202012Validator.FORMAT_CHECKER
    return Draft202012Validator(schema, format_checker=checker).is_valid(value)


def example_inputs(process: Process) -> dict[str, Any]:
    """Inputs a user can send as they are: every required input, with a valid value (an
    input none can be made for, see unexampled, is left for the user to fill in)."""
    example: dict[str, Any] = {}
    for item in process.config.inputs:
        if item.minOccurs == 0:
            continue
        schema = process.input_schemas[item.id]
        value = example_value(schema)
        if not _valid(schema, value):
            continue
        example[item.id] = [value] * item.minOccurs if item.minOccurs > 1 else value
    return example


def unexampled(process: Process) -> list[str]:
    """Required inputs whose schema no example value can be made for (a `pattern`, a
    format beyond dates and addresses): their schema should give one in `examples`."""
    return [
        item.id
        for item in process.config.inputs
        if item.minOccurs > 0
        and not _valid(
            process.input_schemas[item.id], example_value(process.input_schemas[item.id])
        )
    ]
