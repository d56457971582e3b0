"""Two server instances on one job store (here one SQLite file and one data directory on
one machine): a dismiss received by either stops the job where it runs, and the jobs of an
instance that stops are taken over by the other, each ending once and rightly."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import Server, pid_alive, wait_status, wait_until

SLEEPER_YML = """\
info: {id: sleeper, version: '1'}
host: {type: subprocess, command: [python3, sleeper.py]}
inputs:
  - {id: seconds, schema: {type: number, minimum: 0}, minOccurs: 0}
outputs:
  - {id: slept, schema: {type: number}}
"""
SLEEPER_PY = """\
import json, os, socket, sys, time
seconds = json.loads(sys.argv[-1]).get("seconds", 60)
message = f"pid {os.getpid()} on {socket.gethostname()}"
print(json.dumps({"progress": 1, "message": message}), flush=True)
time.sleep(seconds)
print(json.dumps({"plugin_results": seconds}))
"""
#: appends the job's id to runs.txt beside it: how many times each job ran.
RECORDER_YML = """\
info: {id: recorder, version: '1'}
host: {type: subprocess, command: [python3, recorder.py]}
outputs:
  - {id: runs, schema: {type: number}}
"""
RECORDER_PY = """\
import json, os, time
with open("runs.txt", "a") as runs:
    runs.write(os.environ["PROCESS_API_JOB_ID"] + "\\n")
