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

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        return _direct_handler(self.dependant) or super().get_route_handler()


def _direct_handler(dependant: Dependant) -> Handler | None:
    """A handler that calls the endpoint of `dependant` directly; None if it needs more than
    the request, text path parameters and checks of the request."""
    endpoint = dependant.call
    checks = dependant.dependencies
    if endpoint is None or not _plain(dependant) or not _returns_response(endpoint):
        return None
    if any(check.path_params or check.dependencies or not _plain(check) for check in checks):
        return None
    calls: list[Callable[[Request], Awaitable[Any]]] = [check.call for check in checks]  # type: ignore[misc]
    request_name = dependant.request_param_name
    path_names = [p.name for p in dependant.path_params]

    async def handler(request: Request) -> Response:
        for check in calls:
            await check(request)
        arguments: dict[str, Any] = {name: request.path_params[name] for name in path_names}
        if request_name is not None:
            arguments[request_name] = request
        response: Response = await endpoint(**arguments)
        return response

    return handler


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
