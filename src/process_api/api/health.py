"""/health and /ready: for load balancers, orchestrators and people on call.

`/health` says the process answers. `/ready` says whether it can do its work:
the job database answers and the directories it writes to can be written; when
not, 503 with each problem in words (never SQL, never a path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from process_api.api.routing import DirectRoute
from process_api.errors import ServiceUnavailable
from process_api.hosts.base import Host
from process_api.processes.registry import Process

router = APIRouter(route_class=DirectRoute, tags=["Server"])

#: a readiness check: the problems it finds, none when all is well.
Check = Callable[[], Awaitable[list[str]]]

_READY_EXAMPLE = {"status": "ready", "problems": []}
_NOT_READY_EXAMPLE = {
    "status": "not ready",
    "problems": ["the job database file is missing: it was deleted or moved while the server ran"],
}


def _example(value: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": value}}}


def engine_problems(processes: Mapping[str, Process], hosts: Mapping[str, Host]) -> Check:
    """A check of the platforms the processes served now run on (Docker Engine, AWS Batch):
    a host no process uses is not asked."""

    async def check() -> list[str]:
        used = {id(hosts[p.host_type]): hosts[p.host_type] for p in processes.values()}
        problems = []
        for host in used.values():
            try:
                await host.ready()
            except ServiceUnavailable as exc:
                problems.append(exc.detail)
        return problems

    return check


@router.get("/health", summary="Whether the server process answers")
async def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/ready",
    summary="Whether the server can run and record jobs",
    responses={
        200: _example(_READY_EXAMPLE, "The job database answers and the data can be written"),
        503: _example(_NOT_READY_EXAMPLE, "Something keeps the server from working; see problems"),
    },
)
async def ready(request: Request) -> JSONResponse:
    checks: list[Check] = request.app.state.ready_checks
    problems = [problem for check in checks for problem in await check()]
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready", "problems": []})
