"""What the resource modules share: the services of the app, and paging."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import Response

from process_api.api.links import link, url
from process_api.api.negotiation import Renderer
from process_api.api.streams import Streams
from process_api.jobs.service import JobService
from process_api.processes.catalog import Catalog
from process_api.processes.deployment import Deployment

#: the largest page the lists serve; a larger `limit` is lowered to it.
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, description="Items per page (at most 1000)")]
Offset = Annotated[int, Query(ge=0, description="Items to skip")]


def catalog(request: Request) -> Catalog:
    processes: Catalog = request.app.state.catalog
    return processes


def job_service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


def deployment(request: Request) -> Deployment:
    found: Deployment = request.app.state.deployment
    return found


def streams(request: Request) -> Streams:
    found: Streams = request.app.state.streams
    return found


def page_links(
    request: Request, path: str, limit: int, offset: int, total: int
) -> list[dict[str, str]]:
    """next/prev links that keep the other query parameters."""
    query = {
        k: request.query_params.getlist(k) for k in request.query_params if k not in ("offset", "f")
    }
    links = []
    if offset + limit < total:
        links.append(link(url(request, path, **{**query, "offset": offset + limit}), "next"))
    if offset > 0:
        previous = max(offset - limit, 0)
        links.append(link(url(request, path, **{**query, "offset": previous}), "prev"))
    return links


def render(request: Request, document: Any, template: str, **options: Any) -> Response:
    """The document as JSON or as its HTML page, as the client asked."""
    renderer: Renderer = request.app.state.render
    return renderer(request, document, template, **options)


#: the media types results come in: JSON values and documents, several outputs as
#: multipart/related, and any output's own media type.
RESULTS_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {}},
    "multipart/related": {"schema": {"type": "string", "format": "binary"}},
    "*/*": {"schema": {"type": "string", "format": "binary"}},
}
GONE: dict[int | str, dict[str, Any]] = {
    410: {"description": "Dismissed, or past retention (EXPIRY_DAYS)"}
}
