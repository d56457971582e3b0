"""Landing page, conformance, the API document and Swagger UI."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from process_api.api.auth import own_jobs, visible_processes
from process_api.api.common import job_service, render
from process_api.api.documents import process_summary, status_info
from process_api.api.links import (
    REL_CONFORMANCE,
    REL_JOB_LIST,
    REL_PROCESSES,
    link,
    self_links,
    url,
)
from process_api.api.negotiation import wants_html
from process_api.api.routing import DirectRoute
from process_api.jobs.model import JobStatus
from process_api.store.base import JobQuery

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
#: the Part 1 conformance classes this server implements.
CONFORMANCE = [
    CONF + "core",
    CONF + "ogc-process-description",
    CONF + "json",
    CONF + "html",
    CONF + "oas30",
    CONF + "job-list",
    CONF + "callback",
    CONF + "dismiss",
]
DRU = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/"
#: the Part 2 conformance classes, when processes may be deployed over the API.
DEPLOY_CONFORMANCE = [DRU + "deploy-replace-undeploy", DRU + "ogcapppkg", DRU + "docker"]
OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"

router = APIRouter(route_class=DirectRoute)


@router.get("/", summary="Landing page", tags=["Capabilities"])
async def landing(request: Request) -> Response:
    settings = request.app.state.settings
    document = {
        "title": settings.api_name,
        "description": "Processes published through OGC API - Processes",
        "links": [
            *self_links(request, "/", "This document"),
            link(url(request, "/api"), "service-desc", OPENAPI_TYPE, "The API definition"),
            link(url(request, "/swagger/"), "service-doc", "text/html", "The API documentation"),
            link(url(request, "/conformance"), REL_CONFORMANCE, title="Conformance classes"),
            link(url(request, "/processes"), REL_PROCESSES, title="Processes"),
            link(url(request, "/jobs"), REL_JOB_LIST, title="Jobs"),
        ],
    }
    if not wants_html(request):
        return render(request, document, "landing.html")
    return render(request, document, "landing.html", **await _dashboard(request))


#: jobs shown on the landing page.
LAST_JOBS = 5


async def _dashboard(request: Request) -> dict[str, Any]:
    """What a person sees first: how many jobs are in each status, the last ones, the
    processes. Once authentication is on: the user's own jobs (an admin's: all), none
    without a user."""
    service = job_service(request)
    mine = own_jobs(request)
    if mine == ():
        return {"processes": [process_summary(request, p) for p in visible_processes(request)]}
    counted = request.app.state.settings.job_list_count_max
    counts = {
        status.value: await service.count(JobQuery(submitters=mine, statuses=(status,)), counted)
        for status in JobStatus
    }
    last = await service.find(JobQuery(submitters=mine, statuses=tuple(JobStatus), limit=LAST_JOBS))
    return {
        "counts": counts,
        "counted": counted,
        "last_jobs": [status_info(request, job) for job in last.jobs],
        "processes": [process_summary(request, p) for p in visible_processes(request)],
    }


@router.get("/conformance", summary="Conformance classes", tags=["Capabilities"])
async def conformance(request: Request) -> Response:
    document = {
        "conformsTo": CONFORMANCE
        + (DEPLOY_CONFORMANCE if request.app.state.settings.deploying else []),
        "links": self_links(request, "/conformance", "Conformance"),
    }
    return render(request, document, "conformance.html")


@router.get("/api", summary="The API definition (OpenAPI 3.0)", tags=["Capabilities"])
async def api_document(request: Request) -> Response:
    document: dict[str, Any] = request.app.openapi()
    if request.query_params.get("f") == "html":
        return Response(status_code=303, headers={"Location": url(request, "/swagger/")})
    return JSONResponse(document, media_type=OPENAPI_TYPE)


SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<link rel="stylesheet" href="static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="static/swagger-ui-bundle.js"></script>
<script src="init.js"></script>
</body></html>"""

SWAGGER_INIT = """window.ui = SwaggerUIBundle({url: "../api", dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});"""


@router.get("/swagger/", include_in_schema=False)
async def swagger(request: Request) -> Response:
    return HTMLResponse(SWAGGER_PAGE.format(title=escape(request.app.state.settings.api_name)))


@router.get("/swagger/index.html", include_in_schema=False)
async def swagger_index(request: Request) -> Response:
    """The Go server's address of its API documentation."""
    return RedirectResponse(url(request, "/swagger/"), status_code=308)


@router.get("/swagger/init.js", include_in_schema=False)
async def swagger_init() -> Response:
    return Response(SWAGGER_INIT, media_type="text/javascript")
