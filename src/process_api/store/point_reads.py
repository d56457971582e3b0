"""SQLite reads of one job by its id, on the event loop, with the stdlib driver.

Such a read is a lookup in SQLite's page cache: about 20 µs. Sent to a reader
thread through SQLAlchemy, as the other reads are, it took half a millisecond
(the hop to the thread and back, and the statement's execution machinery), and
it is the read of every status request, so it is done here instead: the SQL is
made once, the row is converted with SQLAlchemy's own result processors, and the
connection never waits for a lock (in WAL mode a reader needs none; should one be
asked for, the read is left to the reader threads, which may wait).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from process_api.store.tables import jobs


class Busy(Exception):
    """The read would have had to wait for a lock: read elsewhere."""


class _Compiled:
    def __init__(self, columns: Sequence[sa.Column[Any]], dialect: Dialect) -> None:
        statement = sa.select(*columns).where(jobs.c.id == sa.bindparam("id"))
        self.sql = str(statement.compile(dialect=dialect))
        self.names = [c.name for c in columns]
        self.processors: list[Callable[[Any], Any] | None] = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]


class PointReads:
    """One connection, used from the event loop's thread only."""

    def __init__(self, path: Path, dialect: Dialect) -> None:
        self.path = path
        self.dialect = dialect
        self._connection: sqlite3.Connection | None = None
        self._compiled: dict[tuple[str, ...], _Compiled] = {}

    def row(self, columns: Sequence[sa.Column[Any]], job_id: str) -> dict[str, Any] | None:
        """The columns of the job, converted as SQLAlchemy would; None if there is no such
        job. Busy if it would wait for a lock; sqlite3.Error if the database fails."""
        key = tuple(c.name for c in columns)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _Compiled(columns, self.dialect)
        try:
            found = self._connect().execute(compiled.sql, (job_id,)).fetchone()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise Busy from exc
            raise
        if found is None:
            return None
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(compiled.names, compiled.processors, found, strict=True)
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
