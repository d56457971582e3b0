"""PostgreSQL for the tests: a throwaway cluster on a loopback port, or the server of `TEST_DB_URL`.

The cluster is Debian's `postgresql` (initdb and pg_ctl from /usr/lib/postgresql/*/bin),
made in a temporary directory, listening on 127.0.0.1 only with its socket in that
directory, trusting every local connection, and run without fsync: it holds test
data only. As root, it runs as the unprivileged `postgres` user (PostgreSQL refuses
root). Each test gets a database of its own, made by `CREATE DATABASE` and dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from tests.conftest import free_port

#: how to get PostgreSQL when it is missing.
HOW_TO_GET = (
    "install Debian's postgresql (apt-get install postgresql; .ci/run does it), "
    "or set TEST_DB_URL to a postgresql+asyncpg:// URL of a user that may create databases"
)


class PostgresError(Exception):
    """No PostgreSQL can be started or reached."""


def _binaries() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresError(f"PostgreSQL's initdb is not installed: {HOW_TO_GET}")


def _run(command: list[str], as_user: str | None) -> None:
    if as_user is not None:
        command = ["runuser", "-u", as_user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


class Cluster:
    """A PostgreSQL cluster of its own, in a temporary directory, on a free loopback port."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresError(
                    "running as root, PostgreSQL needs an unprivileged user to run as: "
                    "there is no `postgres` user (installing Debian's postgresql makes it)"
                ) from exc
            self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="process-api-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, command: list[str]) -> None:
        _run(command, self.user)

    def create(self) -> Cluster:
        if self.user is not None:
            shutil.chown(self.root, self.user)
        self._as_owner(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        return self.start()

    def start(self) -> Cluster:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._as_owner(
            [
                str(self.bin / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.root / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
            ]
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as_owner([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode])

    def _processes(self) -> list[int]:
        """The postmaster and its children (the backends and background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """Stops every process of the cluster where it is: it accepts connections (the
        kernel does) but answers nothing, like a database on a machine that hangs."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.thaw()
        try:
            self.stop("immediate")  # its data is thrown away
        except PostgresError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def _admin_url(url: str) -> str:
    """A libpq URL (what asyncpg takes) of an SQLAlchemy URL."""
    parsed = sa.make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_admin_url(url), timeout=30)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def execute(url: str, *statements: str) -> None:
    """Runs statements outside any transaction (CREATE DATABASE), from sync or async code."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _execute(url, *statements)).result()


async def _fetch(url: str, query: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(_admin_url(url), timeout=30)
    try:
        return [dict(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


def fetch(url: str, query: str) -> list[dict[str, Any]]:
    """The rows of a query, as dicts."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _fetch(url, query)).result()


class Postgres:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, url: str) -> None:
        self.url = url

    def database_url(self, name: str) -> str:
        return sa.make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def new_database(self) -> str:
        """The URL of a new, empty database."""
        name = f"process_api_test_{uuid.uuid4().hex[:12]}"
        execute(self.url, f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = sa.make_url(url).database
        execute(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unavailable(message: str) -> None:
    """A missing PostgreSQL: a failure in CI, a skip elsewhere."""
    message = f"{message}\n({HOW_TO_GET})" if HOW_TO_GET not in message else message
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def given_url() -> str | None:
    """The PostgreSQL server the tests were told to use, if any."""
    return os.environ.get("TEST_DB_URL") or os.environ.get("DB_URL") or None


def own_cluster() -> Iterator[Cluster]:
    """The body of a fixture: a cluster of its own (that a test may stop and start)."""
    try:
        cluster = Cluster().create()
    except (PostgresError, OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"PostgreSQL cannot be started: {exc}")
        raise AssertionError("unreachable") from exc
    try:
        yield cluster
    finally:
        cluster.remove()


def session_postgres() -> Iterator[Postgres]:
    """The body of the session fixture: the server of TEST_DB_URL (or DB_URL), or a cluster."""
    url = given_url()
    if url is not None:
        try:
            execute(url, "SELECT 1")
        except (OSError, asyncpg.PostgresError) as exc:
            unavailable(f"the PostgreSQL of TEST_DB_URL/DB_URL does not answer: {exc}")
        yield Postgres(url)
        return
    for cluster in own_cluster():
        yield Postgres(cluster.url)
