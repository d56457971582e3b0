"""Validating documents against the official OGC API - Processes 1.0 schemas.

The 1.0 schemas are draft-4 flavoured and use `oneOf` where the branches overlap
(a string is both `string` and base64 `binaryInputValue`), so strict oneOf
rejects valid documents (OGC ETS issue #54); like the test suite's maintainers
recommend, oneOf is evaluated as anyOf here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import _keywords
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMAS = Path(__file__).parent / "data" / "ogc-schemas-1.0"

_Lenient = jsonschema.validators.extend(jsonschema.Draft4Validator, {"oneOf": _keywords.anyOf})


def _retrieve(uri: str) -> Resource:
    path = Path(uri.removeprefix("file://"))
    return Resource(contents=yaml.safe_load(path.read_text()), specification=DRAFT4)


@functools.cache
def validator(name: str) -> Any:
    path = (SCHEMAS / f"{name}.yaml").resolve()
    schema = dict(yaml.safe_load(path.read_text()))
    schema.setdefault("id", path.as_uri())
    return _Lenient(schema, registry=Registry(retrieve=_retrieve))


def errors(name: str, document: Any) -> list[str]:
    """Every way the document fails the named schema (e.g. 'statusInfo')."""
    found = validator(name).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def assert_valid(name: str, document: Any) -> None:
    problems = errors(name, document)
    assert not problems, f"not a valid {name}: {problems[:5]}"
