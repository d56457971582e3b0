"""Requests per second of process-api against pygeoapi and a bare Starlette app, with wrk.

What it measures, for each number of stored jobs (10^3, 10^5, 10^6 by default):

- process-api (this repository's server, `python -m process_api` with PYTHONPATH at
  `--src`), on SQLite and on PostgreSQL, with `--workers 2` when the server has that
  flag (one process otherwise, said in the output);
- pygeoapi (its latest release from PyPI, in a Python 3.12 venv that the script makes
  under `--cache` when missing) under gunicorn with 2 workers, its hello-world process
  and its TinyDB job manager; up to `--pygeoapi-max` stored jobs, next to the first store;
- a bare Starlette app on uvicorn with as many processes as process-api, returning a
  fixed statusInfo document: the ceiling for a Python server on this machine.

Endpoints: GET /processes, GET /processes/hello-world, GET /jobs/{id}, GET /jobs?limit=10
(also with a status filter and a processID filter, process-api only), a synchronous
execution of a trivial process (process-api: a `subprocess` process running `sh -c
echo`; pygeoapi: its in-process hello-world) and asynchronous submissions (Prefer:
respond-async). The stores are filled through the API up to `--api-fill-max` jobs and
written directly above that (rows inserted into process-api's `jobs` table; pygeoapi's
TinyDB file written in its own format). Every job read is measured before the
executions, which add jobs. The servers take turns: each endpoint is measured on
pygeoapi, then on process-api, each after the servers have gone idle. Last, GET
/jobs/{id} is measured on one process of process-api against one of the bare app, at
the smallest size on each store: the share of the ceiling one worker reaches.

Prints one table of requests/s with the ratios process-api / pygeoapi and
process-api / bare ceiling. Everything listens on 127.0.0.1 only.

    .venv/bin/python bench/api.py           # the full run: 10^3, 10^5, 10^6 jobs
    .venv/bin/python bench/api.py --sizes 1000 --stores sqlite --duration 3 --api-fill-max 0

The second is a quick look (about a minute and a half on 2 cores): 10^3 jobs written
directly, SQLite only, 3 s per measure. Filling 10^3 jobs through the API takes a minute
or two per server, as each job runs. Progress goes to stderr, the table to stdout.

Needs wrk (Debian's package: installed with apt-get when missing), pyenv's Python 3.12
(`--python312`) for pygeoapi, and for the PostgreSQL store either DB_URL / TEST_DB_URL
(a user that may create databases) or Debian's postgresql (a throwaway cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import free_port
from tests.postgres import Cluster, Postgres, given_url

ROOT = Path(__file__).resolve().parents[1]
PYTHON312 = Path("/root/.pyenv/versions/3.12.1/bin/python")
PROCESS = "hello-world"
#: every tenth job is of this process, which fails: the job-list filters select them.
FAILING = "goodbye"
INPUTS = {"inputs": {"name": "bench"}}
JSON = {"Accept": "application/json", "Content-Type": "application/json"}
ASYNC = {**JSON, "Prefer": "respond-async"}
STARTED = time.monotonic()


def say(text: str) -> None:
    """Progress, on stderr: the table alone goes to stdout."""
    print(f"[{time.monotonic() - STARTED:5.0f} s] {text}", file=sys.stderr)


# --- servers --------------------------------------------------------------------------


@dataclass
class Server:
    """A server this script started, in a process group of its own (workers included)."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time of the server and its live descendants, and of the children they reaped."""
        total = 0
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue  # it has just ended
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
            pending.extend(int(child) for child in children)
        return total / os.sysconf("SC_CLK_TCK")


def start(
    name: str, command: list[str], env: dict[str, str], cwd: Path, port: int, ready: str
) -> Server:
    """Starts a server on `port` and waits until its path `ready` answers."""
    log = cwd / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=out, start_new_session=True
        )
    server = Server(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}; see {log}")
        try:
            if httpx.get(server.url + ready, headers=JSON, timeout=5).is_success:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise SystemExit(f"{name} did not start within 120 s; see {log}")


