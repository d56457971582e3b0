"""DirectRoute: the routes it calls directly get their path parameters and checks as FastAPI
gives them; every route that needs more is left to FastAPI. In process, through httpx's ASGI
transport: a unit of the API layer."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response

from process_api.api import job_list, jobs, processes
from process_api.api.routing import DirectRoute, _direct_handler
from process_api.app import MOST_REQUESTED


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


async def shout(request: Request) -> str:
    return str(request.path_params["name"]).upper()


@router.get("/shouted/{name}")
async def shouted(name: str, loud: Annotated[str, Depends(shout)]) -> Response:
    return Response(loud, media_type="text/plain")


async def nothing() -> None:
    return None


@router.get("/plain/{name}", dependencies=[Depends(nothing)])
async def plain(name: str) -> Response:
    return Response(name, media_type="text/plain")


async def deny(request: Request) -> None:
    raise HTTPException(403, "not you")


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
    assert (await http.get("/shouted/ab")).text == "AB"
    assert (await http.get("/plain/ab")).text == "ab"
    direct = {r.path: _direct_handler(r.dependant) is not None for r in router.routes}  # type: ignore[attr-defined]
    assert direct == {
        "/things/{name}": True,
        "/files/{name}/{path:path}": True,
        "/counted/{name}": False,
        "/document/{name}": False,
        "/shouted/{name}": False,
        "/plain/{name}": False,
    }


async def test_dependencies_of_an_include_are_checked() -> None:
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(deny)])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test")
    refused = await http.get("/things/ab")
    assert refused.status_code == 403 and refused.json() == {"detail": "not you"}


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


def test_the_routes_tried_first_are_routes_of_the_app() -> None:
    declared = {
        (method, route.path)  # type: ignore[attr-defined]
        for module in (jobs, job_list, processes)
        for route in module.router.routes
        for method in route.methods  # type: ignore[attr-defined]
    }
    assert set(MOST_REQUESTED) <= declared
