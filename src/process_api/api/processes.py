"""/processes: the list, each description, and execution."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from process_api.api.auth import check_quota, user_of, visible_process, visible_processes
from process_api.api.callbacks import check_subscriber
from process_api.api.common import (
    MAX_LIMIT,
    RESULTS_CONTENT,
    Limit,
    Offset,
    job_service,
    page_links,
    render,
)
from process_api.api.documents import (
    process_description,
    process_summary,
    status_info,
)
from process_api.api.errors import validation_detail
from process_api.api.links import base_url, self_links, url
from process_api.api.openapi import inline_schema
from process_api.api.prefer import decide_mode, parse_prefer
from process_api.api.results import execution_response, output_forms
from process_api.api.routing import DirectRoute
from process_api.errors import InvalidInput, JobNotDismissable, UnsupportedMediaType
from process_api.jobs.model import Job
from process_api.jobs.service import JobService
from process_api.processes.examples import example_inputs
from process_api.processes.inputs import check_inputs
from process_api.processes.registry import Process

router = APIRouter(route_class=DirectRoute, tags=["Processes"])

#: how often a synchronous request checks whether its client is still there.
DISCONNECT_POLL = 0.2
#: the members of an execute request (OGC API - Processes 1.0, execute.yaml).
EXECUTE_MEMBERS = ("inputs", "outputs", "response", "subscriber")
#: members of the 1.0 drafts that clients still send: accepted and left out (`mode` is
#: decided by the Prefer header and the process's jobControlOptions).
DROPPED = ("mode",)
#: how deeply an execute request may nest; deeper bodies would exhaust the recursion
#: limit of the JSON encoders and validators downstream.
MAX_DEPTH = 100
_TOO_DEEP = f"the request body nests arrays or objects more than {MAX_DEPTH} levels deep"


class Format(BaseModel):
    model_config = ConfigDict(extra="allow")
    mediaType: str | None = None
    encoding: str | None = None
    schema_: str | dict[str, Any] | None = Field(None, alias="schema")


class OutputRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    transmissionMode: Literal["value", "reference"] | None = None
    format: Format | None = None


class Subscriber(BaseModel):
    successUri: str | None = None
    inProgressUri: str | None = None
    failedUri: str | None = None


class ExecuteRequest(BaseModel):
    """The body of POST /processes/{processID}/execution (OGC execute.yaml)."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, OutputRequest] | None = None
    response: Literal["raw", "document"] = "raw"
    subscriber: Subscriber | None = None


@router.get("/processes", summary="List the processes")
async def list_processes(request: Request, limit: Limit = 100, offset: Offset = 0) -> Response:
    processes = visible_processes(request)
    limit = min(limit, MAX_LIMIT)
    page = processes[offset : offset + limit]
    document = {
        "processes": [process_summary(request, p) for p in page],
        "links": [
            *self_links(request, "/processes", "Processes", limit=limit, offset=offset or None),
            *page_links(request, "/processes", limit, offset, len(processes)),
        ],
        "numberMatched": len(processes),
        "numberReturned": len(page),
    }
    return render(request, document, "processes.html")


@router.get("/processes/{processID}", summary="Describe a process")
async def describe_process(request: Request, processID: str) -> Response:
    process = await visible_process(request, processID)
    document = process_description(request, process)
    return render(request, document, "process.html", example_inputs=example_inputs(process))


