"""Every error leaves the server as an OGC exception document (or its HTML page)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from process_api.api.common import render
from process_api.api.negotiation import wants_html
from process_api.errors import OGC, ApiError, InvalidParameter

log = logging.getLogger(__name__)

_HTTP_TYPES = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def exception_response(
    request: Request, status: int, type_: str, title: str, detail: str, **extra: Any
) -> Response:
    document = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    document["instance"] = str(request.url.path)
    html = False
    if request.method == "GET":
        try:
            html = wants_html(request)
        except InvalidParameter:
            html = False
    if html:
        return render(request, document, "error.html", status_code=status, html=True)
    return JSONResponse(document, status_code=status)


def validation_detail(errors: Sequence[Any]) -> str:
    """pydantic's errors as one sentence naming each field."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "request body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        response = exception_response(
            request, exc.status, exc.type, exc.title, exc.detail, **exc.extra
        )
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = InvalidParameter(validation_detail(exc.errors()))
        return exception_response(request, err.status, err.type, err.title, err.detail)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        name, title = _HTTP_TYPES.get(exc.status_code, ("error", "Error"))
        detail = str(exc.detail) if exc.detail else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        response = exception_response(request, exc.status_code, OGC + name, title, detail)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return exception_response(
            request, 500, OGC + "server-error", "Server error", "an unexpected error occurred"
        )
