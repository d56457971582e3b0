"""Absolute links and the OGC link relation types."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0/"
REL_CONFORMANCE = OGC_REL + "conformance"
REL_PROCESSES = OGC_REL + "processes"
REL_JOB_LIST = OGC_REL + "job-list"
REL_EXECUTE = OGC_REL + "execute"
REL_RESULTS = OGC_REL + "results"
REL_PROCESS_DESCRIPTION = OGC_REL + "process-description"


#: where links start: a request (its server address), or that address itself.
Base = Request | str


def base_url(request: Base) -> str:
    """The server's address as clients see it: PUBLIC_URL, else the request's own."""
    if isinstance(request, str):
        return request
    configured: str | None = request.app.state.settings.public_url
    if configured:
        return configured
    scope = request.scope
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    root = scope.get("app_root_path", scope.get("root_path", ""))
    server = scope.get("server")
    return _address(scope.get("scheme", "http"), host, root, server and tuple(server))


@lru_cache(maxsize=64)
def _address(
    scheme: str, host: bytes | None, root: str, server: tuple[str, int | None] | None
) -> str:
    """Starlette's base URL of a request with these parts, made once for each: parsing the
    Host header took a tenth of a status request. Bounded: the Host is the client's."""
    headers = [] if host is None else [(b"host", host)]
    scope = {"type": "http", "scheme": scheme, "server": server, "path": root, "root_path": root}
    return str(Request({**scope, "headers": headers}).base_url).rstrip("/")


def url(request: Base, path: str, **query: Any) -> str:
    params = {k: v for k, v in query.items() if v is not None}
    suffix = f"?{urlencode(params, doseq=True)}" if params else ""
    return f"{base_url(request)}{path}{suffix}"


def link(
    href: str, rel: str, type_: str = "application/json", title: str | None = None
) -> dict[str, str]:
    item = {"href": href, "rel": rel, "type": type_}
    if title:
        item["title"] = title
    return item


def self_links(request: Base, path: str, title: str, **query: Any) -> list[dict[str, str]]:
    """`self` as JSON and `alternate` as HTML, keeping the query parameters."""
    return [
        link(url(request, path, **query, f="json"), "self", "application/json", title),
        link(url(request, path, **query, f="html"), "alternate", "text/html", title + " as HTML"),
    ]
