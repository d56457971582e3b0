"""SQLite reads of one job's summary by its id, on the event loop, with the stdlib driver.

Such a read is a lookup in SQLite's page cache: about 20 µs for the query, 36 µs in all.
Sent to a reader thread through SQLAlchemy, as the other reads are, it took half a
millisecond (the hop to the thread and back, and the statement's execution machinery),
and it is the read of every status request, so it is done here instead: the SQL is made
once, the row is converted with SQLAlchemy's own result processors, and the connection
never waits for a lock (in WAL mode a reader needs none; should one be asked for, the
store leaves the read to its reader threads, which may wait). Only the summary: a whole
job may hold megabytes of inputs and results, which are read off the event loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from process_api.store.sql import SUMMARY
from process_api.store.tables import jobs


class SummaryReads:
    """One connection, used from the event loop's thread only."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self.path = path
        statement = sa.select(*SUMMARY).where(jobs.c.id == sa.bindparam("id"))
        self._sql = str(statement.compile(dialect=dialect))
        self._names = [c.name for c in SUMMARY]
        self._processors: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in SUMMARY
        ]
        self._connection: sqlite3.Connection | None = None

    def row(self, job_id: str) -> dict[str, Any] | None:
        """The summary's columns, converted as SQLAlchemy would; None if there is no such
        job. sqlite3's error if the database fails, or would have had to wait for a lock."""
        found = self._connect().execute(self._sql, (job_id,)).fetchone()
        if found is None:
            return None
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(self._names, self._processors, found, strict=True)
        }

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=rw", uri=True, isolation_level=None
            )
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA query_only=1")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
