"""Fixtures of the unit tests: a real job store, SQLite in the test's directory or PostgreSQL."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from process_api.hosts import build_hosts, host_checks
from process_api.jobs.model import utcnow
from process_api.processes.loader import HostChecks
from process_api.settings import Settings
from process_api.store.base import Instance
from process_api.store.postgres import PostgresJobStore
from process_api.store.sql import SqlJobStore
from tests.postgres import Postgres, execute

T = TypeVar("T")
HOUR = timedelta(hours=1)


class StoreMaker:
    """Makes new stores (not yet opened) on the test's database, and works on it directly."""

    def __init__(self, kind: str, url: str, make: Callable[[], SqlJobStore]) -> None:
        self.kind = kind
        self.url = url
        self._make = make

    def __call__(self) -> SqlJobStore:
        return self._make()

    @asynccontextmanager
    async def opened(self, count: int) -> AsyncIterator[list[SqlJobStore]]:
        """`count` stores opened on the database, as instances sharing it have; closed after."""
        stores = [self._make() for _ in range(count)]
        try:
            for store in stores:
                await store.open()
            yield stores
        finally:
            for store in stores:
                await store.close()

    async def run(self, work: Callable[[sa.Connection], T]) -> T:
        """Runs work on a connection of its own to the database, in a transaction."""
        if self.kind == "sqlite":
            engine = sa.create_engine(self.url)
            try:
                with engine.begin() as connection:
                    return work(connection)
            finally:
                engine.dispose()
        async_engine = create_async_engine(self.url)
        try:
            async with async_engine.begin() as conn:
                result: Any = await conn.run_sync(work)
                return result  # type: ignore[no-any-return]
        finally:
            await async_engine.dispose()


async def live(store: SqlJobStore, *owners: str) -> None:
    """Registers these instances (those not yet registered) with a lease of an hour: only a
    live instance may claim jobs."""
    known = {instance.id for instance in await store.instances()}
    for owner in owners:
        if owner not in known:
            now = utcnow()
            await store.register(Instance(owner, "a-machine", 1, None, now, now + HOUR))


@pytest.fixture(scope="session")
def postgres_url(postgres: Postgres) -> Iterator[str]:
    """The unit tests' PostgreSQL database: emptied before each test that uses it."""
    url = postgres.new_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreMaker:
    """Makes stores on one database of the test's own: an SQLite file or, emptied of any
    table, the PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite"
        return StoreMaker("sqlite", f"sqlite:///{path}", lambda: SqlJobStore.sqlite(path))
    url: str = request.getfixturevalue("postgres_url")
    tables = "jobs, instances, api_keys, sign_ins, sessions, process_versions, alembic_version"
    execute(url, f"DROP TABLE IF EXISTS {tables}")
    return StoreMaker("postgres", url, lambda: PostgresJobStore(url))


@pytest.fixture
async def store(new_store: StoreMaker) -> AsyncIterator[SqlJobStore]:
    store = new_store()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqlJobStore]:
    """For what only an SQLite file has (its locks, its file deleted or replaced)."""
    store = SqlJobStore.sqlite(tmp_path / "jobs.sqlite")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostChecks:
    """The host checks of a server with default settings, run from the test's directory."""
    monkeypatch.chdir(tmp_path)
    return host_checks(build_hosts(Settings()))


def write(directory: Path, name: str, text: str) -> Path:
    """Writes a (process) file below the directory, its text dedented."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path
