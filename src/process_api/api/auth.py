"""Where each route stands once authentication is on, and the checks routes make.

`AUTH_LEVEL` 1 protects execution, dismiss, the job list and deployment; 2 every route but
those a client needs to discover the server and sign in (landing page, conformance, the
API document, Swagger UI, health). A protected route without credentials answers 401; with
them, the user sees only their own jobs (an admin: all). A process restricted to some
roles is absent for everyone else, on every route. Under level 1 the other routes of a
job stay open to whoever has its id, as with the Go server.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from process_api.api.common import catalog, job_service
from process_api.api.errors import exception_response
from process_api.auth.authenticate import Authenticator
from process_api.auth.rules import may_use, owns
from process_api.auth.sign_in import SESSION_COOKIE, SignIns, same_secret
from process_api.auth.user import User
from process_api.errors import (
    ApiError,
    Forbidden,
    NoSuchJob,
    NoSuchProcess,
    TooManyJobs,
    Unauthenticated,
)
from process_api.processes.registry import Process
from process_api.settings import Settings

#: the routes every client may reach under AUTH_LEVEL=2.
PUBLIC = frozenset({"/", "/conformance", "/api", "/health", "/ready"})
PUBLIC_PREFIXES = ("/swagger/", "/auth/", "/static/")
#: methods that change nothing: others, from a signed-in browser, need its CSRF token.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
#: seconds a client over its quota of active jobs is asked to wait before it tries again.
RETRY_AFTER = 30


def protected(method: str, path: str, level: int) -> bool:
    if level >= 2:
        return path not in PUBLIC and not path.startswith(PUBLIC_PREFIXES)
    if level == 1:
        reading = method in ("GET", "HEAD")
        return (
            (path == "/jobs" and reading)
            or (method == "DELETE" and path.startswith("/jobs/"))
            or (method == "POST" and path.startswith("/processes/") and path.endswith("/execution"))
            or (method == "POST" and path == "/processes")
            or (method in ("PUT", "DELETE") and path.startswith("/processes/"))
            or (path.startswith("/processes/") and path.endswith("/package"))
        )
    return False


class Authenticate:
    """Finds the user of every request (request.state.user) and refuses a protected route
    to a request without credentials. Bad credentials are refused on every route: a client
    learns at once that its token is wrong, not from an emptier job list.

    A browser signed in has a session cookie instead. Since a browser sends it with any
    request, even one another site makes it send, a request that changes something must
    also carry the session's CSRF token (header `X-CSRF-Token`; the sign-out form posts it
    as a field, checked by its route)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        level: int,
        sign_ins: SignIns | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.level = level
        self.sign_ins = sign_ins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        state = scope.setdefault("state", {})
        try:
            user = await self.authenticator.user(request.headers)
            if user is None:
                user = await self._session_user(request, state)
            if user is None and protected(request.method, _route_path(scope), self.level):
                raise Unauthenticated(
                    "sign in: send a bearer token of the server's sign-in provider, or an "
                    "API key, in the Authorization header",
                    sent=False,
                )
        except ApiError as exc:
            response = exception_response(request, exc.status, exc.type, exc.title, exc.detail)
            response.headers.update(exc.headers)
            await response(scope, receive, send)
            return
        state["user"] = user
        await self.app(scope, receive, send)

    async def _session_user(self, request: Request, state: dict[str, object]) -> User | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if self.sign_ins is None or not cookie:
            return None
        found = await self.sign_ins.session(cookie)
        if found is None:
            return None  # ended or expired: as signed out
        user, csrf = found
        state["csrf"] = csrf
        checked_by_route = _route_path(request.scope) == "/auth/logout"
        if request.method not in SAFE and not checked_by_route:
            sent = request.headers.get("x-csrf-token", "")
            if not same_secret(sent, csrf):
                raise Forbidden(
                    "a change made from a signed-in browser needs the session's CSRF token "
                    "(X-CSRF-Token): a page of another site cannot act for you"
                )
        return user


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def user_of(request: Request) -> User | None:
    return getattr(request.state, "user", None)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _restricted(request: Request) -> User | None:
    """The user whose own jobs are all this request may reach; None if it may reach any
    (authentication off, an admin, or a route left open by AUTH_LEVEL)."""
    level = _settings(request).protection
    if not protected(request.method, _route_path(request.scope), level):
        return None
    user = user_of(request)
    assert user is not None, "the Authenticate middleware refuses protected routes without"
    return None if user.admin else user


async def own_job(request: Request) -> None:
    """A dependency of every /jobs/{jobID} route: another user's job does not exist."""
    user = _restricted(request)
    if user is None:
        return
    job_id = request.path_params["jobID"]
    job = await job_service(request).summary(job_id)
    if not owns(user, job.submitter):
        raise NoSuchJob(f"job {job_id!r} does not exist")


def own_jobs(request: Request) -> tuple[str, ...] | None:
    """Whose jobs a page that sums jobs up may show, whatever its route's protection: the
    user's own (none at all without a user, once authentication is on), an admin's every
    job (None), anybody's with authentication off (None)."""
    if not _settings(request).protection:
        return None
    user = user_of(request)
    if user is None:
        return ()
    return None if user.admin else user.identities


def submitters(request: Request) -> tuple[str, ...] | None:
    """The submitters whose jobs the job list shows; everybody's if None."""
    user = _restricted(request)
    return None if user is None else user.identities


def shows_submitter(request: Request, submitter: str | None) -> bool:
    """Who submitted a job is shown to that user and to admins (with sign-in off, to all):
    under AUTH_LEVEL=1 anyone with a job's id may read its metadata."""
    if not _settings(request).protection:
        return True
    user = user_of(request)
    return user is not None and owns(user, submitter)


def visible(request: Request, process: Process) -> bool:
    return not _settings(request).protection or may_use(
        user_of(request), process.config.access.roles
    )


def visible_processes(request: Request) -> list[Process]:
    return [p for p in catalog(request).values() if visible(request, p)]


async def visible_process(request: Request, process_id: str) -> Process:
    """The current version of the process, if the user may see it."""
    process = await catalog(request).current(process_id)
    if process is None or not visible(request, process):
        raise NoSuchProcess(f"process {process_id!r} is not registered")
    return process


def deployer(request: Request) -> str | None:
    """The user who may deploy, replace and undeploy processes (None: anyone, with
    ALLOW_DEPLOY=true and authentication off); refuses everyone else."""
    settings = _settings(request)
    if not settings.deploying:
        raise Forbidden(
            "deploying processes over the API is off on this server: it is for admins once "
            "authentication is on (AUTH_SERVICE), or for anyone with ALLOW_DEPLOY=true"
        )
    user = user_of(request)
    if not settings.auth_service:
        return None
    if user is None:
        raise Unauthenticated("sign in as an admin to deploy processes", sent=False)
    if not user.admin:
        raise Forbidden(
            f"only admins (role {settings.auth_admin_role!r}) may deploy, replace or undeploy "
            "processes"
        )
    return user.id


async def check_quota(request: Request) -> None:
    """Refuses a job to a user who has USER_MAX_ACTIVE_JOBS accepted or running already."""
    limit = _settings(request).user_max_active_jobs
    user = user_of(request)
    if limit is None or user is None:
        return
    active = await job_service(request).active_of(user.identities)
    if active >= limit:
        raise TooManyJobs(
            f"{user.name} has {active} job(s) accepted or running, the most allowed "
            f"(USER_MAX_ACTIVE_JOBS={limit}); wait for one to end, or dismiss one",
            RETRY_AFTER,
        )
