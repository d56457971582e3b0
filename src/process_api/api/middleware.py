"""Pure ASGI middlewares that guard every request, whatever route it reaches.

Outermost first: `SecurityHeaders` marks every response; `CatchUnexpected` turns any
unhandled error into a clean 500 document; `TrustedHosts` refuses requests for
hosts the server does not answer for; `BodyLimit` refuses bodies that are too
large before they are read into memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from process_api.api.errors import exception_response
from process_api.errors import OGC, InvalidParameter, PayloadTooLarge

log = logging.getLogger(__name__)


#: what an HTML page may load and run: its own scripts and styles (Swagger UI sets inline
#: styles), nothing from elsewhere, and it may be framed by no site (clickjacking). Its
#: forms post to the server, and lead on only to the sign-in provider (sign-out).
CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'{forms}; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds `X-Content-Type-Options: nosniff` to every response: a browser then never
    guesses a type (e.g. HTML in a text/plain output) other than the one declared. HTML
    pages also get a content security policy and may not be framed."""

    def __init__(self, app: ASGIApp, sign_in_origin: str | None = None) -> None:
        self.app = app
        forms = f" {sign_in_origin}" if sign_in_origin else ""
        self.html_policy = {
            b"content-security-policy": CONTENT_POLICY.format(forms=forms).encode(),
            b"x-frame-options": b"DENY",
            b"referrer-policy": b"same-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower(): value for name, value in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if names.get(b"content-type", b"").startswith(b"text/html"):
                    policy = self.html_policy.items()
                    headers += [(k, v) for k, v in policy if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, marked)


class CatchUnexpected:
    """Answers an unhandled error with a 500 OGC document, and keeps the connection.

    Starlette's own handler sends its 500 and then re-raises, and uvicorn closes a
    connection whose application raised: the client's next request on that
    keep-alive connection would fail for no reason of its own. Here the error is
    logged and the connection is only closed when the response had already begun.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            request = Request(scope)
            log.exception("unhandled error on %s %s", request.method, scope.get("path", ""))
            if started:
                raise  # half a response was sent: only closing the connection can say so
            response = exception_response(
                request, 500, OGC + "server-error", "Server error", "an unexpected error occurred"
            )
            await response(scope, receive, send)


def split_host(value: str) -> tuple[str, str]:
    """`host[:port]` (IPv6 literals in brackets) as its lower-case host and port ("" if none)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, port
    return value, ""


def _host_matches(given: tuple[str, str], pattern: tuple[str, str]) -> bool:
    host, port = given
    wanted_host, wanted_port = pattern
    if wanted_port and port != wanted_port:
        return False
    if wanted_host.startswith("*."):
        return host.endswith(wanted_host[1:])
    return host == wanted_host


class TrustedHosts:
    """Refuses (400) requests whose `Host` is not one the server answers for.

    Links are built from the `Host` header when PUBLIC_URL is unset: a client that
    sends a forged Host would get (and could get others sent) links to its own site.
    A pattern is a host name (any port), `host:port`, or `*.domain`.
    """

    def __init__(self, app: ASGIApp, patterns: Sequence[str]) -> None:
        self.app = app
        self.patterns = [split_host(p) for p in patterns]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.headers.get("host", "")
        if given and any(_host_matches(split_host(given), p) for p in self.patterns):
            await self.app(scope, receive, send)
            return
        error = InvalidParameter(
            f"this server does not answer for the host {given!r} (see TRUSTED_HOSTS)"
        )
        response = exception_response(request, 400, error.type, error.title, error.detail)
        await response(scope, receive, send)


def _declared_length(scope: Scope) -> int | None:
    """The body's length as declared; -1 if it is not (a chunked body, or an unreadable
    length); None if the request has no body (in HTTP/1.1, which uvicorn speaks, a request
    with neither Content-Length nor Transfer-Encoding has none)."""
    declared: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = int(value) if value.isdigit() else -1
        elif name == b"transfer-encoding":
            return -1
    return declared


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses (413) a request body over `limit` bytes, without holding it in memory.

    A declared Content-Length is checked before anything is read; a chunked body is
    counted as it arrives, and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is larger than {self.limit} bytes, the most this server "
            "accepts (MAX_REQUEST_BYTES); give large inputs by reference "
            '({"href": …}) instead'
        )

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = self._error()
        response = exception_response(
            Request(scope), error.status, error.type, error.title, error.detail
        )
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is None:  # no body at all: nothing to count
            await self.app(scope, receive, send)
            return
        if declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)
