"""Reading process files, reporting every problem of every file at once.

Each problem names its file, the line and column of the key (see yaml_source)
and the field path (`inputs[1].minOccurs`); files that are not process files
are left out (see discovery).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from yaml.nodes import Node

from process_api.processes.config import Container, Host, ProcessConfig
from process_api.processes.discovery import Skipped, not_a_process_file, process_files
from process_api.processes.examples import unexampled
from process_api.processes.problems import (
    ConfigProblem,
    LoadProblem,
    field_path,
    pydantic_problems,
)
from process_api.processes.registry import Process
from process_api.processes.schemas import unknown_keywords
from process_api.processes.yaml_source import duplicate_keys, position, read_yaml

#: host type -> a check of the host-specific parts of a file (given the file's path).
HostChecks = Mapping[str, Callable[[ProcessConfig, Path], list[ConfigProblem]]]


class HostConfigError(ValueError):
    """A host-specific field of a process file is wrong (a host may raise it from check)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Loaded:
    """What loading found: the valid processes, the problems, the files left out."""

    processes: list[Process] = field(default_factory=list)
    problems: list[LoadProblem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def errors(self) -> list[LoadProblem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[LoadProblem]:
        return [p for p in self.problems if p.warning]


# -- one file --------------------------------------------------------------------------


@dataclass
class ParsedFile:
    process: Process | None = None
    problems: list[LoadProblem] = field(default_factory=list)
    skipped: str | None = None
    root: Node | None = None


def _best_effort(model: type[BaseModel], value: Any) -> Any:
    """The section without its broken keys, so that host checks can look at the rest."""
    if value is None:
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        if not isinstance(value, dict):
            return None
        broken = {err["loc"][0] for err in exc.errors() if err["loc"]}
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in broken})
        except ValidationError:
            return None


def _host_problems(
    document: dict[str, Any],
    config: ProcessConfig | None,
    directory: Path,
    host_checks: HostChecks,
) -> list[ConfigProblem]:
    """The host's checks, even when other parts of the file are broken."""
    host = document.get("host")
    host_type = host.get("type") if isinstance(host, dict) else None
    if not isinstance(host_type, str):
        return []  # reported by the format's own check
    check = host_checks.get(host_type)
    if check is None:
        known = ", ".join(sorted(host_checks))
        return [ConfigProblem("host.type", f"unknown host type {host_type!r} (known: {known})")]
    if config is None:
        parts = {
            "host": _best_effort(Host, host),
            "container": _best_effort(Container, document.get("container")),
        }
        if parts["host"] is None:
            return []
        config = ProcessConfig.model_construct(**parts)
    try:
        return check(config, directory)
    except HostConfigError as exc:
        return [ConfigProblem(exc.field, exc.message)]


def _duplicate_ids(document: dict[str, Any]) -> list[ConfigProblem]:
    found = []
    for section in ("inputs", "outputs"):
        items = document.get(section)
        seen: set[Any] = set()
        for index, item in enumerate(items if isinstance(items, list) else []):
            item_id = item.get("id") if isinstance(item, dict) else None
            if item_id is not None and item_id in seen:
                found.append(ConfigProblem(f"{section}[{index}].id", f"duplicate id {item_id!r}"))
            seen.add(item_id)
    return found


def _schema_warnings(document: dict[str, Any]) -> list[ConfigProblem]:
    found = []
    for section in ("inputs", "outputs"):
        items = document.get(section)
        for index, item in enumerate(items if isinstance(items, list) else []):
            schema = item.get("schema") if isinstance(item, dict) else None
            if isinstance(schema, dict):
                for loc, message in unknown_keywords(schema):
                    place = field_path((section, index, "schema", *loc))
                    found.append(ConfigProblem(place, message, warning=True))
    return found


