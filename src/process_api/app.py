"""Building the application: adapters, services and routes, wired in one place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from process_api import __version__
from process_api.api import (
    deploy,
    errors,
    health,
    job_list,
    jobs,
    landing,
    openapi,
    processes,
    sign_in,
)
from process_api.api import metrics as metrics_api
from process_api.api.auth import Authenticate
from process_api.api.callbacks import CallbackPolicy, Notifier
from process_api.api.documents import compact_json, pretty_json
from process_api.api.files import FilePolicy
from process_api.api.health import engine_problems
from process_api.api.metrics import CountRequests
from process_api.api.middleware import BodyLimit, CatchUnexpected, SecurityHeaders, TrustedHosts
from process_api.api.negotiation import Renderer
from process_api.api.streams import Streams
from process_api.auth.authenticate import Authenticator
from process_api.auth.sign_in import SignIns
from process_api.errors import ApiError
from process_api.hosts import build_hosts, host_checks
from process_api.hosts.base import Host
from process_api.jobs.model import Job, timestamp
from process_api.jobs.service import JobService
from process_api.metrics import Metrics
from process_api.processes.catalog import Catalog
from process_api.processes.deployment import Deployment
from process_api.processes.registry import Process
from process_api.processes.reload import Reloader
from process_api.settings import Settings
from process_api.storage import build_storage
from process_api.store import build_store
from process_api.store.sql import SqlJobStore

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "api" / "templates"
#: the pages' own scripts (no asset is fetched from elsewhere).
STATIC = Path(__file__).parent / "api" / "static"


async def _expire_periodically(service: JobService) -> None:
    """Removes expired results, logs and metadata, a few times per retention period."""
    assert service.expiry is not None
    interval = min(max(service.expiry.total_seconds() / 4, 1.0), 3600.0)
    while True:
        try:
            removed = await service.expire()
            if removed:
                log.info("expired the results, logs and metadata of %d job(s)", removed)
        except Exception:
            log.exception("removing expired results failed; trying again later")
        await asyncio.sleep(interval)


#: seconds between the writes of a worker's active jobs for the other workers' scrapes.
METRICS_REFRESH = 1.0


async def _refresh_periodically(metrics: Metrics) -> None:
    """Keeps this worker's active jobs fresh in the values all workers' scrapes add up."""
    while True:
        await asyncio.sleep(METRICS_REFRESH)
        try:
            metrics.refresh()
        except Exception:
            log.exception("writing the metrics of the active jobs failed; trying again")


def history_without_database(settings: Settings) -> str | None:
    """Why not to start: the job database is missing while the local storage holds the logs
    or metadata of earlier jobs. It was most likely deleted, or DB_PATH names another file;
    starting would silently begin an empty job history."""
    if settings.s3_bucket or settings.database_url or settings.database_file.exists():
        return None
    folders = (
        settings.storage_dir / settings.s3_meta_dir,
        settings.storage_dir / settings.s3_logs_dir,
    )
    if not any(folder.is_dir() and any(folder.iterdir()) for folder in folders):
        return None
    return (
        f"not starting: the job database {settings.database_file} does not exist, but "
        f"{settings.storage_dir} holds the logs and metadata of earlier jobs: the database was "
        "probably deleted, or DB_PATH names another file. Restore it; or, to start an empty "
        "job history on purpose, create an empty file at that path"
    )


#: the response headers a script of another origin may read: where a job is, its links, and
#: what the server made of the request.
CORS_EXPOSED = [
    "Location",
    "Link",
    "Preference-Applied",
    "Retry-After",
    "WWW-Authenticate",
    "Content-Range",
]


async def _open_store(settings: Settings, store: SqlJobStore) -> None:
    """Opens the job store, or raises RuntimeError (logged) to keep the server from starting."""
    refusal = await asyncio.to_thread(history_without_database, settings)
    if refusal is not None:
        log.error("%s", refusal)
        raise RuntimeError(refusal)
    try:
        await store.open()
    except ApiError as exc:
        log.error("not starting: %s", exc.detail)
        raise RuntimeError(exc.detail) from exc
    log.info("job database: %s", store.location)


#: the routes of the requests a server answers most, most asked for first: job status,
#: process list and description, execution, the job list.
MOST_REQUESTED = (
    ("GET", "/jobs/{jobID}"),
    ("GET", "/processes"),
    ("GET", "/processes/{processID}"),
    ("POST", "/processes/{processID}/execution"),
    ("GET", "/jobs"),
)


def _request_rank(route: BaseRoute) -> int:
    """Where the route comes in MOST_REQUESTED; after them all if it is not there."""
    for method in getattr(route, "methods", None) or ():
        key = (method, getattr(route, "path", ""))
        if key in MOST_REQUESTED:
            return MOST_REQUESTED.index(key)
    return len(MOST_REQUESTED)


def create_app(
    settings: Settings,
    files: Sequence[Process],
    hosts: dict[str, Host] | None = None,
    metrics_dir: Path | None = None,
    supervisor: int | None = None,
) -> FastAPI:
    """The ASGI app serving the processes of `files` (the processes directory) and those deployed;
    its lifespan opens the store, settles old jobs and stops jobs at exit.
    `metrics_dir`: where the worker processes of one server share their metrics (with
    `--workers N`), None for one process; `supervisor`: the pid of their supervisor."""
    hosts = hosts if hosts is not None else build_hosts(settings)
    store = build_store(settings)
    catalog = Catalog(files, settings.plugins_dir, store)
    checks = host_checks(hosts)
    deployment = Deployment(
        store, catalog, checks, settings.deployable_hosts, settings.deploy_env_vars
    )
    policy = CallbackPolicy(
        settings.callback_allow_private, settings.callback_timeout, settings.callback_attempts
    )
    notifier = Notifier(catalog.known_of_job, policy)
    storage = build_storage(settings)
    expiry = timedelta(days=settings.expiry_days) if settings.expiry_days else None

    def changed(job: Job) -> None:
        metrics.changed(job)
        notifier(job)

    lease = timedelta(seconds=settings.instance_lease)
    service = JobService(
        store, storage, hosts, settings.data_dir / "spool", changed, expiry, lease, supervisor
    )
    metrics = Metrics(service.runner.host_types, lambda: service.queue.lengths, metrics_dir)
    authenticator = Authenticator(settings, store) if settings.protection else None
    if settings.auth_level and not settings.auth_service:
        log.warning("AUTH_LEVEL=%d without AUTH_SERVICE: nothing is protected", settings.auth_level)
    sign_ins = (
        SignIns(settings, store, authenticator)
        if authenticator is not None and settings.browser_sign_in
        else None
    )

    reloader = Reloader(catalog, settings.plugins_dir, checks, service.processes_removed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _open_store(settings, store)
        await catalog.refresh()
        if supervisor is not None:  # a worker started after the files changed (a replacement)
            await reloader.reload("worker start")
        await service.join(catalog)
        log.info("serving %d process(es)", len(catalog))
        tasks = []
        if expiry:
            tasks.append(asyncio.create_task(_expire_periodically(service)))
        if metrics.shared:
            tasks.append(asyncio.create_task(_refresh_periodically(metrics)))
        try:
            async with reloader.serving(settings.watch_processes):
                yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await service.shutdown()
            await notifier.aclose()
            if authenticator is not None:
                await authenticator.aclose()
            for host in set(hosts.values()):
                await host.close()
            await store.close()
            await storage.close()

    app = FastAPI(
        title=settings.api_name,
        version=__version__,
        description="OGC API - Processes: programs published as web processes.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry hooks asked for the global providers on every request;
        # the server's metrics are Prometheus's (/metrics).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.filters["timestamp"] = timestamp
    templates.env.filters["pretty"] = pretty_json
    templates.env.filters["json"] = compact_json
    # Documents embedded for the pages' scripts keep their order (the inputs' order, say).
    templates.env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.deployment = deployment
    app.state.jobs = service
    app.state.sign_ins = sign_ins
    app.state.callback_policy = policy
    app.state.file_policy = FilePolicy(
        settings.results_redirect == "presigned", settings.results_url_expiry
    )
    app.state.render = Renderer(templates)
    app.state.streams = Streams(settings.max_streams)
    app.state.metrics = metrics
    app.state.ready_checks = [store.problems, storage.problems, engine_problems(catalog, hosts)]
    errors.install(app)
    # Added innermost first: every response is marked nosniff, even an unexpected error's.
    if authenticator is not None:
        app.add_middleware(
            Authenticate,
            authenticator=authenticator,
            level=settings.protection,
            sign_ins=sign_ins,
        )
    if settings.cors_origins:  # outside Authenticate: a preflight carries no credentials
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Prefer", "X-API-Key", "Range"],
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if settings.trusted_hosts:
        app.add_middleware(TrustedHosts, patterns=settings.trusted_hosts)
    app.add_middleware(CatchUnexpected)
    app.add_middleware(SecurityHeaders, sign_in_origin=sign_ins.origin if sign_ins else None)
    app.add_middleware(CountRequests, metrics=metrics)
    # The routes themselves, not the routers: an included router is matched through a
    # layer of its own, which cost a status request a fifth of its time. The routers
    # have no include-time prefix or dependency that this would lose.
    routes = [
        route
        for router in (
            landing.router,
            processes.router,
            deploy.router,
            job_list.router,
            jobs.router,
            health.router,
            metrics_api.router,
            sign_in.router,
        )
        for route in router.routes
    ]
    openapi.install(app, routes)
    # A request is matched against the routes in turn: the ones asked for most come first.
    # No two routes take the same method and path, and of the routes of one path the first
    # stays first (a 405 names its methods), so the order changes no answer; the API
    # document keeps the order above.
    app.router.routes.extend(sorted(routes, key=_request_rank))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(
        "/swagger/static",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger-static",
    )
    return app
