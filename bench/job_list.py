"""Milliseconds per request of a job's status and of the job list's filters, as the store grows.

For each store (SQLite, PostgreSQL) and each number of stored jobs (10^3 and 10^6 by
default), the script writes the jobs straight into process-api's `jobs` table of a
database of its own (after `process-api db upgrade`) and starts one server process on
it. Then it sends each request one at a time, `--requests` times, to the servers of each
size in turn (what else the machine does weighs on each alike), and prints the median
milliseconds per request. The jobs span the last 30 days: a tenth failed, one in a
hundred dismissed, the rest successful (none active: a server would take them over as it
starts); ten processes in turn; about one in a hundred submitted by the user `alice`, the
others by fifty other users. API keys sign the requests in (AUTH_SERVICE=keys,
AUTH_LEVEL=1): an admin's for the list, alice's for her own jobs.

    .venv/bin/python bench/job_list.py
    .venv/bin/python bench/job_list.py --sizes 1e3,1e5 --stores sqlite --requests 100

Everything listens on 127.0.0.1 only. PostgreSQL: DB_URL / TEST_DB_URL, or a throwaway
cluster of Debian's postgresql (as bench/api.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.api import (
    JSON,
    ROOT,
    Server,
    ours_env,
    postgres_server,
    say,
    sizes,
    start,
    upgrade_database,
)
from tests.conftest import free_port
from tests.postgres import Postgres

NOW = datetime.now(UTC).replace(microsecond=0)
SPAN = timedelta(days=30)
#: the `datetime` filter: ten days in the middle of the span.
INTERVAL = "/".join(
    (NOW - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ") for days in (20, 10)
)
COLUMNS = (
    "id process_id process_version host_type mode status message progress created started "
    "finished updated inputs request results handle submitter submitter_name expired owner "
    "slot cpus memory process_revision"
).split()


def status_of(n: int) -> str:
    kind = n % 100
    if kind < 10:
        return "failed"
    return "dismissed" if kind == 10 else "successful"


def job_rows(count: int) -> Iterator[tuple[object, ...]]:
    """The jobs, oldest first, as tuples of COLUMNS (times as datetimes, JSON as text)."""
    step = SPAN / count
    for n in range(count):
        created = NOW - (count - n) * step
        status = status_of(n)
        submitter = "key:alice" if n % 97 == 0 else f"key:user{n % 50}"
        yield (
            str(uuid.uuid4()),
            f"p{n % 10}",
            "1.0.0",
            "subprocess",
            "async",
            status,
            "",
            100 if status == "successful" else None,
            created,
            created + timedelta(milliseconds=2),
            created + timedelta(milliseconds=20),
            created + timedelta(milliseconds=20),
            json.dumps({"name": f"job {n}"}),
            "{}",
            json.dumps({"name": f"job {n}"}) if status == "successful" else None,
            None,
            submitter,
            submitter[4:],
            False,
            None,
            None,
            0.0,
            0.0,
            None,
        )


def fill_sqlite(path: Path, count: int) -> str:
    """Rows as SQLAlchemy stores them in SQLite (UTC times without offset); the middle id."""
    connection = sqlite3.connect(path)
    marks = ",".join("?" * len(COLUMNS))
    statement = f"INSERT INTO jobs ({','.join(COLUMNS)}) VALUES ({marks})"

    def text(value: object) -> object:
        return value.replace(tzinfo=None).isoformat(" ") if isinstance(value, datetime) else value

    middle = ""
    with connection:
        batch = []
        for n, row in enumerate(job_rows(count)):
            batch.append(tuple(text(v) for v in row))
            middle = str(row[0]) if n == count // 2 else middle
            if len(batch) == 50_000:
                connection.executemany(statement, batch)
                batch.clear()
        connection.executemany(statement, batch)
    connection.close()
    return middle


async def fill_postgres(url: str, count: int) -> str:
    """Rows by COPY, then VACUUM ANALYZE: the table as autovacuum leaves it, its pages all
    visible (a vacuum run while another transaction is open leaves some to the next)."""
    rows = list(job_rows(count))
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.copy_records_to_table("jobs", records=rows, columns=COLUMNS)
        visible = "SELECT relallvisible >= relpages FROM pg_class WHERE relname = 'jobs'"
        for _ in range(5):
            await connection.execute("VACUUM ANALYZE jobs")
            if await connection.fetchval(visible):
                break
    finally:
        await connection.close()
    return str(rows[count // 2][0])


def make_key(env: dict[str, str], workdir: Path, name: str, roles: str) -> str:
    command = [sys.executable, "-m", "process_api", "keys", "create", name, "--roles", roles]
    done = subprocess.run(command, env=env, cwd=workdir, check=True, capture_output=True, text=True)
    return done.stdout.split()[-1]


def requests(job: str) -> list[tuple[str, str, str]]:
    """(name, path, whose key) of each request measured."""
    return [
        ("GET /jobs/{id}", f"/jobs/{job}", ""),
        ("GET /jobs?limit=10", "/jobs?limit=10", "admin"),
        ("  &status=failed", "/jobs?limit=10&status=failed", "admin"),
        ("  &processID=p3", "/jobs?limit=10&processID=p3", "admin"),
        ("  &type=process", "/jobs?limit=10&type=process", "admin"),
        ("  &datetime=<10 days>", f"/jobs?limit=10&datetime={INTERVAL}", "admin"),
        ("  alice's own jobs", "/jobs?limit=10", "alice"),
    ]


@dataclass
class Target:
    """A server on a filled store: a job of it for GET /jobs/{id}, and the API keys."""

    server: Server
    job: str
    keys: dict[str, str]


def measure(targets: dict[int, Target], count: int) -> dict[int, dict[str, float]]:
    """The median milliseconds of each request on each server, one request at a time, the
    servers in turn (what else the machine does then weighs on each alike), after a few to
    warm up."""
    found: dict[int, dict[str, float]] = {size: {} for size in targets}
    clients = {
        size: httpx.Client(base_url=target.server.url, headers=JSON, timeout=60)
        for size, target in targets.items()
    }
    try:
        for name, path, whose in requests("{job}"):
            times: dict[int, list[float]] = {size: [] for size in targets}
            for n in range(count + 5):
                for size, target in targets.items():
                    headers = {"X-API-Key": target.keys[whose]} if whose else {}
                    started = time.perf_counter()
                    answer = clients[size].get(path.replace("{job}", target.job), headers=headers)
                    answer.raise_for_status()
                    if n >= 5:
                        times[size].append((time.perf_counter() - started) * 1000)
            for size in targets:
                found[size][name] = statistics.median(times[size])
            medians = ", ".join(f"{size:,} jobs {found[size][name]:.2f} ms" for size in targets)
            say(f"{name.strip()}: {medians}")
    finally:
        for client in clients.values():
            client.close()
    return found


@contextlib.contextmanager
def serving(src: Path, store: str, size: int, postgres: str | None) -> Iterator[Target]:
    """A server on a store of its own, filled with `size` jobs."""
    with tempfile.TemporaryDirectory(prefix=f"bench-list-{store}-{size}-") as tmp:
        workdir = Path(tmp)
        url = Postgres(postgres).new_database() if postgres and store == "postgres" else None
        try:
            upgrade_database(src, workdir, url)
            say(f"writing {size:,} jobs into the {store} store …")
            if url is None:
                job = fill_sqlite(workdir / "data" / "jobs.sqlite", size)
            else:
                job = asyncio.run(fill_postgres(url, size))
            env = {**ours_env(src, workdir, url), "AUTH_SERVICE": "keys", "AUTH_LEVEL": "1"}
            keys = {
                "admin": make_key(env, workdir, "admin", "admin"),
                "alice": make_key(env, workdir, "alice", ""),
            }
            port = free_port()
            (workdir / "plugins").mkdir()
            plugins = str(workdir / "plugins")
            command = [sys.executable, "-m", "process_api", "-d", plugins, "-p", str(port)]
            server = start("process-api", command, env, workdir, port, "/conformance")
            try:
                yield Target(server, job, keys)
            finally:
                server.stop()
        finally:
            if url is not None:
                Postgres(str(postgres)).drop_database(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=sizes, default=[1000, 1_000_000])
    parser.add_argument("--stores", type=lambda t: t.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=200, help="per endpoint (default 200)")
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src", help="process-api's source tree (this one's)"
    )
    args = parser.parse_args()
    results: dict[tuple[str, int], dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(postgres_server()) if "postgres" in args.stores else None
        for store in args.stores:
            with contextlib.ExitStack() as servers:
                targets = {
                    size: servers.enter_context(serving(args.src.resolve(), store, size, postgres))
                    for size in args.sizes
                }
                for size, found in measure(targets, args.requests).items():
                    results[store, size] = found
    names = [name for name, _, _ in requests("")]
    header = ["ms per request", *(f"{store} {size:,}" for store, size in results)]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name in names:
        cells = [f"{results[key][name]:.2f}" for key in results]
        print(f"| {name.strip()} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
