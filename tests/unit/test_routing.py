"""DirectRoute: the routes it calls directly answer exactly as FastAPI would; the others are
left to FastAPI. In process, through httpx's ASGI transport: a unit of the API layer."""

from __future__ import annotations

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response

from process_api.api import jobs, processes
from process_api.api.routing import DirectRoute, _direct_handler


async def refuse_secret(request: Request) -> None:
    if request.path_params.get("name") == "secret":
        raise HTTPException(404, "no such thing")


router = APIRouter(route_class=DirectRoute, dependencies=[Depends(refuse_secret)])


@router.get("/things/{name}")
async def thing(request: Request, name: str) -> Response:
    return Response(f"{request.method} {name}", media_type="text/plain")


@router.get("/files/{name}/{path:path}")
async def file(name: str, path: str) -> Response:
    return Response(f"{name}:{path}", media_type="text/plain")


@router.get("/counted/{name}")
async def counted(name: str, times: int = 1) -> Response:
    return Response(name * times, media_type="text/plain")


@router.get("/document/{name}")
async def document(name: str) -> dict[str, str]:
    return {"name": name}


def client() -> httpx.AsyncClient:
    app = FastAPI()
    app.router.routes.extend(router.routes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")


async def test_a_direct_route_gets_its_path_parameters_decoded_and_runs_its_checks() -> None:
    http = client()
    assert (await http.get("/things/a%20b")).text == "GET a b"
    assert (await http.get("/files/x/a/b%2Fc.txt")).text == "x:a/b/c.txt"
    refused = await http.get("/things/secret")
    assert refused.status_code == 404 and refused.json() == {"detail": "no such thing"}


async def test_routes_that_need_more_are_left_to_fastapi() -> None:
    http = client()
    assert (await http.get("/counted/ab", params={"times": 3})).text == "ababab"
    assert (await http.get("/counted/ab", params={"times": "x"})).status_code == 422
    assert (await http.get("/document/a")).json() == {"name": "a"}
    direct = {r.path: _direct_handler(r.dependant) is not None for r in router.routes}  # type: ignore[attr-defined]
    assert direct == {
        "/things/{name}": True,
        "/files/{name}/{path:path}": True,
        "/counted/{name}": False,
        "/document/{name}": False,
    }


def test_the_status_of_a_job_and_the_description_of_a_process_are_called_directly() -> None:
    """The requests answered most: a change of their signature that sent them back through
    FastAPI's parameter solving would cost them a fifth of their speed."""
    routes = [*jobs.router.routes, *processes.router.routes]
    direct = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in routes
        for method in route.methods  # type: ignore[attr-defined]
        if _direct_handler(route.dependant) is not None  # type: ignore[attr-defined]
    }
    assert {("GET", "/jobs/{jobID}"), ("GET", "/processes/{processID}")} <= direct
