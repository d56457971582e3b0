"""literalDataDomain (the Go server's input description) mapped to JSON Schema."""

from __future__ import annotations

from typing import Any

import pytest

from process_api.processes.config import Input, LiteralDataDomain, Output
from process_api.processes.schemas import literal_schema, schema_of


def domain(**fields: Any) -> LiteralDataDomain:
    return LiteralDataDomain.model_validate(fields)


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        ("string", {"type": "string"}),
        ("integer", {"type": "integer"}),
        ("double", {"type": "number"}),
        ("boolean", {"type": "boolean"}),
        ("Double", {"type": "number"}),
        ("STRING", {"type": "string"}),
        # `value` (what most Go-era files say) and unknown names accept anything
        ("value", {}),
        ("somethingElse", {}),
        (None, {}),
    ],
)
def test_data_types(data_type: str | None, expected: dict[str, Any]) -> None:
    assert literal_schema(domain(dataType=data_type)) == expected


def test_data_type_given_as_an_object_with_a_name() -> None:
    # OGC's own form: dataType: {name: integer, reference: ...}
    schema = literal_schema(domain(dataType={"name": "integer", "reference": "xs:int"}))
    assert schema == {"type": "integer"}


def test_no_domain_means_any_value() -> None:
    assert literal_schema(None) == {}


def test_allowed_values_become_an_enum() -> None:
    schema = literal_schema(
        domain(dataType="string", valueDefinition={"allowedValues": ["red", "green"]})
    )
    assert schema == {"type": "string", "enum": ["red", "green"]}


def test_any_value_adds_no_constraint() -> None:
    schema = literal_schema(domain(dataType="integer", valueDefinition={"anyValue": True}))
    assert schema == {"type": "integer"}


def test_empty_allowed_values_add_no_enum() -> None:
    # an empty enum would refuse every value
    schema = literal_schema(domain(dataType="string", valueDefinition={"allowedValues": []}))
    assert "enum" not in schema


def test_default_value_becomes_default() -> None:
    assert literal_schema(domain(dataType="double", defaultValue=2.5)) == {
        "type": "number",
        "default": 2.5,
    }


@pytest.mark.parametrize("falsy_default", [0, False, ""])
def test_falsy_default_values_are_kept(falsy_default: Any) -> None:
    assert literal_schema(domain(defaultValue=falsy_default))["default"] == falsy_default


def test_explicit_schema_wins_over_literal_data_domain() -> None:
    item = Input.model_validate(
        {
            "id": "n",
            "schema": {"type": "integer", "minimum": 1},
            "input": {"literalDataDomain": {"dataType": "string", "defaultValue": "x"}},
        }
    )
    assert schema_of(item) == {"type": "integer", "minimum": 1}


def test_input_without_schema_uses_literal_data_domain() -> None:
    item = Input.model_validate(
        {
            "id": "colour",
            "input": {
                "literalDataDomain": {
                    "dataType": "string",
                    "valueDefinition": {"allowedValues": ["red", "blue"]},
                    "defaultValue": "red",
                }
            },
        }
    )
    assert schema_of(item) == {"type": "string", "enum": ["red", "blue"], "default": "red"}


def test_input_without_any_description_accepts_anything() -> None:
    assert schema_of(Input.model_validate({"id": "x"})) == {}
    assert schema_of(Input.model_validate({"id": "x", "input": {}})) == {}


def test_output_schema() -> None:
    assert schema_of(Output.model_validate({"id": "o", "schema": {"type": "string"}})) == {
        "type": "string"
    }
    assert schema_of(Output.model_validate({"id": "o"})) == {}
