"""The API document: FastAPI's own, as OpenAPI 3.0 with OGC exception responses.

FastAPI generates OpenAPI 3.1; OGC API - Processes 1.0 (and its test suite)
asks for 3.0, so the generated document is rewritten into the 3.0 dialect
rather than written by hand.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.routing import BaseRoute

from process_api.api.auth import protected
from process_api.auth.tokens import keycloak_issuer
from process_api.processes.catalog import Catalog
from process_api.processes.config import Input
from process_api.processes.examples import example_inputs
from process_api.processes.registry import Process
from process_api.settings import Settings

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


def _occurrences(schema: dict[str, Any], item: Input) -> dict[str, Any]:
    """One input's value in an execute request: the value, qualified, a link, or several."""
    forms: list[dict[str, Any]] = [
        schema,
        {"type": "object", "required": ["value"], "properties": {"value": schema}},
        {"type": "object", "required": ["href"], "properties": {"href": {"type": "string"}}},
    ]
    if item.maxOccurs != 1:
        several: dict[str, Any] = {"type": "array", "items": {"anyOf": list(forms)}}
        several["minItems"] = item.minOccurs
        if isinstance(item.maxOccurs, int):
            several["maxItems"] = item.maxOccurs
        forms.append(several)
    return {"anyOf": forms}


def execute_body(process: Process, generic: dict[str, Any]) -> dict[str, Any]:
    """The execute request schema of one process, its inputs spelt out from their schemas."""
    inputs = {
        item.id: _occurrences(process.input_schemas[item.id], item)
        for item in process.config.inputs
    }
    required = [item.id for item in process.config.inputs if item.minOccurs > 0]
    inputs_schema: dict[str, Any] = {
        "type": "object",
        "properties": inputs,
        "additionalProperties": False,
    }
    if required:
        inputs_schema["required"] = required
    properties = {**generic.get("properties", {}), "inputs": inputs_schema}
    body = {**generic, "properties": properties}
    if required:
        body["required"] = ["inputs"]
    return body


def _examples(document: dict[str, Any], processes: list[Process]) -> None:
    """An execute request example that runs as it is, for each process's path and for the
    templated one (whose example made from the schema invents outputs named
    `additionalProp1`). Added after the 3.0 rewrite, which must not touch values."""
    paths = document["paths"]
    for process in processes:
        example = {"inputs": example_inputs(process)}
        operation = paths[f"/processes/{process.id}/execution"]["post"]
        operation["requestBody"]["content"]["application/json"]["example"] = example
    if not processes:
        return
    first = processes[0]
    generic = paths["/processes/{processID}/execution"]["post"]
    for parameter in generic.get("parameters", []):
        if parameter.get("name") == "processID":
            parameter["example"] = first.id
    content = generic["requestBody"]["content"]["application/json"]
    content["example"] = {"inputs": example_inputs(first)}


def _process_paths(document: dict[str, Any], processes: list[Process]) -> None:
    """A concrete execution path per process, next to the templated one."""
    generic = document["paths"]["/processes/{processID}/execution"]["post"]
    content = generic["requestBody"]["content"]["application/json"]
    for process in processes:
        operation = copy.deepcopy(generic)
        operation["summary"] = f"Execute {process.config.info.title or process.id}"
        operation["operationId"] = f"execute_{re.sub(r'[^A-Za-z0-9_]', '_', process.id)}"
        operation["parameters"] = [
            p for p in operation.get("parameters", []) if p.get("name") != "processID"
        ]
        operation["tags"] = ["Execution of each process"]
        schema = execute_body(process, content["schema"])
        operation["requestBody"]["content"] = {"application/json": {"schema": schema}}
        document["paths"][f"/processes/{process.id}/execution"] = {"post": operation}


def _for_everyone(catalog: Catalog, settings: Settings) -> list[Process]:
    """The processes the API document, one for every client, shows: not those open to some
    roles only, once sign-in is on."""
    return [p for p in catalog.values() if not (settings.protection and p.config.access.roles)]


def install(app: FastAPI, routes: Sequence[BaseRoute]) -> None:
    """Serves the API document of `routes`, in their order (the app tries its routes in
    another: the most requested first)."""
    #: the catalog's generation the document was made for: it is made again once the
    #: processes served change (a file reloaded, a process deployed).
    made_for = [-1]

    def openapi() -> dict[str, Any]:
        catalog: Catalog = app.state.catalog
        if app.openapi_schema is None or made_for[0] != catalog.generation:
            made_for[0] = catalog.generation
            listed = _for_everyone(catalog, app.state.settings)
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version="3.0.3",
                description=app.description,
                routes=list(routes),
            )
            _ogc_errors(document)
            _process_paths(document, listed)
            _security(document, app.state.settings)
            app.openapi_schema = to_openapi30(document)
            _examples(app.openapi_schema, listed)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _security(document: dict[str, Any], settings: Settings) -> None:
    """The ways to sign in, and the operations that need it under AUTH_LEVEL: Swagger UI's
    "Authorize" then sends the credentials with them."""
    level = settings.protection
    if not level:
        return
    schemes: dict[str, Any] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A token of the sign-in provider, or an API key",
        },
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    issuer = settings.oidc_issuer
    if settings.auth_service == "keycloak" and settings.keycloak_public_keys_url:
        issuer = keycloak_issuer(settings.keycloak_public_keys_url)
    if settings.auth_service in ("oidc", "keycloak") and issuer:
        schemes["openIdConnect"] = {
            "type": "openIdConnect",
            "openIdConnectUrl": issuer.rstrip("/") + "/.well-known/openid-configuration",
        }
    document.setdefault("components", {})["securitySchemes"] = schemes
    requirement: list[dict[str, list[str]]] = [{name: []} for name in schemes]
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if protected(method.upper(), path, level):
                operation["security"] = requirement
                operation.setdefault("responses", {}).setdefault(
                    "401", {"description": "No credentials, or credentials refused"}
                )
