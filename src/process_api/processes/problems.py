"""What is wrong with a process file, in plain words rather than pydantic's.

Hosts validate their own part of a file (the `host:` fields of their type) with
models of their own; they use these helpers so that every place of a file words
its problems the same way.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from process_api.processes.config import ENV_NAME, ID_PATTERN

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One problem at one place (`inputs[1].minOccurs`) of a process file."""

    field: str
    message: str
    #: a warning is shown but does not make the file invalid.
    warning: bool = False


def field_path(loc: Iterable[int | str]) -> str:
    """`inputs[1].minOccurs` for ("inputs", 1, "minOccurs")."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def suggestion(word: str, known: Iterable[str], list_known: bool = True) -> str:
    """ " (did you mean 'minOccurs'?)" for a near miss, else the keys that would do."""
    known = sorted(known)
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys here: {', '.join(known)})" if known and list_known else ""


def unknown_key(word: str, known: Iterable[str]) -> str:
    return "unknown key" + suggestion(word, known)


def keys_of(model: type[BaseModel]) -> set[str]:
    """The keys a file may use for a model: aliases where fields have one."""
    return {field.alias or name for name, field in model.model_fields.items()}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is not None:
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model describing the mapping at `loc` (list indexes are skipped)."""
    current = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or name: f for name, f in current.model_fields.items()}
        if part not in fields:
            return None
        models = _models_in(fields[part].annotation)
        if not models:
            return None
        current = models[0]
    return current


def _choices(expected: str) -> str:
    """ "'a', 'b' or 'c'" (pydantic's words) as "a, b, c"."""
    return ", ".join(re.findall(r"'([^']*)'", expected)) or expected


#: what the format's string patterns ask for, in words.
PATTERN_WORDS = {
    ID_PATTERN: "may hold only letters, digits, _ . - and must start with a letter or digit",
    ENV_NAME: "must be a variable name: letters, digits and _, not starting with a digit",
}


def _number(value: Any) -> Any:
    """0 rather than 0.0."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _message(err: ErrorDetails) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    words = {
        "missing": "missing required key",
        "list_type": "must be a list",
        "dict_type": "must be a mapping (key: value lines)",
        "model_type": "must be a mapping (key: value lines)",
        "model_attributes_type": "must be a mapping (key: value lines)",
        "string_type": "must be text",
        "int_type": "must be a whole number",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
    }
    if kind in words:
        return words[kind]
    if kind == "literal_error":
        return f"must be one of {_choices(str(ctx.get('expected', '')))}"
    if kind == "greater_than":
        return f"must be a number greater than {_number(ctx.get('gt'))}"
    if kind == "greater_than_equal":
        return f"must be a number of at least {_number(ctx.get('ge'))}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERN_WORDS.get(pattern, f"must match {pattern}")
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return str(err["msg"])


def _place(loc: Loc) -> Loc:
    """The location without pydantic's union member tags (`int`, `literal['x']`)."""
    return tuple(p for p in loc if isinstance(p, int) or not re.match(r"^[a-z]+\[|^int$", p))


def pydantic_problems(
    exc: ValidationError, model: type[BaseModel], prefix: Loc = ()
) -> list[ConfigProblem]:
    """Each error of a validation, at its place, worded for a person writing the file."""
    problems: list[ConfigProblem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors():
        loc = _place(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            parent = model_at(model, loc[:-1])
            message = unknown_key(str(loc[-1]), keys_of(parent) if parent else ())
        else:
            message = _message(err)
        key = (field_path(prefix + loc), message)
        if key not in seen:
            seen.add(key)
            problems.append(ConfigProblem(key[0], message))
    return problems


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
