"""Live forms of a job's status and log, for pages and scripts alike.

`GET /jobs/{id}` with `Accept: text/event-stream` sends a `status` event (the
statusInfo) at each change until the job ends. `GET /jobs/{id}/logs` sends each
line as it is printed: as Server-Sent Events (`log` events whose id is the line's
number, so that a client reconnecting with `Last-Event-ID` goes on where it was,
and an `end` event), or with `?follow=true` as JSON lines. Both read the job store
and the log as every other route does, so they follow a job that runs on another
instance too, and both end when the job ends or the server stops. A client that
goes away ends its stream at once: nothing is kept for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from process_api.api.documents import status_info
from process_api.errors import ServiceUnavailable
from process_api.jobs.log import Record
from process_api.jobs.service import JobService
from process_api.store.base import JobSummary

EVENT_STREAM = "text/event-stream"
JSON_LINES = "application/x-ndjson"
#: seconds between two looks for new lines or a new status.
POLL = 0.25
#: seconds of quiet after which a comment is sent, so that proxies keep the stream open.
KEEP_ALIVE = 15.0
#: lines read at a time.
STREAM_PAGE = 1000
#: milliseconds an EventSource waits before it reconnects.
RETRY_MS = 2000
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def wants_events(request: Request) -> bool:
    """An EventSource (and `curl -H 'Accept: text/event-stream'`) asks for events."""
    return request.query_params.get("f") is None and EVENT_STREAM in request.headers.get(
        "accept", ""
    )


def event(name: str, data: Any, event_id: int | str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


#: the id of the last event of a stream: an EventSource that reconnects with it is told
#: (204) that there is nothing more, rather than reconnecting for ever.
ENDED = "end"


def ended(request: Request) -> bool:
    return request.headers.get("last-event-id") == ENDED


def last_line_seen(request: Request) -> int | None:
    """The line an EventSource that reconnects saw last (the id of its last log event)."""
    value = request.headers.get("last-event-id", "")
    return int(value) if value.isascii() and value.isdigit() else None


class _Counted(StreamingResponse):
    """A stream that holds its place among the open ones until it is over, however it ends
    (the client gone before the first chunk, too)."""

    def __init__(self, streams: Streams, chunks: AsyncIterator[bytes], media_type: str) -> None:
        super().__init__(chunks, media_type=media_type, headers=HEADERS)
        self.streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.streams.open -= 1


class Streams:
    """Counts the open streams of this server process: each holds a connection for as long
    as a job runs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def response(self, chunks: AsyncIterator[bytes], media_type: str) -> Response:
        if self.open >= self.limit:
            error = ServiceUnavailable(
                f"{self.open} job streams are open, the most this server keeps (MAX_STREAMS); "
                "poll the job instead, or try again shortly"
            )
            error.headers["Retry-After"] = "5"
            raise error
        self.open += 1  # counted at once: requests arriving together cannot all pass
        return _Counted(self, chunks, media_type)


async def _pause(service: JobService) -> bool:
    """Waits a poll; False once the server is stopping (streams end then)."""
    await asyncio.sleep(POLL)
    return not service.closing


def _state(job: JobSummary) -> tuple[Any, ...]:
    """What a status event shows of a job: a new event when it changes."""
    return (job.status, job.progress, job.message, job.updated)


async def status_events(request: Request, service: JobService, job_id: str) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MS}\n\n".encode()
    last: tuple[Any, ...] | None = None
    quiet = 0.0
    while True:
        job = await service.summary(job_id)
        if _state(job) != last:
            last, quiet = _state(job), 0.0
            final = ENDED if job.status.terminal else None
            yield event("status", status_info(request, job), final)
        if job.status.terminal or not await _pause(service):
            return
        quiet += POLL
        if quiet >= KEEP_ALIVE:
            quiet = 0.0
            yield b": keep-alive\n\n"


async def log_lines(
    service: JobService, job_id: str, after: int
) -> AsyncIterator[tuple[int, Record] | JobSummary]:
    """The job's log lines after the first `after`, with their numbers, as they are printed,
    until the job ends; between them, the job as it was at each look for more lines (for
    status events and keep-alives)."""
    ended = False
    cursor = None
    while True:
        page = await service.logs(job_id, after, STREAM_PAGE, cursor)
        cursor = page.cursor
        for line in page.lines:
            after += 1
            yield after, line
        if page.more:
            continue
        if ended:
            return
        # The lines printed before the end are read once more after it: they may have
        # moved from the running job to storage meanwhile.
        job = await service.summary(job_id)
        ended = job.status.terminal
        yield job
        if not ended and not await _pause(service):
            return


async def log_events(
    request: Request, service: JobService, job_id: str, after: int, statuses: bool
) -> AsyncIterator[bytes]:
    """`statuses`: a `status` event at each change of the job too, so that one stream
    serves a job's page."""
    yield f"retry: {RETRY_MS}\n\n".encode()
    quiet = 0.0
    shown: tuple[Any, ...] | None = None
    final: JobSummary | None = None
    async for found in log_lines(service, job_id, after):
        if isinstance(found, tuple):
            quiet = 0.0
            yield event("log", found[1], found[0])
        elif found.status.terminal:
            final = found  # said after the last lines
        elif statuses and _state(found) != shown:
            shown, quiet = _state(found), 0.0
            yield event("status", status_info(request, found))
        else:
            quiet += POLL
            if quiet >= KEEP_ALIVE:
                quiet = 0.0
                yield b": keep-alive\n\n"
    if final is None:  # the server is stopping: an EventSource reconnects, elsewhere if it may
        return
    if statuses:
        yield event("status", status_info(request, final))
    yield event("end", {"status": final.status.value}, ENDED)


async def log_json_lines(service: JobService, job_id: str, after: int) -> AsyncIterator[bytes]:
    async for found in log_lines(service, job_id, after):
        if isinstance(found, tuple):
            yield json.dumps(found[1], ensure_ascii=False).encode() + b"\n"
