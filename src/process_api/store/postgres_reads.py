"""PostgreSQL reads of one job's summary by its id, straight through asyncpg.

Every status request reads a job's summary. Through SQLAlchemy's async engine that read
cost a round trip more than the query (the pool's pre-ping, which lets the engine
recover after the database restarted) and the engine's execution path around it: a
status request answered at a tenth of the rate of one on SQLite. Here the query is
prepared once per connection, on a few connections of its own, and run alone. Recovery
stays: a read that finds its idle connection broken (the database restarted, or a NAT or
proxy dropped it) is read again on a new connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from process_api.store.sql import SUMMARY
from process_api.store.tables import jobs

#: connections at most, and reads at once (each worker process has its own).
POOL_SIZE = 4
#: the failures of a connection, not of the query: the read is tried again on a new one.
BROKEN = (
    asyncpg.exceptions.PostgresConnectionError,  # closed in the middle of the read, too
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
)
#: everything asyncpg raises of its own.
FAILURES = (
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


def connect_arguments(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg's arguments for the database of the engine's URL, as SQLAlchemy reads it
    (host, port, user, password, database, ssl and the other query options)."""
    _, arguments = engine.dialect.create_connect_args(engine.url)
    cache_size = arguments.pop("prepared_statement_cache_size", None)
    if cache_size is not None:
        arguments["statement_cache_size"] = int(cache_size)
    for name in ("prepared_statement_name_func", "async_creator_fn"):
        arguments.pop(name, None)
    return dict(arguments)


class SummaryReads:
    """A few connections of their own, opened as reads need them, each running one read at a
    time. (asyncpg's pool costs a read a task and, by default, a round trip at each release:
    this is all a single prepared SELECT needs.)"""

    def __init__(
        self,
        engine: AsyncEngine,
        connect_timeout: float,
        statement_timeout: float,
        wait_timeout: float,
    ) -> None:
        self._arguments = connect_arguments(engine)
        self._arguments.update(timeout=connect_timeout, command_timeout=statement_timeout)
        self._wait_timeout = wait_timeout
        self._sql = str(sa.select(*SUMMARY).where(jobs.c.id == sa.bindparam("id")).compile(engine))
        self._names = [c.name for c in SUMMARY]
        self._idle: list[asyncpg.Connection] = []
        #: made on the event loop of the first read.
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    async def row(self, job_id: str) -> dict[str, Any] | None:
        """The summary's columns; None if there is no such job. Raises the driver's error
        when the database fails (on a new connection, if an idle one was found broken)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(POOL_SIZE)
        if self._slots.locked():  # every connection busy: wait, as long as the other pool
            await asyncio.wait_for(self._slots.acquire(), self._wait_timeout)
        else:
            await self._slots.acquire()
        try:
            found = None
            connection = self._take()
            if connection is not None:
                try:
                    found = await self._fetch(connection, job_id)
                except BROKEN:
                    connection = None  # dropped while idle: read on a new one
            if connection is None:
                found = await self._fetch(await asyncpg.connect(**self._arguments), job_id)
        finally:
            self._slots.release()
        return None if found is None else dict(zip(self._names, found, strict=True))

    def _take(self) -> asyncpg.Connection | None:
        """An idle connection that is still open; None if there is none."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
        return None

    async def _fetch(self, connection: asyncpg.Connection, job_id: str) -> asyncpg.Record | None:
        """The row, the connection kept for the next read; closed if the read failed or was
        cancelled half-way (its state is then unknown)."""
        try:
            found = await connection.fetchrow(self._sql, job_id)
        except BaseException:
            connection.terminate()
            raise
        if self._closed:
            connection.terminate()
        else:
            self._idle.append(connection)
        return found

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().terminate()
