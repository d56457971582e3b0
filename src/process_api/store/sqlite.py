"""SQLite specifics of the job store: one writer, a few readers, and the file watched.

SQLite lets one transaction write at a time. The writes of this process go, one
after the other, through a single connection in a thread of its own: each write
is one hop to that thread, where the whole transaction runs (`BEGIN IMMEDIATE`,
the statement, `COMMIT`), so the lock is held for well under a millisecond and
writes never wait on each other inside SQLite; a lock held by another process is
waited for (busy_timeout) and retried. Reads run likewise, whole, on a few
threads with a connection each: in WAL mode they never block the writer nor wait
for it. (aiosqlite makes several hops to its thread per statement; on a busy
event loop each hop waits its turn, and a statement then held its connection,
or the write lock, for seconds.)

Connections open the file with `mode=rw`, so a connection opened after the
file was deleted fails instead of creating an empty database; every statement
first checks that the path still names the file opened at start (a stat).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row
from sqlalchemy.pool import QueuePool

from process_api.disk import write_problem
from process_api.errors import ApiError, InsufficientStorage, StoreUnavailable
from process_api.store.base import JobSummary
from process_api.store.point_reads import SummaryReads
from process_api.store.sql import SqlJobStore, migrate, to_summary

log = logging.getLogger(__name__)

#: reader threads, each with its connection.
READERS = 4
#: how long SQLite itself waits for a lock held by another process, per statement (ms).
BUSY_TIMEOUT_MS = 5000
#: how long a server starting waits for another one's migrations (which hold the write lock).
MIGRATION_WAIT = 60.0

MISSING = (
    "the job database file is missing: it was deleted or moved while the server ran. "
    "No job can be read or recorded until it is restored and the server restarted"
)
REPLACED = "the job database file was replaced while the server ran; restart the server to use it"


def _identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def _error_name(exc: Exception) -> str:
    """SQLite's error name (SQLITE_BUSY, SQLITE_FULL, …) of a wrapped sqlite3 error."""
    original = getattr(exc, "orig", None) or exc
    return str(getattr(original, "sqlite_errorname", "") or "")


def _create(path: Path) -> None:
    """Creates the database file (in WAL mode) if there is none; the only place that may."""
    with sqlite3.connect(f"file:{quote(str(path))}?mode=rwc", uri=True) as db:
        db.execute("PRAGMA journal_mode=WAL")
    db.close()


