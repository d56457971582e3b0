"""File outputs: files a process writes to its results location, served as results.

The rule, applied when a job ends successfully, output by output:

- a link `{"href": "<name>"}` (other members such as `type` allowed) whose href is a
  relative path, an absolute path inside the run's results directory, or an `s3://` URI
  inside this job's results prefix of our own bucket, is a file: the file must exist,
  else the job fails naming the output and the file;
- a string, for an output whose schema declares a non-JSON `contentMediaType`, is a file
  when it is such a name (path, URI) of an existing file; otherwise it stays the string,
  unless the output can only be a file (`contentEncoding: binary`, or a media type of a
  binary kind such as image/*, zip or netCDF, not base64-encoded), when the job fails
  naming the output and the file.

A name is a relative POSIX path without `..`, backslashes or control characters (an
absolute path or URI loses its results-location prefix first). A file
is a regular file reached without following a symbolic link (processes write there, and
could link anywhere). Everything else is an ordinary value, checked against its schema.

The job record keeps a file as `{FILE_MARK: {"name", "size", "type"}}`; an ordinary value
that could be taken for such a wrapper is itself wrapped as `{VALUE_MARK: value}`, so that
no value a process returns is ever taken for a file.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from process_api.processes.registry import Process
from process_api.storage.base import Storage

#: the key that marks a file in a job's stored results.
FILE_MARK = "$process-api:file"
#: the key that wraps a stored value that would otherwise look like a file.
VALUE_MARK = "$process-api:value"
JSON_TYPES = frozenset({"application/json"})
OCTET_STREAM = "application/octet-stream"
#: the results directory as a container sees it (hosts/docker.py RESULTS_MOUNT).
CONTAINER_RESULTS_DIR = "/results"
#: members a process's link to a file may have besides href.
LINK_MEMBERS = frozenset({"href", "type", "title", "rel", "hreflang"})
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: an RFC 6838 media type with parameters of plain tokens: nothing a header could not hold
#: as it is, nor a quote that would end a Link header's `type="…"`.
_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_NAME}/{_NAME}(?:[ \t]*;[ \t]*{_NAME}=[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")
#: media types whose content is not text: an output of such a type can only be a file.
BINARY_FAMILIES = ("image/", "audio/", "video/", "font/", "model/")
BINARY_TYPES = frozenset(
    {
        OCTET_STREAM,
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
        "application/zstd",
        "application/x-7z-compressed",
        "application/netcdf",
        "application/x-netcdf",
        "application/x-hdf",
        "application/x-hdf5",
        "application/geotiff",
        "application/x-geotiff",
        "application/pdf",
        "application/geopackage+sqlite3",
        "application/vnd.sqlite3",
        "application/x-sqlite3",
        "application/vnd.apache.parquet",
        "application/x-parquet",
        "application/vnd.apache.arrow.file",
        "application/flatgeobuf",
        "application/vnd.flatgeobuf",
        "application/x-protobuf",
        "application/vnd.mapbox-vector-tile",
        "application/wmo-grib",
        "application/x-grib",
        "application/vnd.google-earth.kmz",
        "application/vnd.laszip",
        "application/vnd.ms-excel",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.text",
    }
)


class FileError(Exception):
    """An output names a file the process did not write (the job fails with this message)."""


@dataclass(frozen=True)
class FileResult:
    """An output that is a file of the job's results location."""

    #: its path under the job's results location.
    name: str
    size: int
    #: its media type.
    type: str

    def stored(self) -> dict[str, Any]:
        return {FILE_MARK: {"name": self.name, "size": self.size, "type": self.type}}


#: the longest name of a file and of a path (Linux's NAME_MAX and PATH_MAX): a longer
#: string is a value, never a file.
MAX_NAME, MAX_PATH = 255, 4096


def safe_name(name: str) -> str | None:
    """The name as a path under the results location, or None if it could leave it (or is
    too long to be a path at all)."""
    if not name or len(name.encode()) > MAX_PATH:
        return None
    if name.startswith("/") or _UNSAFE.search(name) or ":" in name.split("/")[0]:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or any(len(p.encode()) > MAX_NAME for p in parts):
        return None
    return "/".join(parts)


def _own_prefix(value: str, own: Sequence[str]) -> str | None:
    """The prefix of `own` (the job's results location as paths or URIs, each ending in /)
    that the string starts with, if any."""
    return next((prefix for prefix in own if value.startswith(prefix)), None)


