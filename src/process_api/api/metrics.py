"""/metrics for Prometheus, and the count and latency of every HTTP request.

Requests are labelled by their route's template (`/jobs/{jobID}`), never by their
path: a label per job id would grow without bound. Paths no route matches share
one label.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from process_api.api.routing import DirectRoute
from process_api.metrics import Metrics

router = APIRouter(route_class=DirectRoute, tags=["Server"])

UNMATCHED = "unmatched"


@router.get(
    "/metrics",
    summary="Prometheus metrics: jobs submitted, ended, active and queued; HTTP requests",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    metrics.refresh()  # with several workers: this one's active jobs, up to this moment
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


class CountRequests:
    """Counts each answered request and the time to its last byte."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        code = 500

        async def counted(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                route = getattr(scope.get("route"), "path", UNMATCHED)
                self.metrics.answered(scope["method"], route, code, time.perf_counter() - began)

        await self.app(scope, receive, counted)
