"""Checking an execute request's inputs against the process's declared inputs."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from process_api.errors import InvalidInput
from process_api.processes.registry import Process


@functools.lru_cache(maxsize=1024)
def _validators(process: Process) -> dict[str, Draft202012Validator]:
    return {
        input_id: Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for input_id, schema in process.input_schemas.items()
    }


def occurrences(value: Any, max_occurs: int | str) -> list[Any]:
    """The values given for one input: a list counts as several only where allowed."""
    if max_occurs != 1 and isinstance(value, list):
        return value
    return [value]


#: link schemes a process may be given (the server passes links on; it does not fetch them).
LINK_SCHEMES = ("http", "https", "s3")


def _link_problem(value: dict[str, Any]) -> str | None:
    href = value.get("href")
    if not isinstance(href, str) or urlsplit(href).scheme not in LINK_SCHEMES:
        return f"is a link whose href is not an {', '.join(LINK_SCHEMES)} URL"
    return None


def _base64_problem(schema: dict[str, Any], value: Any) -> str | None:
    if schema.get("contentEncoding") != "base64" or not isinstance(value, str):
        return None
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "is not valid base64"
    return None


#: the members of a qualified value besides `value` (OGC 1.0 qualifiedInputValue).
FORMAT_MEMBERS = ("mediaType", "encoding", "schema")


def is_link(item: Any) -> bool:
    return isinstance(item, dict) and "href" in item and "value" not in item


def is_qualified(item: Any) -> bool:
    """A `{"value": …, "mediaType": …}` form: its value is what the process gets. An object
    with other members (`{"value": 3, "unit": "m"}`) is a value of its own."""
    return isinstance(item, dict) and "value" in item and set(item) <= {"value", *FORMAT_MEMBERS}


def _item_problem(validator: Draft202012Validator, schema: dict[str, Any], item: Any) -> str | None:
    """What is wrong with one value: a link is checked as a link, a qualified value by its value."""
    if is_link(item):
        return _link_problem(item)
    plain = item["value"] if is_qualified(item) else item
    error = best_match(validator.iter_errors(plain))
    if error is not None:
        path = "".join(f"[{p!r}]" for p in error.absolute_path)
        return f"{path} is not valid: {error.message}"
    return _base64_problem(schema, plain)


def _problems_of(process: Process, input_id: str, value: Any) -> list[str]:
    spec = next(i for i in process.config.inputs if i.id == input_id)
    values = occurrences(value, spec.maxOccurs)
    problems = []
    if len(values) < spec.minOccurs:
        problems.append(
            f"input {input_id!r} needs at least {spec.minOccurs} values, got {len(values)}"
        )
    if isinstance(spec.maxOccurs, int) and len(values) > spec.maxOccurs:
        problems.append(
            f"input {input_id!r} takes at most {spec.maxOccurs} values, got {len(values)}"
        )
    validator = _validators(process)[input_id]
    schema = process.input_schemas[input_id]
    for index, item in enumerate(values):
        problem = _item_problem(validator, schema, item)
        problem = problem.strip() if problem else None
        if problem is not None:
            where = f"[{index}]" if len(values) > 1 else ""
            separator = "" if problem.startswith("[") else " "
            problems.append(f"input {input_id!r}{where}{separator}{problem}")
    return problems


#: the most the formats of qualified values may take: they reach the process in one
#: environment variable, which Linux limits like one argument.
MAX_FORMATS_BYTES = 64 * 1024


def check_inputs(process: Process, inputs: dict[str, Any]) -> None:
    """Raises InvalidInput naming every unknown, missing or invalid input."""
    declared = {i.id: i for i in process.config.inputs}
    problems: list[tuple[str | None, str]] = [
        (name, f"unknown input {name!r}") for name in inputs if name not in declared
    ]
    for spec in process.config.inputs:
        if spec.id not in inputs:
            if spec.minOccurs > 0:
                problems.append((spec.id, f"missing required input {spec.id!r}"))
            continue
        problems.extend((spec.id, p) for p in _problems_of(process, spec.id, inputs[spec.id]))
    if not problems:
        size = len(json.dumps(for_process(process, inputs)[1]))
        if size > MAX_FORMATS_BYTES:
            problems.append(
                (
                    None,
                    f"the mediaType, encoding and schema members of the qualified values "
                    f"take {size} bytes; at most {MAX_FORMATS_BYTES} are allowed",
                )
            )
    if problems:
        raise InvalidInput("; ".join(text for _, text in problems), problems)


def _format_of(item: Any) -> dict[str, Any] | None:
    if not is_qualified(item):
        return None
    return {key: item[key] for key in FORMAT_MEMBERS if key in item}


def for_process(process: Process, inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The inputs as the process gets them, and the formats of its qualified values.

    A qualified value reaches the process as its plain value, as it would have been sent
    to the Go server; its media type, encoding and schema go beside, keyed by input id
    (a list, with null for unqualified values, for an input given several values).
    """
    max_occurs = {i.id: i.maxOccurs for i in process.config.inputs}
    plain: dict[str, Any] = {}
    formats: dict[str, Any] = {}
    for input_id, value in inputs.items():
        items = occurrences(value, max_occurs.get(input_id, 1))
        several = items is value  # a list given as several values, not one list value
        found = [_format_of(item) for item in items]
        unwrapped = [item["value"] if is_qualified(item) else item for item in items]
        plain[input_id] = unwrapped if several else unwrapped[0]
        if any(f is not None for f in found):
            formats[input_id] = found if several else found[0]
    return plain, formats
