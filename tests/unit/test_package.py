"""OGC application packages as process files, and their problems named in the package's terms."""

from __future__ import annotations

from typing import Any

import pytest

from process_api.errors import InvalidPackage
from process_api.processes.config import ProcessConfig
from process_api.processes.package import from_package

DESCRIPTION = {
    "id": "ndvi",
    "version": "1.2.0",
    "title": "NDVI",
    "inputs": {"red": {"schema": {"type": "string"}, "metadata": []}},
    "outputs": {"ndvi": {"schema": {"type": "string"}}},
    "links": [],
}
UNIT = {
    "type": "docker",
    "image": "ndvi:1",
    "deployment": "local",
    "config": {"cpuMin": 1, "cpuMax": 2, "memoryMin": 1, "memoryMax": 1.5, "jobTimeout": 60},
}


def test_a_package_becomes_the_process_file_a_user_would_write() -> None:
    converted = from_package({"processDescription": DESCRIPTION, "executionUnit": UNIT})
    config = ProcessConfig.model_validate(converted.document)
    assert (config.info.id, config.info.version, config.info.title) == ("ndvi", "1.2.0", "NDVI")
    assert config.host.type == "docker" and config.container is not None
    assert config.container.image == "ndvi:1"
    assert config.container.maxResources is not None
    assert (config.container.maxResources.cpus, config.container.maxResources.memory) == (2, 1536)
    assert config.timeout == 60
    assert [i.id for i in config.inputs] == ["red"] and [o.id for o in config.outputs] == ["ndvi"]


@pytest.mark.parametrize(
    ("package", "where"),
    [
        # the 2.0 draft: the description is the `process` member
        ({"processDescription": {"process": DESCRIPTION}, "executionUnit": UNIT}, ".process"),
        # a list of units (the first container one runs), and a qualified value
        ({"processDescription": DESCRIPTION, "executionUnit": [{"href": "x"}, UNIT]}, ""),
        ({"processDescription": DESCRIPTION, "executionUnit": {"value": UNIT}}, ""),
    ],
)
def test_each_form_of_the_drafts_is_read(package: dict[str, Any], where: str) -> None:
    converted = from_package(package)
    assert converted.document["container"]["image"] == "ndvi:1"
    assert (
        converted.place("inputs[0].minOccurs") == f"processDescription{where}.inputs.red.minOccurs"
    )
    assert converted.place("inputs[0].id") == f"processDescription{where}.inputs.red"
    assert converted.place("info.version") == f"processDescription{where}.version"


def test_problems_are_named_in_the_package() -> None:
    converted = from_package({"processDescription": DESCRIPTION, "executionUnit": UNIT})
    assert converted.place("container.image") == "executionUnit.image"
    assert converted.place("container.maxResources.memory") == "executionUnit.config.memoryMax"
    assert converted.place("timeout") == "executionUnit.config.jobTimeout"
    assert converted.place("host.type") == "executionUnit.type"
    assert converted.place("container.network") == "executionUnit.network"
    listed = from_package(
        {"processDescription": DESCRIPTION, "executionUnit": [{"type": "x"}, UNIT]}
    )
    assert listed.place("container.image") == "executionUnit[1].image"


@pytest.mark.parametrize(
    ("package", "named"),
    [
        ({"executionUnit": UNIT}, "processDescription: required"),
        ({"processDescription": DESCRIPTION}, "executionUnit: required"),
        (
            {"processDescription": [], "executionUnit": UNIT},
            "processDescription: must be an object",
        ),
        (
            {"processDescription": DESCRIPTION, "executionUnit": {"href": "app.cwl"}},
            "executionUnit.href: an execution unit by reference",
        ),
        (
            {"processDescription": DESCRIPTION, "executionUnit": {**UNIT, "type": "python"}},
            "executionUnit.type: must be docker",
        ),
        (
            {"processDescription": DESCRIPTION, "executionUnit": {**UNIT, "bindings": {}}},
            "executionUnit.bindings: not supported",
        ),
        (
            {"processDescription": {**DESCRIPTION, "inptus": {}}, "executionUnit": UNIT},
            "processDescription.inptus: not a member",
        ),
        (
            {"processDescription": {**DESCRIPTION, "inputs": []}, "executionUnit": UNIT},
            "processDescription.inputs: must be an object",
        ),
    ],
)
def test_what_is_missing_or_unsupported_is_named(package: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidPackage) as refused:
        from_package(package)
    assert named in refused.value.detail
