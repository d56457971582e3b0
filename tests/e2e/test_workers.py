"""`process-api --workers N`: a supervisor and N worker processes on one port and one job
store. Any worker answers for any job; a stop signal to the supervisor stops them all as
one server stops; a worker that dies is replaced and its jobs are taken over."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, pid_alive, wait_status, wait_until
from tests.images import busybox_image
from tests.postgres import Cluster, Postgres, own_cluster

#: prints the pid of its parent (the worker that runs it), then sleeps and says it again.
WHO_YML = """\
info: {id: who, version: '1', jobControlOptions: [sync-execute, async-execute, dismiss]}
host: {type: subprocess, command: [python3, who.py]}
inputs:
  - {id: seconds, schema: {type: number, minimum: 0}, minOccurs: 0}
outputs:
  - {id: worker, schema: {type: integer}}
"""
WHO_PY = """\
import json, os, sys, time
seconds = json.loads(sys.argv[-1]).get("seconds", 0)
message = f"pid {os.getpid()} worker {os.getppid()}"
print(json.dumps({"progress": 1, "message": message}), flush=True)
time.sleep(seconds)
print(json.dumps({"plugin_results": os.getppid()}))
"""
NAP_YML = """\
info: {id: nap, version: '1', jobControlOptions: [async-execute, dismiss]}
host: {type: docker}
container:
  image: %s
  command: [sh, -c, 'sleep 6; echo "{\\"plugin_results\\": \\"rested\\"}"']
inputs: []
outputs:
  - {id: result, schema: {type: string}}
"""
ASYNC = {"Prefer": "respond-async"}
ENDED = {"successful", "failed", "dismissed"}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "who-plugins"
    folder.mkdir()
    (folder / "who.yml").write_text(WHO_YML)
    (folder / "who.py").write_text(WHO_PY)
    return folder


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The job store of the test's server: an SQLite file in its data directory (named, so
    that TEST_SERVER_STORE=postgres leaves it on SQLite), or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield {"DB_PATH": str(tmp_path / "data" / "jobs.sqlite")}
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    url = postgres.new_database()
    yield {"DB_URL": url}
    postgres.drop_database(url)


def start(
    server_factory: Callable[..., Server], plugins: Path, env: dict[str, str] | None = None
) -> Server:
    # The lease is left long: a killed worker's jobs are taken over because its process is
    # gone, at once, never because a worker of a loaded machine renewed its lease late.
    # Room for every job `running_on_both` may start: the machine's budget of subprocess
    # jobs (4 per core by default) holds for both workers together.
    env = {"SUBPROCESS_MAX_JOBS": "40", **(env or {})}
    server: Server = server_factory(plugins, "--workers", "2", env=env)
    wait_until(lambda: len(workers_of(server)) == 2, 60, "both workers to run")
    wait_until(lambda: started(server) == 2, 60, "both workers to serve")
    return server


def started(server: Server) -> int:
    """How many workers have started serving."""
    return server.output().count("Application startup complete")


def workers_of(server: Server) -> set[int]:
    """The supervisor's worker processes (spawned interpreters) that still run."""
    assert server.proc is not None
    pid = server.proc.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    found = set()
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and pid_alive(child):
            found.add(child)
    return found


