"""Serving the files a job's process wrote: file outputs and the job's results location.

A file is streamed from the storage a chunk at a time, with its entity tag and time, and
answers range requests (one range: 206; several: the whole file, 200), `If-None-Match`
(304) and `If-Range`. With `RESULTS_REDIRECT=presigned` and S3 storage, a GET is answered
by a 307 to a presigned address of the object instead (valid `RESULTS_URL_EXPIRY` seconds),
which gives the file's media type and, for a type a browser could run, makes it a download;
a HEAD is answered here (a presigned address is signed for one method). The server's own
address stays the stable one in every document and link.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from process_api.api.errors import exception_response
from process_api.api.links import Base, link, url
from process_api.api.safety import raw_headers
from process_api.errors import OGC, NoSuchFile, ServiceUnavailable
from process_api.jobs.files import FileResult, media_type, read_results, safe_name
from process_api.jobs.model import Job, JobStatus, timestamp
from process_api.storage.base import ObjectChanged, ObjectRefused, Storage

#: the most files a listing of a job's results location gives.
MAX_LISTED = 10_000
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
Unsatisfiable = Literal["unsatisfiable"]


@dataclass(frozen=True)
class FilePolicy:
    """Whether file downloads are redirected to presigned S3 addresses, valid how long."""

    redirect: bool = False
    expiry: int = 3600


def file_policy(request: Request) -> FilePolicy:
    policy: FilePolicy = request.app.state.file_policy  # set by create_app, never absent
    return policy


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def byte_range(header: str | None, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """The first and last byte of one range asked for; None to send the whole file (no
    range, one this server does not serve, such as several, or an invalid one)."""
    found = _RANGE.match((header or "").strip())
    if found is None or found.groups() == ("", ""):
        return None
    first, last = found.groups()
    if not first:  # the last N bytes
        if int(last) == 0 or size == 0:
            return "unsatisfiable"
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _none_match(header: str, etag: str) -> bool:
    """Whether If-None-Match names the file's tag (the weak comparison RFC 9110 asks)."""
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


def _range_applies(request: Request, etag: str, modified: datetime) -> bool:
    """If-Range: ranges only of the very file the client has (strong tag or exact date)."""
    condition = request.headers.get("if-range")
    if condition is None:
        return True
    condition = condition.strip()
    if condition.startswith(('"', "W/")):
        return condition == etag and not etag.startswith("W/")
    return condition == http_date(modified)


async def serve_file(
    request: Request, storage: Storage, key: str, media: str, name: str, conditional: bool = True
) -> Response:
    """The stored file at `key`, as `media`; `name` names a download. `conditional`: GET
    and HEAD (ranges, validators, redirects), not the answer to an execute request."""
    info = await storage.stat(key)
    if info is None:
        raise NoSuchFile(f"{name!r} is not a file of the job's results location")
    policy = file_policy(request)
    safety = raw_headers(media, name.rsplit("/", 1)[-1])
    if conditional and policy.redirect and request.method != "HEAD":
        disposition = safety.get("Content-Disposition")
        location = await storage.presigned_url(key, policy.expiry, media, disposition)
        if location is not None:
            return Response(
                status_code=307, headers={"Location": location, "Cache-Control": "no-store"}
            )
    headers = {
        "ETag": info.etag,
        "Last-Modified": http_date(info.modified),
        "Accept-Ranges": "bytes",
        **safety,
    }
    if_none_match = request.headers.get("if-none-match")
    if conditional and if_none_match and _none_match(if_none_match, info.etag):
        return Response(status_code=304, headers=headers)
    start, length, status = 0, info.size, 200
    wanted = None
    if conditional and _range_applies(request, info.etag, info.modified):
        wanted = byte_range(request.headers.get("range"), info.size)
    if wanted == "unsatisfiable":
        refused = exception_response(
            request,
            416,
            OGC + "range-not-satisfiable",
            "Range not satisfiable",
            f"{name!r} has {info.size} bytes; the range asked for is beyond them",
        )
        refused.headers["Content-Range"] = f"bytes */{info.size}"
        return refused
    if wanted is not None:
        start, end = wanted
        length, status = end - start + 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    # The media type as it is: no charset is claimed for a file whose encoding is unknown.
    headers.update({"Content-Type": media, "Content-Length": str(length)})
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    body = await _started(storage.stream(key, start, length, info.etag), name)
    return StreamingResponse(body, status, headers)


async def _started(chunks: AsyncGenerator[bytes, None], name: str) -> AsyncIterator[bytes]:
    """The stream with its first chunk read already: a file gone or changed since its stat
    is an error answer, not a body cut short after the headers."""
    try:
        first = await anext(chunks, b"")
    except ObjectChanged:
        raise ServiceUnavailable(
            f"{name!r} changed while it was being sent; ask again for its new content"
        ) from None
    except ObjectRefused:
        raise NoSuchFile(f"{name!r} is no longer a file of the job's results location") from None

    async def rest() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()

    return rest()


def file_href(base: Base, job_id: str, name: str) -> str:
    return url(base, f"/jobs/{job_id}/files/{quote(name)}")


def _output_types(job: Job) -> dict[str, str]:
    """The media type of each file that is an output of the job, by its name: the one its
    output is served with."""
    if job.status is not JobStatus.SUCCESSFUL:
        return {}
    results = read_results(job.results).values()
    return {value.name: value.type for value in results if isinstance(value, FileResult)}


async def file_list(request: Request, storage: Storage, job: Job) -> dict[str, Any]:
    """The files of the job's results location, at any depth, by name: the first MAX_LISTED
    (`truncated` says when there are more)."""
    prefix = storage.layout.results_of(job.id)
    found = await storage.objects(prefix, MAX_LISTED + 1)
    truncated = len(found) > MAX_LISTED
    types = _output_types(job)
    files = []
    for info in found[:MAX_LISTED]:
        name = info.key.removeprefix(prefix)
        if safe_name(name) != name:
            continue  # an S3 key no path of the routes could name
        files.append(
            {
                "name": name,
                "size": info.size,
                "type": types.get(name) or media_type(None, name),
                "modified": timestamp(info.modified.astimezone(UTC)),
                "href": file_href(request, job.id, name),
            }
        )
    path = f"/jobs/{job.id}/files"
    listing: dict[str, Any] = {"jobID": job.id, "files": files, "numberReturned": len(files)}
    if truncated:
        listing["truncated"] = True
    listing["links"] = [
        link(url(request, path), "self", title="Files of the job"),
        link(url(request, f"/jobs/{job.id}"), "up", title="Job status"),
    ]
    return listing


async def job_file(request: Request, storage: Storage, job: Job, path: str) -> Response:
    """One file of the job's results location, by its path there."""
    name = safe_name(path)
    if name is None or name != path:
        raise NoSuchFile(f"{path[:200]!r} is not a file of the results of job {job.id}")
    key = storage.layout.results_of(job.id) + name
    media = _output_types(job).get(name) or media_type(None, name)
    return await serve_file(request, storage, key, media, name)
