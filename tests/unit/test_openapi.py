"""The API document: FastAPI's OpenAPI 3.1 rewritten as the OpenAPI 3.0 OGC asks for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from process_api.api.openapi import to_openapi30
from process_api.app import create_app
from process_api.hosts import build_hosts, host_checks
from process_api.processes.loader import load_processes
from process_api.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "plugins"


# -- to_openapi30 ----------------------------------------------------------------------


def test_any_of_with_null_becomes_nullable() -> None:
    schema = {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "title": "T"}
    assert to_openapi30(schema) == {
        "type": "string",
        "maxLength": 3,
        "title": "T",
        "nullable": True,
    }


def test_one_of_with_null_becomes_nullable() -> None:
    schema = {"oneOf": [{"type": "integer"}, {"type": "null"}]}
    assert to_openapi30(schema) == {"type": "integer", "nullable": True}


def test_nullable_reference_is_wrapped_in_all_of() -> None:
    # siblings of $ref are ignored in OpenAPI 3.0, so nullable needs the allOf
    ref = {"$ref": "#/components/schemas/Link"}
    assert to_openapi30({"anyOf": [ref, {"type": "null"}]}) == {"allOf": [ref], "nullable": True}


def test_any_of_several_types_and_null_keeps_the_others() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    assert to_openapi30(schema) == {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "nullable": True,
    }


def test_any_of_without_null_is_unchanged() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert to_openapi30(schema) == schema


def test_const_becomes_enum() -> None:
    assert to_openapi30({"type": "string", "const": "x"}) == {"type": "string", "enum": ["x"]}


def test_numeric_exclusive_bounds_become_boolean_ones() -> None:
    assert to_openapi30({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1.5}) == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1.5,
        "exclusiveMaximum": True,
    }


def test_boolean_exclusive_bounds_are_already_openapi30() -> None:
    schema = {"type": "integer", "minimum": 1, "exclusiveMinimum": True}
    assert to_openapi30(schema) == schema


def test_type_list_with_null_becomes_nullable() -> None:
    assert to_openapi30({"type": ["string", "null"]}) == {"type": "string", "nullable": True}
    assert to_openapi30({"type": ["integer"]}) == {"type": "integer"}


def test_type_list_of_several_types_still_accepts_them() -> None:
    schema = to_openapi30({"type": ["integer", "boolean"]})
    validator = OAS30Validator(schema)
    assert validator.is_valid(5)
    assert validator.is_valid(True)


def test_examples_list_becomes_example() -> None:
    assert to_openapi30({"type": "string", "examples": ["a", "b"]}) == {
        "type": "string",
        "example": "a",
    }


def test_keywords_openapi30_lacks_are_dropped() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "string",
        "contentMediaType": "text/plain",
        "contentEncoding": "base64",
    }
    assert to_openapi30(schema) == {"type": "string"}


def test_rewrites_apply_at_every_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "kind": {"const": "a"},
            "tags": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}},
        },
    }
    assert to_openapi30(schema) == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "nullable": True},
            "kind": {"enum": ["a"]},
            "tags": {
                "type": "array",
                "items": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            },
        },
    }


def test_input_is_not_modified() -> None:
    schema = {"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
    to_openapi30(schema)
    assert schema == {"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}


def test_property_names_are_not_keywords() -> None:
    schema = {"type": "object", "properties": {"const": {"type": "string"}}}
    assert to_openapi30(schema) == schema


# -- the application's document --------------------------------------------------------


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("data")
    settings = Settings(DATA_DIR=str(data_dir))
    processes, problems = load_processes(EXAMPLES, host_checks(build_hosts(settings)))
    assert problems == []
    app = create_app(settings, processes)
    yield app.openapi()


def test_document_is_valid_openapi30(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.0")
    validate(document, cls=OpenAPIV30SpecValidator)


def test_document_lists_every_resource(document: dict[str, Any]) -> None:
    assert set(document["paths"]) >= {
        "/",
        "/conformance",
        "/api",
        "/processes",
        "/processes/{processID}",
        "/processes/{processID}/execution",
        "/jobs",
        "/jobs/{jobID}",
        "/jobs/{jobID}/results",
        "/jobs/{jobID}/logs",
    }
    assert "post" in document["paths"]["/processes/{processID}/execution"]
    assert "delete" in document["paths"]["/jobs/{jobID}"]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_no_422_responses(document: dict[str, Any]) -> None:
    # the server answers 400 with an OGC exception, never FastAPI's 422
    for path, method, operation in operations(document):
        assert "422" not in operation["responses"], (method, path)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


def test_errors_are_ogc_exceptions(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Exception"]["required"] == ["type"]
    for path, method, operation in operations(document):
        for code in ("400", "404", "500"):
            content = operation["responses"][code]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Exception"}, (
                method,
                path,
                code,
            )


def test_no_json_schema_2020_constructs_left(document: dict[str, Any]) -> None:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for node in walk(document["components"]["schemas"]):
        assert not isinstance(node.get("type"), list), node
        assert node.get("type") != "null", node
        assert {"type": "null"} not in node.get("anyOf", []), node
        assert "$defs" not in node and "$schema" not in node, node