def fresh(server: Server, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A request on a connection of its own: each may reach either worker."""
    return httpx.request(method, server.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]


def submit(server: Server, seconds: float) -> str:
    response = fresh(
        server,
        "POST",
        "/processes/who/execution",
        json={"inputs": {"seconds": seconds}},
        headers=ASYNC,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def runner_of(http: httpx.Client, job_id: str) -> tuple[int, int]:
    """(the job's process, the worker that runs it), from the progress message it printed."""
    found = wait_until(
        lambda: re.search(r"pid (\d+) worker (\d+)", http.get(f"/jobs/{job_id}").json()["message"]),
        what=f"job {job_id} to say its pid",
    )
    return int(found.group(1)), int(found.group(2))


def running_on_both(server: Server, count: int) -> dict[str, tuple[int, int]]:
    """Long jobs until both workers run some (each submitted on a new connection)."""
    jobs: dict[str, tuple[int, int]] = {}
    with server.client() as http:
        for _ in range(40):
            job_id = submit(server, 120)
            jobs[job_id] = runner_of(http, job_id)
            if len(jobs) >= count and {w for _, w in jobs.values()} == workers_of(server):
                return jobs
    raise AssertionError(f"the jobs all ran on one worker: {jobs}")


def test_jobs_submitted_and_read_on_many_connections_are_answered_by_either_worker(
    server_factory: Callable[..., Server], plugins: Path, store_env: dict[str, str]
) -> None:
    server = start(server_factory, plugins, store_env)
    workers = workers_of(server)
    with ThreadPoolExecutor(16) as pool:
        job_ids = list(pool.map(lambda _: submit(server, 0), range(48)))

        def ended(job_id: str) -> dict:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                document = fresh(server, "GET", f"/jobs/{job_id}").json()
                if document["status"] in ENDED:
                    return document  # type: ignore[no-any-return]
                time.sleep(0.1)
            raise AssertionError(f"job {job_id} did not end: {document}")

        documents = list(pool.map(ended, job_ids))
        results = list(pool.map(lambda j: fresh(server, "GET", f"/jobs/{j}/results"), job_ids))
        listed = list(pool.map(lambda _: fresh(server, "GET", "/jobs?limit=100"), range(16)))
    failed = [d for d in documents if d["status"] != "successful"]
    assert not failed, failed
    ran_on = {r.json() for r in results}
    assert ran_on == workers, f"jobs ran on {ran_on}, the workers are {workers}"
    for response in listed:
        assert {job["jobID"] for job in response.json()["jobs"]} == set(job_ids)
    assert "database is locked" not in server.output()


def test_a_dismiss_reaching_either_worker_stops_the_running_job_within_2_s(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    server = start(server_factory, plugins)
    jobs = running_on_both(server, 8)
    for job_id, (pid, _) in jobs.items():
        response = fresh(server, "DELETE", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        asked = time.monotonic()
        wait_until(lambda p=pid: not pid_alive(p), 10, f"job {job_id}'s process to stop")  # type: ignore[misc]
        assert time.monotonic() - asked < 2.0
        assert fresh(server, "GET", f"/jobs/{job_id}").json()["status"] == "dismissed"
    # some dismisses reached the worker that did not run the job
    assert "dismissed by another server instance; stopping it" in server.output()


def test_sigterm_to_the_supervisor_stops_every_worker_and_records_their_jobs_dismissed(
    server_factory: Callable[..., Server], plugins: Path, store_env: dict[str, str]
) -> None:
    server = start(server_factory, plugins, store_env)
    workers = workers_of(server)
    jobs = running_on_both(server, 2)
    assert server.stop(signal.SIGTERM, timeout=60) == 0
    assert not [pid for pid in workers if pid_alive(pid)]
    assert not [pid for pid, _ in jobs.values() if pid_alive(pid)]
    again = server_factory(plugins, env=store_env)  # one process, same store
    with again.client() as http:
        for job_id in jobs:
            document = http.get(f"/jobs/{job_id}").json()
            assert document["status"] == "dismissed", document
            assert document["message"] == "the server shut down", document
    assert server.output().count("not starting") == 0


def test_a_killed_worker_is_replaced_and_its_jobs_are_taken_over(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    server = start(server_factory, plugins)
    jobs = running_on_both(server, 2)
    victim = next(worker for _, worker in jobs.values())
    survivor = (workers_of(server) - {victim}).pop()
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(workers_of(server) - {victim, survivor}) == 1,
        60,
        "the supervisor to start another worker",
    )
    wait_until(lambda: started(server) == 3, 60, "the new worker to serve")
    with server.client() as http:
        for job_id, (pid, worker) in jobs.items():
            if worker == victim:
                ended = wait_status(http, job_id, ENDED, 30)
                assert ended["status"] == "failed", ended
                assert "the server instance that ran the job stopped" in ended["message"]
                wait_until(lambda p=pid: not pid_alive(p), 10, "the orphaned process to stop")  # type: ignore[misc]
            else:
                assert http.get(f"/jobs/{job_id}").json()["status"] == "running"
                assert pid_alive(pid)
        # the new worker answers too: every request below is on a connection of its own
        for _ in range(8):
            assert fresh(server, "GET", "/jobs").status_code == 200
    assert f"worker process {victim} ended" in server.output()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of the test's own, which it may stop."""
    yield from own_cluster()


def test_a_worker_that_cannot_start_while_another_serves_is_tried_again_later(
    cluster: Cluster, server_factory: Callable[..., Server], plugins: Path
) -> None:
    """The job database away as a killed worker is replaced: its replacement cannot start,
    and the server goes on with the other worker instead of stopping; once the database is
    back, a new worker starts and serves."""
    server = start(server_factory, plugins, {"DB_URL": Postgres(cluster.url).new_database()})
    victim, survivor = sorted(workers_of(server))
    cluster.stop()
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: "could not start; trying again" in server.output(),
        60,
        "the replacement worker to fail",
    )
    assert server.proc is not None and server.proc.poll() is None, server.output()
    assert survivor in workers_of(server)
    assert fresh(server, "GET", "/health").status_code == 200
    cluster.start()
    wait_until(lambda: started(server) == 3, 90, "a new worker to serve")
    assert len(workers_of(server)) == 2
    assert fresh(server, "GET", "/ready").status_code == 200


def owner_pid(data_dir: Path, job_id: str) -> int | None:
    """The pid of the worker that owns the job, as the job store says."""
    with sqlite3.connect(data_dir / "jobs.sqlite") as db:
        row = db.execute(
            "SELECT i.pid FROM jobs j JOIN instances i ON i.id = j.owner WHERE j.id = ?",
            (job_id,),
        ).fetchone()
    return int(row[0]) if row else None


def test_a_container_of_a_killed_worker_is_followed_to_its_end_by_another(
    server_factory: Callable[..., Server], plugins: Path, tmp_path: Path, docker_engine: None
) -> None:
    (plugins / "nap.yml").write_text(NAP_YML % busybox_image())
    # On an SQLite file: the job's owner is read from it.
    server = start(server_factory, plugins, {"DB_PATH": str(tmp_path / "data" / "jobs.sqlite")})
    response = fresh(server, "POST", "/processes/nap/execution", json={"inputs": {}}, headers=ASYNC)
    assert response.status_code == 201, response.text
    job_id = response.json()["jobID"]
    with server.client() as http:
        wait_status(http, job_id, {"running"}, 30)
    victim = owner_pid(server.data_dir, job_id)
    assert victim in workers_of(server)
    os.kill(victim, signal.SIGKILL)
    with server.client() as http:  # a new connection: the killed worker's closed with it
        ended = wait_status(http, job_id, ENDED, 60)
        assert ended["status"] == "successful", ended
        assert http.get(f"/jobs/{job_id}/results").json() == "rested"
    assert owner_pid(server.data_dir, job_id) not in (None, victim)

    def containers() -> list[str]:
        return subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=process-api.job={job_id}"],
            capture_output=True,
            text=True,
        ).stdout.split()

    # removed once the job's end is recorded
    wait_until(lambda: not containers(), 20, "the job's container to be removed")


def metric_samples(server: Server) -> dict[tuple[str, frozenset], float]:
    response = fresh(server, "GET", "/metrics")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def test_metrics_add_up_the_jobs_of_both_workers(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    server = start(server_factory, plugins)
    jobs = running_on_both(server, 4)
    submitted = "process_api_jobs_submitted_total"
    who = {"process": "who", "host": "subprocess"}
    running = {"host": "subprocess"}

    def counted() -> dict:
        found = metric_samples(server)
        active = found.get(("process_api_jobs_running", frozenset(running.items())), 0)
        return found if active == len(jobs) else {}

    # every scrape, whichever worker answers it, counts the jobs of both
    for _ in range(6):
        found = wait_until(counted, 10, "the running jobs of both workers")
        assert found[submitted, frozenset(who.items())] == len(jobs)
    for job_id in jobs:
        assert fresh(server, "DELETE", f"/jobs/{job_id}").status_code == 200
    finished = "process_api_jobs_finished_total"
    dismissed = frozenset({**who, "status": "dismissed"}.items())
    wait_until(lambda: metric_samples(server).get((finished, dismissed)) == len(jobs), 10)
    idle = frozenset(running.items())
    wait_until(lambda: metric_samples(server).get(("process_api_jobs_running", idle), 0) == 0, 10)


def test_a_broken_process_file_stops_the_start_of_the_workers_with_one_message(
    plugins: Path, tmp_path: Path
) -> None:
    (plugins / "broken.yml").write_text("info: {id: broken}\nhost: {type: nowhere}\n")
    done = subprocess.run(
        [sys.executable, "-m", "process_api", "-d", str(plugins), "--workers", "3", "-p", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**_env(), "DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("not starting") == 1, done.stderr
    assert "broken.yml" in done.stderr
    assert "worker process" not in done.stderr


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DB_URL", "DB_PATH", "API_PORT")}


def test_one_worker_is_the_single_process_of_before(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    server: Server = server_factory(plugins, "--workers", "1")
    assert workers_of(server) == set()  # no supervisor: the server itself answers
    job_id = submit(server, 0)
    with server.client() as http:
        assert wait_status(http, job_id, ENDED)["status"] == "successful"
        worker = http.get(f"/jobs/{job_id}/results").json()
    assert server.proc is not None and worker == server.proc.pid
    found = metric_samples(server)
    assert (
        found[
            "process_api_jobs_submitted_total",
            frozenset({"process": "who", "host": "subprocess"}.items()),
        ]
        == 1
    )
    assert not (server.data_dir / "metrics").exists()  # no multi-process files


def test_the_queue_is_counted_once_whichever_worker_answers(
    server_factory: Callable[..., Server], plugins: Path
) -> None:
    """Every worker counts the whole queue (it is the store's): a scrape gives that count, not
    the sum over the workers."""
    server = start(server_factory, plugins, env={"SUBPROCESS_MAX_JOBS": "1"})
    jobs = [submit(server, 120) for _ in range(4)]
    queued = ("process_api_jobs_queued", frozenset({"host": "subprocess"}.items()))
    wait_until(lambda: metric_samples(server).get(queued) == 3, 20, "three jobs in the queue")
    time.sleep(1.5)  # both workers have written their count since
    for _ in range(6):
        assert metric_samples(server).get(queued) == 3
    for job_id in jobs:
        assert fresh(server, "DELETE", f"/jobs/{job_id}").status_code == 200
