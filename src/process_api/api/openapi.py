"""The API document: FastAPI's own, as OpenAPI 3.0 with OGC exception responses.

FastAPI generates OpenAPI 3.1; OGC API - Processes 1.0 (and its test suite)
asks for 3.0, so the generated document is rewritten into the 3.0 dialect
rather than written by hand.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

EXCEPTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "OGC exception (RFC 7807)",
    "required": ["type"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_EXCEPTION_REF = {"$ref": "#/components/schemas/Exception"}
_ERRORS = {
    "400": "Invalid parameter or request body",
    "404": "Not found",
    "500": "Server error",
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its definitions written in place (none are recursive)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref", "")
        if reference.startswith("#/$defs/"):
            return resolve(definitions[reference.removeprefix("#/$defs/")])
        return {key: resolve(value) for key, value in node.items()}

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _nullable(schema: dict[str, Any], key: str) -> None:
    options = schema.get(key)
    if not isinstance(options, list) or {"type": "null"} not in options:
        return
    rest = [o for o in options if o != {"type": "null"}]
    del schema[key]
    if len(rest) == 1:
        schema.update(rest[0]) if "$ref" not in rest[0] else schema.update(allOf=rest)
    else:
        schema[key] = rest
    schema["nullable"] = True


#: members whose values are maps of names to schemas: the names are not keywords.
_NAMED_SCHEMAS = ("properties", "patternProperties", "schemas", "definitions", "$defs")


def to_openapi30(node: Any) -> Any:
    """Rewrites JSON Schema 2020-12 constructs into their OpenAPI 3.0 equivalents."""
    if isinstance(node, list):
        return [to_openapi30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {
        key: {name: to_openapi30(item) for name, item in value.items()}
        if key in _NAMED_SCHEMAS and isinstance(value, dict)
        else to_openapi30(value)
        for key, value in node.items()
    }
    _nullable(node, "anyOf")
    _nullable(node, "oneOf")
    if isinstance(node.get("type"), list):
        declared = node.pop("type")
        types = [t for t in declared if t != "null"]
        if len(types) < len(declared):
            node["nullable"] = True
        if len(types) == 1:
            node["type"] = types[0]
        elif types:
            node["anyOf"] = [{"type": t} for t in types]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("examples"), list) and "type" in node:
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[plain] = value
            node[bound] = True
    for keyword in ("contentMediaType", "contentEncoding", "$schema", "prefixItems"):
        node.pop(keyword, None)
    return node


def _ogc_errors(document: dict[str, Any]) -> None:
    """FastAPI's 422 becomes the 400 the server really sends; errors use the OGC schema."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code, description in _ERRORS.items():
                entry = responses.setdefault(code, {"description": description})
                entry["content"] = {"application/json": {"schema": _EXCEPTION_REF}}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Exception"] = EXCEPTION_SCHEMA


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version="3.0.3",
                description=app.description,
                routes=app.routes,
            )
            _ogc_errors(document)
            app.openapi_schema = to_openapi30(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
