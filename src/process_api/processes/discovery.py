"""Which files of a processes directory are process files.

Every *.yml / *.yaml below the directory is one, except those its ignore file
(`.processignore`, gitignore patterns) names and YAML mappings without an `info`
or `host` section, such as a conda `environment.yml` beside a script.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

#: the file of gitignore patterns naming files of the processes directory to leave out.
IGNORE_FILE = ".processignore"
#: a YAML mapping with none of these keys (nor a near miss) is not a process file.
PROCESS_SECTIONS = ("info", "host")


@dataclass(frozen=True)
class Skipped:
    """A YAML file left out as not being a process file."""

    file: Path
    reason: str
    #: left out by the ignore file (rather than by the rule for non-process files).
    ignored: bool = False

    def __str__(self) -> str:
        return f"{self.file}: skipped: {self.reason}"


def not_a_process_file(document: dict[Any, Any]) -> bool:
    """A mapping with no info or host section, nor a near miss of one (`Info`, `hosts`)."""
    keys = [str(key).lower() for key in document]
    return not any(difflib.get_close_matches(k, PROCESS_SECTIONS, cutoff=0.75) for k in keys)


def _ignore_spec(directory: Path) -> pathspec.GitIgnoreSpec | None:
    ignore = directory / IGNORE_FILE
    if not ignore.is_file():
        return None
    lines = ignore.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


#: folders never searched for process files: tools' and packages' own (their YAML files,
#: an OpenAPI document with an `info:` section say, are not process files).
SKIPPED_FOLDERS = frozenset({"node_modules", "__pycache__", "site-packages"})


def _searched(folder: Path) -> bool:
    """Not hidden (.git, .venv), not a tool's folder, not a Python environment."""
    name = folder.name
    return not (name.startswith(".") or name in SKIPPED_FOLDERS or (folder / "pyvenv.cfg").exists())


def _yaml_files(directory: Path) -> list[Path]:
    found = []
    for folder, folders, names in os.walk(directory):
        here = Path(folder)
        folders[:] = [name for name in folders if _searched(here / name)]
        found += [here / n for n in names if n.endswith((".yml", ".yaml"))]
    return sorted(p for p in found if p.is_file())


def process_files(directory: Path) -> tuple[list[Path], list[Skipped]]:
    """Every *.yml / *.yaml file under the directory, recursively, in a stable order (but
    not in hidden folders, Python environments or node_modules), and those of them its
    ignore file leaves out."""
    files = _yaml_files(directory)
    spec = _ignore_spec(directory)
    if spec is None:
        return files, []
    ignored = [p for p in files if spec.match_file(p.relative_to(directory).as_posix())]
    skipped = [Skipped(p, f"listed in {directory / IGNORE_FILE}", ignored=True) for p in ignored]
    return [p for p in files if p not in ignored], skipped