def _engine(path: Path, connections: int, writer: bool) -> Engine:
    """Connections to the file as it is (never created here), used from worker threads."""
    url = sa.URL.create(
        "sqlite+pysqlite",
        database=f"file:{quote(str(path))}",
        query={"mode": "rw", "uri": "true"},
    )
    engine = sa.create_engine(
        url,
        poolclass=QueuePool,
        pool_size=connections,
        max_overflow=0,
        connect_args={"check_same_thread": False},  # one thread at a time, by the pool
        hide_parameters=True,  # a job's inputs never reach the server's log in an error
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(conn: Any, _record: Any) -> None:
        cursor = conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not writer:
            cursor.execute("PRAGMA query_only=1")
        cursor.close()
        # Transactions are begun below, not by the driver; a reader's statements each
        # see the last committed state.
        conn.isolation_level = None

    if writer:

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # The write lock is taken when the transaction begins, not at its first
            # write: a transaction can then never fail half-way for want of it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SqliteJobStore(SqlJobStore):
    """The job store in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        super().__init__(None, "sqlite")
        self._writer = _engine(self.path, 1, writer=True)
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="job-db-writer")
        self._reader = _engine(self.path, READERS, writer=False)
        self._reader_threads = ThreadPoolExecutor(READERS, thread_name_prefix="job-db-reader")
        self._summaries = SummaryReads(self.path, self._reader.dialect)
        #: device and inode of the file opened at start.
        self._opened: tuple[int, int] | None = None
        self._lost = False

    @property
    def location(self) -> str:
        return str(self.path)

    async def open(self) -> None:
        """Creates the file if there is none, then brings it to the current schema.

        Refuses a database that cannot be written (a read-only directory or file): the
        server could record no job. A full disk is only reported (by /ready)."""
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
            for path in (self.path.parent, self.path):
                if path.exists() and not os.access(path, os.W_OK):
                    raise StoreUnavailable(
                        f"the job database cannot be written: {path} is read-only"
                    )
        except OSError as exc:
            raise StoreUnavailable(f"the job database {self.path} cannot be opened: {exc}") from exc
        # Another server starting on the same file may hold its lock while it migrates it.
        deadline = time.monotonic() + MIGRATION_WAIT
        while True:
            try:
                await self._create_and_migrate()
                return
            except (sqlite3.Error, sa.exc.OperationalError) as exc:
                if not self._busy(exc) or time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"the job database {self.path} cannot be opened: {exc}"
                    ) from exc
                await asyncio.sleep(0.05)

    async def _create_and_migrate(self) -> None:
        await asyncio.to_thread(_create, self.path)
        self._opened = _identity(self.path)
        await self._in_writer(self._migrate)

    def _migrate(self) -> None:
        # The writer's transactions begin IMMEDIATE: the write lock is held from before the
        # schema is read until the migrations are committed, so that servers starting
        # together on one file migrate it one after the other.
        with self._writer.begin() as conn:
            migrate(conn)

    async def close(self) -> None:
        await self._in_writer(self._writer.dispose)
        self._writer_thread.shutdown()
        self._reader_threads.shutdown()
        self._reader.dispose()
        self._summaries.close()

    async def summary(self, job_id: str) -> JobSummary | None:
        """Read on the event loop (see point_reads); by a reader thread should the read have
        to wait for a lock."""
        self._check()
        try:
            found = self._summaries.row(job_id)
        except sqlite3.Error as exc:
            if self._busy(exc):
                return await super().summary(job_id)
            raise self._failed(exc) from exc
        return to_summary(found) if found else None

    async def _in_writer(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, work, *args)

    async def _write_once(self, statement: Any, lock: str | None = None) -> Sequence[Row[Any]]:
        # Every write transaction begins IMMEDIATE: it holds the database's one write lock.
        rows: Sequence[Row[Any]] = await self._in_writer(self._write_now, statement)
        return rows

    async def _read_once(
        self, statement: Any, values: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        loop = asyncio.get_running_loop()
        rows: Sequence[Row[Any]] = await loop.run_in_executor(
            self._reader_threads, self._read_now, statement, values
        )
        return rows

    def _read_now(self, statement: Any, values: Mapping[str, Any] | None) -> Sequence[Row[Any]]:
        with self._reader.connect() as conn:
            return conn.execute(statement, values).all()

    def _write_now(self, statement: Any) -> Sequence[Row[Any]]:
        with self._writer.begin() as conn:
            result = conn.execute(statement)
            return result.all() if result.returns_rows else []

    def _check(self) -> None:
        if self._opened is None:
            return
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            self._lose(MISSING)
        except OSError as exc:
            raise StoreUnavailable(
                f"the job database file cannot be found: {exc.strerror}"
            ) from exc
        else:
            if identity != self._opened:
                self._lose(REPLACED)

    def _lose(self, message: str) -> None:
        if not self._lost:
            log.error("%s (%s)", message, self.path)
            self._lost = True
        raise StoreUnavailable(message)

    def _busy(self, exc: Exception) -> bool:
        return _error_name(exc).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))

    def _error(self, exc: Exception) -> ApiError:
        try:
            self._check()
        except StoreUnavailable as gone:
            return gone
        name = _error_name(exc)
        if name.startswith("SQLITE_FULL"):
            return InsufficientStorage(
                "the disk of the job database is full: no job can be recorded until space is freed"
            )
        if name.startswith("SQLITE_READONLY"):
            return StoreUnavailable(
                "the job database is read-only (its file or directory cannot be written): "
                "no job can be recorded"
            )
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreUnavailable("the job database is busy; try again shortly")
        if name.startswith("SQLITE_CANTOPEN"):
            return StoreUnavailable(
                "the job database file cannot be opened: check that it exists and that "
                "its directory can be read and written"
            )
        if name.startswith("SQLITE_IOERR"):
            return StoreUnavailable(
                "the job database could not be read or written (an I/O error: is its disk full?)"
            )
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreUnavailable("the job database file is damaged")
        return super()._error(exc)

    async def problems(self) -> list[str]:
        """The query of every store, and whether the database's directory can be written."""
        found = await super().problems()
        if found:
            return found
        name = "the job database's directory"
        problem = await asyncio.to_thread(write_problem, self.path.parent, name)
        if problem is None and not os.access(self.path, os.W_OK):
            problem = "the job database file is read-only"
        return [problem] if problem else []
