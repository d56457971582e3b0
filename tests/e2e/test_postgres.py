"""The server on a PostgreSQL job database (DB_URL): jobs, the job list, dismiss, restarts,
`process-api db upgrade`, and the database going away and coming back while the server runs.

The module's server runs on a database of its own on the session's PostgreSQL; the tests
that stop PostgreSQL use a cluster of their own. DB_URL carries a password in every test
(the test cluster trusts local connections and ignores it), so that the tests can check it
is shown nowhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import EXAMPLES, SCRUBBED, Server, wait_status, wait_until
from tests.e2e.test_api import rels
from tests.e2e.test_lifecycle import (
    ASYNC,
    add_sleeper,
    assert_exception,
    assert_gone,
    kill_leftovers,
    read_pids,
    start_sleeper,
)
from tests.ogc import assert_valid
from tests.postgres import Cluster, Postgres, fetch, own_cluster
from tests.unit.test_migrations import HEAD

COMMAND = [sys.executable, "-m", "process_api"]
#: the password in DB_URL, unless TEST_DB_URL brings its own.
PASSWORD = f"pw-{uuid.uuid4().hex}"


def with_password(url: str) -> tuple[str, str]:
    """The URL with a password (its own, or PASSWORD), and that password."""
    parsed = sa.make_url(url)
    if not parsed.password:
        parsed = parsed.set(password=PASSWORD)
    return parsed.render_as_string(hide_password=False), str(parsed.password)


@pytest.fixture(scope="module")
def database(postgres: Postgres) -> Iterator[tuple[str, str]]:
    """The module's database: its URL with a password, and the password."""
    url = postgres.new_database()
    yield with_password(url)
    postgres.drop_database(url)


@pytest.fixture(scope="module")
def plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugins") / "plugins"
    shutil.copytree(EXAMPLES, target)
    return add_sleeper(target)


@pytest.fixture(scope="module")
def server(
    database: tuple[str, str], plugins: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url, _ = database
    server = Server(plugins, tmp_path_factory.mktemp("data"), env={"DB_URL": url}).start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def job_of(response: httpx.Response) -> str:
    return response.headers["link"].split("/jobs/")[1].split(">")[0]


def ids(document: dict[str, Any]) -> list[str]:
    return [job["jobID"] for job in document["jobs"]]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- jobs and the job list -----------------------------------------------------------


def test_sync_and_async_jobs_are_recorded_in_postgresql(
    http: httpx.Client, server: Server, database: tuple[str, str]
) -> None:
    response = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "héllo"}})
    assert response.status_code == 200, response.text
    assert response.json() == "héllo"
    sync_id = job_of(response)

    response = http.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "later"}}, headers=ASYNC
    )
    assert response.status_code == 201, response.text
    async_id = response.json()["jobID"]
    status = wait_status(http, async_id, {"successful", "failed"})
    assert status["status"] == "successful", status
    assert_valid("statusInfo", status)
    assert http.get(f"/jobs/{async_id}/results").json() == "later"

    # the records are in PostgreSQL, with their times and JSON as they were given
    url, _ = database
    rows = fetch(url, f"SELECT * FROM jobs WHERE id IN ('{sync_id}', '{async_id}')")
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {sync_id, async_id}
    assert by_id[async_id]["mode"] == "async" and by_id[sync_id]["mode"] == "sync"
    assert by_id[async_id]["finished"].tzinfo is not None
    assert not (server.data_dir / "jobs.sqlite").exists()


def test_job_list_filters_count_and_pages(http: httpx.Client) -> None:
    since = iso(datetime.now(UTC))
    echoes = [
        job_of(http.post("/processes/echo/execution", json={"inputs": {"stringInput": str(n)}}))
        for n in range(5)
    ]
    http.post("/processes/fail/execution", json={"inputs": {}})
    window = {"datetime": f"{since}/..", "processID": "echo"}

    first = http.get("/jobs", params={**window, "limit": 2}).json()
    assert_valid("jobList", first)
    assert first["numberMatched"] == 5
    assert ids(first) == echoes[:2:-1]
    seen, page = ids(first), first
    while "next" in rels(page):
        page = http.get(rels(page)["next"]["href"]).json()
        seen += ids(page)
    assert seen == echoes[::-1]
    second = http.get(rels(first)["next"]["href"]).json()
    assert ids(http.get(rels(second)["prev"]["href"]).json()) == ids(first)

    failed = http.get("/jobs", params={"datetime": f"{since}/..", "status": "failed"}).json()
    assert [job["processID"] for job in failed["jobs"]] == ["fail"]
    assert failed["numberMatched"] == 1
    both = http.get(
        "/jobs", params={"datetime": f"{since}/..", "processID": ["echo", "fail"], "limit": 100}
    ).json()
    assert both["numberMatched"] == 6
    # durations are computed by the database: every one of these jobs took under a minute
    quick = {"datetime": f"{since}/..", "maxDuration": 60, "limit": 100}
    assert http.get("/jobs", params=quick).json()["numberMatched"] == 6
    # a filter value PostgreSQL text cannot hold matches nothing, and is no error
    odd = http.get("/jobs", params={"processID": "echo\x00"})
    assert odd.status_code == 200, odd.text
    assert odd.json()["numberMatched"] == 0
    assert http.get("/jobs/x%00y").status_code == 404