def _own_name(value: str, own: Sequence[str]) -> str | None:
    """The file name a string gives: a relative path, or a path or URI inside the job's
    results location (see `_own_prefix`)."""
    prefix = _own_prefix(value, own)
    return safe_name(value[len(prefix) :].lstrip("/") if prefix else value)


def _link_href(value: Any, own: Sequence[str]) -> str | None:
    """The href of a link to one of the job's files: a path, or a URI inside the job's
    results location (a link elsewhere is an ordinary value)."""
    if not isinstance(value, dict) or not set(value) <= LINK_MEMBERS:
        return None
    href = value.get("href")
    if not isinstance(href, str):
        return None
    return None if _SCHEME.match(href) and not _own_prefix(href, own) else href


def _declared_type(schema: dict[str, Any]) -> str | None:
    media = schema.get("contentMediaType")
    if isinstance(media, str) and media.split(";")[0].strip() not in JSON_TYPES:
        return media
    return None


def _requires_file(schema: dict[str, Any], media: str) -> bool:
    """Whether the output's value cannot be a JSON string: binary content, not base64.
    A type of no known binary kind (YAML, JavaScript, WKT, SQL…) may be text inline."""
    encoding = schema.get("contentEncoding")
    if encoding == "binary":
        return True
    if encoding == "base64":
        return False
    essence = media.split(";")[0].strip().lower()
    if essence.endswith(("+json", "+xml", "/xml")):  # image/svg+xml is text
        return False
    return essence in BINARY_TYPES or essence.startswith(BINARY_FAMILIES)


def valid_media_type(text: Any) -> bool:
    """Whether the text is a media type that can go into a header as it is (see _MEDIA_TYPE)."""
    return isinstance(text, str) and len(text) <= 255 and _MEDIA_TYPE.fullmatch(text) is not None


def media_type(declared: str | None, name: str, linked: Any = None) -> str:
    """The declared type, else the link's, else the name's, else octet-stream. A type that
    is not a plain media type (a process chose it) is passed over: it goes into headers."""
    for chosen in (declared, linked):
        if valid_media_type(chosen):
            assert isinstance(chosen, str)
            return chosen
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or OCTET_STREAM


async def resolve_files(
    process: Process,
    results: dict[str, Any],
    storage: Storage,
    job_id: str,
    results_dirs: Sequence[str] = (),
) -> tuple[dict[str, Any], set[str]]:
    """The results with file outputs as FileResult, and the ids of those outputs.
    `results_dirs`: the paths the run's process was given as its results directory (it
    may name its files by them, joined with PROCESS_API_RESULTS_DIR).

    FileError when an output must be a file and names none the process wrote.
    """
    resolved = dict(results)
    files: set[str] = set()
    prefix = storage.layout.results_of(job_id)
    own = [storage.location(prefix), *(path.rstrip("/") + "/" for path in results_dirs)]
    for output_id, value in results.items():
        schema = process.output_schemas.get(output_id) or {}
        declared = _declared_type(schema)
        href = _link_href(value, own)
        if href is not None:
            required, text, linked = True, href, value.get("type")
        elif isinstance(value, str) and declared is not None:
            required, text, linked = _requires_file(schema, declared), value, None
        else:
            continue
        name = _own_name(text, own)
        info = await storage.stat(prefix + name) if name else None
        if info is None or name is None:
            if required:
                raise FileError(
                    f"output {output_id!r} names the file {text[:200]!r}, which the process "
                    "did not write to its results location (or which is not a regular file)"
                )
            continue
        resolved[output_id] = FileResult(name, info.size, media_type(declared, name, linked))
        files.add(output_id)
    return resolved, files


def stored_results(results: dict[str, Any]) -> dict[str, Any]:
    """The results as the job record keeps them (see the module's docstring)."""
    return {output_id: _stored(value) for output_id, value in results.items()}


def _stored(value: Any) -> Any:
    if isinstance(value, FileResult):
        return value.stored()
    if isinstance(value, dict) and len(value) == 1 and set(value) & {FILE_MARK, VALUE_MARK}:
        return {VALUE_MARK: value}
    return value


def read_results(stored: dict[str, Any] | None) -> dict[str, Any]:
    """The results of a job record, files as FileResult (values stored before files were
    served are read as they are)."""
    return {output_id: read_value(value) for output_id, value in (stored or {}).items()}


def read_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if VALUE_MARK in value:
            return value[VALUE_MARK]
        described = value.get(FILE_MARK)
        if isinstance(described, dict):
            # A type recorded before types were checked is checked again: it goes into headers.
            name = str(described["name"])
            return FileResult(
                name, int(described["size"]), media_type(None, name, described["type"])
            )
    return value
