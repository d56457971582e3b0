"""PostgreSQL reads of one job's summary by its id, straight through asyncpg.

Every status request reads a job's summary. Through SQLAlchemy's async engine that read
cost a round trip more than the query (the pool's pre-ping, which lets the engine
recover after the database restarted) and the engine's execution path around it: a
status request answered at a tenth of the rate of one on SQLite. Here the query is
prepared once per connection of a small asyncpg pool of its own and run alone. Recovery
stays: a read that finds its connection broken (the database restarted, or a proxy
dropped it) is tried once more on a new connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from process_api.store.sql import SUMMARY
from process_api.store.tables import jobs

#: connections of the pool (each worker process has its own pool).
POOL_SIZE = 4
#: the failures of a connection, not of the query: the read is tried again on a new one.
BROKEN = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    ConnectionError,
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


async def _unchanged(connection: asyncpg.Connection) -> None:
    """What a connection given back to the pool needs reset: nothing, as it only ran one
    SELECT. (asyncpg's default reset is a round trip to the database at every release;
    an open transaction or a cancelled query is still cleaned up by the pool.)"""


class SummaryReads:
    """One pool, made at the first read on the event loop that serves the requests."""

    def __init__(
        self, engine: AsyncEngine, connect_timeout: float, statement_timeout: float
    ) -> None:
        self._arguments = connect_arguments(engine)
        self._arguments.update(timeout=connect_timeout, command_timeout=statement_timeout)
        self._sql = str(sa.select(*SUMMARY).where(jobs.c.id == sa.bindparam("id")).compile(engine))
        self._names = [c.name for c in SUMMARY]
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def row(self, job_id: str) -> dict[str, Any] | None:
        """The summary's columns; None if there is no such job. Raises the driver's error
        when the database fails, or fails again on a new connection."""
        pool = await self._opened()
        try:
            found = await self._fetch(pool, job_id)
        except BROKEN:
            found = await self._fetch(pool, job_id)
        return None if found is None else dict(zip(self._names, found, strict=True))

    async def _fetch(self, pool: asyncpg.Pool, job_id: str) -> asyncpg.Record | None:
        # No timeout on the wait for a connection (it would cost a task per read): each
        # connection is busy for one bounded statement, or a connect that times out.
        async with pool.acquire() as connection:
            return await connection.fetchrow(self._sql, job_id)

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0, max_size=POOL_SIZE, reset=_unchanged, **self._arguments
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
