"""/jobs: the job list, status, dismiss, results and logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from process_api.api.common import MAX_LIMIT, Limit, Offset, job_service, page_links, render
from process_api.api.documents import status_info, timestamp
from process_api.api.links import link, self_links, url
from process_api.api.results import check_finished, results_document
from process_api.errors import InvalidParameter
from process_api.jobs.model import JobStatus
from process_api.store.base import JobQuery

router = APIRouter(tags=["Jobs"])


def _split(values: list[str] | None) -> list[str]:
    """Repeated parameters and comma lists alike."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _statuses(values: list[str] | None) -> list[JobStatus]:
    names = _split(values)
    unknown = [n for n in names if n not in JobStatus.__members__.values()]
    if unknown:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidParameter(f"unknown value(s) {unknown} for parameter 'status' (use {allowed})")
    return [JobStatus(n) for n in names]


@router.get("/jobs", summary="List the jobs, newest first")
async def list_jobs(
    request: Request,
    limit: Limit = 10,
    offset: Offset = 0,
    processID: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
    type: Annotated[list[str] | None, Query()] = None,
) -> Response:
    types = _split(type)
    if any(t != "process" for t in types):
        raise InvalidParameter("parameter 'type' only takes the value 'process'")
    limit = min(limit, MAX_LIMIT)
    query = JobQuery(_split(processID), _statuses(status), limit, offset)
    jobs, total = await job_service(request).find(query)
    params = {k: request.query_params.getlist(k) for k in request.query_params if k != "f"}
    document = {
        "jobs": [status_info(request, job) for job in jobs],
        "links": [
            *self_links(request, "/jobs", "Jobs", **params),
            *page_links(request, "/jobs", limit, offset, total),
        ],
        "numberMatched": total,
        "numberReturned": len(jobs),
    }
    return render(request, document, "jobs.html")


@router.get("/jobs/{jobID}", summary="The status of a job")
async def job_status(request: Request, jobID: str) -> Response:
    job = await job_service(request).get(jobID)
    return render(request, status_info(request, job), "job.html")


@router.delete("/jobs/{jobID}", summary="Dismiss a job: stop it and record it as dismissed")
async def dismiss_job(request: Request, jobID: str) -> Response:
    job = await job_service(request).dismiss(jobID)
    return JSONResponse(status_info(request, job))


@router.get("/jobs/{jobID}/results", summary="The results of a successful job")
async def job_results(request: Request, jobID: str) -> Response:
    job = await job_service(request).get(jobID)
    document = results_document(check_finished(job))
    return render(request, document, "results.html", job=status_info(request, job))


@router.get("/jobs/{jobID}/logs", summary="The lines the job's process printed")
async def job_logs(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    document = {
        "jobID": job.id,
        "processID": job.process_id,
        "status": job.status.value,
        "updated": timestamp(job.updated),
        "logs": await service.logs(jobID),
        "links": [
            *self_links(request, f"/jobs/{jobID}/logs", "Job logs"),
            link(url(request, f"/jobs/{jobID}"), "up", title="Job status"),
        ],
    }
    return render(request, document, "logs.html")


#: handle members that only the host needs.
_INTERNAL = ("start",)


@router.get("/jobs/{jobID}/metadata", summary="Provenance of a job: what ran, where and when")
async def job_metadata(request: Request, jobID: str) -> Response:
    job = await job_service(request).get(jobID)
    run = {k: v for k, v in (job.handle or {}).items() if k not in _INTERNAL}
    document = {
        "jobID": job.id,
        "processID": job.process_id,
        "processVersion": job.process_version,
        "host": job.host_type,
        "status": job.status.value,
        **{name: timestamp(getattr(job, name)) for name in ("created", "started", "finished")},
        **run,
        "links": [
            *self_links(request, f"/jobs/{jobID}/metadata", "Job metadata"),
            link(url(request, f"/jobs/{jobID}"), "up", title="Job status"),
        ],
    }
    return render(request, document, "metadata.html")
