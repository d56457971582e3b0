"""PostgreSQL specifics of the job store: a pool that recovers, guarded migrations, plain errors.

The tables, queries and status guards are SqlJobStore's; PostgreSQL runs them on
the async engine's pool. What differs from SQLite:

- Connections are checked before use (pre-ping), so that after the database was
  restarted or a connection dropped, the next request reconnects: the server
  recovers without a restart. (A job's summary, read by every status request, is read
  through asyncpg directly instead, and recovers as well: see postgres_reads.) While
  the database does not answer, every request that needs it gets a 503
  (StoreUnavailable) at once, and /ready says so.
- Migrations run under a transaction-scoped advisory lock: servers starting
  together migrate one after the other, and the later ones find the schema current.
- Text cannot hold the NUL character in PostgreSQL: it is stored as U+FFFD in text
  columns (JSON columns keep it, escaped), and a lookup for a value holding one
  finds nothing instead of failing.
- The URL's password never reaches a log or an error: the driver's words are
  logged, the statement's parameters are hidden, the URL is shown masked.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from process_api.errors import ApiError, InsufficientStorage, StoreUnavailable
from process_api.jobs.model import Job, JobStatus
from process_api.store.base import JobQuery, JobSummary
from process_api.store.postgres_reads import FAILURES as READ_FAILURES
from process_api.store.postgres_reads import SummaryReads
from process_api.store.sql import SqlJobStore, migrate, to_summary
from process_api.store.tables import jobs

#: the key of the advisory lock held while migrating ("process" in ASCII).
MIGRATION_LOCK = 0x70726F63657373
#: connections kept open, and how many more may be opened under load.
POOL_SIZE = 10
POOL_OVERFLOW = 10
#: how long a request waits for a free connection, or for a new one to open (s).
POOL_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
#: how long a statement may take before its request gets a 503 (asyncpg; a database that
#: stopped answering, not a slow one). Migrations run without it.
STATEMENT_TIMEOUT = 30.0

#: the columns whose values are text (JSON columns escape NUL themselves).
_TEXT = frozenset(c.name for c in jobs.columns if isinstance(c.type, sa.String))
_NUL = "\x00"

#: SQLSTATE classes and codes, and what a client is told of them.
_MESSAGES = {
    "28": "the job database refused the server's credentials: check the user and password of DB_URL",
    "3D000": "the job database named in DB_URL does not exist",
    "25006": "the job database is read-only (is DB_URL a standby?): no job can be recorded",
    "57P": "the job database is shutting down or restarting; try again shortly",
    "08": "the job database cannot be reached; try again shortly",
    "53": "the job database is out of resources (connections or memory); try again shortly",
}
#: failures that pass by themselves: a serialization failure, a deadlock, a lock not granted.
_RETRIED = ("40001", "40P01", "55P03")


def _sqlstate(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(getattr(original, "sqlstate", "") or "")


def _connect_arguments(driver: str) -> dict[str, Any]:
    if driver == "asyncpg":
        return {"timeout": CONNECT_TIMEOUT}
    return {"connect_timeout": int(CONNECT_TIMEOUT)}  # psycopg: a libpq parameter


def _text(value: Any) -> Any:
    return value.replace(_NUL, "\ufffd") if isinstance(value, str) else value


class PostgresJobStore(SqlJobStore):
    """The job store in a PostgreSQL database, shared by every server that names it."""

    #: a refused or dropped connection surfaces as OSError, a connect timeout as TimeoutError.
    FAILURES = (*SqlJobStore.FAILURES, OSError, TimeoutError)

    def __init__(self, url: str) -> None:
        self._url = sa.make_url(url)
        driver = self._url.get_driver_name()
        arguments = _connect_arguments(driver)
        if driver == "asyncpg":
            arguments["command_timeout"] = STATEMENT_TIMEOUT
        try:
            engine = create_async_engine(
                self._url,
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                pool_timeout=POOL_TIMEOUT,
                hide_parameters=True,
                connect_args=arguments,
            )
        except ImportError as exc:
            raise StoreUnavailable(
                f"DB_URL names the {driver} driver, which is not installed "
                f"(pip install {'psycopg[binary]' if driver == 'psycopg' else driver})"
            ) from exc
        super().__init__(engine, "postgresql")
        self._summaries = (
            SummaryReads(engine, CONNECT_TIMEOUT, STATEMENT_TIMEOUT, POOL_TIMEOUT)
            if driver == "asyncpg"
            else None
        )

    async def open(self) -> None:
        """Brings the database to the current schema, one server at a time; a database
        that cannot be reached keeps the server from starting, with the reason."""
        # A connection of its own, without the statement timeout: a migration may take long.
        engine = create_async_engine(
            self._url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args=_connect_arguments(self._url.get_driver_name()),
        )
        try:
            async with engine.begin() as conn:
                # Held until this transaction ends: the migrations are committed first.
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
                await conn.run_sync(migrate)
        except self.FAILURES as exc:
            raise self._failed(exc) from exc
        finally:
            await engine.dispose()

    def _busy(self, exc: Exception) -> bool:
        return _sqlstate(exc) in _RETRIED

    def _error(self, exc: Exception) -> ApiError:
        state = _sqlstate(exc)
        if state == "53100":
            return InsufficientStorage(
                "the disk of the job database is full: no job can be recorded until space is freed"
            )
        for prefix, message in _MESSAGES.items():
            if state.startswith(prefix):
                return StoreUnavailable(message)
        if isinstance(exc, TimeoutError):
            return StoreUnavailable("the job database did not answer in time; try again shortly")
        return super()._error(exc)

    def _storable(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: _text(v) if k in _TEXT else v for k, v in values.items()}

    # -- lookups of values PostgreSQL cannot hold find nothing ------------------------

    async def get(self, job_id: str) -> Job | None:
        return None if _NUL in job_id else await super().get(job_id)

    async def summary(self, job_id: str) -> JobSummary | None:
        if _NUL in job_id:
            return None
        if self._summaries is None:
            return await super().summary(job_id)
        try:
            found = await self._summaries.row(job_id)
        except (*self.FAILURES, *READ_FAILURES) as exc:
            raise self._failed(exc) from exc
        return to_summary(found) if found else None

    async def close(self) -> None:
        if self._summaries is not None:
            await self._summaries.close()
        await super().close()

    async def update(
        self, job_id: str, changes: dict[str, Any], from_statuses: frozenset[JobStatus]
    ) -> Job | None:
        if _NUL in job_id:
            return None
        return await super().update(job_id, changes, from_statuses)

    async def find(self, query: JobQuery) -> list[JobSummary]:
        searchable = _searchable(query)
        return [] if searchable is None else await super().find(searchable)

    async def count(self, query: JobQuery, limit: int | None = None) -> int:
        searchable = _searchable(query)
        return 0 if searchable is None else await super().count(searchable, limit)


def _searchable(query: JobQuery) -> JobQuery | None:
    """The query without process ids no job can have; None when none is left to match."""
    if not any(_NUL in process_id for process_id in query.process_ids):
        return query
    kept = [process_id for process_id in query.process_ids if _NUL not in process_id]
    return replace(query, process_ids=kept) if kept else None