def parse_process_file(path: Path, host_checks: HostChecks) -> ParsedFile:
    """One file into a Process (with its warnings), or every problem found in it."""
    try:
        return _parse_process_file(path, host_checks)
    except RecursionError:
        message = "nests too deeply, or a YAML alias refers to itself"
        return ParsedFile(problems=[LoadProblem(path, "", message)])


def _parse_process_file(path: Path, host_checks: HostChecks) -> ParsedFile:
    read = read_yaml(path)
    if isinstance(read, LoadProblem):
        return ParsedFile(problems=[read])
    root, document = read
    if not isinstance(document, dict):  # empty, or a list (a playbook, a CI file)
        return ParsedFile(skipped="not a process file (empty, or not a mapping)", root=root)
    if not_a_process_file(document):
        return ParsedFile(skipped="not a process file (no info or host section)", root=root)
    return check_document(document, root, path, path.parent, host_checks)


def check_document(
    document: dict[str, Any],
    root: Node | None,
    path: Path,
    directory: Path,
    host_checks: HostChecks,
) -> ParsedFile:
    """A process file's content into a Process (with its warnings), or every problem in it.
    `root`: its YAML node tree, for the lines of problems (None: no lines); `path` names it
    in problems; its commands run in `directory`."""
    found: list[ConfigProblem] = []
    config: ProcessConfig | None = None
    try:
        config = ProcessConfig.model_validate(document)
    except ValidationError as exc:
        found += pydantic_problems(exc, ProcessConfig)
    found += _duplicate_ids(document)
    found += _schema_warnings(document)
    found += _host_problems(document, config, directory, host_checks)
    problems = list(duplicate_keys(path, root)) if root is not None else []
    problems += [
        LoadProblem(path, p.field, p.message, *position(root, p.field), warning=p.warning)
        for p in found
    ]
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if config is None or any(not p.warning for p in problems):
        return ParsedFile(problems=problems, root=root)
    process = Process.from_config(config, path, directory)
    for input_id in unexampled(process):
        index = [i.id for i in config.inputs].index(input_id)
        place = f"inputs[{index}].schema"
        message = (
            "no example value can be made from this schema for the API document: "
            "give one in its `examples`"
        )
        problems.append(LoadProblem(path, place, message, *position(root, place), warning=True))
    return ParsedFile(process, problems, root=root)


# -- directories -----------------------------------------------------------------------


def load_paths(paths: Sequence[Path], host_checks: HostChecks) -> Loaded:
    """The processes of files and directories, with every problem and every file left out."""
    loaded = Loaded()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found, skipped = process_files(path)
            files += found
            loaded.skipped += skipped
        elif path.is_file():
            files.append(path)
        else:
            loaded.problems.append(LoadProblem(path, "", "file or directory not found"))
    by_id: dict[str, Process] = {}
    seen: set[Path] = set()
    for path in files:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        result = parse_process_file(path, host_checks)
        loaded.problems += result.problems
        if result.skipped is not None:
            loaded.skipped.append(Skipped(path, result.skipped))
        elif result.process is None:
            pass
        elif result.process.id in by_id:
            first = by_id[result.process.id].source
            message = f"duplicate id {result.process.id!r}, also in {first}"
            line, column = position(result.root, "info.id")
            loaded.problems.append(LoadProblem(path, "info.id", message, line, column))
        else:
            by_id[result.process.id] = result.process
    loaded.processes = list(by_id.values())
    return loaded


def load_directory(directory: Path, host_checks: HostChecks) -> Loaded:
    """The processes directory the server serves (which must exist)."""
    if not directory.is_dir():
        return Loaded(problems=[LoadProblem(directory, "", "processes directory not found")])
    return load_paths([directory], host_checks)


def load_processes(
    directory: Path, host_checks: HostChecks
) -> tuple[list[Process], list[LoadProblem]]:
    """All valid processes of a directory and the problems (errors and warnings) found."""
    loaded = load_directory(directory, host_checks)
    return loaded.processes, loaded.problems
