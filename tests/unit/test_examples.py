"""Example values made from input schemas: each must be valid against its schema, and
numbers must be small (an example `delay` must not wait for its maximum)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from process_api.processes.examples import example_inputs, example_value, unexampled
from process_api.processes.loader import load_directory

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "minimum": 0, "maximum": 600},
    {"type": "integer", "minimum": 5, "maximum": 600},
    {"type": "integer", "exclusiveMinimum": 1},
    {"type": "integer", "maximum": -3},
    {"type": "number", "minimum": 0.1, "maximum": 0.9},
    {"type": "number", "exclusiveMaximum": 1},
    {"type": "integer", "minimum": 3, "multipleOf": 5},
    {"type": "string", "minLength": 10},
    {"type": "string", "maxLength": 2},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uri"},
    {"type": "string", "contentEncoding": "base64"},
    {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6},
    {"type": "array", "items": {"type": "integer"}},
    {
        "type": "object",
        "required": ["bbox", "crs"],
        "properties": {
            "bbox": {"type": "array", "items": {"type": "number"}, "minItems": 4},
            "crs": {"type": "string", "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]},
        },
    },
    {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
    {"type": ["null", "integer"], "minimum": 2},
    {"type": "string", "enum": ["red", "green"]},
    {"type": "number", "default": 7.5},
    {"type": "string", "examples": ["flood"]},
    {"allOf": [{"type": "integer"}, {"minimum": 5}]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
    {},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_an_example_is_valid_against_its_schema(schema: dict[str, Any]) -> None:
    value = example_value(schema)
    errors = list(Draft202012Validator(schema).iter_errors(value))
    assert not errors, (value, errors)


def test_numbers_are_small_rather_than_the_maximum() -> None:
    assert example_value({"type": "integer", "minimum": 0, "maximum": 3600}) == 1
    assert example_value({"type": "integer", "minimum": 60, "maximum": 3600}) == 60


def test_the_schema_default_and_examples_come_first() -> None:
    assert example_value({"type": "integer", "maximum": 10, "default": 4}) == 4
    assert example_value({"type": "string", "examples": ["flood"]}) == "flood"


def test_an_input_no_example_can_be_made_for_is_left_out_and_warned_about(
    tmp_path: Path,
) -> None:
    """A `pattern` cannot be guessed: the API document's example leaves the input out rather
    than give a value that fails, and loading the file says to give `examples`."""
    (tmp_path / "p.yml").write_text(
        "info: {id: p}\n"
        "host: {type: subprocess, command: [python3, p.py]}\n"
        "inputs:\n"
        "  - {id: code, schema: {type: string, pattern: '^[A-Z]{3}-[0-9]{4}$'}}\n"
        "  - {id: good, schema: {type: string, pattern: '^[a-z]+$', examples: [abc]}}\n"
    )
    (tmp_path / "p.py").write_text("")
    loaded = load_directory(tmp_path, {"subprocess": lambda config, path: []})
    (process,) = loaded.processes
    assert example_inputs(process) == {"good": "abc"}
    assert unexampled(process) == ["code"]
    (warning,) = loaded.warnings
    assert warning.field == "inputs[0].schema" and "examples" in warning.message
