"""Content negotiation: every GET answers JSON or HTML, by `f` or by the Accept header."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates

from process_api.errors import InvalidParameter

JSON = "application/json"
HTML = "text/html"
FORMATS = {"json": JSON, "html": HTML}


def wants_html(request: Request) -> bool:
    """`f=json|html` decides; without it, HTML only when the client prefers it to JSON."""
    f = request.query_params.get("f")
    if f is not None:
        if f not in FORMATS:
            raise InvalidParameter(f"unknown value {f!r} for parameter 'f' (use json or html)")
        return f == "html"
    return _prefers_html(request.headers.get("accept", ""))


def _prefers_html(accept: str) -> bool:
    best_html = best_json = 0.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media in (HTML, "application/xhtml+xml"):
            best_html = max(best_html, quality)
        elif media == JSON or media.endswith("+json"):
            best_json = max(best_json, quality)
    return best_html > 0 and best_html >= best_json


class Renderer:
    """Turns a JSON document into the response the client asked for."""

    def __init__(self, templates: Jinja2Templates) -> None:
        self.templates = templates

    def __call__(
        self,
        request: Request,
        document: Any,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        html: bool | None = None,
        **context: Any,
    ) -> Response:
        if html if html is not None else wants_html(request):
            return self.templates.TemplateResponse(
                request,
                template,
                {"doc": document, **context},
                status_code=status_code,
                headers=headers,
            )
        return JSONResponse(document, status_code=status_code, headers=headers)
