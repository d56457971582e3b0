"""A route class that calls the simplest endpoints directly, past FastAPI's parameter solving.

At every request FastAPI resolves an endpoint's parameters and dependencies through its
general machinery (query, header, cookie and path parameters of each dependency, their
validation, a cache of dependency results): for a job's status that was a fifth of the
request's time. Most routes here take only the request and path parameters that are plain
text, depend only on checks of the request, and return a Response: for those the route
calls the checks and the endpoint itself; any other route is handled by FastAPI as usual.
(The app adds the routes themselves, not their routers, so it has no dependency overrides
to honour: FastAPI would not apply them to these routes either.)
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, get_type_hints

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        # A route seen through an included router may have dependencies of the include:
        # only FastAPI's handler knows them. (Should FastAPI stop naming that context, every
        # route is left to it: slower, never less checked.)
        included = getattr(fastapi.routing, "_effective_route_context_var", None)
        if included is None or included.get() is not None:
            return super().get_route_handler()
        return _direct_handler(self.dependant) or super().get_route_handler()


def _direct_handler(dependant: Dependant) -> Handler | None:
    """A handler that calls the endpoint of `dependant` directly; None if it needs more than
    the request, text path parameters and checks of the request."""
    endpoint = dependant.call
    if endpoint is None or not _plain(dependant) or not _returns_response(endpoint):
        return None
    calls: dict[Callable[..., Awaitable[Any]], str] = {}  # as FastAPI: each one once
    for check in dependant.dependencies:
        if check.call is None or check.request_param_name is None:
            return None
        if not _check_of_the_request(check):
            return None
        calls.setdefault(check.call, check.request_param_name)
    request_name = dependant.request_param_name
    path_names = [p.name for p in dependant.path_params]

    async def handler(request: Request) -> Response:
        for check, name in calls.items():
            await check(**{name: request})
        arguments: dict[str, Any] = {name: request.path_params[name] for name in path_names}
        if request_name is not None:
            arguments[request_name] = request
        response: Response = await endpoint(**arguments)
        return response

    return handler


def _check_of_the_request(check: Dependant) -> bool:
    """A dependency whose value no parameter takes, that takes the request only, has no
    dependencies, scopes or limits of its own, and is a coroutine function."""
    if check.name is not None:
        return False
    if check.path_params or check.dependencies or check.own_oauth_scopes:
        return False
    if getattr(check, "concurrency", None) is not None:
        return False
    return _plain(check)


def _plain(dependant: Dependant) -> bool:
    """Whether `dependant` is a coroutine function that takes nothing but the request and
    path parameters that are plain text (which need no conversion or check)."""
    if not inspect.iscoroutinefunction(dependant.call):
        return False
    if dependant.query_params or dependant.header_params or dependant.cookie_params:
        return False
    special = (
        dependant.body_params,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(special):
        return False
    return all(
        p.field_info.annotation is str and not p.field_info.metadata and p.alias == p.name
        for p in dependant.path_params
    )


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    try:
        returned = get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)
