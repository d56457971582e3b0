"""The job lifecycle under faults and careless processes: each test is named after the
hardening finding it reproduces (storage failures at a job's end, a second cancellation
while a job stops, restarts, results.json that is no file, huge logs, bursts of jobs,
retention, graceful restarts)."""

from __future__ import annotations

import json
import signal
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, pid_alive, process_info, serve_files, wait_status, wait_until
from tests.e2e.test_callbacks import Receiver

ServerFactory = Callable[..., Server]
ASYNC = {"Prefer": "respond-async"}

#: runs the `script` input with sh, in place of python (same pid).
SHELL_PY = """\
import json, os, sys
inputs = json.loads(sys.argv[-1])
os.execvp("sh", ["sh", "-c", inputs["script"]])
"""


def shell_yml(process_id: str, timeout: int | None = None) -> str:
    document: dict[str, Any] = {
        "info": process_info(process_id),
        "host": {"type": "subprocess", "command": ["python3", "shell.py"]},
        "inputs": [{"id": "script", "schema": {"type": "string"}}],
    }
    if timeout is not None:
        document["timeout"] = timeout
    return json.dumps(document)  # YAML reads JSON


FILES = {"shell.yml": shell_yml("shell"), "shell.py": SHELL_PY}


def shell_plugins(root: Path, **extra: str) -> Path:
    plugins = root / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    for name, text in {**FILES, **extra}.items():
        (plugins / name).write_text(text)
    return plugins


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server of the shell process for the tests that need nothing of their own."""
    yield from serve_files(
        tmp_path_factory.mktemp("faults"), {**FILES, "timed.yml": shell_yml("timed", timeout=2)}
    )


def run(http: httpx.Client, script: str, process: str = "shell", **options: Any) -> httpx.Response:
    return http.post(
        f"/processes/{process}/execution", json={"inputs": {"script": script}}, **options
    )


def start(http: httpx.Client, script: str, process: str = "shell", **body: Any) -> str:
    response = http.post(
        f"/processes/{process}/execution",
        json={"inputs": {"script": script}, **body},
        headers=ASYNC,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def read_pids(path: Path) -> list[int]:
    text = wait_until(lambda: path.exists() and path.read_text().strip(), what=str(path))
    return [int(pid) for pid in text.split()]


def kill(pids: list[int]) -> None:
    import os

    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- the end of a job ------------------------------------------------------------------


def test_finding_1_a_storage_failure_at_the_end_still_records_the_final_status(
    tmp_path: Path,
) -> None:
    """The log cannot be kept (its folder is a file): the job ends all the same."""
    plugins = shell_plugins(tmp_path)
    data = tmp_path / "data"
    (data / "storage").mkdir(parents=True)
    (data / "storage" / "logs").write_text("not a folder")
    server = Server(plugins, data).start()
    try:
        with server.client() as http:
            response = run(http, "echo working; echo '{\"plugin_results\": 7}'")
            assert response.status_code == 200, response.text
            assert response.json() == 7
            job_id = start(http, "echo async")
            assert wait_status(http, job_id, {"successful", "failed"})["status"] == "successful"
            assert http.get("/jobs", params={"status": "running"}).json()["numberMatched"] == 0
        assert "keeping its log" in server.output()
    finally:
        server.stop()


def test_finding_2_a_stubborn_job_dismissed_as_its_timeout_fires_is_stopped_all_the_same(
    shared: Server, tmp_path: Path
) -> None:
    """A process that ignores SIGTERM is dismissed; its timeout fires while it is being
    stopped (a second cancellation): it and its children must still end."""
    pidfile = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $$ $! > {pidfile}; wait"
    with shared.client() as http:
        job_id = start(http, script, "timed")
        pids = read_pids(pidfile)
        try:
            assert http.delete(f"/jobs/{job_id}").status_code == 200
            wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10, what="the stop")
            assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
        finally:
            kill(pids)


def test_finding_5_a_job_failed_at_restart_gets_its_failure_callback_and_metadata(
    tmp_path: Path, receiver: Receiver
) -> None:
    plugins = shell_plugins(tmp_path)
    env = {"CALLBACK_ALLOW_PRIVATE": "true"}
    server = Server(plugins, tmp_path / "data", env=env).start()
    pidfile = tmp_path / "pids"
    with server.client() as http:
        job_id = start(
            http,
            f"echo $$ > {pidfile}; sleep 300",
            subscriber={"failedUri": receiver.url + "/failed"},
        )
        pids = read_pids(pidfile)
    try:
        server.stop(signal.SIGKILL)
        (plugins / "shell.yml").unlink()  # its process is gone at the restart
        restarted = Server(plugins, tmp_path / "data", env=env).start()
        try:
            (failure,) = receiver.wait_for("/failed")
            assert failure["jobID"] == job_id and failure["status"] == "failed"
            assert "is gone" in failure["message"]
            metadata = tmp_path / "data" / "storage" / "metadata" / f"{job_id}.json"
            assert json.loads(metadata.read_text())["status"] == "failed"
        finally:
            restarted.stop()
    finally:
        kill(pids)


def test_finding_5_a_job_is_followed_on_the_host_it_was_recorded_with(tmp_path: Path) -> None:
    """The process file changed its host while the server was down: the job's own run
    (a process on this machine) is still the one stopped at the restart."""
    plugins = shell_plugins(tmp_path)
    server = Server(plugins, tmp_path / "data").start()
    pidfile = tmp_path / "pids"
    with server.client() as http:
        job_id = start(http, f"sleep 300 & echo $$ $! > {pidfile}; wait")
        pids = read_pids(pidfile)
        wait_status(http, job_id, {"running"})
    try:
        server.stop(signal.SIGKILL)
        moved = json.loads(shell_yml("shell"))
        moved["host"] = {"type": "docker"}
        moved["container"] = {"image": "process-api-test/none:latest"}
        (plugins / "shell.yml").write_text(json.dumps(moved))
        restarted = Server(plugins, tmp_path / "data").start()
        try:
            with restarted.client() as http:
                status = wait_status(http, job_id, {"failed"})
                assert "restarted" in status["message"]
            wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10, what="the stop")
        finally:
            restarted.stop()
    finally:
        kill(pids)


# -- what a process leaves in its results location ---------------------------------------


def test_finding_6_a_results_json_link_is_not_followed(shared: Server, tmp_path: Path) -> None:
    secret = tmp_path / "credentials.json"
    secret.write_text('{"token": "s3cr3t-value"}')
    script = f'ln -s {secret} "$PROCESS_API_RESULTS_DIR/results.json"'
    with shared.client() as http:
        response = run(http, script)
    assert response.status_code == 500, response.text
    assert "symbolic link" in response.json()["detail"]
    assert "s3cr3t" not in response.text


def test_finding_6_a_results_json_fifo_fails_the_job_at_once(shared: Server) -> None:
    with shared.client() as http:
        started = time.monotonic()
        response = run(http, 'mkfifo "$PROCESS_API_RESULTS_DIR/results.json"')
        assert time.monotonic() - started < 10
        assert response.status_code == 500, response.text
        assert "not a regular file" in response.json()["detail"]
        # the server goes on serving storage
        assert run(http, "echo '{\"plugin_results\": 1}'").json() == 1


# -- logs ----------------------------------------------------------------------------------


def test_finding_7_a_process_printing_300000_lines_leaves_the_server_responsive(
    shared: Server,
) -> None:
    script = "python3 -c \"import sys; [print('line', i) for i in range(300000)]\""
    with shared.client() as http:
        other = start(http, "echo quiet")
        wait_status(http, other, {"successful", "failed"})
        job_id = start(http, script)
        wait_status(http, job_id, {"running", "successful", "failed"})
        latencies = []
        while http.get(f"/jobs/{job_id}").json()["status"] == "running":
            began = time.perf_counter()
            assert http.get(f"/jobs/{other}").status_code == 200
            latencies.append(time.perf_counter() - began)
            time.sleep(0.01)
        wait_status(http, job_id, {"successful"})
        response = http.get(f"/jobs/{job_id}/logs", params={"after": 299_990})
    assert response.status_code == 200, response.text
    page = response.json()
    assert [line["text"] for line in page["logs"]] == [f"line {n}" for n in range(299_990, 300_000)]
    if len(latencies) >= 20:
        # Stalls of seconds are what this guards against; a test running beside this one on
        # the same cores makes a few requests take a few hundred milliseconds.
        p99 = statistics.quantiles(latencies, n=100)[98]
        assert p99 < 1.0, f"p99 {p99 * 1000:.0f} ms over {len(latencies)} requests"


def test_finding_12_logs_are_served_by_pages(shared: Server) -> None:
    with shared.client() as http:
        job_id = start(http, "for i in $(seq 0 24); do echo line $i; done")
        wait_status(http, job_id, {"successful"})
        first = http.get(f"/jobs/{job_id}/logs", params={"limit": 10}).json()
        assert [line["text"] for line in first["logs"]] == [f"line {n}" for n in range(10)]
        (following,) = [link["href"] for link in first["links"] if link["rel"] == "next"]
        second = http.get(following).json()
        assert [line["text"] for line in second["logs"]] == [f"line {n}" for n in range(10, 20)]
        last = http.get(f"/jobs/{job_id}/logs", params={"limit": 10, "after": 20}).json()
        assert last["numberReturned"] == 5
        assert not [link for link in last["links"] if link["rel"] == "next"]
        too_many = http.get(f"/jobs/{job_id}/logs", params={"limit": 10**6})
        assert too_many.status_code == 400


# -- bursts, retention and restarts ---------------------------------------------------------


def test_finding_11_subprocess_jobs_beyond_the_cap_wait_their_turn(tmp_path: Path) -> None:
    server = Server(shell_plugins(tmp_path), tmp_path / "data", env={"SUBPROCESS_MAX_JOBS": "2"})
    server.start()
    try:
        with server.client() as http:
            jobs = [start(http, "sleep 30") for _ in range(5)]
            wait_until(lambda: len(_with_status(http, "running")) == 2, what="two jobs running")
            time.sleep(0.5)
            assert len(_with_status(http, "running")) == 2
            assert len(_with_status(http, "accepted")) == 3
            # the first ones started; a dismissed one makes room for the next in line
            assert set(_with_status(http, "running")) == set(jobs[:2])
            assert http.delete(f"/jobs/{jobs[0]}").status_code == 200
            wait_status(http, jobs[2], {"running"})
            for job_id in jobs[1:]:
                http.delete(f"/jobs/{job_id}")
    finally:
        server.stop()


def _with_status(http: httpx.Client, status: str) -> list[str]:
    document = http.get("/jobs", params={"status": status, "limit": 100}).json()
    return [job["jobID"] for job in document["jobs"]]


def test_finding_14_retention_also_clears_inputs_and_callback_addresses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"EXPIRY_DAYS": "0.00002", "CALLBACK_ALLOW_PRIVATE": "true"}  # about 1.7 s
    env["DB_PATH"] = str(data / "jobs.sqlite")  # about the SQLite file: the row is read from it
    server = Server(shell_plugins(tmp_path), data, env=env).start()
    try:
        with server.client() as http:
            job_id = start(
                http,
                'echo \'{"plugin_results": "personal"}\'',
                subscriber={"successUri": "http://127.0.0.1:9/private-token"},
            )
            wait_status(http, job_id, {"successful"})
            wait_until(
                lambda: http.get(f"/jobs/{job_id}/results").status_code == 410,
                what="expiry",
            )
        wait_until(lambda: _stored(data, job_id)["expired"], what="the cleanup")
        row = _stored(data, job_id)
        assert "personal" not in json.dumps(row) and "private-token" not in json.dumps(row)
        assert json.loads(row["inputs"]) == {} and json.loads(row["request"]) == {}
    finally:
        server.stop()


def _stored(data: Path, job_id: str) -> dict[str, Any]:
    with sqlite3.connect(data / "jobs.sqlite") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


def test_finding_20_queued_jobs_survive_a_graceful_restart(tmp_path: Path) -> None:
    plugins = shell_plugins(tmp_path)
    env = {"SUBPROCESS_MAX_JOBS": "1"}
    server = Server(plugins, tmp_path / "data", env=env).start()
    with server.client() as http:
        running = start(http, "sleep 60")
        wait_status(http, running, {"running"})
        queued = [start(http, f"echo '{{\"plugin_results\": {n}}}'") for n in range(3)]
        assert all(http.get(f"/jobs/{j}").json()["status"] == "accepted" for j in queued)
    assert server.stop() == 0
    restarted = Server(plugins, tmp_path / "data", env=env).start()
    try:
        with restarted.client() as http:
            assert http.get(f"/jobs/{running}").json()["status"] == "dismissed"
            for n, job_id in enumerate(queued):
                wait_status(http, job_id, {"successful"})
                assert http.get(f"/jobs/{job_id}/results/result").json() == n
    finally:
        restarted.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_queued_jobs_of_a_process_removed_before_a_restart_end_failed_saying_why(
    tmp_path: Path, workers: str
) -> None:
    # Several workers of one server have the same processes: none waits for another.
    plugins = shell_plugins(tmp_path, **{"other.yml": shell_yml("other")})
    env = {"SUBPROCESS_MAX_JOBS": "1", "WORKERS": workers}
    server = Server(plugins, tmp_path / "data", env=env).start()
    with server.client() as http:
        wait_status(http, start(http, "sleep 60"), {"running"})
        queued = start(http, "echo never", process="other")
        kept = start(http, "echo '{\"plugin_results\": 1}'")
    assert server.stop() == 0
    (plugins / "other.yml").unlink()
    restarted = Server(plugins, tmp_path / "data", env=env).start()
    try:
        with restarted.client() as http:
            ended = wait_status(http, queued, {"failed", "successful", "dismissed"})
            assert ended["status"] == "failed", ended
            assert "process 'other' is gone" in ended["message"], ended
            assert wait_status(http, kept, {"successful", "failed"})["status"] == "successful"
    finally:
        restarted.stop()


def test_a_sync_burst_beyond_the_cap_is_answered_in_full(shared: Server) -> None:
    """More synchronous requests than may run at once: each waits its turn and answers."""
    answers: list[int] = []

    def one(n: int) -> None:
        with shared.client() as http:
            response = run(http, f"echo '{{\"plugin_results\": {n}}}'")
            answers.append(response.json() if response.status_code == 200 else -1)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == list(range(30))
