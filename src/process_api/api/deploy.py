"""OGC API - Processes Part 2: deploying, replacing and undeploying processes, their packages,
and the versions jobs ran."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from process_api.api.auth import deployer, visible
from process_api.api.common import catalog, deployment, render
from process_api.api.documents import process_description, process_summary
from process_api.api.links import link, url
from process_api.api.routing import DirectRoute
from process_api.errors import NoSuchProcess
from process_api.processes.deployment import MEDIA_TYPES, Candidate
from process_api.processes.examples import example_inputs

router = APIRouter(route_class=DirectRoute, tags=["Deploy, Replace, Undeploy"])

#: what a deploy or replace request may send.
PROCESS_BODY = {
    "required": True,
    "content": {media_type: {"schema": {"type": "object"}} for media_type in MEDIA_TYPES},
}
REFUSALS: dict[int | str, dict[str, str]] = {
    400: {"description": "The process is not valid; the detail names each field"},
    401: {"description": "Authentication is on and no credentials were sent"},
    403: {"description": "Deploying is off, the user is no admin, or the host type is refused"},
    415: {"description": "Not an application package nor a process file"},
}


async def _candidate(request: Request) -> Candidate:
    """The process sent, checked in a thread: the hosts' checks ask the Docker Engine and AWS."""
    body, content_type = await request.body(), request.headers.get("content-type")
    return await asyncio.to_thread(deployment(request).candidate, body, content_type)


@router.post(
    "/processes",
    summary="Deploy a process",
    status_code=201,
    openapi_extra={"requestBody": PROCESS_BODY},
    responses={
        201: {"description": "Deployed; Location is its description"},
        409: {"description": "A process of that id exists (duplicated-process)"},
        **REFUSALS,
    },
)
async def deploy(request: Request) -> Response:
    user = deployer(request)
    process = await deployment(request).deploy(await _candidate(request), user)
    location = url(request, f"/processes/{process.id}")
    return JSONResponse(
        process_summary(request, process), status_code=201, headers={"Location": location}
    )


@router.put(
    "/processes/{processID}",
    summary="Replace a deployed process (jobs keep the version they were accepted for)",
    status_code=204,
    openapi_extra={"requestBody": PROCESS_BODY},
    responses={
        204: {"description": "Replaced"},
        403: {
            "description": "A process of the processes directory (immutable-process), or as "
            "for a deploy"
        },
        404: {"description": "No such deployed process"},
        **{code: answer for code, answer in REFUSALS.items() if code != 403},
    },
)
async def replace(request: Request, processID: str) -> Response:
    user = deployer(request)
    await deployment(request).replace(processID, await _candidate(request), user)
    return Response(status_code=204)


@router.delete(
    "/processes/{processID}",
    summary="Undeploy a process (its running and accepted jobs finish)",
    status_code=204,
    responses={
        204: {"description": "Undeployed"},
        401: REFUSALS[401],
        403: {
            "description": "A process of the processes directory (immutable-process); "
            "deploying is off, or the user is no admin"
        },
        404: {"description": "No such deployed process"},
    },
)
async def undeploy(request: Request, processID: str) -> Response:
    user = deployer(request)
    await deployment(request).undeploy(processID, user)
    return Response(status_code=204)


@router.get(
    "/processes/{processID}/package",
    summary="What was deployed: the application package or process file, as sent",
    responses={
        200: {
            "description": "The package",
            "content": {media_type: {} for media_type in MEDIA_TYPES},
        },
        401: REFUSALS[401],
        403: {"description": "Deploying is off, or the user is no admin"},
        404: {"description": "No such process"},
    },
)
async def package(request: Request, processID: str) -> Response:
    deployer(request)
    process = await catalog(request).current(processID)
    if process is None:
        raise NoSuchProcess(f"process {processID!r} is not registered")
    content, media_type = await deployment(request).package(process)
    return Response(content, media_type=media_type)


@router.get(
    "/processes/{processID}/versions/{revision}",
    summary="A version of a deployed process, current or not (the one a job ran)",
    responses={404: {"description": "No such version"}},
)
async def process_version(
    request: Request, processID: str, revision: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> Response:
    process = await catalog(request).version(processID, revision)
    if process is None or not visible(request, process):
        raise NoSuchProcess(f"process {processID!r} has no version {revision}")
    document = process_description(request, process)
    document["revision"] = revision
    path = f"/processes/{processID}/versions/{revision}"
    document["links"] = [
        link(url(request, path), "self", "application/json", "This version"),
        link(url(request, f"/processes/{processID}"), "latest-version", title="Current version"),
    ]
    return render(request, document, "process.html", example_inputs=example_inputs(process))
