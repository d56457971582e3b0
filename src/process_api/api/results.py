"""Answering with a job's results: raw values, a results document, or the job's failure."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from process_api.api.documents import result_value
from process_api.api.links import url
from process_api.errors import ApiError, JobDismissed, JobFailed, ResultNotReady
from process_api.jobs.model import Job, JobStatus
from process_api.processes.registry import Process


def check_finished(job: Job) -> dict[str, Any]:
    """The job's results, or the error that says why there are none."""
    if job.status is JobStatus.SUCCESSFUL:
        return job.results or {}
    if job.status is JobStatus.FAILED:
        raise JobFailed(f"job {job.id} failed: {job.message}")
    if job.status is JobStatus.DISMISSED:
        raise JobDismissed(f"job {job.id} was dismissed: {job.message}")
    raise ResultNotReady(f"job {job.id} is {job.status.value}; its results are not ready")


def selected(job: Job, results: dict[str, Any]) -> dict[str, Any]:
    """The outputs the execute request asked for (all when it named none)."""
    wanted = job.request.get("outputs")
    if not wanted:
        return results
    return {k: v for k, v in results.items() if k in wanted}


def results_document(results: dict[str, Any]) -> dict[str, Any]:
    return {output_id: result_value(value) for output_id, value in results.items()}


def _media_type(process: Process | None, output_id: str, value: Any) -> str:
    schema = process.output_schemas.get(output_id, {}) if process else {}
    media = schema.get("contentMediaType")
    if isinstance(media, str) and isinstance(value, str):
        return media
    return "application/json"


def _raw_body(media: str, value: Any) -> bytes:
    if media == "application/json":
        return json.dumps(value).encode()
    return str(value).encode()


def raw_response(
    process: Process | None, results: dict[str, Any], headers: dict[str, str]
) -> Response:
    """One output as itself; several as multipart/related; none as 204."""
    if not results:
        return Response(status_code=204, headers=headers)
    if len(results) == 1:
        ((output_id, value),) = results.items()
        media = _media_type(process, output_id, value)
        return Response(_raw_body(media, value), media_type=media, headers=headers)
    boundary = uuid.uuid4().hex
    parts = []
    for output_id, value in results.items():
        media = _media_type(process, output_id, value)
        head = f"--{boundary}\r\nContent-ID: <{output_id}>\r\nContent-Type: {media}\r\n\r\n"
        parts.append(head.encode() + _raw_body(media, value) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    media_type = f'multipart/related; boundary="{boundary}"; type="application/json"'
    return Response(body, media_type=media_type, headers=headers)


def execution_response(request: Request, process: Process, job: Job) -> Response:
    """The answer to a synchronous execution that has ended."""
    headers = {"Link": f'<{url(request, f"/jobs/{job.id}")}>; rel="monitor"'}
    try:
        results = selected(job, check_finished(job))
    except ApiError as exc:
        document = {
            "type": exc.type,
            "title": exc.title,
            "status": exc.status,
            "detail": exc.detail,
            "jobID": job.id,
        }
        return JSONResponse(document, status_code=exc.status, headers=headers)
    if job.request.get("response") == "document":
        return JSONResponse(results_document(results), headers=headers)
    return raw_response(process, results, headers)
