"""Reading process files, reporting every problem of every file at once.

Each problem names its file, the line and column of the key (from the YAML
document's nodes) and the field path (`inputs[1].minOccurs`). YAML files that
are not process files are left out: those matched by the processes directory's
`.processignore` (gitignore patterns), and mappings without an `info` or `host`
section, such as a conda `environment.yml` beside a script.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec
import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, SequenceNode

from process_api.processes.config import Container, Host, ProcessConfig
from process_api.processes.problems import ConfigProblem, Loc, field_path, pydantic_problems
from process_api.processes.registry import Process
from process_api.processes.schemas import unknown_keywords

#: host type -> a check of the host-specific parts of a file (given the file's path).
HostChecks = Mapping[str, Callable[[ProcessConfig, Path], list[ConfigProblem]]]

#: the file of gitignore patterns naming files of the processes directory to leave out.
IGNORE_FILE = ".processignore"
#: a YAML mapping with none of these keys (nor a near miss) is not a process file.
PROCESS_SECTIONS = ("info", "host")


class HostConfigError(ValueError):
    """A host-specific field of a process file is wrong (a host may raise it from check)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class LoadProblem:
    """One problem of one file; errors keep the file from loading, warnings do not."""

    file: Path
    field: str
    message: str
    line: int | None = None
    column: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        parts = [where, "warning"] if self.warning else [where]
        if self.field:
            parts.append(self.field)
        return ": ".join([*parts, self.message])


@dataclass(frozen=True)
class Skipped:
    """A YAML file left out as not being a process file."""

    file: Path
    reason: str
    #: left out by the ignore file (rather than by the rule for non-process files).
    ignored: bool = False

    def __str__(self) -> str:
        return f"{self.file}: skipped: {self.reason}"


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


# -- where a field is in the file ------------------------------------------------------


def _loc(field_name: str) -> Loc:
    """("inputs", 1, "minOccurs") for "inputs[1].minOccurs"."""
    return tuple(
        int(index) if index else key
        for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_name)
    )


def _position(root: Node | None, field_name: str) -> tuple[int | None, int | None]:
    """Line and column (from 1) of the field's key, or of the nearest enclosing one found."""
    if root is None:
        return None, None
    node, mark = root, root.start_mark
    for part in _loc(field_name):
        if isinstance(node, MappingNode):
            match = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if match is None:
                break
            mark, node = match[0].start_mark, match[1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def _duplicate_keys(path: Path, node: Node, loc: Loc = ()) -> Iterable[LoadProblem]:
    """YAML keeps the last of two equal keys silently; the Go server refused such files."""
    if isinstance(node, MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            line, column = key.start_mark.line + 1, key.start_mark.column + 1
            if key.value in seen:
                message = f"key appears twice (first on line {seen[key.value]})"
                yield LoadProblem(path, field_path((*loc, key.value)), message, line, column)
            else:
                seen[key.value] = line
            yield from _duplicate_keys(path, value, (*loc, str(key.value)))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(path, item, (*loc, index))


# -- one file --------------------------------------------------------------------------


@dataclass
class FileResult:
    process: Process | None = None
    problems: list[LoadProblem] = field(default_factory=list)
    skipped: str | None = None
    root: Node | None = None


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> LoadProblem:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return LoadProblem(path, "", f"invalid YAML: {exc}")
    message = f"invalid YAML: {exc.problem or exc.context}"
    if exc.problem and exc.context:
        context = exc.context
        start = exc.context_mark
        if start is not None:
            context += f" that starts at line {start.line + 1}, column {start.column + 1}"
        message += f" ({context})"
    mark = exc.problem_mark or exc.context_mark
    if mark is None:
        return LoadProblem(path, "", message)
    return LoadProblem(path, "", message, mark.line + 1, mark.column + 1)


def _read(path: Path) -> tuple[Node | None, Any] | LoadProblem:
    """The document's node tree (for lines) and its value, or why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadProblem(path, "", f"cannot read file: {exc}")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.YAMLError as exc:
        return _yaml_problem(path, exc)
    finally:
        loader.dispose()


def not_a_process_file(document: dict[Any, Any]) -> bool:
    """A mapping with no info or host section, nor a near miss of one (`Info`, `hosts`)."""
    keys = [str(key).lower() for key in document]
    return not any(difflib.get_close_matches(k, PROCESS_SECTIONS, cutoff=0.75) for k in keys)


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
    document: dict[str, Any], config: ProcessConfig | None, path: Path, host_checks: HostChecks
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
        return check(config, path)
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


def parse_process_file(path: Path, host_checks: HostChecks) -> FileResult:
    """One file into a Process (with its warnings), or every problem found in it."""
    read = _read(path)
    if isinstance(read, LoadProblem):
        return FileResult(problems=[read])
    root, document = read
    if not isinstance(document, dict):
        message = "expected a mapping with info, host, inputs and outputs"
        return FileResult(problems=[LoadProblem(path, "", message, 1, 1)], root=root)
    if not_a_process_file(document):
        return FileResult(skipped="not a process file (no info or host section)", root=root)
    found: list[ConfigProblem] = []
    config: ProcessConfig | None = None
    try:
        config = ProcessConfig.model_validate(document)
    except ValidationError as exc:
        found += pydantic_problems(exc, ProcessConfig)
    found += _duplicate_ids(document)
    found += _schema_warnings(document)
    found += _host_problems(document, config, path, host_checks)
    problems = list(_duplicate_keys(path, root)) if root is not None else []
    problems += [
        LoadProblem(path, p.field, p.message, *_position(root, p.field), warning=p.warning)
        for p in found
    ]
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if config is None or any(not p.warning for p in problems):
        return FileResult(problems=problems, root=root)
    return FileResult(Process.from_config(config, path), problems, root=root)


# -- directories -----------------------------------------------------------------------


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    ignore = directory / IGNORE_FILE
    if not ignore.is_file():
        return None
    lines = ignore.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def process_files(directory: Path) -> tuple[list[Path], list[Skipped]]:
    """Every *.yml / *.yaml file under the directory, recursively, in a stable order,
    and those of them its ignore file leaves out."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    spec = _ignore_spec(directory)
    if spec is None:
        return files, []
    ignored = [p for p in files if spec.match_file(p.relative_to(directory).as_posix())]
    skipped = [Skipped(p, f"listed in {directory / IGNORE_FILE}", ignored=True) for p in ignored]
    return [p for p in files if p not in ignored], skipped


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
            line, column = _position(result.root, "info.id")
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
