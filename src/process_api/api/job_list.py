"""GET /jobs: the job list with the OGC job-list filters, newest first, in stable pages.

Pages are positions, not offsets: `next` carries `after=<the page's last job>`,
`prev` carries `before=<its first job>`, so jobs submitted meanwhile never make a
page repeat or skip a job. `numberMatched` is counted up to JOB_LIST_COUNT_MAX and left
out above: with positions and bounded counts, a page costs the same for a thousand
stored jobs as for a million.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from process_api.api.auth import submitters, visible_processes
from process_api.api.common import MAX_LIMIT, Limit, job_service, render
from process_api.api.documents import status_info
from process_api.api.links import base_url, link, self_links, url
from process_api.api.routing import DirectRoute
from process_api.errors import InvalidParameter
from process_api.jobs.model import JobStatus
from process_api.store.base import JobQuery, Position

router = APIRouter(route_class=DirectRoute, tags=["Jobs"])

#: listed when no `status` is given: the standard leaves `accepted` jobs out by default.
DEFAULT_STATUSES = (
    JobStatus.RUNNING,
    JobStatus.SUCCESSFUL,
    JobStatus.FAILED,
    JobStatus.DISMISSED,
)
_OPEN = ("", "..")


def split(values: list[str] | None) -> list[str]:
    """Repeated parameters and comma lists alike."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _statuses(values: list[str] | None) -> list[JobStatus]:
    names = split(values)
    if not names:
        return list(DEFAULT_STATUSES)
    unknown = [n for n in names if n not in JobStatus.__members__.values()]
    if unknown:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidParameter(f"unknown value(s) {unknown} for parameter 'status' (use {allowed})")
    return [JobStatus(n) for n in names]


def _instant(text: str) -> tuple[datetime, datetime]:
    """An RFC 3339 date-time (or date) as the span its precision names."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            start = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return start, start + timedelta(days=1) - timedelta(microseconds=1)
        start = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(
            f"parameter 'datetime': {text!r} is not an RFC 3339 date-time"
        ) from None
    if start.tzinfo is None:
        raise InvalidParameter(f"parameter 'datetime': {text!r} needs a time zone (e.g. Z)")
    fraction = re.search(r"\.(\d+)", value)
    unit = timedelta(seconds=10 ** -len(fraction.group(1))) if fraction else timedelta(seconds=1)
    return start, start + max(unit, timedelta(microseconds=1)) - timedelta(microseconds=1)


def parse_datetime(text: str | None) -> tuple[datetime | None, datetime | None]:
    """`datetime`: an instant, or an interval `start/end` whose ends may be open (`..`); left
    blank (a form's empty field), no bound."""
    if text is None or not text.strip():
        return None, None
    if "/" not in text:
        return _instant(text)
    first, _, last = text.partition("/")
    if first.strip() in _OPEN and last.strip() in _OPEN:
        raise InvalidParameter("parameter 'datetime': an interval needs at least one end")
    start = None if first.strip() in _OPEN else _instant(first)[0]
    end = None if last.strip() in _OPEN else _instant(last)[1]
    if start is not None and end is not None and start > end:
        raise InvalidParameter("parameter 'datetime': the interval ends before it starts")
    return start, end


def _duration(name: str, values: list[str] | None) -> float | None:
    numbers = split(values)
    if not numbers:
        return None
    try:
        parsed = [int(n) for n in numbers]
    except ValueError:
        raise InvalidParameter(f"parameter {name!r} takes whole seconds, got {numbers}") from None
    if any(n < 0 for n in parsed):
        raise InvalidParameter(f"parameter {name!r} cannot be negative")
    return float(max(parsed) if name == "minDuration" else min(parsed))


async def _position(
    request: Request, name: str, job_id: str | None, mine: tuple[str, ...] | None
) -> Position | None:
    """Where the job is in the list; `mine`: the submitters the list is limited to (another
    user's job is not one to page from, as if it did not exist)."""
    if job_id is None:
        return None
    position = await job_service(request).position(job_id, mine)
    if position is None:
        raise InvalidParameter(f"parameter {name!r}: no job {job_id!r} to page from")
    return position


@router.get("/jobs", summary="List the jobs, newest first")
async def list_jobs(
    request: Request,
    limit: Limit = 10,
    processID: Annotated[list[str] | None, Query()] = None,
    status: Annotated[
        list[str] | None,
        Query(description="Without it, every status but accepted is listed"),
    ] = None,
    type: Annotated[list[str] | None, Query()] = None,
    datetime: Annotated[
        str | None,
        Query(description="Created at an instant, or in an interval start/end (.. for open)"),
    ] = None,
    minDuration: Annotated[list[str] | None, Query(description="Seconds")] = None,
    maxDuration: Annotated[list[str] | None, Query(description="Seconds")] = None,
    after: Annotated[
        str | None, Query(description="The next page: jobs older than this job")
    ] = None,
    before: Annotated[
        str | None, Query(description="The previous page: jobs newer than this job")
    ] = None,
) -> Response:
    if any(t != "process" for t in split(type)):
        raise InvalidParameter("parameter 'type' only takes the value 'process'")
    created_from, created_to = parse_datetime(datetime)
    mine = submitters(request)
    query = JobQuery(
        process_ids=split(processID),
        submitters=mine,
        statuses=_statuses(status),
        limit=min(limit, MAX_LIMIT),
        created_from=created_from,
        created_to=created_to,
        min_duration=_duration("minDuration", minDuration),
        max_duration=_duration("maxDuration", maxDuration),
        after=await _position(request, "after", after, mine),
        before=await _position(request, "before", before, mine),
    )
    counted = request.app.state.settings.job_list_count_max
    page = await job_service(request).find(query, count_up_to=counted)
    params = {k: request.query_params.getlist(k) for k in request.query_params if k != "f"}
    filters = {k: v for k, v in params.items() if k not in ("after", "before")}
    base = base_url(request)
    links = self_links(base, "/jobs", "Jobs", **params)
    if page.has_older:
        links.append(link(url(request, "/jobs", **filters, after=page.jobs[-1].id), "next"))
    if page.has_newer:
        links.append(link(url(request, "/jobs", **filters, before=page.jobs[0].id), "prev"))
    document: dict[str, Any] = {
        "jobs": [status_info(base, job) for job in page.jobs],
        "links": links,
    }
    # Left out when more match than were counted, as the standard lets it be.
    if page.total is not None:
        document["numberMatched"] = page.total
    document["numberReturned"] = len(page.jobs)
    processes = [p.id for p in visible_processes(request)]
    return render(request, document, "jobs.html", processes=processes, counted=counted)
