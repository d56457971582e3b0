"""Reading a YAML process file with the place of each of its keys.

Problems are reported at the line and column of the key they are about, so the
document is read as PyYAML's node tree first (which keeps each node's marks),
then built into plain values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from process_api.processes.problems import LoadProblem, Loc, field_path


def _loc(field_name: str) -> Loc:
    """("inputs", 1, "minOccurs") for "inputs[1].minOccurs"."""
    return tuple(
        int(index) if index else key
        for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_name)
    )


def position(root: Node | None, field_name: str) -> tuple[int | None, int | None]:
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


def duplicate_keys(path: Path, node: Node, loc: Loc = ()) -> Iterable[LoadProblem]:
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
            yield from duplicate_keys(path, value, (*loc, str(key.value)))
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from duplicate_keys(path, item, (*loc, index))


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


def read_yaml(path: Path) -> tuple[Node | None, Any] | LoadProblem:
    """The document's node tree (for lines) and its value, or why it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return LoadProblem(path, "", f"cannot read file: {exc}")
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> tuple[Node | None, Any] | LoadProblem:
    """A YAML (or JSON) document's node tree and value; `path` names it in problems."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.YAMLError as exc:
        return _yaml_problem(path, exc)
    finally:
        loader.dispose()
