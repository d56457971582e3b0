"""Job lifecycle against the real server: dismiss, disconnects, shutdown, restarts, logs, failures.

Most tests use `sleeper`, a process of their own (added to a copy of the
examples) that writes its pid and the pid of a child it started to a file named
by its `pidfile` input and then sleeps, so a test can check that dismissing,
shutting down or restarting really stops the job's whole process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, pid_alive, raw_post, wait_status, wait_until
from tests.ogc import assert_valid

ServerFactory = Callable[..., Server]

OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
ASYNC = {"Prefer": "respond-async"}

SLEEPER_YML = """\
info:
  id: sleeper
  version: '1.0.0'
  title: Sleeper
  jobControlOptions: [sync-execute, async-execute]
  outputTransmission: [value]
host:
  type: subprocess
  command: [python3, sleeper.py]
inputs:
  - id: pidfile
    schema: {type: string}
    minOccurs: 1
    maxOccurs: 1
  - id: seconds
    schema: {type: integer, minimum: 0}
    minOccurs: 0
    maxOccurs: 1
  - id: stubborn
    description: ignore SIGTERM (the child too)
    schema: {type: boolean}
    minOccurs: 0
    maxOccurs: 1
  - id: orphan
    description: leave the child running at the end
    schema: {type: boolean}
    minOccurs: 0
    maxOccurs: 1
outputs:
  - id: slept
    schema: {type: integer}
"""

SLEEPER_PY = """\
import json, os, signal, subprocess, sys, time

inputs = json.loads(sys.argv[-1])
if inputs.get("stubborn"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
pids = {"pid": os.getpid(), "child": child.pid, "job": os.environ["PROCESS_API_JOB_ID"]}
temporary = inputs["pidfile"] + ".tmp"
with open(temporary, "w") as file:
    json.dump(pids, file)
os.replace(temporary, inputs["pidfile"])
print(json.dumps({"progress": 1, "message": "sleeping"}), flush=True)
time.sleep(inputs.get("seconds", 60))
if not inputs.get("orphan"):
    child.kill()
print(json.dumps({"plugin_results": {"slept": inputs.get("seconds", 60)}}))
"""


# -- helpers -----------------------------------------------------------------------


def add_sleeper(plugins: Path) -> Path:
    """Adds the `sleeper` process to a plugins directory; returns the directory."""
    target = plugins / "sleeper"
    target.mkdir()
    (target / "sleeper.yml").write_text(SLEEPER_YML)
    (target / "sleeper.py").write_text(SLEEPER_PY)
    return plugins


@pytest.fixture
def sleeper_plugins(plugins_dir: Path) -> Path:
    return add_sleeper(plugins_dir)


def read_pids(pidfile: Path, timeout: float = 10.0) -> dict[str, Any]:
    """The pids the sleeper wrote, once it has written them."""

    def load() -> dict[str, Any] | None:
        try:
            return json.loads(pidfile.read_text())
        except FileNotFoundError:
            return None

    return wait_until(load, timeout, f"the sleeper to write {pidfile}")


def assert_gone(pids: dict[str, Any], timeout: float = 3.0) -> None:
    """The job's process and its child have ended (within a short grace)."""
    for name in ("pid", "child"):
        wait_until(lambda n=name: not pid_alive(pids[n]), timeout, f"{name} {pids[name]} to end")


def kill_leftovers(*pid_sets: dict[str, Any]) -> None:
    """Cleans up after a failed test, so no sleeper outlives the test run."""
    for pids in pid_sets:
        for name in ("pid", "child"):
            if pid_alive(pids[name]):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pids[name], signal.SIGKILL)


def start_sleeper(http: httpx.Client, pidfile: Path, seconds: int = 60, **options: bool) -> str:
    """Starts an async sleeper job; returns its id once it runs."""
    body = {"inputs": {"pidfile": str(pidfile), "seconds": seconds, **options}}
    response = http.post("/processes/sleeper/execution", json=body, headers=ASYNC)
    assert response.status_code == 201, response.text
    job_id = response.json()["jobID"]
    wait_status(http, job_id, {"running"})
    return job_id


