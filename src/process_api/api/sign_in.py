"""/auth/login, /auth/callback, /auth/logout: signing a browser in and out (see
auth/sign_in.py). API clients send bearer tokens and never need these."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from process_api.api.links import url
from process_api.api.routing import DirectRoute
from process_api.auth.sign_in import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_TIME,
    SignIns,
    same_secret,
)
from process_api.errors import Forbidden, Unauthenticated

router = APIRouter(
    route_class=DirectRoute, prefix="/auth", tags=["Sign-in"], include_in_schema=False
)


def _sign_ins(request: Request) -> SignIns:
    sign_ins: SignIns | None = request.app.state.sign_ins
    if sign_ins is None:
        raise HTTPException(404, "this server has no browser sign-in (OIDC_CLIENT_ID is unset)")
    return sign_ins


def _local(page: str | None) -> str:
    """A page of this server to go back to: never another site (an open redirect)."""
    if not page or not page.startswith("/") or page.startswith("//") or "\\" in page:
        return "/"
    return page


def _path(request: Request, path: str) -> str:
    """The path of a cookie: this server's, below PUBLIC_URL's path if it has one."""
    return urlsplit(url(request, path)).path


def _set_cookie(
    request: Request, response: Response, name: str, value: str, path: str, lifetime: int
) -> None:
    """A cookie scripts cannot read, sent back only to this server (over https when it is
    served so) and not with requests other sites make, but for links followed to it."""
    response.set_cookie(
        name,
        value,
        max_age=lifetime,
        path=_path(request, path),
        httponly=True,
        samesite="lax",
        secure=url(request, "/").startswith("https:"),
    )


@router.get("/login")
async def login(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    callback = url(request, "/auth/callback")
    address, state = await _sign_ins(request).start(callback, _local(next))
    response = RedirectResponse(address, status_code=303)
    lifetime = int(SIGN_IN_TIME.total_seconds())
    _set_cookie(request, response, SIGN_IN_COOKIE, state, "/auth/callback", lifetime)
    return response


@router.get("/callback")
async def callback(
    request: Request,
    code: Annotated[str | None, Query()] = None,
    state: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query()] = None,
) -> Response:
    if error is not None or not code or not state:
        reason = f"the sign-in provider answered {error[:60]!r}" if error else "no code"
        raise Unauthenticated(f"sign-in did not complete: {reason}", sent=False)
    if not same_secret(request.cookies.get(SIGN_IN_COOKIE, ""), state):
        raise Unauthenticated(
            "this sign-in was not started in this browser, or took too long; sign in again",
            sent=False,
        )
    redirect_uri = url(request, "/auth/callback")
    cookie, page = await _sign_ins(request).finish(code, state, redirect_uri)
    response = RedirectResponse(url(request, page), status_code=303)
    response.delete_cookie(SIGN_IN_COOKIE, path=_path(request, "/auth/callback"))
    lifetime = request.app.state.settings.session_lifetime
    _set_cookie(request, response, SESSION_COOKIE, cookie, "/", lifetime)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    sign_ins = _sign_ins(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        # the form's one field, url-encoded (BodyLimit bounds the body)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        csrf_token = form.get("csrf_token", [""])[0]
        found = await sign_ins.session(cookie)
        if found is not None and not same_secret(csrf_token, found[1]):
            raise Forbidden("the sign-out form lacks this session's CSRF token")
        await sign_ins.end(cookie)
    back = url(request, "/")
    response = RedirectResponse(await sign_ins.sign_out_address(back) or back, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=_path(request, "/"))
    return response
