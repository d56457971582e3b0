"""/jobs/{jobID}: status, dismiss, results, files, logs and metadata of one job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from process_api.api.auth import own_job, shows_submitter
from process_api.api.common import (
    GONE,
    RESULTS_CONTENT,
    catalog,
    job_service,
    render,
    streams,
)
from process_api.api.documents import process_path, status_info
from process_api.api.files import file_list, job_file
from process_api.api.links import link, self_links, url
from process_api.api.negotiation import wants_html
from process_api.api.result_views import OutputView, output_views
from process_api.api.results import (
    OutputForm,
    check_finished,
    one_output,
    output_forms,
    results_document,
    results_response,
)
from process_api.api.routing import DirectRoute
from process_api.api.safety import JSON
from process_api.api.streams import (
    EVENT_STREAM,
    JSON_LINES,
    ended,
    last_line_seen,
    log_events,
    log_json_lines,
    status_events,
    wants_events,
)
from process_api.errors import ResultNotReady, ResultsExpired
from process_api.jobs.metadata import SUBMITTER_FIELDS, job_metadata
from process_api.jobs.model import Job, JobStatus, timestamp
from process_api.jobs.service import JobService
from process_api.processes.registry import Process

router = APIRouter(route_class=DirectRoute, tags=["Jobs"], dependencies=[Depends(own_job)])


@router.get(
    "/jobs/{jobID}",
    summary="The status of a job; with Accept: text/event-stream, each change as it happens",
    responses={
        200: {
            "description": "The statusInfo; or Server-Sent Events: a `status` event (the "
            "statusInfo) at each change, until the job ends",
            "content": {"application/json": {}, EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        503: {"description": "Too many streams are open (MAX_STREAMS)"},
    },
)
async def job_status(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.summary(jobID)
    if wants_events(request):
        if ended(request):
            return Response(status_code=204)
        return streams(request).response(status_events(request, service, jobID), EVENT_STREAM)
    outputs = expired = None
    if wants_html(request) and job.status is JobStatus.SUCCESSFUL:
        try:
            service.check_kept(job)
            outputs = await _outputs(request, await service.get(jobID))
        except ResultsExpired as exc:  # the page stays; its results say why they are gone
            expired = exc.detail
    document = status_info(request, job)
    return render(request, document, "job.html", outputs=outputs, expired=expired)


async def _first_line(service: JobService, job_id: str, after: int, tail: int | None) -> int:
    """Where a page or stream of the log begins: `after`, or `tail` lines before the end."""
    if tail is None:
        return after
    return max(0, await service.log_length(job_id) - tail)


async def _outputs(request: Request, job: Job) -> list[OutputView]:
    """How the outputs of a successful job show on its page."""
    results = check_finished(job)
    forms = _page_forms(await catalog(request).of_job(job), job, results)
    return output_views(request, job, results, forms)


def _page_forms(
    process: Process | None, job: Job, results: dict[str, Any]
) -> dict[str, OutputForm]:
    """The outputs a page shows: those the execute request asked for (every output as JSON
    once the process is gone)."""
    if process is None:
        return {o: OutputForm("value", JSON) for o in results}
    return output_forms(process, job.request)


@router.delete(
    "/jobs/{jobID}",
    summary="Dismiss a job: stop it and record it as dismissed",
    responses={409: {"description": "The job has already ended; its status never changes"}},
)
async def dismiss_job(request: Request, jobID: str) -> Response:
    job = await job_service(request).dismiss(jobID)
    return render(request, status_info(request, job), "job.html")


@router.get(
    "/jobs/{jobID}/results",
    summary="The results of a successful job, in the form its execute request asked for",
    responses={
        200: {"description": "The results", "content": RESULTS_CONTENT},
        204: {"description": "Every output is by reference: see the Link headers"},
        **GONE,
    },
)
async def job_results(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    service.check_kept(job)
    process = await catalog(request).of_job(job)
    if wants_html(request):
        results = check_finished(job)
        forms = _page_forms(process, job, results)
        document = results_document(request, job, results, forms)
        outputs = output_views(request, job, results, forms)
        return render(
            request, document, "results.html", job=status_info(request, job), outputs=outputs
        )
    return await results_response(request, service.storage, process, job)


#: what the routes that serve a file may also answer.
FILE_ANSWERS: dict[int | str, dict[str, Any]] = {
    206: {"description": "The range asked for (`Range`, one range)"},
    304: {"description": "Not modified (`If-None-Match`)"},
    307: {"description": "With RESULTS_REDIRECT=presigned: a presigned S3 address of the file"},
    416: {"description": "The range asked for is beyond the file's end"},
    **GONE,
}


@router.get(
    "/jobs/{jobID}/results/{outputID}",
    summary="One output of a successful job, raw (a file output: the file)",
    responses={200: {"description": "The output", "content": RESULTS_CONTENT}, **FILE_ANSWERS},
)
async def job_output(request: Request, jobID: str, outputID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    service.check_kept(job)
    process = await catalog(request).of_job(job)
    return await one_output(request, service.storage, process, job, outputID)


async def _ended(request: Request, job_id: str) -> Job:
    """The job, once it has ended (its files are complete) and while they are kept."""
    service = job_service(request)
    job = await service.get(job_id)
    service.check_kept(job)
    if not job.status.terminal:
        raise ResultNotReady(f"job {job.id} is {job.status.value}; its files are not complete")
    return job


@router.get(
    "/jobs/{jobID}/files",
    summary="The files the job's process wrote to its results location",
    responses=GONE,
)
async def job_files(request: Request, jobID: str) -> Response:
    job = await _ended(request, jobID)
    return JSONResponse(await file_list(request, job_service(request).storage, job))


@router.get(
    "/jobs/{jobID}/files/{path:path}",
    summary="One file of the job's results location",
    responses={200: {"description": "The file", "content": RESULTS_CONTENT}, **FILE_ANSWERS},
)
async def one_job_file(request: Request, jobID: str, path: str) -> Response:
    job = await _ended(request, jobID)
    return await job_file(request, job_service(request).storage, job, path)


# HEAD answers as GET does, without the body (uvicorn drops it; files are not read).
for _path, _route in (
    ("/jobs/{jobID}/results/{outputID}", job_output),
    ("/jobs/{jobID}/files", job_files),
    ("/jobs/{jobID}/files/{path:path}", one_job_file),
):
    router.add_api_route(_path, _route, methods=["HEAD"], include_in_schema=False)


#: lines per page of a job's log, unless asked otherwise.
LOG_PAGE = 10_000

LogLimit = Annotated[int, Query(ge=1, le=LOG_PAGE, description="Lines per page")]
LogAfter = Annotated[int, Query(ge=0, description="Lines to skip: the next page starts there")]


LogFollow = Annotated[
    bool,
    Query(description="Stream the lines as they are printed (JSON lines), until the job ends"),
]
LogTail = Annotated[
    int | None,
    Query(
        ge=1,
        le=LOG_PAGE,
        description="Start at the last lines printed so far, this many (instead of `after`)",
    ),
]
LogWithStatus = Annotated[
    bool,
    Query(
        alias="withStatus",
        description="With Accept: text/event-stream, a `status` event (the statusInfo) at "
        "each change of the job too: one stream for a job's page",
    ),
]


@router.get(
    "/jobs/{jobID}/logs",
    summary="The lines the job's process printed, a page at a time, or as they are printed",
    responses={
        200: {
            "description": "A page of lines; with `follow=true`, JSON lines as they are "
            "printed; with Accept: text/event-stream, a `log` event per line (its id is the "
            "line's number: `Last-Event-ID` resumes after it) and an `end` event",
            "content": {
                "application/json": {},
                JSON_LINES: {"schema": {"type": "string"}},
                EVENT_STREAM: {"schema": {"type": "string"}},
            },
        },
        503: {"description": "Too many streams are open (MAX_STREAMS)"},
        **GONE,
    },
)
async def job_logs(
    request: Request,
    jobID: str,
    limit: LogLimit = LOG_PAGE,
    after: LogAfter = 0,
    follow: LogFollow = False,
    tail: LogTail = None,
    with_status: LogWithStatus = False,
) -> Response:
    service = job_service(request)
    job = await service.summary(jobID)
    service.check_kept(job)  # 410 once expired, before a stream begins
    if wants_events(request):
        if ended(request):
            return Response(status_code=204)
        start = last_line_seen(request)  # a stream resumed goes on where it was
        if start is None:
            start = await _first_line(service, jobID, after, tail)
        chunks = log_events(request, service, jobID, start, with_status)
        return streams(request).response(chunks, EVENT_STREAM)
    after = await _first_line(service, jobID, after, tail)
    if follow:
        return streams(request).response(log_json_lines(service, jobID, after), JSON_LINES)
    page = await service.logs(jobID, after, limit)
    path = f"/jobs/{jobID}/logs"
    links = [
        *self_links(
            request,
            path,
            "Job logs",
            limit=None if limit == LOG_PAGE else limit,
            after=after or None,
        ),
        link(url(request, f"/jobs/{jobID}"), "up", title="Job status"),
    ]
    following = after + len(page.lines)
    if page.more or not job.status.terminal:
        # While the job runs, the next page is where new lines will appear.
        links.append(link(url(request, path, limit=limit, after=following), "next"))
    if after > 0:
        links.append(link(url(request, path, limit=limit, after=max(after - limit, 0)), "prev"))
    document = {
        "jobID": job.id,
        "processID": job.process_id,
        "status": job.status.value,
        "updated": timestamp(job.updated),
        "numberReturned": len(page.lines),
        "logs": page.lines,
        "links": links,
    }
    return render(request, document, "logs.html")


@router.get(
    "/jobs/{jobID}/metadata",
    summary="Provenance of a job: what ran, where and when",
    responses=GONE,
)
async def job_metadata_route(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    service.check_kept(job)
    metadata = job_metadata(job)
    if not shows_submitter(request, job.submitter):
        metadata = {k: v for k, v in metadata.items() if k not in SUBMITTER_FIELDS}
    document = {
        **metadata,
        "links": [
            *self_links(request, f"/jobs/{jobID}/metadata", "Job metadata"),
            link(url(request, f"/jobs/{jobID}"), "up", title="Job status"),
            link(url(request, process_path(job)), "process", title="The process it ran"),
        ],
    }
    return render(request, document, "metadata.html")
