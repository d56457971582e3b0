"""JSON Schemas of inputs and outputs, from `schema:` or from the older literalDataDomain."""

from __future__ import annotations

from typing import Any

from process_api.processes.config import Described, Input, LiteralDataDomain

#: literalDataDomain.dataType values seen in process files, and their JSON types.
_DATA_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "int": {"type": "integer"},
    "double": {"type": "number"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "bool": {"type": "boolean"},
    "object": {"type": "object"},
    "array": {"type": "array"},
}


def literal_schema(domain: LiteralDataDomain | None) -> dict[str, Any]:
    """The schema equivalent to a literalDataDomain; `value` or none means any value."""
    if domain is None:
        return {}
    data_type = domain.dataType
    name = data_type.get("name") if isinstance(data_type, dict) else data_type
    schema: dict[str, Any] = dict(_DATA_TYPES.get(str(name).lower(), {}))
    definition = domain.valueDefinition
    if definition is not None and definition.allowedValues:
        schema["enum"] = list(definition.allowedValues)
    if domain.defaultValue is not None:
        schema["default"] = domain.defaultValue
    return schema


def schema_of(item: Described) -> dict[str, Any]:
    """The item's schema: its own `schema:` wins over a literalDataDomain."""
    if item.schema_ is not None:
        return item.schema_
    if isinstance(item, Input) and item.input is not None:
        return literal_schema(item.input.literalDataDomain)
    return {}
