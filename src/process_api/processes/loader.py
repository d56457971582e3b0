"""Reading process files from a directory, collecting every problem at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process

#: host type -> a check of the host-specific parts of a file; raises HostConfigError.
HostChecks = Mapping[str, Callable[[ProcessConfig], None]]


class HostConfigError(ValueError):
    """A host-specific field of a process file is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class LoadProblem:
    """Why one file was not registered."""

    file: Path
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else str(self.file)
        return f"{where}: {self.message}"


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def parse_process_file(path: Path, host_checks: HostChecks) -> Process | list[LoadProblem]:
    """One file into a Process, or the list of what is wrong with it."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [LoadProblem(path, "", f"cannot read file: {exc}")]
    except yaml.YAMLError as exc:
        return [LoadProblem(path, "", f"invalid YAML: {exc}".replace("\n", " "))]
    if not isinstance(document, dict):
        return [LoadProblem(path, "", "expected a mapping with info, host, inputs and outputs")]
    try:
        config = ProcessConfig.model_validate(document)
    except ValidationError as exc:
        return [
            LoadProblem(path, _field_path(err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]
    duplicates = config.duplicate_ids()
    if duplicates:
        return [LoadProblem(path, field, message) for field, message in duplicates]
    check = host_checks.get(config.host.type)
    if check is None:
        known = ", ".join(sorted(host_checks))
        message = f"unknown host type {config.host.type!r} (known: {known})"
        return [LoadProblem(path, "host.type", message)]
    try:
        check(config)
    except HostConfigError as exc:
        return [LoadProblem(path, exc.field, exc.message)]
    return Process.from_config(config, path)


def process_files(directory: Path) -> list[Path]:
    """Every *.yml / *.yaml file under the directory, recursively, in a stable order."""
    files = [p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()]
    return sorted(files)


def load_processes(
    directory: Path, host_checks: HostChecks
) -> tuple[list[Process], list[LoadProblem]]:
    """All valid processes of a directory and the problems of the others."""
    if not directory.is_dir():
        return [], [LoadProblem(directory, "", "processes directory not found")]
    processes: dict[str, Process] = {}
    problems: list[LoadProblem] = []
    for path in process_files(directory):
        result = parse_process_file(path, host_checks)
        if isinstance(result, list):
            problems.extend(result)
        elif result.id in processes:
            first = processes[result.id].source
            problems.append(
                LoadProblem(path, "info.id", f"duplicate id {result.id!r}, also in {first}")
            )
        else:
            processes[result.id] = result
    return list(processes.values()), problems
