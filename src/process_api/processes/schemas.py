"""JSON Schemas of inputs and outputs, from `schema:` or from the older literalDataDomain."""

from __future__ import annotations

from typing import Any

from process_api.processes.config import Described, Input, LiteralDataDomain
from process_api.processes.problems import Loc, suggestion

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


#: the keywords of JSON Schema 2020-12, and those of earlier drafts still understood.
KEYWORDS = frozenset(
    """$schema $id $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
    prefixItems items contains additionalProperties properties patternProperties
    dependentSchemas propertyNames if then else allOf anyOf oneOf not
    unevaluatedItems unevaluatedProperties
    type const enum multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength
    minLength pattern maxItems minItems uniqueItems maxContains minContains maxProperties
    minProperties required dependentRequired
    title description default deprecated readOnly writeOnly examples format
    contentEncoding contentMediaType contentSchema
    definitions dependencies additionalItems $recursiveRef $recursiveAnchor""".split()
)
_ONE_SCHEMA = (
    "items additionalProperties additionalItems contains propertyNames not if then else "
    "unevaluatedItems unevaluatedProperties contentSchema"
).split()
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def unknown_keywords(schema: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[Loc, str]]:
    """Keywords a schema has that JSON Schema does not know (`tpye`): validation ignores
    them, so the schema checks less than its author meant. `x-` keywords are extensions."""
    if not isinstance(schema, dict):
        return []
    found: list[tuple[Loc, str]] = []
    for key, value in schema.items():
        word = str(key)
        if word not in KEYWORDS and not word.startswith("x-"):
            message = "unknown JSON Schema keyword, ignored" + suggestion(
                word, KEYWORDS, list_known=False
            )
            found.append(((*loc, word), message))
        if word in _ONE_SCHEMA:
            found += unknown_keywords(value, (*loc, word))
        if word in _SCHEMA_LISTS and isinstance(value, list):
            for index, item in enumerate(value):
                found += unknown_keywords(item, (*loc, word, index))
        if word in _SCHEMA_MAPS and isinstance(value, dict):
            for name, item in value.items():
                found += unknown_keywords(item, (*loc, word, str(name)))
    return found
