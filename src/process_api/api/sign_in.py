"""/auth/login, /auth/callback, /auth/logout: signing a browser in and out (see
auth/sign_in.py). API clients send bearer tokens and never need these."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from process_api.api.links import url
from process_api.auth.sign_in import SignIns
from process_api.errors import Forbidden, InvalidParameter, Unauthenticated

#: the session cookie of a signed-in browser.
COOKIE = "process_api_session"

router = APIRouter(prefix="/auth", tags=["Sign-in"], include_in_schema=False)


def _sign_ins(request: Request) -> SignIns:
    sign_ins: SignIns | None = request.app.state.sign_ins
    if sign_ins is None:
        raise InvalidParameter("this server has no browser sign-in (OIDC_CLIENT_ID is unset)")
    return sign_ins


def _local(page: str | None) -> str:
    """A page of this server to go back to: never another site (an open redirect)."""
    if not page or not page.startswith("/") or page.startswith("//") or "\\" in page:
        return "/"
    return page


@router.get("/login")
async def login(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    address = await _sign_ins(request).start(url(request, "/auth/callback"), _local(next))
    return RedirectResponse(address, status_code=303)


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
    redirect_uri = url(request, "/auth/callback")
    cookie, page = await _sign_ins(request).finish(code, state, redirect_uri)
    response = RedirectResponse(url(request, page), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=request.app.state.settings.session_lifetime,
        path="/",
        httponly=True,
        samesite="lax",
        secure=redirect_uri.startswith("https:"),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    sign_ins = _sign_ins(request)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        # the form's one field, url-encoded (BodyLimit bounds the body)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        csrf_token = form.get("csrf_token", [""])[0]
        found = await sign_ins.session(cookie)
        if found is not None and not secrets.compare_digest(found[1], csrf_token):
            raise Forbidden("the sign-out form lacks this session's CSRF token")
        await sign_ins.end(cookie)
    back = url(request, "/")
    response = RedirectResponse(await sign_ins.sign_out_address(back) or back, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