def assert_exception(response: httpx.Response, status: int, type_suffix: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("exception", body)
    for member in ("type", "title", "status", "detail"):
        assert body.get(member), body
    assert body["type"].endswith(type_suffix), body
    assert body["status"] == status
    return body


def jobs_of(http: httpx.Client, process_id: str, status: str | None = None) -> list[dict]:
    params = {"processID": process_id, "limit": 100}
    if status:
        params["status"] = status
    return http.get("/jobs", params=params).json()["jobs"]


class SyncRequest(threading.Thread):
    """A synchronous execute request in flight, answered (or not) on another thread."""

    def __init__(self, server: Server, process_id: str, inputs: dict) -> None:
        super().__init__(daemon=True)
        self.url = f"{server.url}/processes/{process_id}/execution"
        self.inputs = inputs
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=40.0) as http:
                self.response = http.post(self.url, json={"inputs": self.inputs})
        except Exception as exc:
            self.error = exc


# -- dismiss -----------------------------------------------------------------------


def test_dismiss_stops_a_running_job_and_its_children(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    pidfile = tmp_path / "pids.json"
    with server.client() as http:
        job_id = start_sleeper(http, pidfile)
        pids = read_pids(pidfile)
        assert pids["job"] == job_id
        assert pid_alive(pids["pid"]) and pid_alive(pids["child"])
        try:
            response = http.delete(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            document = response.json()
            assert_valid("statusInfo", document)
            assert document["jobID"] == job_id
            assert document["status"] == "dismissed"
            # The answer comes once the job has stopped.
            assert_gone(pids, timeout=1.0)
        finally:
            kill_leftovers(pids)

        status = http.get(f"/jobs/{job_id}").json()
        assert status["status"] == "dismissed"
        assert status["message"] == "dismissed by the client"
        assert "finished" in status

        again = assert_exception(http.delete(f"/jobs/{job_id}"), 409, "job-not-dismissable")
        assert "dismissed" in again["detail"]

        results = http.get(f"/jobs/{job_id}/results")
        assert results.status_code != 200
        body = assert_exception(results, results.status_code, "job-dismissed")
        assert job_id in body["detail"]


def test_dismiss_kills_a_job_that_ignores_sigterm(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    pidfile = tmp_path / "pids.json"
    with server.client() as http:
        job_id = start_sleeper(http, pidfile, stubborn=True)
        pids = read_pids(pidfile)
        try:
            response = http.delete(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "dismissed"
            assert_gone(pids, timeout=1.0)
        finally:
            kill_leftovers(pids)
        assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_what_a_job_leaves_running_ends_with_it(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    pidfile = tmp_path / "pids.json"
    inputs = {"pidfile": str(pidfile), "seconds": 0, "orphan": True}
    with server.client() as http:
        response = http.post("/processes/sleeper/execution", json={"inputs": inputs})
        pids = read_pids(pidfile)
        try:
            assert response.status_code == 200, response.text
            assert response.json() == 0
            assert_gone(pids)
        finally:
            kill_leftovers(pids)


def test_a_job_dismissed_in_the_queue_has_its_metadata_kept_as_a_run_job_does(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins, env={"SUBPROCESS_MAX_JOBS": "1"})
    with server.client() as http:
        running = start_sleeper(http, tmp_path / "pids.json")
        body = {"inputs": {"pidfile": str(tmp_path / "queued.json"), "seconds": 60}}
        queued = http.post("/processes/sleeper/execution", json=body, headers=ASYNC).json()
        assert queued["status"] == "accepted"
        assert http.delete(f"/jobs/{queued['jobID']}").status_code == 200
        kept = server.data_dir / "storage" / "metadata" / f"{queued['jobID']}.json"
        assert json.loads(kept.read_text())["status"] == "dismissed"
        assert http.delete(f"/jobs/{running}").status_code == 200


def test_dismiss_a_finished_job_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/processes/echo/execution", json={"inputs": {"stringInput": "x"}}, headers=ASYNC
    )
    job_id = response.json()["jobID"]
    wait_status(client, job_id, {"successful"})
    body = assert_exception(client.delete(f"/jobs/{job_id}"), 409, "job-not-dismissable")
    assert "successful" in body["detail"]
    assert client.get(f"/jobs/{job_id}").json()["status"] == "successful"
    assert client.get(f"/jobs/{job_id}/results").status_code == 200


def test_dismiss_an_unknown_job_is_404(client: httpx.Client) -> None:
    unknown = str(uuid.uuid4())
    body = assert_exception(client.delete(f"/jobs/{unknown}"), 404, "no-such-job")
    assert unknown in body["detail"]


def test_a_sync_client_that_disconnects_dismisses_its_job(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    pidfile = tmp_path / "pids.json"
    sock = raw_post(server, "/processes/sleeper/execution", {"inputs": {"pidfile": str(pidfile)}})
    pids: dict[str, Any] = {}
    try:
        with server.client() as http:
            pids = read_pids(pidfile)
            (job,) = wait_until(lambda: jobs_of(http, "sleeper", "running"), what="a running job")
            assert job["jobID"] == pids["job"]
            sock.close()

            status = wait_status(http, job["jobID"], {"dismissed", "failed", "successful"})
            assert status["status"] == "dismissed"
            assert "disconnect" in status["message"], status
            assert "client" in status["message"], status
            assert_gone(pids)
    finally:
        sock.close()
        if pids:
            kill_leftovers(pids)


# -- shutdown and restart -------------------------------------------------------------


def test_sigterm_exits_with_code_0(server: Server) -> None:
    assert server.stop(signal.SIGTERM, timeout=20) == 0


def test_graceful_shutdown_dismisses_active_jobs(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    assert server.proc is not None
    async_file, sync_file = tmp_path / "async.json", tmp_path / "sync.json"
    async_pids: dict[str, Any] = {}
    sync_pids: dict[str, Any] = {}
    try:
        with server.client() as http:
            # The async job ignores SIGTERM: shutdown must still stop it.
            async_id = start_sleeper(http, async_file, stubborn=True)
            async_pids = read_pids(async_file)
            sync_request = SyncRequest(server, "sleeper", {"pidfile": str(sync_file)})
            sync_request.start()
            sync_pids = read_pids(sync_file)
            sync_id = sync_pids["job"]
            wait_status(http, sync_id, {"running"})

        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        # Until the server is gone, an execute request must not start a job.
        refused = taken_late = 0
        while True:
            try:
                response = httpx.post(
                    f"{server.url}/processes/echo/execution",
                    json={"inputs": {"stringInput": "too late"}},
                    timeout=5.0,
                )
            except httpx.TransportError:
                refused += 1
            else:
                if response.status_code == 410 and server.several_workers:
                    # a worker not yet told of the stop took it: dismissed at once, and said
                    assert_exception(response, 410, "job-dismissed")
                    taken_late += 1
                else:
                    assert_exception(response, 503, "service-unavailable")
                refused += 1
            if server.proc.poll() is not None or time.monotonic() - started > 25:
                break
            time.sleep(0.02)
        code = server.stop(signal.SIGKILL, timeout=max(1.0, 25 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        assert elapsed < 20, f"shutdown took {elapsed:.1f}s"
        # 0 is what cli._run returns; -SIGTERM is uvicorn re-raising the signal
        # (see test_sigterm_exits_with_code_0). Anything else is a crash.
        assert code == 0, server.output()
        assert refused >= 1
        assert "Traceback" not in server.output()

        # The synchronous client got an answer rather than a hang or a reset.
        sync_request.join(10)
        assert not sync_request.is_alive(), "the synchronous request still hangs"
        assert sync_request.error is None, repr(sync_request.error)
        assert sync_request.response is not None
        body = assert_exception(sync_request.response, 410, "job-dismissed")
        assert body.get("jobID") == sync_id
        assert "shut down" in body["detail"]

        assert_gone(async_pids)
        assert_gone(sync_pids)
    finally:
        kill_leftovers(*(p for p in (async_pids, sync_pids) if p))

    restarted = server_factory(sleeper_plugins)
    with restarted.client() as http:
        for job_id in (async_id, sync_id):
            status = http.get(f"/jobs/{job_id}").json()
            assert status["status"] == "dismissed", status
            assert status["message"] == "the server shut down"
        echoes = http.get("/jobs", params={"processID": "echo", "status": "dismissed"}).json()
        assert echoes["numberMatched"] == taken_late
        assert http.get("/jobs").json()["numberMatched"] == 2 + taken_late


def test_crash_recovery_fails_running_jobs_and_stops_their_processes(
    server_factory: ServerFactory, sleeper_plugins: Path, tmp_path: Path
) -> None:
    server = server_factory(sleeper_plugins)
    pidfile = tmp_path / "pids.json"
    with server.client() as http:
        job_id = start_sleeper(http, pidfile)
        # the server has read what the job printed (its first line is written at once)
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["message"] == "sleeping")
    pids = read_pids(pidfile)
    try:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        # The job runs in a session of its own: it outlives the killed server...
        assert pid_alive(pids["pid"]) and pid_alive(pids["child"])

        restarted = server_factory(sleeper_plugins)
        with restarted.client() as http:
            status = http.get(f"/jobs/{job_id}").json()
            assert status["status"] == "failed", status
            assert "restarted" in status["message"]
            assert_valid("statusInfo", status)
            # ...until the next server settles it.
            assert_gone(pids)
            body = assert_exception(http.get(f"/jobs/{job_id}/results"), 500, "job-failed")
            assert "restarted" in body["detail"]
            assert http.get("/jobs", params={"status": "running"}).json()["numberMatched"] == 0
            # What it printed before the crash is kept.
            texts = [line["text"] for line in http.get(f"/jobs/{job_id}/logs").json()["logs"]]
            assert any('"sleeping"' in text for text in texts), texts
    finally:
        kill_leftovers(pids)


def test_a_job_accepted_but_never_started_fails_at_restart(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # On an SQLite file: the accepted row is written into it.
    database = tmp_path / "data" / "jobs.sqlite"
    sqlite = {"DB_PATH": str(database)}
    server = server_factory(env=sqlite)
    with server.client() as http:
        response = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "x"}})
        assert response.status_code == 200
        done_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]
    server.stop()

    # What a crash between recording a job and starting it leaves: an accepted row
    # (a copy of the finished job's row, as it was before it started).
    accepted_id = str(uuid.uuid4())
    db = sqlite3.connect(database)
    try:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM jobs WHERE id = ?", (done_id,)).fetchone())
        unset = {"started", "finished", "progress", "results", "handle"} & row.keys()
        row.update({"id": accepted_id, "status": "accepted", "message": "accepted"})
        row.update(dict.fromkeys(unset))
        names = ", ".join(row)
        marks = ", ".join("?" * len(row))
        with db:
            db.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(row.values()))
    finally:
        db.close()

    restarted = server_factory(env=sqlite)
    with restarted.client() as http:
        status = http.get(f"/jobs/{accepted_id}").json()
        assert status["status"] == "failed", status
        assert "restarted before the job started" in status["message"]
        assert http.get(f"/jobs/{done_id}").json()["status"] == "successful"


# -- logs and progress ------------------------------------------------------------------


def test_logs_and_progress_while_running_and_after(client: httpx.Client) -> None:
    response = client.post(
        "/processes/echo/execution",
        json={"inputs": {"stringInput": "hello", "pause": 3}},
        headers=ASYNC,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["jobID"]

    def live_progress_lines() -> list[dict] | None:
        document = client.get(f"/jobs/{job_id}/logs").json()
        lines = [line for line in document["logs"] if '"progress"' in line["text"]]
        # The status is read before the lines: running here means before the end.
        return lines if document["status"] == "running" and lines else None

    lines = wait_until(live_progress_lines, 10, "progress lines in the live log")
    assert lines[0]["stream"] == "stdout"
    assert json.loads(lines[0]["text"])["message"].startswith("waited")
    assert lines[0]["time"]

    def running_with_progress() -> dict | None:
        status = client.get(f"/jobs/{job_id}").json()
        ok = status["status"] == "running" and "progress" in status
        return status if ok else None

    status = wait_until(running_with_progress, 10, "progress in the running job's status")
    assert 0 <= status["progress"] < 100
    assert status["message"].startswith("waited")
    assert_valid("statusInfo", status)

    final = wait_status(client, job_id, {"successful", "failed", "dismissed"})
    assert final["status"] == "successful", final
    assert final["progress"] == 100

    document = client.get(f"/jobs/{job_id}/logs").json()
    assert document["status"] == "successful"
    texts = [(line["stream"], line["text"]) for line in document["logs"]]
    progress = [t for s, t in texts if s == "stdout" and '"progress"' in t]
    assert [json.loads(t)["message"] for t in progress] == ["waited 0s", "waited 1s", "waited 2s"]
    assert ("stderr", "echoing ['stringInput']") in texts
    results = [t for s, t in texts if s == "stdout" and '"plugin_results"' in t]
    assert [json.loads(t) for t in results] == [{"plugin_results": {"stringInput": "hello"}}]
    assert client.get(f"/jobs/{job_id}/results").json() == "hello"  # raw, the default


def test_logs_of_an_unknown_job_is_404(client: httpx.Client) -> None:
    assert_exception(client.get(f"/jobs/{uuid.uuid4()}/logs"), 404, "no-such-job")


# -- failures -----------------------------------------------------------------------


FAIL = {"inputs": {"message": "boom", "code": 3}}


def test_a_failing_async_job_reports_why(client: httpx.Client) -> None:
    response = client.post("/processes/fail/execution", json=FAIL, headers=ASYNC)
    assert response.status_code == 201, response.text
    job_id = response.json()["jobID"]
    status = wait_status(client, job_id, {"successful", "failed", "dismissed"})
    assert status["status"] == "failed"
    assert "exited with code 3" in status["message"]
    assert "boom" in status["message"]
    assert_valid("statusInfo", status)
    assert "http://www.opengis.net/def/rel/ogc/1.0/results" not in {
        link["rel"] for link in status["links"]
    }

    results = client.get(f"/jobs/{job_id}/results")
    assert results.status_code != 404
    body = assert_exception(results, 500, "job-failed")
    assert "exited with code 3" in body["detail"] and "boom" in body["detail"]

    logs = client.get(f"/jobs/{job_id}/logs").json()["logs"]
    texts = [(line["stream"], line["text"]) for line in logs]
    assert ("stdout", "starting, and about to fail") in texts
    assert ("stderr", "boom") in texts


def test_a_failing_sync_job_answers_its_failure(client: httpx.Client) -> None:
    response = client.post("/processes/fail/execution", json=FAIL)
    body = assert_exception(response, 500, "job-failed")
    assert "exited with code 3" in body["detail"] and "boom" in body["detail"]
    job_id = body["jobID"]
    assert job_id in response.headers["Link"]
    status = client.get(f"/jobs/{job_id}").json()
    assert status["status"] == "failed"
    assert status["message"] in body["detail"]


def test_a_process_that_leaves_its_group_does_not_hold_the_job(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A daemon started with setsid keeps the output pipes open; the job ends anyway."""
    plugins = tmp_path / "escape"
    plugins.mkdir()
    marker = f"sleep {300 + os.getpid() % 100}.5"
    command = ["sh", "-c", f'setsid {marker} & echo "{{\\"plugin_results\\": \\"done\\"}}"']
    (plugins / "escape.yml").write_text(
        json.dumps(
            {
                "info": {"id": "escape", "version": "1"},
                "host": {"type": "subprocess", "command": command},
                "outputs": [{"id": "r", "schema": {"type": "string"}}],
            }
        )
    )
    server = server_factory(plugins)
    try:
        with server.client() as http:
            started = time.monotonic()
            response = http.post("/processes/escape/execution", json={"inputs": {}})
            assert response.status_code == 200 and response.json() == "done", response.text
            assert time.monotonic() - started < 15
    finally:
        subprocess.run(["pkill", "-f", marker], check=False)