@router.post(
    "/processes/{processID}/execution",
    summary="Execute a process",
    status_code=200,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(ExecuteRequest)}},
        }
    },
    responses={
        200: {"description": "The results, as the request asked", "content": RESULTS_CONTENT},
        201: {"description": "Started asynchronous execution; the body is the job's statusInfo"},
        204: {"description": "Executed; the process has no outputs"},
        400: {"description": "Invalid execute request"},
        404: {"description": "No such process"},
        410: {"description": "The job was dismissed (shutdown, or by another client)"},
        415: {"description": "The body is not JSON"},
        413: {
            "description": "The body is over MAX_REQUEST_BYTES, or the inputs are too large "
            "for the process's host (one command argument, AWS Batch's request limit)"
        },
        500: {"description": "The job failed"},
        503: {"description": "The server is shutting down, or the host's engine is unreachable"},
    },
)
async def execute(
    request: Request,
    processID: str,
    prefer: Annotated[list[str] | None, Header()] = None,
) -> Response:
    process = await visible_process(request, processID)
    body = await _execute_request(request, process)
    try:
        check_inputs(process, body.inputs)
    except InvalidInput as exc:
        if "inputs" not in body.model_fields_set:
            exc.detail += '; the request has no "inputs" member: {"inputs": {"<input id>": …}}'
        raise
    stored_request = body.model_dump(exclude={"inputs"}, exclude_none=True, by_alias=True)
    output_forms(process, stored_request)
    if body.subscriber is not None:
        await check_subscriber(stored_request["subscriber"], request.app.state.callback_policy)
        stored_request["baseUrl"] = base_url(request)  # for the links of the callbacks
    decision = decide_mode(process, parse_prefer(prefer or []))
    jobs = job_service(request)
    # With wait=N the client may get the async answer and poll: the job is kept as async.
    mode = "async" if decision.wait is not None else decision.mode
    await check_quota(request)
    user = user_of(request)
    submitter = (user.id, user.name) if user else None
    job = await jobs.submit(process, body.inputs, stored_request, mode, submitter)
    request.app.state.metrics.submitted(job)
    headers = {"Preference-Applied": decision.applied} if decision.applied else {}
    if decision.mode == "sync":
        finished = await _await_sync(request, jobs, job, decision.wait)
        if finished is not None:
            response = await execution_response(request, jobs.storage, process, finished)
            response.headers.update(headers)
            return response
        job = await jobs.get(job.id)
    headers["Location"] = url(request, f"/jobs/{job.id}")
    return JSONResponse(status_info(request, job), status_code=201, headers=headers)


def _known_members(data: dict[str, Any], process: Process) -> dict[str, Any]:
    """The body without the members older clients send and that mean nothing here.

    Any other member is refused, naming it: it would be stored with the job, and a
    misspelt `outputs` or `response` would silently give the client other results.
    """
    unknown = [name for name in data if name not in EXECUTE_MEMBERS and name not in DROPPED]
    if unknown:
        detail = (
            f"unknown member(s) {unknown} of the execute request; it has {list(EXECUTE_MEMBERS)}"
        )
        input_ids = {i.id for i in process.config.inputs}
        if "inputs" not in data and set(unknown) & input_ids:
            wrapped = json.dumps({"inputs": {name: data[name] for name in unknown}})
            if len(wrapped) > 200:
                wrapped = '{"inputs": {…}}'
            detail += f'. Inputs go inside an "inputs" member: {wrapped}'
        raise InvalidInput(detail)
    return {name: value for name, value in data.items() if name not in DROPPED}


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            level.extend((child, depth + 1) for child in children)
    return deepest


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


#: what an execute body may be declared as: JSON, or curl's default for `-d` (a JSON
#: body sent without `-H 'Content-Type: application/json'`).
_ACCEPTED_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")


def _check_media_type(request: Request) -> None:
    """Raises 415 for a body declared as something other than JSON (XML, a form upload)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    essence = declared.split(";")[0].strip().lower()
    if essence in _ACCEPTED_BODY_TYPES or (
        essence.startswith("application/") and essence.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"the execute request must be JSON (Content-Type: application/json), not {essence!r}"
    )


async def _execute_request(request: Request, process: Process) -> ExecuteRequest:
    """The body as an execute request; JSON, even under curl's default form type."""
    _check_media_type(request)
    raw = await request.body()
    try:
        data = json.loads(raw, parse_constant=_not_json) if raw.strip() else {}
    except ValueError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(_TOO_DEEP) from None
    if _depth(data) > MAX_DEPTH:
        raise InvalidInput(_TOO_DEEP)
    if isinstance(data, dict):
        data = _known_members(data, process)
    try:
        return ExecuteRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_detail(exc.errors())) from None


async def _await_sync(
    request: Request, jobs: JobService, job: Job, wait: float | None
) -> Job | None:
    """The ended job; None when `wait` ran out first. A client that leaves dismisses the job."""
    waiter = asyncio.ensure_future(jobs.wait(job.id))
    loop = asyncio.get_running_loop()
    deadline = None if wait is None else loop.time() + wait
    try:
        while True:
            timeout = DISCONNECT_POLL
            if deadline is not None:
                timeout = min(timeout, max(deadline - loop.time(), 0))
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
            if done:
                return waiter.result()
            if deadline is not None and loop.time() >= deadline:
                return None
            if await request.is_disconnected():
                with contextlib.suppress(JobNotDismissable):
                    await jobs.dismiss(job.id, "the client of the synchronous request disconnected")
                return await waiter
    finally:
        waiter.cancel()
