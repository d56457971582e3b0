"""Checking an execute request's inputs against the process's declared inputs."""

from __future__ import annotations

import functools
from typing import Any

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


def _plain_value(value: Any) -> tuple[bool, Any]:
    """(checkable, value): a qualified value is checked by its `value`, a link not at all."""
    if isinstance(value, dict):
        if "value" in value:
            return True, value["value"]
        if "href" in value:
            return False, None
    return True, value


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
    for index, item in enumerate(values):
        checkable, plain = _plain_value(item)
        if not checkable:
            continue
        error = best_match(validator.iter_errors(plain))
        if error is not None:
            where = f"[{index}]" if len(values) > 1 else ""
            path = "".join(f"[{p!r}]" for p in error.absolute_path)
            problems.append(f"input {input_id!r}{where}{path} is not valid: {error.message}")
    return problems


def check_inputs(process: Process, inputs: dict[str, Any]) -> None:
    """Raises InvalidInput naming every unknown, missing or invalid input."""
    declared = {i.id: i for i in process.config.inputs}
    problems = [f"unknown input {name!r}" for name in inputs if name not in declared]
    for spec in process.config.inputs:
        if spec.id not in inputs:
            if spec.minOccurs > 0:
                problems.append(f"missing required input {spec.id!r}")
            continue
        problems.extend(_problems_of(process, spec.id, inputs[spec.id]))
    if problems:
        raise InvalidInput("; ".join(problems))
