"""The queue shared by instances on one PostgreSQL database: a job accepted by a full instance
runs on one with room, in the order jobs came, each once. The second instance runs as
another machine would (a name of its own: `unshare --uts`, which needs root, as the Docker
tests do) with a data directory of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, wait_status, wait_until
from tests.e2e.test_instances import LEASE, sleep_on
from tests.postgres import Postgres

ENDED = {"successful", "failed", "dismissed"}


@pytest.fixture
def two_machines(
    postgres: Postgres, sleeper_plugins: Path, tmp_path: Path
) -> Iterator[list[Server]]:
    """Instances A (this machine) and B ("machine-b"), each running one subprocess job at once."""
    url = postgres.new_database()
    env = {**LEASE, "DB_URL": url, "SUBPROCESS_MAX_JOBS": "1"}
    a = Server(sleeper_plugins, tmp_path / "a", env=env)
    b = Server(sleeper_plugins, tmp_path / "b", env=env)
    b.prefix = ["unshare", "--uts", "sh", "-c", 'hostname machine-b && exec "$@"', "sh"]
    servers = [a.start(), b.start()]
    yield servers
    for server in servers:
        server.stop()
    postgres.drop_database(url)


def ran_on(http: httpx.Client, job_id: str) -> str:
    found = wait_until(
        lambda: " on " in (message := http.get(f"/jobs/{job_id}").json()["message"]) and message,
        what="the process to say where it runs",
    )
    return str(found).rsplit(" on ", 1)[1]


def test_jobs_accepted_by_a_full_instance_run_on_another_in_order(
    two_machines: list[Server],
) -> None:
    a, _ = two_machines
    with a.client() as on_a:
        # A wakes its queue as it accepts, but B's poll may come first: either may take it
        here = sleep_on(on_a, 30)
        first_machine = ran_on(on_a, here)
        second, third = sleep_on(on_a, 30), sleep_on(on_a, 0)
        # one is full: the other, with room, claims the oldest waiting job, and only that one
        assert ran_on(on_a, second) != first_machine
        time.sleep(1.5)  # a few rounds of claims on both
        assert on_a.get(f"/jobs/{third}").json()["status"] == "accepted"
        assert on_a.delete(f"/jobs/{second}").json()["status"] == "dismissed"
        done = wait_status(on_a, third, ENDED, 20)
        assert done["status"] == "successful", done
        assert on_a.get(f"/jobs/{here}").json()["status"] == "running"
        assert on_a.delete(f"/jobs/{here}").json()["status"] == "dismissed"


def test_an_instance_stopping_leaves_the_queued_jobs_it_accepted_to_the_others(
    two_machines: list[Server],
) -> None:
    a, b = two_machines
    with a.client() as on_a, b.client() as on_b:
        # one job on each machine, whichever claimed which first
        jobs = {ran_on(on_a, job_id): job_id for job_id in (sleep_on(on_a, 30), sleep_on(on_a, 30))}
        assert len(jobs) == 2 and "machine-b" in jobs, jobs
        on_b_job = jobs.pop("machine-b")
        (on_a_job,) = jobs.values()
        waiting = sleep_on(on_b, 0)  # both are full: it waits in the queue
        assert b.stop() == 0  # B's running job is dismissed; the queued one is not B's
        assert on_a.get(f"/jobs/{on_b_job}").json()["status"] == "dismissed"
        assert on_a.get(f"/jobs/{waiting}").json()["status"] == "accepted"
        assert on_a.delete(f"/jobs/{on_a_job}").json()["status"] == "dismissed"
        done = wait_status(on_a, waiting, ENDED, 20)
        assert done["status"] == "successful", done
