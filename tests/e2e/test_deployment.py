"""The README's deployment walk-through, step by step: two instances on one PostgreSQL
database and one S3 bucket (moto's server stands in for S3), each with a data directory of
its own; one is killed mid-job, and every job ends rightly through the other."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aws import Moto, moto_or_skip, s3_keys, server_env
from tests.conftest import EXAMPLES, Server, pid_alive, wait_status, wait_until
from tests.postgres import Postgres

ENDED = {"successful", "failed", "dismissed"}
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with moto_or_skip(log_dir=tmp_path_factory.mktemp("moto")) as moto:
        yield moto


def echo(http: httpx.Client, text: str, pause: int) -> str:
    body = {"inputs": {"stringInput": text, "pause": pause}}
    response = http.post("/processes/echo/execution", json=body, headers=ASYNC)
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def processes_of(jobs: list[str]) -> set[int]:
    """The processes on this machine that run one of these jobs (other tests' are not
    counted: they may run at the same time)."""
    marks = {f"PROCESS_API_JOB_ID={job_id}".encode() for job_id in jobs}
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marks & set(environ.read_bytes().split(b"\0")):
                found.add(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_two_instances_on_postgresql_and_s3_one_killed_mid_job(
    postgres: Postgres, s3: Moto, tmp_path: Path
) -> None:
    bucket = "jobs"
    s3.client("s3").create_bucket(Bucket=bucket)
    url = postgres.new_database()
    env: dict[str, Any] = {
        **server_env(s3, bucket),
        "DB_URL": url,
        "INSTANCE_LEASE": "10",
        "SUBPROCESS_MAX_JOBS": "2",
    }
    a = Server(EXAMPLES, tmp_path / "data-a", env=env).start()
    b = Server(EXAMPLES, tmp_path / "data-b", env=env).start()
    try:
        with a.client() as on_a, b.client() as on_b:
            jobs = [echo(on_a, f"job {n}", 4) for n in range(1, 5)]
            # Two run (this machine runs two echo processes at once, whichever instance
            # claims them), two wait in the queue.
            wait_until(
                lambda: (
                    sum(on_b.get(f"/jobs/{j}").json()["status"] == "running" for j in jobs) == 2
                ),
                what="two jobs to run",
            )
            running = [j for j in jobs if on_b.get(f"/jobs/{j}").json()["status"] == "running"]
            waiting = [j for j in jobs if j not in running]
            assert [on_b.get(f"/jobs/{j}").json()["status"] for j in waiting] == ["accepted"] * 2
            a.stop(signal.SIGKILL)

            ended = {j: wait_status(on_b, j, ENDED, 40) for j in jobs}
            on_a_ran = [j for j in running if ended[j]["status"] == "failed"]
            for job_id in on_a_ran:  # a subprocess cannot outlive its instance
                assert "the server instance that ran the job stopped" in ended[job_id]["message"]
            for job_id in set(jobs) - set(on_a_ran):
                assert ended[job_id]["status"] == "successful", ended[job_id]
                text = on_b.get(f"/jobs/{job_id}/results").json()
                assert text == f"job {jobs.index(job_id) + 1}"
                logs = on_b.get(f"/jobs/{job_id}/logs").json()["logs"]
                assert any("echoing" in line["text"] for line in logs), logs
            assert set(waiting) <= set(jobs) - set(on_a_ran)  # the queue went on through B
            keys = s3_keys(s3, bucket)
            for job_id in set(jobs) - set(on_a_ran):
                assert f"logs/{job_id}.jsonl" in keys and f"metadata/{job_id}.json" in keys
            wait_until(lambda: not processes_of(jobs), 10, "no job process left running")

            # A comes back: it joins, runs nothing again and serves every job.
            a.start()
            time.sleep(1)
            for job_id, job in ended.items():
                assert on_a.get(f"/jobs/{job_id}").json()["status"] == job["status"]
            assert pid_alive(b.proc.pid)  # type: ignore[union-attr]
    finally:
        for server in (a, b):
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        postgres.drop_database(url)