def settle(servers: list[Server], limit: float = 300.0) -> None:
    """Waits until the servers use under 5% of a core together: a backlog of jobs still
    running would otherwise slow the next measurement down."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(s.cpu_seconds() for s in servers)
        time.sleep(0.5)
        if sum(s.cpu_seconds() for s in servers) - before < 0.025:
            return
    say(f"(the servers were still busy after {limit:.0f} s)")


# --- process-api ----------------------------------------------------------------------


def process_file(process_id: str, command: str) -> str:
    """A process file (JSON is YAML) of a `subprocess` process running `sh -c command`;
    the inputs arrive as `$0`."""
    return json.dumps(
        {
            "info": {
                "id": process_id,
                "version": "1.0.0",
                "title": process_id,
                "jobControlOptions": ["sync-execute", "async-execute"],
            },
            "host": {"type": "subprocess", "command": ["sh", "-c", command]},
            "inputs": [{"id": "name", "schema": {"type": "string"}}],
            "outputs": [{"id": "name", "schema": {"type": "string"}}],
        },
        indent=2,
    )


def ours_env(src: Path, workdir: Path, db_url: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "LOG_LEVEL": "WARNING"}
    env["DATA_DIR"] = str(workdir / "data")
    for name in ("DB_URL", "DB_PATH", "S3_BUCKET", "WORKERS", "PLUGINS_DIR"):
        env.pop(name, None)
    if db_url is not None:
        env["DB_URL"] = db_url
    return env


def has_workers_flag(src: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "process_api", "--help"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    return "--workers" in done.stdout


def start_ours(src: Path, workdir: Path, db_url: str | None, workers: int) -> Server:
    plugins = workdir / "plugins"
    plugins.mkdir(exist_ok=True)
    echo = 'echo "{\\"plugin_results\\": $0}"'
    (plugins / f"{PROCESS}.yml").write_text(process_file(PROCESS, echo))
    (plugins / f"{FAILING}.yml").write_text(process_file(FAILING, "exit 1"))
    port = free_port()
    command = [sys.executable, "-m", "process_api", "-d", str(plugins), "-p", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    env = ours_env(src, workdir, db_url)
    return start("process-api", command, env, workdir, port, "/conformance")


def upgrade_database(src: Path, workdir: Path, db_url: str | None) -> None:
    """Makes the job tables as the server would, before rows are written into them."""
    command = [sys.executable, "-m", "process_api", "db", "upgrade"]
    env = ours_env(src, workdir, db_url)
    (workdir / "data").mkdir(exist_ok=True)
    subprocess.run(command, env=env, cwd=workdir, check=True, capture_output=True, timeout=300)


def job_id(n: int) -> str:
    """The id of the n-th job written directly: a UUID, made again from n."""
    return str(uuid.UUID(int=(0x5EED << 96) | n, version=4))


def job_rows(count: int) -> Iterator[dict[str, object]]:
    """Finished jobs, one every few milliseconds over the last hour, oldest first; every
    tenth is a failed job of FAILING."""
    now = datetime.now(UTC)
    step = timedelta(hours=1) / count
    for n in range(count):
        created = now - (count - n) * step
        failed = n % 10 == 0
        yield {
            "id": job_id(n),
            "process_id": FAILING if failed else PROCESS,
            "process_version": "1.0.0",
            "host_type": "subprocess",
            "mode": "async",
            "status": "failed" if failed else "successful",
            "message": "the process exited with code 1" if failed else "",
            "progress": None if failed else 100,
            "created": created,
            "started": created + timedelta(milliseconds=2),
            "finished": created + timedelta(milliseconds=20),
            "updated": created + timedelta(milliseconds=20),
            "inputs": {"name": f"job {n}"},
            "request": {},
            "results": None if failed else {"name": f"job {n}"},
            "handle": None,
            "submitter": None,
            "expired": False,
        }


def fill_ours_directly(database: str, count: int) -> str:
    """Inserts `count` finished jobs into the `jobs` table (as the database has it:
    columns added later keep their defaults); returns the id of the middle one."""
    if database.startswith("postgresql"):
        return asyncio.run(_fill_postgres(database, count))
    engine = sa.create_engine(database)
    try:
        with engine.begin() as connection:
            jobs = sa.Table("jobs", sa.MetaData(), autoload_with=connection)
            for batch in _batches(count):
                connection.execute(jobs.insert(), batch)
    finally:
        engine.dispose()
    return _middle(count)


async def _fill_postgres(database: str, count: int) -> str:
    """Through asyncpg (the server's driver), then VACUUM ANALYZE until every page is
    marked visible: the table as autovacuum soon leaves it after a bulk load."""
    engine = create_async_engine(database)
    try:
        async with engine.begin() as connection:
            jobs = await connection.run_sync(
                lambda sync: sa.Table("jobs", sa.MetaData(), autoload_with=sync)
            )
            for batch in _batches(count):
                await connection.execute(jobs.insert(), batch)
        visible = "SELECT relallvisible >= relpages FROM pg_class WHERE relname = 'jobs'"
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(5):
                await connection.execute(sa.text("VACUUM ANALYZE jobs"))
                if (await connection.execute(sa.text(visible))).scalar():
                    break
    finally:
        await engine.dispose()
    return _middle(count)


def _batches(count: int) -> Iterator[list[dict[str, object]]]:
    batch: list[dict[str, object]] = []
    for row in job_rows(count):
        batch.append(row)
        if len(batch) == 20_000:
            yield batch
            batch = []
    if batch:
        yield batch


def _middle(count: int) -> str:
    return job_id(count // 2)


# --- pygeoapi -------------------------------------------------------------------------


def pygeoapi_venv(cache: Path, python312: Path, upgrade: bool) -> Path:
    """The venv with pygeoapi and gunicorn, made (or upgraded) with pip when asked or missing."""
    venv = cache / "pygeoapi-venv"
    if (venv / "bin" / "gunicorn").exists() and (venv / "bin" / "pygeoapi").exists():
        if not upgrade:
            return venv
    else:
        if not python312.exists():
            raise SystemExit(f"no Python 3.12 at {python312}: give one with --python312")
        say(f"making {venv} with pygeoapi's latest release …")
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([str(python312), "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade"]
    done = subprocess.run([*pip, "pygeoapi", "gunicorn"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip could not install pygeoapi:\n{done.stdout}{done.stderr}")
    return venv


def source_version(src: Path) -> str:
    """The commit of the source tree, for the output's header."""
    command = ["git", "-C", str(src), "describe", "--always", "--dirty"]
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.strip() or "unknown commit"


def pygeoapi_version(venv: Path) -> str:
    command = [str(venv / "bin" / "python"), "-c", "import pygeoapi; print(pygeoapi.__version__)"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def pygeoapi_config(port: int, workdir: Path) -> dict[str, object]:
    url = f"http://127.0.0.1:{port}"
    return {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": url,
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 100},
            # Never fetched: the tiles of the HTML pages' map.
            "map": {"url": "http://127.0.0.1/{z}/{x}/{y}.png", "attribution": "none"},
            "manager": {
                "name": "TinyDB",
                "connection": str(workdir / "pygeoapi-jobs.db"),
                "output_dir": str(workdir / "pygeoapi-out"),
            },
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "bench",
                "keywords": ["bench"],
                "terms_of_service": url,
                "url": url,
            },
            "license": {"name": "none", "url": url},
            "provider": {"name": "bench", "url": url},
            "contact": {"name": "bench"},
        },
        "resources": {PROCESS: {"type": "process", "processor": {"name": "HelloWorld"}}},
    }