time.sleep(4)
print(json.dumps({"plugin_results": 1}))
"""
#: short, so that the tests need not wait long for a takeover.
LEASE = {"INSTANCE_LEASE": "3"}
ASYNC = {"Prefer": "respond-async"}
#: what a job's status says of its end.
STATE = ("status", "message", "finished", "updated")


def sleep_on(http: httpx.Client, seconds: float) -> str:
    response = http.post(
        "/processes/sleeper/execution", json={"inputs": {"seconds": seconds}}, headers=ASYNC
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def pid_of(http: httpx.Client, job_id: str) -> int:
    status = wait_status(http, job_id, {"running"})
    found = wait_until(
        lambda: re.search(r"pid (\d+)", http.get(f"/jobs/{job_id}").json()["message"]),
        what="the process to say its pid",
    )
    assert status["status"] == "running"
    return int(found.group(1))


def test_a_dismiss_sent_to_another_instance_stops_the_job_where_it_runs(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    a = server_factory(sleeper_plugins, env=LEASE)
    with a.client() as on_a:
        job_id = sleep_on(on_a, 60)
        pid = pid_of(on_a, job_id)
    b = server_factory(sleeper_plugins, env=LEASE)  # now, or it could claim the job first
    with a.client() as on_a, b.client() as on_b:
        response = on_b.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dismissed"
        wait_until(lambda: not pid_alive(pid), 4, "the owner to stop the job's process")
        assert on_a.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
        # its log was kept by the instance that ran it, and is served by both
        assert on_b.get(f"/jobs/{job_id}/logs").status_code == 200


def test_the_jobs_of_a_killed_instance_are_taken_over_by_another(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    # One job at a time on this machine, whichever instance runs it.
    one = {**LEASE, "SUBPROCESS_MAX_JOBS": "1"}
    a = server_factory(sleeper_plugins, env=one)
    with a.client() as on_a:
        running = sleep_on(on_a, 60)
        pid = pid_of(on_a, running)
    b = server_factory(sleeper_plugins, env=one)  # now, or it could claim the job first
    with a.client() as on_a, b.client() as on_b:
        queued = sleep_on(on_a, 0)  # waits for the one job this machine may run at once
        time.sleep(1)  # a few of B's claims: it has no room either
        assert on_b.get(f"/jobs/{queued}").json()["status"] == "accepted"
        a.stop(signal.SIGKILL)
        # B sees A's process gone (same machine) without waiting for the lease
        ended = wait_status(on_b, running, {"failed", "successful", "dismissed"}, 15)
        assert ended["status"] == "failed", ended
        assert "the server instance that ran the job stopped" in ended["message"], ended
        assert not pid_alive(pid)  # the orphaned process was stopped, not left running
        done = wait_status(on_b, queued, {"failed", "successful", "dismissed"}, 15)
        assert done["status"] == "successful", done
        # it ran once: one process said its pid
        logs = on_b.get(f"/jobs/{queued}/logs").json()["logs"]
        assert len([line for line in logs if "pid " in line["text"]]) == 1, logs


def test_a_stopping_instance_hands_its_queued_jobs_to_another(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    one = {**LEASE, "SUBPROCESS_MAX_JOBS": "1"}
    a = server_factory(sleeper_plugins, env=one)
    b = server_factory(sleeper_plugins, env=one)
    with a.client() as on_a, b.client() as on_b:
        running = sleep_on(on_a, 60)
        pid_of(on_a, running)
        queued = sleep_on(on_a, 0)
        assert a.stop() == 0  # SIGTERM: its running job is dismissed, the queued one handed on
        assert on_b.get(f"/jobs/{running}").json()["status"] == "dismissed"
        done = wait_status(on_b, queued, {"failed", "successful", "dismissed"}, 15)
        assert done["status"] == "successful", done


def test_an_instance_starting_leaves_the_jobs_of_a_live_one_alone(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    a = server_factory(sleeper_plugins, env=LEASE)
    with a.client() as on_a:
        job_id = sleep_on(on_a, 60)
        pid = pid_of(on_a, job_id)
        b = server_factory(
            sleeper_plugins, env=LEASE
        )  # takes over only what stopped instances left
        with b.client() as on_b:
            wait_until(lambda: on_b.get("/ready").status_code == 200, what="B to be ready")
            time.sleep(2)  # a few of B's takeover rounds
            assert on_b.get(f"/jobs/{job_id}").json()["status"] == "running"
            assert pid_alive(pid)
        assert on_a.delete(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_the_log_of_a_job_running_on_another_instance_is_served_as_it_grows(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    """Instances on one machine and one data directory: any of them serves what the job
    has printed so far, not only the one running it."""
    a = server_factory(sleeper_plugins, env=LEASE)
    with a.client() as on_a:
        job_id = sleep_on(on_a, 60)
        pid = pid_of(on_a, job_id)
    b = server_factory(sleeper_plugins, env=LEASE)  # now, or it could claim the job first
    with a.client() as on_a, b.client() as on_b:
        response = wait_until(
            lambda: (r := on_b.get(f"/jobs/{job_id}/logs")).json()["logs"] and r,
            10,
            "B to serve the lines the job printed",
        )
        assert response.status_code == 200, response.text
        assert f"pid {pid}" in response.json()["logs"][0]["text"], response.json()
        assert on_a.delete(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_the_log_of_a_job_running_on_another_machine_answers_until_it_ends(
    server_factory: Callable[..., Server], sleeper_plugins: Path, tmp_path: Path
) -> None:
    """An instance with a data directory of its own (as on another machine) cannot read
    the running job's log: it answers an empty page, not an error, and the whole log
    once the job has ended."""
    database = {"DB_PATH": str(tmp_path / "shared.db"), **LEASE}
    a = server_factory(sleeper_plugins, env=database)
    with a.client() as on_a:
        job_id = sleep_on(on_a, 6)
        pid_of(on_a, job_id)  # running on A before B starts: B could claim it otherwise
    b = Server(sleeper_plugins, tmp_path / "elsewhere", env=database).start()
    try:
        with a.client() as on_a, b.client() as on_b:
            response = on_b.get(f"/jobs/{job_id}/logs")
            assert response.status_code == 200, response.text
            assert response.json()["logs"] == [], response.json()
            wait_status(on_b, job_id, {"successful"}, 15)
            # the local storage of each instance is its own: the log is where A ran it
            assert any(
                "pid " in line["text"] for line in on_a.get(f"/jobs/{job_id}/logs").json()["logs"]
            )
            assert on_b.get(f"/jobs/{job_id}/logs").status_code == 200
    finally:
        b.stop()


def test_an_instance_back_from_a_stall_leaves_the_jobs_taken_from_it_to_their_new_owner(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    """A stalls past its lease (SIGSTOP): B takes its jobs over, fails the running one and
    runs the queued one. When A comes back it lets go of both: the statuses B recorded
    stay, and the queued job ran once, not again on A."""
    one = {**LEASE, "SUBPROCESS_MAX_JOBS": "1"}  # one job at a time on this machine
    a = server_factory(sleeper_plugins, env=one)
    b = server_factory(sleeper_plugins, env=one)
    runs = sleeper_plugins / "runs.txt"
    with a.client() as on_a, b.client() as on_b:
        running = sleep_on(on_a, 60)
        pid_of(on_a, running)
        response = on_a.post("/processes/recorder/execution", json={"inputs": {}}, headers=ASYNC)
        queued = str(response.json()["jobID"])
        assert on_a.get(f"/jobs/{queued}").json()["status"] == "accepted"
        assert a.proc is not None
        a.pause()
        try:
            failed = wait_status(on_b, running, {"failed", "successful", "dismissed"}, 20)
            wait_status(on_b, queued, {"running"}, 20)  # on B, and still running
        finally:
            a.pause(signal.SIGCONT)
        assert failed["status"] == "failed", failed
        done = wait_status(on_b, queued, {"failed", "successful", "dismissed"}, 20)
        assert done["status"] == "successful", done
        time.sleep(2)  # room for A to run the queued job again, or to record an end
        assert runs.read_text().split() == [queued]
        for job_id, recorded in ((running, failed), (queued, done)):
            now = on_a.get(f"/jobs/{job_id}").json()
            assert [now[k] for k in STATE] == [recorded[k] for k in STATE], (now, recorded)
        # A goes on with new work
        assert wait_status(on_a, sleep_on(on_a, 0), {"successful"}, 15)


def test_a_dismiss_on_one_instance_racing_the_end_on_another_gives_one_final_status(
    server_factory: Callable[..., Server], sleeper_plugins: Path
) -> None:
    """Jobs on A are dismissed through B about when they end: each ends once, dismissed
    if B's answer said so and successful (with its results) if B refused, and stays so."""
    a = server_factory(sleeper_plugins, env=LEASE)
    b = server_factory(sleeper_plugins, env=LEASE)
    answers: dict[str, int] = {}
    with a.client() as on_a, b.client() as on_b:
        for delay in (0.6, 0.8, 0.9, 1.0, 1.1, 1.2):
            job_id = sleep_on(on_a, 1)
            pid_of(on_a, job_id)
            time.sleep(delay)
            answers[job_id] = on_b.delete(f"/jobs/{job_id}").status_code
        ended = {
            job_id: wait_status(on_a, job_id, {"successful", "failed", "dismissed"})
            for job_id in answers
        }
        time.sleep(2)  # room for a second record, had there been one
        for job_id, code in answers.items():
            expected = "dismissed" if code == 200 else "successful"
            assert code in (200, 400, 409, 410), code
            for http in (on_a, on_b):
                now = http.get(f"/jobs/{job_id}").json()
                assert [now[k] for k in STATE] == [ended[job_id][k] for k in STATE], now
                assert now["status"] == expected, (code, now)
            results = on_b.get(f"/jobs/{job_id}/results")
            assert (results.status_code == 200) == (expected == "successful"), results.text
