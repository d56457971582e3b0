"""Checking an execute request's inputs against the process's declared inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from process_api.errors import InvalidInput
from process_api.processes.config import ProcessConfig
from process_api.processes.inputs import check_inputs, for_process
from process_api.processes.registry import Process


def make_process(*inputs: dict[str, Any]) -> Process:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "p"},
            "host": {"type": "subprocess", "command": ["true"]},
            "inputs": list(inputs),
        }
    )
    return Process.from_config(config, Path("x.yml"))


@pytest.fixture
def process() -> Process:
    return make_process(
        {"id": "text", "schema": {"type": "string"}},
        {"id": "count", "schema": {"type": "integer", "minimum": 0}, "minOccurs": 0},
        {"id": "numbers", "schema": {"type": "number"}, "minOccurs": 1, "maxOccurs": 3},
        {
            "id": "colour",
            "minOccurs": 0,
            "input": {
                "literalDataDomain": {
                    "dataType": "string",
                    "valueDefinition": {"allowedValues": ["red", "blue"]},
                }
            },
        },
    )


def detail_of(process: Process, inputs: dict[str, Any]) -> str:
    with pytest.raises(InvalidInput) as caught:
        check_inputs(process, inputs)
    assert caught.value.status == 400
    return caught.value.detail


# -- accepted --------------------------------------------------------------------------


def test_minimal_valid_request(process: Process) -> None:
    check_inputs(process, {"text": "hi", "numbers": [1, 2.5]})


def test_optional_inputs_may_be_omitted_or_given(process: Process) -> None:
    check_inputs(process, {"text": "hi", "numbers": 1})
    check_inputs(process, {"text": "hi", "numbers": 1, "count": 3, "colour": "blue"})


def test_single_value_for_max_occurs_above_one(process: Process) -> None:
    check_inputs(process, {"text": "hi", "numbers": 7})


def test_array_up_to_max_occurs(process: Process) -> None:
    check_inputs(process, {"text": "hi", "numbers": [1, 2, 3]})


def test_unbounded_max_occurs_takes_many_values() -> None:
    process = make_process({"id": "n", "schema": {"type": "integer"}, "maxOccurs": "unbounded"})
    check_inputs(process, {"n": list(range(500))})


def test_qualified_value_is_checked_by_its_value(process: Process) -> None:
    check_inputs(
        process,
        {"text": {"value": "hi", "mediaType": "text/plain"}, "numbers": [{"value": 2}, 3]},
    )


def test_qualified_value_with_an_invalid_value_is_refused(process: Process) -> None:
    detail = detail_of(process, {"text": {"value": 5, "mediaType": "text/plain"}, "numbers": 1})
    assert "'text'" in detail


def test_link_is_accepted_without_checking_the_schema(process: Process) -> None:
    check_inputs(
        process,
        {"text": {"href": "https://example.com/a.txt", "type": "text/plain"}, "numbers": 1},
    )


def test_list_for_max_occurs_one_is_one_value_checked_as_a_whole() -> None:
    process = make_process(
        {"id": "vector", "schema": {"type": "array", "items": {"type": "number"}}}
    )
    check_inputs(process, {"vector": [1, 2, 3, 4, 5]})
    detail = detail_of(process, {"vector": [1, "two"]})
    assert "'vector'" in detail


def test_input_without_schema_accepts_anything() -> None:
    process = make_process({"id": "anything"})
    for value in ("text", 1, None, {"a": [1]}, True):
        check_inputs(process, {"anything": value})


def test_format_is_checked() -> None:
    process = make_process({"id": "when", "schema": {"type": "string", "format": "date"}})
    check_inputs(process, {"when": "2024-02-29"})
    assert "'when'" in detail_of(process, {"when": "yesterday"})


# -- refused ---------------------------------------------------------------------------


def test_unknown_input(process: Process) -> None:
    detail = detail_of(process, {"text": "hi", "numbers": 1, "colour": "red", "extra": 1})
    assert "unknown input 'extra'" in detail


def test_missing_required_input(process: Process) -> None:
    detail = detail_of(process, {"numbers": 1})
    assert "missing required input 'text'" in detail


def test_too_few_occurrences() -> None:
    process = make_process({"id": "pair", "minOccurs": 2, "maxOccurs": 2})
    detail = detail_of(process, {"pair": [1]})
    assert "'pair'" in detail
    assert "at least 2" in detail
    assert "'pair'" in detail_of(process, {"pair": 1})


def test_empty_list_for_a_required_input() -> None:
    process = make_process({"id": "items", "maxOccurs": 3})
    assert "'items'" in detail_of(process, {"items": []})


def test_too_many_occurrences(process: Process) -> None:
    detail = detail_of(process, {"text": "hi", "numbers": [1, 2, 3, 4]})
    assert "'numbers'" in detail
    assert "at most 3" in detail


def test_value_invalid_against_its_schema(process: Process) -> None:
    detail = detail_of(process, {"text": "hi", "numbers": 1, "count": -1})
    assert "'count'" in detail
    assert "not valid" in detail


def test_value_outside_allowed_values(process: Process) -> None:
    detail = detail_of(process, {"text": "hi", "numbers": 1, "colour": "green"})
    assert "'colour'" in detail


def test_which_occurrence_is_invalid_is_named(process: Process) -> None:
    detail = detail_of(process, {"text": "hi", "numbers": [1, "two", 3]})
    assert "'numbers'[1]" in detail


def test_nested_path_of_an_invalid_value_is_named() -> None:
    process = make_process(
        {
            "id": "point",
            "schema": {"type": "object", "properties": {"x": {"type": "number"}}},
        }
    )
    detail = detail_of(process, {"point": {"x": "east"}})
    assert "'point'['x']" in detail


def test_every_problem_is_reported_at_once(process: Process) -> None:
    detail = detail_of(process, {"numbers": [1, 2, 3, 4], "count": "many", "bogus": 0})
    for expected in ("'bogus'", "'text'", "'numbers'", "'count'"):
        assert expected in detail


def test_formats_too_large_for_the_environment_are_refused(process: Process) -> None:
    """The formats of qualified values reach the process in one environment variable,
    which Linux limits like one argument: a huge `schema` member must not fail the run."""
    huge = {"value": "hi", "mediaType": "text/plain", "schema": {"description": "x" * 70_000}}
    assert "at most 65536" in detail_of(process, {"text": huge, "numbers": [1]})


def test_for_process_unwraps_qualified_values_and_keeps_their_formats(process: Process) -> None:
    plain, formats = for_process(
        process,
        {"text": {"value": "hi", "mediaType": "text/plain"}, "numbers": [1, {"value": 2}]},
    )
    assert plain == {"text": "hi", "numbers": [1, 2]}
    assert formats == {"text": {"mediaType": "text/plain"}, "numbers": [None, {}]}


def test_an_object_with_a_value_member_and_others_is_a_value_of_its_own() -> None:
    """Only `value` with mediaType, encoding or schema beside it is a qualified value: an
    object such as a measure (`{"value": 3, "unit": "m"}`) reaches the process whole."""
    measure = {"type": "object", "required": ["value", "unit"]}
    process = make_process({"id": "depth", "schema": measure})
    given = {"depth": {"value": 3, "unit": "m"}}
    check_inputs(process, given)
    assert for_process(process, given) == (given, {})
    assert "input 'depth'" in detail_of(process, {"depth": {"value": 3}})
