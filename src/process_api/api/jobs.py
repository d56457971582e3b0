"""/jobs/{jobID}: status, dismiss, results, logs and metadata of one job."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from process_api.api.common import GONE, RESULTS_CONTENT, job_service, registry, render
from process_api.api.documents import status_info
from process_api.api.links import link, self_links, url
from process_api.api.negotiation import wants_html
from process_api.api.results import (
    OutputForm,
    check_finished,
    one_output,
    output_forms,
    results_document,
    results_response,
)
from process_api.jobs.metadata import job_metadata
from process_api.jobs.model import timestamp

router = APIRouter(tags=["Jobs"])


@router.get("/jobs/{jobID}", summary="The status of a job")
async def job_status(request: Request, jobID: str) -> Response:
    job = await job_service(request).summary(jobID)
    return render(request, status_info(request, job), "job.html")


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
    process = registry(request).get(job.process_id)
    if wants_html(request):
        results = check_finished(job)
        forms = (
            output_forms(process, job.request)
            if process
            else {o: OutputForm("value", "application/json") for o in results}
        )
        document = results_document(request, job, results, forms)
        return render(request, document, "results.html", job=status_info(request, job))
    return results_response(request, process, job)


@router.get(
    "/jobs/{jobID}/results/{outputID}",
    summary="One output of a successful job, raw",
    responses={200: {"description": "The output", "content": RESULTS_CONTENT}, **GONE},
)
async def job_output(request: Request, jobID: str, outputID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    service.check_kept(job)
    return one_output(registry(request).get(job.process_id), job, outputID)


@router.get("/jobs/{jobID}/logs", summary="The lines the job's process printed", responses=GONE)
async def job_logs(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.summary(jobID)
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


@router.get(
    "/jobs/{jobID}/metadata",
    summary="Provenance of a job: what ran, where and when",
    responses=GONE,
)
async def job_metadata_route(request: Request, jobID: str) -> Response:
    service = job_service(request)
    job = await service.get(jobID)
    service.check_kept(job)
    document = {
        **job_metadata(job),
        "links": [
            *self_links(request, f"/jobs/{jobID}/metadata", "Job metadata"),
            link(url(request, f"/jobs/{jobID}"), "up", title="Job status"),
        ],
    }
    return render(request, document, "metadata.html")