def test_dismiss_stops_a_running_job(http: httpx.Client, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids.json"
    job_id = start_sleeper(http, pidfile)
    pids = read_pids(pidfile)
    try:
        response = http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dismissed"
        assert_gone(pids)
        assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
        listed = http.get("/jobs", params={"processID": "sleeper", "status": "dismissed"}).json()
        assert job_id in ids(listed)
    finally:
        kill_leftovers(pids)


def test_a_restarted_server_keeps_the_job_list_and_settles_its_running_jobs(
    postgres: Postgres, plugins: Path, tmp_path: Path
) -> None:
    url, _ = with_password(postgres.new_database())
    try:
        first = Server(plugins, tmp_path / "data", env={"DB_URL": url}).start()
        pidfile = tmp_path / "pids.json"
        with first.client() as http:
            done = job_of(
                http.post("/processes/echo/execution", json={"inputs": {"stringInput": "kept"}})
            )
            running = start_sleeper(http, pidfile)
        pids = read_pids(pidfile)
        try:
            assert first.stop(signal.SIGKILL) == -signal.SIGKILL
            # a new data directory: everything the job list needs is in the database
            second = Server(plugins, tmp_path / "other", env={"DB_URL": url}).start()
            with second.client() as http:
                listed = http.get("/jobs").json()
                assert listed["numberMatched"] == 2
                assert set(ids(listed)) == {done, running}
                assert http.get(f"/jobs/{done}").json()["status"] == "successful"
                status = http.get(f"/jobs/{running}").json()
                assert status["status"] == "failed" and "restarted" in status["message"]
                assert_gone(pids)
            second.stop()
        finally:
            kill_leftovers(pids)
    finally:
        postgres.drop_database(url)


# -- the database's URL, its password, and its schema ------------------------------------


def test_the_password_of_db_url_is_shown_nowhere(
    http: httpx.Client, server: Server, database: tuple[str, str]
) -> None:
    _, password = database
    job_id = job_of(http.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}}))
    for path in ("/ready", "/jobs", f"/jobs/{job_id}", "/jobs?f=html", "/"):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text)
        assert password not in response.text, path
    output = server.output()
    assert "job database: postgresql+" in output and ":***@" in output  # where, masked
    assert password not in output


def upgrade(tmp_path: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["DATA_DIR"] = str(tmp_path / "data")
    if url is not None:
        env["DB_URL"] = url
    return subprocess.run(
        [*COMMAND, "db", "upgrade", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_db_upgrade_builds_the_schema_once_and_names_the_database_without_its_password(
    postgres: Postgres, tmp_path: Path
) -> None:
    url, password = with_password(postgres.new_database())
    try:
        made = upgrade(tmp_path, url=url)
        assert made.returncode == 0, made.stderr
        assert "up to date" in made.stdout and ":***@" in made.stdout
        assert "Running upgrade" in made.stderr and HEAD in made.stderr
        assert fetch(url, "SELECT version_num FROM alembic_version") == [{"version_num": HEAD}]
        again = upgrade(tmp_path, url=url)
        assert again.returncode == 0, again.stderr
        assert "Running upgrade" not in again.stderr
        for result in (made, again):
            assert password not in result.stdout + result.stderr
    finally:
        postgres.drop_database(url)


def test_db_upgrade_of_an_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "jobs.sqlite"
    result = upgrade(tmp_path, "--db-path", str(path))
    assert result.returncode == 0, result.stderr
    assert str(path) in result.stdout
    assert path.is_file()


def test_db_upgrade_that_cannot_reach_the_database_says_so(
    postgres: Postgres, tmp_path: Path
) -> None:
    missing, password = with_password(postgres.database_url("no_such_database"))
    result = upgrade(tmp_path, url=missing)
    assert result.returncode == 4
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr and password not in result.stderr


def test_a_db_url_that_is_not_postgresql_is_refused_without_repeating_it(
    tmp_path: Path,
) -> None:
    result = upgrade(tmp_path, url=f"mysql://user:{PASSWORD}@127.0.0.1/jobs")
    assert result.returncode == 3
    assert "DB_URL" in result.stderr and "postgresql+asyncpg://" in result.stderr
    assert PASSWORD not in result.stderr


# -- PostgreSQL stopped and started while the server runs ----------------------------------


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A cluster of the test's own, which it may stop."""
    yield from own_cluster()


def test_ready_says_503_while_postgresql_is_stopped_and_the_server_recovers_without_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    url, password = with_password(Postgres(cluster.url).new_database())
    server = Server(EXAMPLES, tmp_path / "data", env={"DB_URL": url}).start()
    try:
        with server.client() as http:
            assert http.get("/ready").status_code == 200
            before = job_of(
                http.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}})
            )
            # a status read holds a connection of its own (postgres_reads), which the stop breaks
            assert http.get(f"/jobs/{before}").json()["status"] == "successful"
            cluster.stop()

            response = http.get("/ready")
            assert response.status_code == 503, response.text
            problems = response.json()["problems"]
            assert any("job database" in problem for problem in problems), problems
            # requests that need the database say why, as OGC exceptions
            body = assert_exception(http.get("/jobs"), 503, "")
            assert "job database" in body["detail"]
            assert (
                "job database" in assert_exception(http.get(f"/jobs/{before}"), 503, "")["detail"]
            )
            refused = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "y"}})
            assert refused.status_code == 503, refused.text
            assert http.get("/health").status_code == 200

            cluster.start()
            wait_until(lambda: http.get("/ready").status_code == 200, 30, "/ready to be 200")
            # the first status read after the restart already answers
            status = http.get(f"/jobs/{before}")
            assert status.status_code == 200, status.text
            assert status.json()["status"] == "successful"
            again = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "z"}})
            assert again.status_code == 200, again.text
            # restarted between two reads: the second leaves the connection the restart closed,
            # and reads on a new one (a connection dropped unseen: test_postgres_store.py)
            assert http.get(f"/jobs/{before}").status_code == 200
            cluster.stop()
            cluster.start()
            status = http.get(f"/jobs/{before}")
            assert status.status_code == 200, status.text
            assert server.proc is not None and server.proc.poll() is None
        assert password not in server.output()
    finally:
        server.stop()
