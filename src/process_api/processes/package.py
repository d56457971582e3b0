"""An OGC Application Package (application/ogcapppkg+json) as a process file.

The package is a process description (OGC API - Processes, Part 1) and an execution
unit: a Docker image. It becomes the process file a user would have written, so that
one validation serves both, and the places of its problems are named back in the
package's own terms (`processDescription.inputs.dem.minOccurs`, `executionUnit.image`).

    package                                   process file
    processDescription{,.process}.id, …       info.id, info.version, … (what Part 1 describes)
    processDescription….inputs.<id>           inputs[i] with id <id>
    executionUnit.type docker | oci           host.type docker
    executionUnit.image                       container.image
    executionUnit.command (ours)              container.command
    executionUnit.config.cpuMax, memoryMax    container.maxResources.cpus, .memory (GB -> MB)
    executionUnit.config.jobTimeout           timeout

The container gets its inputs as its other processes do (a JSON object, the last
argument, and a file: see the README); CWL-style `bindings` are refused rather than
silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from process_api.errors import InvalidPackage

#: the members of a Part 1 description that the process file has under `info`.
INFO_MEMBERS = (
    "id",
    "version",
    "title",
    "description",
    "keywords",
    "jobControlOptions",
    "outputTransmission",
)
#: members of descriptions that have no place in a process file: accepted, and left out
#: (`links` and `mutable` are the server's to give).
DROPPED_MEMBERS = frozenset({"links", "metadata", "additionalParameters", "mutable"})
CONTAINER_UNITS = ("docker", "oci")
MEGABYTES_PER_GIGABYTE = 1024


@dataclass(frozen=True)
class Converted:
    """The process file a package stands for, and where each of its fields came from."""

    document: dict[str, Any]
    #: a field of the process file (`inputs[1].minOccurs`) -> its place in the package.
    place: Callable[[str], str]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPackage(f"{where}: must be an object")
    return value


def _description(package: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The process description and its place: `processDescription` holds it, or (as in the
    2.0 draft) holds it as its `process` member."""
    if "processDescription" not in package:
        raise InvalidPackage(
            "processDescription: required: the process's id, version, inputs and outputs "
            "(an OGC process description)"
        )
    described = _mapping(package["processDescription"], "processDescription")
    if "id" not in described and isinstance(described.get("process"), dict):
        return described["process"], "processDescription.process"
    return described, "processDescription"


def _unit(package: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The execution unit to run: the unit, the first container unit of a list, or the
    value of a qualified one."""
    if "executionUnit" not in package:
        raise InvalidPackage(
            'executionUnit: required: {"type": "docker", "image": "<the image to run>"}'
        )
    unit, where = package["executionUnit"], "executionUnit"
    if isinstance(unit, list):
        containers = [
            (i, u)
            for i, u in enumerate(unit)
            if isinstance(u, dict) and u.get("type") in CONTAINER_UNITS
        ]
        if not containers:
            raise InvalidPackage(f"{where}: none of its units is of type docker (or oci)")
        index, unit = containers[0]
        where = f"executionUnit[{index}]"
    unit = _mapping(unit, where)
    if "value" in unit and "type" not in unit:
        unit, where = _mapping(unit["value"], f"{where}.value"), f"{where}.value"
    if "href" in unit:
        raise InvalidPackage(
            f"{where}.href: an execution unit by reference (a CWL file) is not supported: "
            'give {"type": "docker", "image": "<the image to run>"}'
        )
    if unit.get("type") not in CONTAINER_UNITS:
        raise InvalidPackage(
            f"{where}.type: must be docker (or oci), not {unit.get('type')!r}: this server "
            "runs container images"
        )
    if "bindings" in unit:
        raise InvalidPackage(
            f"{where}.bindings: not supported: the container gets its inputs as one JSON "
            "object, its last argument (and the file PROCESS_API_INPUTS_FILE)"
        )
    return unit, where


def _described_items(
    described: dict[str, Any], section: str, where: str
) -> tuple[list[Any], list[str]]:
    """`inputs` or `outputs`: an id -> description map in the package, a list of items with
    ids in the process file."""
    items = described.get(section)
    if items is None:
        return [], []
    items = _mapping(items, f"{where}.{section}")
    converted = []
    for item_id, item in items.items():
        item = _mapping(item, f"{where}.{section}.{item_id}")
        kept = {k: v for k, v in item.items() if k not in DROPPED_MEMBERS}
        converted.append({**kept, "id": item_id})  # the key is the id
    return converted, list(items)


def _resources(config: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if "cpuMax" in config:
        resources["cpus"] = config["cpuMax"]
    memory = config.get("memoryMax")
    if memory is not None:
        numeric = isinstance(memory, int | float) and not isinstance(memory, bool)
        resources["memory"] = memory * MEGABYTES_PER_GIGABYTE if numeric else memory
    return resources


def from_package(package: Any) -> Converted:
    """The process file of a package, or InvalidPackage naming what is missing."""
    package = _mapping(package, "the application package")
    described, where = _description(package)
    unit, unit_where = _unit(package)
    info = {k: described[k] for k in INFO_MEMBERS if k in described}
    unknown = set(described) - set(INFO_MEMBERS) - DROPPED_MEMBERS - {"inputs", "outputs"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidPackage(f"{where}.{name}: not a member of a process description")
    inputs, input_ids = _described_items(described, "inputs", where)
    outputs, output_ids = _described_items(described, "outputs", where)
    container: dict[str, Any] = {k: unit[k] for k in ("image", "command") if k in unit}
    config = _mapping(unit.get("config", {}), f"{unit_where}.config")
    resources = _resources(config)
    if resources:
        container["maxResources"] = resources
    document: dict[str, Any] = {
        "info": info,
        "host": {"type": "docker"},
        "container": container,
        "inputs": inputs,
        "outputs": outputs,
    }
    if "jobTimeout" in config:
        document["timeout"] = config["jobTimeout"]
    #: fields that come from one member of the package, and sections that map as a whole.
    members = {
        "host": f"{unit_where}.type",
        "container.image": f"{unit_where}.image",
        "container.command": f"{unit_where}.command",
        "container.maxResources.cpus": f"{unit_where}.config.cpuMax",
        "container.maxResources.memory": f"{unit_where}.config.memoryMax",
        "timeout": f"{unit_where}.config.jobTimeout",
    }
    sections = {"info": where, "container": unit_where}

    def place(field: str) -> str:
        found = re.match(r"(inputs|outputs)\[(\d+)\](.*)", field)
        if found:
            section, index, rest = found.group(1), int(found.group(2)), found.group(3)
            ids = input_ids if section == "inputs" else output_ids
            if index < len(ids):
                return f"{where}.{section}.{ids[index]}{rest}".removesuffix(".id")
        for member, there in members.items():
            if field == member or field.startswith(member + "."):
                return there
        name, _, rest = field.partition(".")
        if name in sections:
            return f"{sections[name]}.{rest}" if rest else sections[name]
        return f"{where}.{field}" if name in ("inputs", "outputs") else field

    return Converted(document, place)