def start_pygeoapi(venv: Path, workdir: Path) -> Server:
    port = free_port()
    (workdir / "pygeoapi-out").mkdir(exist_ok=True)
    config = workdir / "pygeoapi-config.yml"
    config.write_text(json.dumps(pygeoapi_config(port, workdir), indent=2))  # JSON is YAML
    openapi = workdir / "pygeoapi-openapi.yml"
    env = {**os.environ, "PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    generate = [str(venv / "bin" / "pygeoapi"), "openapi", "generate", str(config)]
    generate += ["--output-file", str(openapi)]
    subprocess.run(generate, env=env, check=True, cwd=workdir, capture_output=True)
    gunicorn = [str(venv / "bin" / "gunicorn"), "--workers", "2"]
    command = [*gunicorn, "--bind", f"127.0.0.1:{port}", "pygeoapi.flask_app:APP"]
    return start("pygeoapi", command, env, workdir, port, "/conformance")


def fill_pygeoapi_directly(workdir: Path, count: int) -> str:
    """Writes pygeoapi's TinyDB file as its manager does (one document per job in the
    `_default` table, keyed by a counter); returns the id of the middle job."""
    now = datetime.now(UTC)
    step = timedelta(hours=1) / count
    documents = {}
    for n in range(count):
        created = now - (count - n) * step
        stamp = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        documents[str(n + 1)] = {
            "type": "process",
            "identifier": str(uuid.uuid1()),
            "process_id": PROCESS,
            "created": stamp,
            "started": stamp,
            "updated": stamp,
            "finished": stamp,
            "status": "successful",
            "location": None,  # no result file: only the job's status is read
            "mimetype": "application/json",
            "message": "Job complete",
            "progress": 100,
        }
    (workdir / "pygeoapi-jobs.db").write_text(json.dumps({"_default": documents}))
    return str(documents[str(count // 2 + 1)]["identifier"])


# --- bare ceiling ---------------------------------------------------------------------

BARE_APP = '''"""The ceiling: a fixed statusInfo document, nothing else."""
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

DOCUMENT = {
    "jobID": "5a5b8e04-2a5e-4bfb-9f39-7d2a0f1f6c77",
    "processID": "hello-world",
    "type": "process",
    "status": "successful",
    "message": "",
    "progress": 100,
    "created": "2026-01-01T00:00:00.000000Z",
    "started": "2026-01-01T00:00:00.002000Z",
    "finished": "2026-01-01T00:00:00.020000Z",
    "updated": "2026-01-01T00:00:00.020000Z",
    "links": [
        {"href": "http://127.0.0.1/jobs/5a5b8e04", "rel": "self", "type": "application/json"},
        {"href": "http://127.0.0.1/jobs/5a5b8e04/results", "rel": "results"},
    ],
}


async def status(request):
    return JSONResponse(DOCUMENT)


app = Starlette(routes=[Route("/jobs/{job_id}", status)])
'''


def start_bare(workdir: Path, workers: int) -> Server:
    (workdir / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(workdir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    return start("bare", command, dict(os.environ), workdir, port, "/jobs/x")


# --- filling through the API ----------------------------------------------------------


async def submit_jobs(url: str, count: int, failing_every: int | None) -> str:
    """Submits `count` async jobs, 16 at a time; returns the id of the middle one."""
    ids: list[str] = []
    numbers = iter(range(count))

    async def client(http: httpx.AsyncClient) -> None:
        for n in numbers:
            process = PROCESS
            if failing_every and n % failing_every == 0:
                process = FAILING
            response = await http.post(
                f"/processes/{process}/execution", json=INPUTS, headers=ASYNC
            )
            response.raise_for_status()
            ids.append(response.headers["location"].rstrip("/").rsplit("/", 1)[-1])

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(16)))
    return ids[len(ids) // 2]


# --- wrk ------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    body: str = ""
    ours_only: bool = False


def endpoints() -> list[Endpoint]:
    """The endpoints in the order they are measured: reads first, then what adds jobs.
    `{job}` stands for the id of a stored job."""
    process_path = f"/processes/{PROCESS}"
    execute = f"{process_path}/execution"
    body = json.dumps(INPUTS)
    return [
        Endpoint("GET /processes", "/processes"),
        Endpoint("GET /processes/{id}", process_path),
        Endpoint("GET /jobs/{id}", "/jobs/{job}"),
        Endpoint("GET /jobs?limit=10", "/jobs?limit=10"),
        Endpoint(
            "GET /jobs?limit=10&status=failed", "/jobs?limit=10&status=failed", ours_only=True
        ),
        Endpoint(
            f"GET /jobs?limit=10&processID={FAILING}",
            f"/jobs?limit=10&processID={FAILING}",
            ours_only=True,
        ),
        Endpoint("POST execute, sync", execute, "POST", dict(JSON), body),
        Endpoint("POST execute, async", execute, "POST", dict(ASYNC), body),
    ]


@dataclass
class Measure:
    rate: float
    #: what wrk saw go wrong (non-2xx answers, socket errors), empty when nothing did.
    errors: str = ""


def lua(endpoint: Endpoint) -> str:
    lines = [f'wrk.method = "{endpoint.method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in endpoint.headers.items()]
    if endpoint.body:
        lines.append(f"wrk.body = {json.dumps(endpoint.body)}")
    return "\n".join(lines) + "\n"


def wrk(url: str, endpoint: Endpoint, args: argparse.Namespace, workdir: Path) -> Measure:
    script = workdir / "request.lua"
    script.write_text(lua(endpoint))
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    command += ["--timeout", "30s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s*([\d.]+)", output)
    errors = []
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors.append(f"{found[1]} non-2xx")
    if found := re.search(r"Socket errors: (.*)", output):
        errors.append(f"socket errors {found[1]}")
    return Measure(float(rate[1]) if rate else 0.0, ", ".join(errors))


def check(url: str, endpoint: Endpoint) -> str:
    """One request before the measure: an error answer makes the rate meaningless."""
    response = httpx.request(
        endpoint.method, url, headers=endpoint.headers, content=endpoint.body, timeout=120
    )
    return "" if response.is_success else f"answers {response.status_code}: {response.text[:200]}"


# --- one block: a store size on one store ---------------------------------------------


@dataclass
class Row:
    endpoint: str
    size: int
    store: str
    ours: Measure | None = None
    pygeoapi: Measure | None = None
    bare: Measure | None = None


@dataclass
class Target:
    """A server ready to measure, and a job of its store for GET /jobs/{id}."""

    server: Server
    job: str


def measure_block(
    targets: dict[str, Target],
    bare: Server,
    size: int,
    store: str,
    args: argparse.Namespace,
    workdir: Path,
) -> list[Row]:
    everyone = [t.server for t in targets.values()] + [bare]
    settle(everyone)
    ceiling = wrk(bare.url + "/jobs/x", Endpoint("bare", "/jobs/x"), args, workdir)
    rows = [Row("ceiling: bare Starlette, GET /jobs/{id}", size, store, bare=ceiling)]
    for endpoint in endpoints():
        row = Row(endpoint.name, size, store)
        for name in ("pygeoapi", "ours"):
            if name not in targets or (endpoint.ours_only and name != "ours"):
                continue
            target = targets[name]
            url = target.server.url + endpoint.path.replace("{job}", target.job)
            problem = check(url, endpoint)
            settle(everyone)
            measured = wrk(url, endpoint, args, workdir)
            measured.errors = problem or measured.errors
            setattr(row, name, measured)
            say(f"{size} {store} {endpoint.name} {name}: {measured.rate:.0f}/s")
        row.bare = ceiling
        rows.append(row)
    return rows


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The PostgreSQL of DB_URL / TEST_DB_URL, or a throwaway cluster (tests/postgres.py)."""
    url = given_url()
    if url is not None:
        yield url
        return
    cluster = Cluster().create()
    try:
        yield cluster.url
    finally:
        cluster.remove()


@contextlib.contextmanager
def ours_on(
    store: str,
    size: int,
    workdir: Path,
    args: argparse.Namespace,
    postgres: str | None,
    workers: int | None = None,
) -> Iterator[Target]:
    """process-api on a store filled with `size` jobs (through the API, or directly), with
    `workers` processes (by default as many as the other servers)."""
    database_url = None
    if store == "postgres":
        assert postgres is not None
        database_url = Postgres(postgres).new_database()
    try:
        directly = size > args.api_fill_max
        if directly:
            upgrade_database(args.src, workdir, database_url)
            if database_url:
                database = sa.make_url(database_url).set(drivername="postgresql+asyncpg")
            else:
                database = sa.make_url(f"sqlite:///{workdir / 'data' / 'jobs.sqlite'}")
            say(f"writing {size} jobs into process-api's {store} store …")
            job = fill_ours_directly(database.render_as_string(hide_password=False), size)
        server = start_ours(args.src, workdir, database_url, workers or args.ours_workers)
        try:
            if not directly:
                say(f"submitting {size} jobs to process-api …")
                job = asyncio.run(submit_jobs(server.url, size, failing_every=10))
                settle([server])
            yield Target(server, job)
        finally:
            server.stop()
    finally:
        if database_url is not None:
            Postgres(str(postgres)).drop_database(database_url)


@contextlib.contextmanager
def pygeoapi_on(size: int, workdir: Path, args: argparse.Namespace) -> Iterator[Target]:
    if size > args.api_fill_max:
        say(f"writing {size} jobs into pygeoapi's TinyDB file …")
        job = fill_pygeoapi_directly(workdir, size)
    server = start_pygeoapi(args.venv, workdir)
    try:
        if size <= args.api_fill_max:
            say(f"submitting {size} jobs to pygeoapi …")
            job = asyncio.run(submit_jobs(server.url, size, failing_every=None))
            settle([server])
        yield Target(server, job)
    finally:
        server.stop()


def run_block(
    size: int, store: str, bare: Server, args: argparse.Namespace, postgres: str | None
) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{store}-{size}-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            targets = {}
            if store == args.stores[0] and size <= args.pygeoapi_max:
                pygeoapi_dir = workdir / "pygeoapi"
                pygeoapi_dir.mkdir()
                targets["pygeoapi"] = stack.enter_context(pygeoapi_on(size, pygeoapi_dir, args))
            ours_dir = workdir / "ours"
            ours_dir.mkdir()
            targets["ours"] = stack.enter_context(ours_on(store, size, ours_dir, args, postgres))
            return measure_block(targets, bare, size, store, args, workdir)


def one_process_block(
    size: int, store: str, args: argparse.Namespace, postgres: str | None
) -> list[Row]:
    """GET /jobs/{id} on one process of process-api and one of the bare app: what one
    worker achieves of the ceiling, without two workers and wrk sharing the cores."""
    endpoint = next(e for e in endpoints() if e.name == "GET /jobs/{id}")
    with tempfile.TemporaryDirectory(prefix=f"bench-{store}-{size}-one-") as tmp:
        workdir = Path(tmp)
        (workdir / "ours").mkdir()
        bare = start_bare(workdir, 1)
        try:
            with ours_on(store, size, workdir / "ours", args, postgres, workers=1) as target:
                settle([target.server, bare])
                ceiling = wrk(bare.url + "/jobs/x", Endpoint("bare", "/jobs/x"), args, workdir)
                url = target.server.url + endpoint.path.replace("{job}", target.job)
                problem = check(url, endpoint)
                settle([target.server, bare])
                ours = wrk(url, endpoint, args, workdir)
                ours.errors = problem or ours.errors
        finally:
            bare.stop()
    say(f"{size} {store} one process: {ours.rate:.0f}/s, bare {ceiling.rate:.0f}/s")
    return [Row("GET /jobs/{id}, one process each", size, store, ours=ours, bare=ceiling)]


# --- the table ------------------------------------------------------------------------


def cell(measure: Measure | None, notes: list[str]) -> str:
    if measure is None:
        return "-"
    if measure.errors:
        notes.append(measure.errors)
        return f"{measure.rate:,.0f} [{len(notes)}]"
    return f"{measure.rate:,.0f}"


def ratio(ours: Measure | None, other: Measure | None) -> str:
    if ours is None or other is None or other.rate == 0:
        return "-"
    return f"{ours.rate / other.rate:.2f}"


def print_table(rows: list[Row]) -> None:
    notes: list[str] = []
    header = ("endpoint", "jobs", "store", "process-api", "pygeoapi", "bare")
    header += ("ours/pygeoapi", "ours/bare")
    lines = []
    names = list(dict.fromkeys(row.endpoint for row in rows))
    stores = list(dict.fromkeys(row.store for row in rows))

    def place(row: Row) -> tuple[int, int, int]:
        return names.index(row.endpoint), row.size, stores.index(row.store)

    for row in sorted(rows, key=place):
        where = (row.endpoint, f"{row.size:,}", row.store)
        if row.ours is None:  # the ceiling's own row
            lines.append((*where, "", "", cell(row.bare, notes), "", ""))
            continue
        rates = (cell(row.ours, notes), cell(row.pygeoapi, notes), "")
        lines.append((*where, *rates, ratio(row.ours, row.pygeoapi), ratio(row.ours, row.bare)))
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for n, line in enumerate([header, *lines]):
        cells = [
            text.ljust(width) if i < 3 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for n, note in enumerate(notes, 1):
        print(f"[{n}] {note}")


# --- main -----------------------------------------------------------------------------


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    say("installing wrk with apt-get …")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=sizes,
        default=[1000, 100_000, 1_000_000],
        help="numbers of stored jobs, e.g. 1e3,1e5,1e6 (default)",
    )
    parser.add_argument(
        "--stores",
        type=lambda t: t.split(","),
        default=["sqlite", "postgres"],
        help="process-api's job stores: sqlite,postgres (default)",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--api-fill-max",
        type=int,
        default=1000,
        help="fill through the API up to this many jobs, directly above",
    )
    parser.add_argument(
        "--pygeoapi-max",
        type=int,
        default=100_000,
        help="measure pygeoapi up to this many stored jobs",
    )
    parser.add_argument(
        "--src",
        type=Path,
        default=ROOT / "src",
        help="process-api's source tree (default: this repository's)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "process-api-bench",
        help="where pygeoapi's venv is kept",
    )
    parser.add_argument(
        "--python312",
        type=Path,
        default=PYTHON312,
        help="the Python 3.12 that pygeoapi's venv is made with",
    )
    parser.add_argument(
        "--upgrade-pygeoapi",
        action="store_true",
        help="install pygeoapi's latest release into the venv again",
    )
    args = parser.parse_args()
    unknown = set(args.stores) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown store(s) {sorted(unknown)}: use sqlite, postgres")
    if not (1 <= args.duration <= 600 and 1 <= args.connections <= 1024):
        parser.error("--duration must be 1-600 s and --connections 1-1024")
    if any(not 1 <= size <= 10_000_000 for size in args.sizes):
        parser.error("each size must be between 1 and 10^7")
    args.src = args.src.resolve()
    return args


def main() -> int:
    args = parse_args()
    ensure_wrk()
    args.venv = pygeoapi_venv(args.cache, args.python312, args.upgrade_pygeoapi)
    args.ours_workers = 2 if has_workers_flag(args.src) else 1
    version = source_version(args.src)
    print(f"process-api: {args.src} ({version}), {args.ours_workers} process(es)", end="")
    if args.ours_workers == 1:
        print(" (its `process-api --help` lists no --workers: one process only)", end="")
    print(f"\npygeoapi {pygeoapi_version(args.venv)}: gunicorn, 2 workers, TinyDB manager")
    print(f"bare Starlette on uvicorn: {args.ours_workers} process(es)")
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f} at the start"
    )
    rows: list[Row] = []
    with contextlib.ExitStack() as stack:
        postgres = None
        if "postgres" in args.stores:
            postgres = stack.enter_context(postgres_server())
        bare_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-bare-")))
        bare = start_bare(bare_dir, args.ours_workers)
        stack.callback(bare.stop)
        for size in args.sizes:
            for store in args.stores:
                say(f"{size} jobs, {store} store")
                rows += run_block(size, store, bare, args, postgres)
        bare.stop()
        for store in args.stores:
            rows += one_process_block(args.sizes[0], store, args, postgres)
    print(f"load average {os.getloadavg()[0]:.2f} at the end\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
