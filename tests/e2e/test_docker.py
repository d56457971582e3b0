"""The docker host against a real Docker Engine: runs, limits, secrets, failures, restarts.

Every image is built locally (tests/images.py); no registry is ever reached: the
one pull a test lets happen names a registry on a closed loopback port, so it
fails at once. Each test gives its server an instance id of its own and ends
with no container of that instance left; a fixture removes any that a failing
test leaves behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import (
    DATA,
    EXAMPLES,
    Server,
    free_port,
    process_info,
    raw_post,
    wait_status,
    wait_until,
)
from tests.images import busybox_image, image_exists, python_image, remove_image
from tests.ogc import assert_valid

pytestmark = pytest.mark.usefixtures("docker_engine")

ASYNC = {"Prefer": "respond-async"}
OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
LABEL_JOB = "process-api.job"
LABEL_PROCESS = "process-api.process"
LABEL_INSTANCE = "process-api.instance"
SECRET = "s3cr3t-value"

PYECHO_MAIN = """\
import json
import sys

inputs = json.loads(sys.argv[-1])
print("pyecho got", sorted(inputs), file=sys.stderr)
print(json.dumps({"plugin_results": {"message": inputs["text"]}}))
"""


# -- docker ------------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def labelled(label: str, value: str, *more: str) -> list[str]:
    """Ids of every container, running or not, with the label set to the value.

    `more` are further `name=value` labels the containers must also have.
    """
    filters = [f"label={label}={value}", *(f"label={extra}" for extra in more)]
    return docker("ps", "-aq", *(f"--filter={f}" for f in filters)).split()


def job_containers(job_id: str) -> list[str]:
    return labelled(LABEL_JOB, job_id)


def inspect(container: str) -> dict[str, Any]:
    return json.loads(docker("inspect", container))[0]


def container_events(since: float, job_id: str) -> dict[str, float]:
    """When each engine event of the job's container happened since `since` (epoch s)."""
    output = docker(
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{time.time():.3f}",
        "--filter",
        "type=container",
        "--filter",
        f"label={LABEL_JOB}={job_id}",
        "--format",
        "{{.TimeNano}} {{.Action}}",
    )
    events = {}
    for line in output.splitlines():
        nanoseconds, action = line.split(" ", 1)
        events.setdefault(action, int(nanoseconds) / 1e9)
    return events


def wait_no_container(job_id: str, timeout: float = 10.0) -> None:
    wait_until(lambda: not job_containers(job_id), timeout, f"the container of job {job_id} to go")


# -- images ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def busybox(docker_engine: None) -> Iterator[str]:
    """A busybox image of this test session's own, removed at the end."""
    tag = f"process-api-test/e2e-docker-busybox:{os.getpid()}"
    busybox_image(tag=tag)
    yield tag
    remove_image(tag)


@pytest.fixture(scope="session")
def pyecho_image(docker_engine: None) -> Iterator[str]:
    """`pyecho:latest`, the image the Go server's pyecho.yml names, with a Python main.py."""
    tag = "pyecho:latest"
    if image_exists(tag):  # not ours: its main.py is unknown
        remove_image(tag)
    python_image({"app/main.py": PYECHO_MAIN}, tag=tag)
    yield tag
    remove_image(tag)


# -- processes and servers ---------------------------------------------------------


def shell_process(
    process_id: str,
    image: str,
    script: str,
    *,
    args: tuple[str, ...] = (),
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    timeout: float | None = None,
    host: str = "docker",
    **container: Any,
) -> dict[str, Any]:
    """A process running `sh -c script sh *args`; the inputs JSON follows as the last argument."""
    document: dict[str, Any] = {
        "info": process_info(process_id),
        "host": {"type": host},
        "container": {
            "image": image,
            "command": ["sh", "-c", script, "sh", *args],
            **container,
        },
        "inputs": inputs or [],
        "outputs": outputs if outputs is not None else [{"id": "result", "schema": {}}],
    }
    if timeout is not None:
        document["timeout"] = timeout
    return document


def sleeper(process_id: str, image: str, seconds: float = 30, **container: Any) -> dict[str, Any]:
    return shell_process(
        process_id,
        image,
        f'echo "sleeping {seconds}"; sleep {seconds}; echo \'{{"plugin_results": "slept"}}\'',
        **container,
    )


class Harness:
    """Servers of one test: one plugins directory, one data directory, one instance id."""

    def __init__(self, factory: Callable[..., Server], tmp_path: Path) -> None:
        self.factory = factory
        self.tmp_path = tmp_path
        self.instance = f"e2e-docker-{uuid.uuid4().hex[:12]}"
        self.plugins = tmp_path / "docker-plugins"
        self.plugins.mkdir()
        self.servers: list[Server] = []

    def add(self, document: dict[str, Any]) -> None:
        name = document["info"]["id"]
        (self.plugins / f"{name}.yml").write_text(yaml.safe_dump(document, sort_keys=False))

    def start(self, **env: str) -> Server:
        server = self.factory(
            self.plugins,
            env={"INSTANCE_ID": self.instance, **env},
        )
        self.servers.append(server)
        return server

    def containers(self) -> list[str]:
        """Ids of every container of this instance."""
        return labelled(LABEL_INSTANCE, self.instance)

    def assert_no_container(self, timeout: float = 10.0) -> None:
        wait_until(lambda: not self.containers(), timeout, f"the containers of {self.instance}")

    def close(self) -> None:
        for server in self.servers:
            if server.proc is not None and server.proc.poll() is None:
                with contextlib.suppress(Exception):
                    server.stop(signal.SIGTERM, timeout=20)
        for container in self.containers():
            docker("rm", "-f", container, check=False)


@pytest.fixture
def harness(server_factory: Callable[..., Server], tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(server_factory, tmp_path)
    yield harness
    harness.close()


def submit(
    http: httpx.Client, process_id: str, inputs: dict[str, Any] | None = None, **body: Any
) -> str:
    """Starts an async job (more of the execute request in `body`); returns its id."""
    response = http.post(
        f"/processes/{process_id}/execution",
        json={"inputs": inputs or {}, **body},
        headers=ASYNC,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def assert_exception(response: httpx.Response, status: int, type_suffix: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("exception", body)
    assert body["type"] == OGC_EXC + type_suffix, body
    assert body["status"] == status
    return dict(body)


ALL_STATUSES = "accepted,running,successful,failed,dismissed"


def job_count(http: httpx.Client) -> int:
    """How many jobs the server has recorded, whatever their status."""
    response = http.get("/jobs", params={"status": ALL_STATUSES})
    assert response.status_code == 200, response.text
    return int(response.json()["numberMatched"])


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def log_lines(http: httpx.Client, job_id: str) -> list[dict[str, str]]:
    response = http.get(f"/jobs/{job_id}/logs")
    assert response.status_code == 200, response.text
    return list(response.json()["logs"])


def whole_log(http: httpx.Client, job_id: str) -> list[dict[str, str]]:
    """Every line of a finished job's log, page after page."""
    lines: list[dict[str, str]] = []
    while True:
        page = http.get(f"/jobs/{job_id}/logs", params={"after": len(lines)}).json()
        lines += page["logs"]
        if not any(link["rel"] == "next" for link in page["links"]):
            return lines


# -- 1. runs -----------------------------------------------------------------------

ECHO_SCRIPT = r"""
echo "to stdout from $PROCESS_API_JOB_ID"
echo "to stderr from $PROCESS_API_PROCESS_ID" >&2
echo ok > "$PROCESS_API_RESULTS_DIR/marker"
eval "last=\${$#}"
printf '{"plugin_results": {"argc": %s, "first": "%s", "inputs": %s, "job": "%s", "resultsDir": "%s"}}\n' \
  "$#" "$1" "$last" "$PROCESS_API_JOB_ID" "$PROCESS_API_RESULTS_DIR"
"""


def echo_process(image: str) -> dict[str, Any]:
    return shell_process(
        "bbecho",
        image,
        ECHO_SCRIPT,
        args=("first-argument",),
        inputs=[{"id": "text", "schema": {"type": "string"}}],
        outputs=[{"id": "echo", "schema": {"type": "object"}}],
        maxResources={"cpus": 0.5, "memory": 64},
    )


def check_echo(server: Server, http: httpx.Client, job_id: str, echo: dict[str, Any]) -> None:
    """What the bbecho job printed, logged and left in its results directory."""
    assert echo == {
        "argc": 2,
        "first": "first-argument",
        "inputs": {"text": "héllo \"quoted\" 'world'"},
        "job": job_id,
        "resultsDir": "/results",
    }
    job = http.get(f"/jobs/{job_id}").json()
    assert job["status"] == "successful", job
    assert_valid("statusInfo", job)
    logs = log_lines(http, job_id)
    by_text = {line["text"]: line for line in logs}
    assert by_text[f"to stdout from {job_id}"]["stream"] == "stdout", logs
    assert by_text["to stderr from bbecho"]["stream"] == "stderr", logs
    created, finished = parse_time(job["created"]), parse_time(job["finished"])
    for line in logs:
        stamp = parse_time(line["time"])
        assert stamp.tzinfo is not None, line
        # the engine's clock stamps the lines: between the job's creation and end
        assert created - timedelta(seconds=1) <= stamp <= finished + timedelta(seconds=1), line
    marker = server.data_dir / "storage" / "results" / job_id / "marker"
    assert marker.read_text() == "ok\n"
    wait_no_container(job_id)  # removed once the job's end is recorded (finding 19)


def test_sync_and_async_runs_of_a_busybox_process(harness: Harness, busybox: str) -> None:
    harness.add(echo_process(busybox))
    server = harness.start()
    inputs = {"text": "héllo \"quoted\" 'world'"}
    with server.client() as http:
        # sync, raw: the one output as itself
        raw = http.post("/processes/bbecho/execution", json={"inputs": inputs})
        assert raw.status_code == 200, raw.text
        assert raw.headers["content-type"] == "application/json"
        raw_job = raw.headers["Link"].split(">")[0].rsplit("/", 1)[1]
        check_echo(server, http, raw_job, raw.json())

        # sync, document
        body = {"inputs": inputs, "response": "document"}
        document = http.post("/processes/bbecho/execution", json=body)
        assert document.status_code == 200, document.text
        doc_job = document.headers["Link"].split(">")[0].rsplit("/", 1)[1]
        value = document.json()["echo"]
        assert value["mediaType"] == "application/json"
        check_echo(server, http, doc_job, value["value"])

        # async
        job_id = submit(http, "bbecho", inputs, response="document")
        final = wait_status(http, job_id, {"successful", "failed"})
        assert final["status"] == "successful", final
        results = http.get(f"/jobs/{job_id}/results")
        assert results.status_code == 200, results.text
        check_echo(server, http, job_id, results.json()["echo"]["value"])
        assert len({raw_job, doc_job, job_id}) == 3
    harness.assert_no_container()


# -- 2. the Go server's pyecho.yml, unchanged --------------------------------------


def test_the_go_servers_pyecho_file_runs_unchanged(
    harness: Harness, pyecho_image: str, tmp_path: Path
) -> None:
    source = DATA / "dewberry-plugins" / "pyecho.yml"
    shutil.copyfile(source, harness.plugins / "pyecho.yml")
    assert (harness.plugins / "pyecho.yml").read_bytes() == source.read_bytes()
    server = harness.start()
    body = {"inputs": {"text": "hello"}}
    with server.client() as http:
        raw = http.post("/processes/pyecho/execution", json=body)
        assert raw.status_code == 200, raw.text
        assert raw.json() == "hello"
        document = http.post("/processes/pyecho/execution", json={**body, "response": "document"})
        assert document.status_code == 200, document.text
        assert document.json() == {"message": "hello"}

        # pyecho allows sync-execute only: asked for async, it runs synchronously
        # (as OGC API - Processes says), without a Preference-Applied header.
        asked_async = http.post("/processes/pyecho/execution", json=body, headers=ASYNC)
        assert asked_async.status_code == 200, asked_async.text
        assert asked_async.json() == "hello"
        assert "Preference-Applied" not in asked_async.headers

        jobs = http.get("/jobs", params={"processID": "pyecho"}).json()["jobs"]
        assert len(jobs) == 3 and {j["status"] for j in jobs} == {"successful"}, jobs
        job_id = jobs[0]["jobID"]
        metadata = http.get(f"/jobs/{job_id}/metadata").json()
        assert metadata["image"] == "pyecho:latest"
        assert metadata["host"] == "local"
        assert metadata["command"] == ["python", "main.py"]
        logs = log_lines(http, job_id)
        lines = [(line["stream"], line["text"]) for line in logs]
        assert ("stderr", "pyecho got ['text']") in lines, logs
    harness.assert_no_container()


# -- 3. limits and hardening -------------------------------------------------------


def running_container(http: httpx.Client, job_id: str) -> dict[str, Any]:
    wait_status(http, job_id, {"running"})
    found = wait_until(lambda: job_containers(job_id), 10, f"a container for {job_id}")
    assert len(found) == 1, found
    return inspect(found[0])


def test_resource_limits_and_hardening_are_applied(harness: Harness, busybox: str) -> None:
    limits = {"cpus": 0.5, "memory": 64, "pids": 100}
    harness.add(sleeper("limited", busybox, maxResources=limits))
    harness.add(sleeper("chowner", busybox, capabilities=["CHOWN"], user="1234:1234"))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "limited")
        info = running_container(http, job_id)
        host = info["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == 64 * 2**20
        assert host["MemorySwap"] == host["Memory"]  # finding 9: no swap beyond the limit
        assert host["PidsLimit"] == 100
        assert host["Privileged"] is False
        assert "no-new-privileges" in (host["SecurityOpt"] or [])
        assert host["CapDrop"] == ["ALL"]
        assert not host["CapAdd"]
        assert host["NetworkMode"] == "none"
        assert host["Init"] is True
        assert any(bind.endswith(":/results:rw") for bind in host["Binds"]), host["Binds"]
        assert info["Name"] == f"/process-api-{job_id}"
        labels = info["Config"]["Labels"]
        assert labels[LABEL_JOB] == job_id
        assert labels[LABEL_PROCESS] == "limited"
        assert labels[LABEL_INSTANCE] == harness.instance
        assert info["Config"]["Cmd"][-1] == "{}"  # the inputs JSON
        assert http.delete(f"/jobs/{job_id}").status_code == 200
        assert not job_containers(job_id)

        capable = submit(http, "chowner")
        info = running_container(http, capable)
        # without maxResources: the server's defaults (1 CPU, 1024 MB)
        assert info["HostConfig"]["NanoCpus"] == 1_000_000_000
        assert info["HostConfig"]["Memory"] == 1024 * 2**20
        assert info["HostConfig"]["MemorySwap"] == 1024 * 2**20
        assert info["HostConfig"]["PidsLimit"] == 1024  # DOCKER_PIDS_LIMIT's default
        assert info["HostConfig"]["CapAdd"] in (["CHOWN"], ["CAP_CHOWN"])
        assert info["HostConfig"]["CapDrop"] == ["ALL"]
        assert info["Config"]["User"] == "1234:1234"
        assert http.delete(f"/jobs/{capable}").status_code == 200
    harness.assert_no_container()


# -- 4. envVars and secrets --------------------------------------------------------

SECRETIVE_SCRIPT = r"""
secret=$(cat "$MY_SECRET_FILE")
echo "the secret is $secret, the setting is $MY_SETTING"
echo "on stderr too: $secret" >&2
printf '{"plugin_results": {"setting": "%s", "secretLength": %s}}\n' "$MY_SETTING" "${#secret}"
"""


def test_env_vars_and_secrets_reach_the_job_and_secrets_go_nowhere_else(
    harness: Harness, busybox: str, tmp_path: Path
) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"MY_SECRET={SECRET}\n")
    common = {"envVars": ["MY_SETTING"], "secrets": ["MY_SECRET"]}
    harness.add(shell_process("secretive", busybox, SECRETIVE_SCRIPT, **common))
    failing = 'echo "failing with $(cat "$MY_SECRET_FILE")" >&2; exit 3'
    harness.add(shell_process("leaky-failure", busybox, failing, **common))
    harness.add(shell_process("needs-missing", busybox, "echo never", secrets=["NOT_SET_ANYWHERE"]))
    server = harness.start(MY_SETTING="abc", SECRETS_FILE=str(secrets_file), LOG_LEVEL="DEBUG")
    seen: list[str] = []
    with server.client() as http:
        sync = http.post("/processes/secretive/execution", json={"inputs": {}})
        assert sync.status_code == 200, sync.text
        assert sync.json() == {"setting": "abc", "secretLength": len(SECRET)}
        seen.append(sync.text)
        job_id = submit(http, "secretive")
        assert wait_status(http, job_id, {"successful", "failed"})["status"] == "successful"
        logs = log_lines(http, job_id)
        texts = [line["text"] for line in logs]
        assert "the secret is ********, the setting is abc" in texts, logs
        assert "on stderr too: ********" in texts, logs

        failed_id = submit(http, "leaky-failure")
        failed = wait_status(http, failed_id, {"successful", "failed"})
        assert failed["status"] == "failed", failed
        assert "failing with ********" in failed["message"], failed

        missing = http.post("/processes/needs-missing/execution", json={"inputs": {}})
        assert missing.status_code == 500, missing.text
        assert "NOT_SET_ANYWHERE" in missing.json()["detail"]
        missing_id = missing.json()["jobID"]
        assert "NOT_SET_ANYWHERE" in http.get(f"/jobs/{missing_id}").json()["message"]
        assert not job_containers(missing_id)

        assert job_count(http) == 4
        for job in (job_id, failed_id, missing_id):
            for path in ("", "/logs", "/metadata", "/results"):
                for params in ({}, {"f": "html"}):
                    seen.append(http.get(f"/jobs/{job}{path}", params=params).text)
        for params in ({}, {"f": "html"}):
            seen.append(http.get("/jobs", params={**params, "status": ALL_STATUSES}).text)
            seen.append(http.get("/processes/secretive", params=params).text)
    server.stop()
    harness.assert_no_container()
    seen.append(server.output())
    for text in seen:
        assert SECRET not in text
    # nor in anything the server stored: the job database, logs, results, its own log
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# -- 5. images that are not there ------------------------------------------------------


def test_a_missing_image_fails_the_job(harness: Harness, busybox: str) -> None:
    # A registry on a closed loopback port: the pull is tried, and fails at once,
    # without any traffic leaving the machine.
    unreachable = f"127.0.0.1:{free_port()}/process-api-test/missing:1"
    # its own pull policy (if-not-present) wins over the server's (never)
    harness.add(shell_process("unpullable", unreachable, "echo never", pullPolicy="if-not-present"))
    harness.add(
        shell_process("never-pulled", "process-api-test/missing:1", "echo", pullPolicy="never")
    )
    harness.add(shell_process("server-never", "process-api-test/missing:2", "echo never"))
    # An image missing when the files are loaded makes them invalid (it would never be
    # pulled): these two are there at the start, and gone before their jobs run.
    for tag in ("process-api-test/missing:1", "process-api-test/missing:2"):
        subprocess.run(["docker", "tag", busybox, tag], check=True, capture_output=True)
    server = harness.start(DOCKER_PULL_POLICY="never")  # only for server-never
    for tag in ("process-api-test/missing:1", "process-api-test/missing:2"):
        remove_image(tag)
    with server.client() as http:
        started = time.monotonic()
        pulled = http.post("/processes/unpullable/execution", json={"inputs": {}})
        assert time.monotonic() - started < 10
        assert pulled.status_code == 500, pulled.text
        detail = pulled.json()["detail"]
        assert "cannot pull" in detail and unreachable in detail, detail
        assert not job_containers(pulled.json()["jobID"])

        job_id = submit(http, "never-pulled")
        job = wait_status(http, job_id, {"successful", "failed"})
        assert job["status"] == "failed", job
        assert "'process-api-test/missing:1'" in job["message"], job
        assert "not on the Docker Engine" in job["message"] and "never" in job["message"]
        assert not job_containers(job_id)

        never = http.post("/processes/server-never/execution", json={"inputs": {}})
        assert never.status_code == 500, never.text
        assert "'process-api-test/missing:2' is not on the Docker Engine" in never.json()["detail"]
    harness.assert_no_container()


# -- 6-9. stopping a running container --------------------------------------------


def test_a_job_past_its_timeout_fails_and_its_container_goes(
    harness: Harness, busybox: str
) -> None:
    harness.add(sleeper("slowpoke", busybox, 30, timeout=2))
    server = harness.start()
    with server.client() as http:
        started = time.monotonic()
        job_id = submit(http, "slowpoke")
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, timeout=12)
        assert time.monotonic() - started < 10
        assert job["status"] == "failed", job
        assert "timeout" in job["message"] and "2 s" in job["message"], job
        assert not job_containers(job_id)
        assert any(line["text"] == "sleeping 30" for line in log_lines(http, job_id))
    harness.assert_no_container()


def test_dismissing_a_running_job_removes_its_container(harness: Harness, busybox: str) -> None:
    harness.add(sleeper("napper", busybox))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "napper")
        running_container(http, job_id)
        response = http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dismissed"
        assert not job_containers(job_id)  # gone before the answer
        assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
        assert_exception(http.get(f"/jobs/{job_id}/results"), 410, "job-dismissed")
    harness.assert_no_container()


def test_a_sync_client_that_disconnects_dismisses_the_container(
    harness: Harness, busybox: str
) -> None:
    harness.add(sleeper("napper", busybox))
    server = harness.start()
    with server.client() as http:
        sock = raw_post(server, "/processes/napper/execution", {"inputs": {}})
        try:

            def running() -> list[dict[str, Any]]:
                params = {"processID": "napper", "status": "running"}
                return list(http.get("/jobs", params=params).json()["jobs"])

            (job,) = wait_until(running, 15, "the sync job to run")
            job_id = job["jobID"]
            assert len(job_containers(job_id)) == 1
        finally:
            sock.close()
        dismissed = wait_status(http, job_id, {"dismissed", "failed", "successful"})
        assert dismissed["status"] == "dismissed", dismissed
        assert "disconnected" in dismissed["message"]
        wait_no_container(job_id, 5)
    harness.assert_no_container()


def test_sigterm_dismisses_a_running_container(harness: Harness, busybox: str) -> None:
    harness.add(sleeper("napper", busybox))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "napper")
        running_container(http, job_id)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout=25) == 0
    assert time.monotonic() - started < 15
    assert not harness.containers()  # removed before the server exited
    restarted = harness.start()
    with restarted.client() as http:
        job = http.get(f"/jobs/{job_id}").json()
        assert job["status"] == "dismissed", job
        assert job["message"] == "the server shut down"
    harness.assert_no_container()


# -- 10. the resource budget ---------------------------------------------------------


def test_jobs_queue_for_the_budget_in_fifo_order(harness: Harness, busybox: str) -> None:
    """Two instances on the engine, jobs submitted to each in turn: the budget holds for both
    together, one job at a time, in the order they came."""
    instances = 2
    slot = shell_process(
        "slot",
        busybox,
        'sleep 1.5; echo \'{"plugin_results": "done"}\'',
        maxResources={"cpus": 1, "memory": 100},
    )
    harness.add(slot)
    harness.add(sleeper("too-big", busybox, 1, maxResources={"cpus": 2, "memory": 100}))
    servers = [harness.start(LOCAL_CPUS="1", LOCAL_MEMORY="1024") for _ in range(instances)]
    clients = [server.client() for server in servers]
    with contextlib.ExitStack() as stack:
        http = [stack.enter_context(client) for client in clients][0]
        too_big = http.post("/processes/too-big/execution", json={"inputs": {}}, headers=ASYNC)
        detail = assert_exception(too_big, 400, "invalid-parameter-value")["detail"]
        assert "2 CPU(s) and 100 MB" in detail and "1 CPU(s) and 1024 MB" in detail, detail
        assert job_count(http) == 0

        since = time.time() - 1
        ids = [submit(clients[n % instances], "slot") for n in range(4)]
        statuses = {job_id: http.get(f"/jobs/{job_id}").json()["status"] for job_id in ids}
        assert statuses[ids[2]] == "accepted", statuses
        dismissed = http.delete(f"/jobs/{ids[2]}")
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
        kept = [ids[0], ids[1], ids[3]]

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            jobs = {job_id: http.get(f"/jobs/{job_id}").json() for job_id in kept}
            states = [job["status"] for job in jobs.values()]
            assert states.count("running") <= 1, states
            assert set(states) <= {"accepted", "running", "successful"}, jobs
            mine = f"{LABEL_INSTANCE}={harness.instance}"
            # running ones: an exited container stays until its job's end is recorded
            running = docker(
                "ps", "-q", f"--filter=label={mine}", f"--filter=label={LABEL_PROCESS}=slot"
            )
            assert len(running.split()) <= 1, running
            if states == ["successful"] * 3:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the queued jobs did not all finish: {jobs}")
        events = {job_id: container_events(since, job_id) for job_id in kept}
        for before, after in zip(kept, kept[1:], strict=False):
            # first in, first out, and one at a time
            assert parse_time(jobs[before]["started"]) < parse_time(jobs[after]["started"])
            assert events[before]["die"] <= events[after]["start"], events
        gone = http.get(f"/jobs/{ids[2]}").json()
        assert gone["status"] == "dismissed" and "started" not in gone, gone
        assert log_lines(http, ids[2]) == []
        assert container_events(since, ids[2]) == {}
    harness.assert_no_container()


# -- 11-12. restarts -----------------------------------------------------------------

SLOW_PRINT = (
    'echo "before the crash"; echo "on stderr before the crash" >&2; sleep 4; '
    'echo "after the crash"; echo \'{"plugin_results": "survived"}\''
)


def test_a_restart_after_sigkill_follows_the_running_container_and_the_queue(
    harness: Harness, busybox: str
) -> None:
    limits = {"maxResources": {"cpus": 1, "memory": 100}}
    harness.add(shell_process("survivor", busybox, SLOW_PRINT, **limits))
    harness.add(sleeper("next", busybox, 0.5, **limits))
    env = {"LOCAL_CPUS": "1", "LOCAL_MEMORY": "1024"}
    server = harness.start(**env)
    since = time.time() - 1
    with server.client() as http:
        job_id = submit(http, "survivor", response="document")
        queued = submit(http, "next")
        running_container(http, job_id)
        wait_until(lambda: len(log_lines(http, job_id)) == 2, 5, "the lines before the crash")
        before = http.get(f"/jobs/{job_id}").json()
        assert http.get(f"/jobs/{queued}").json()["status"] == "accepted"
    server.stop(signal.SIGKILL)
    (container,) = job_containers(job_id)
    assert inspect(container)["State"]["Running"] is True

    restarted = harness.start(**env)
    with restarted.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, timeout=15)
        assert job["status"] == "successful", job
        assert job["started"] == before["started"]
        assert http.get(f"/jobs/{job_id}/results").json() == {"result": "survived"}
        texts = [(line["stream"], line["text"]) for line in log_lines(http, job_id)]
        for line in (
            ("stdout", "before the crash"),
            ("stderr", "on stderr before the crash"),
            ("stdout", "after the crash"),
        ):
            assert texts.count(line) == 1, texts
        wait_no_container(job_id, 5)

        # the job queued at the crash waits for its turn again, after the survivor
        second = wait_status(http, queued, {"successful", "failed", "dismissed"}, timeout=15)
        assert second["status"] == "successful", second
        assert parse_time(second["started"]) > parse_time(job["started"])
        survivor, follower = container_events(since, job_id), container_events(since, queued)
        assert survivor["die"] <= follower["start"], (survivor, follower)
    harness.assert_no_container()


def test_a_container_that_ended_while_the_server_was_down_is_finalised(
    harness: Harness, busybox: str
) -> None:
    harness.add(shell_process("quick", busybox, "sleep 1; echo '{\"plugin_results\": 7}'"))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "quick", response="document")
        running_container(http, job_id)
    server.stop(signal.SIGKILL)
    (container,) = job_containers(job_id)
    wait_until(lambda: inspect(container)["State"]["Status"] == "exited", 10, "the exit")

    restarted = harness.start()
    with restarted.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"})
        assert job["status"] == "successful", job
        assert http.get(f"/jobs/{job_id}/results").json() == {"result": 7}
        wait_no_container(job_id, 5)
    harness.assert_no_container()


def test_a_container_removed_while_the_server_was_down_fails_its_job(
    harness: Harness, busybox: str
) -> None:
    harness.add(sleeper("napper", busybox))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "napper")
        running_container(http, job_id)
    server.stop(signal.SIGKILL)
    docker("rm", "-f", *job_containers(job_id))
    restarted = harness.start()
    with restarted.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"})
        assert job["status"] == "failed", job
        assert "container is gone" in job["message"], job
    harness.assert_no_container()


def test_a_non_root_user_writes_its_results_directory(harness: Harness, busybox: str) -> None:
    script = (
        'echo written > "$PROCESS_API_RESULTS_DIR/out.txt" && '
        'printf \'{"plugin_results": "%s"}\\n\' "$(id -u):$(id -g)"'
    )
    harness.add(shell_process("non-root", busybox, script, user="1234:1234"))
    server = harness.start()
    with server.client() as http:
        response = http.post("/processes/non-root/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        assert response.json() == "1234:1234"
        job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
    written = server.data_dir / "storage" / "results" / job_id / "out.txt"
    assert written.read_text() == "written\n"
    # finding 9: the directory is the container user's, not open to everyone
    directory = written.parent.stat()
    assert (directory.st_uid, directory.st_gid) == (1234, 1234)
    assert stat.S_IMODE(directory.st_mode) == 0o750
    harness.assert_no_container()


def test_containers_of_unknown_jobs_are_removed_at_start(harness: Harness, busybox: str) -> None:
    harness.add(sleeper("napper", busybox))
    mine = ["--label", f"{LABEL_INSTANCE}={harness.instance}", "--network", "none"]
    created = docker("create", *mine, "--label", f"{LABEL_JOB}=bogus", busybox, "sleep", "60")
    running = docker(
        "run", "-d", *mine, "--label", f"{LABEL_JOB}=bogus-2", busybox, "sleep", "60"
    ).strip()
    other_instance = f"{harness.instance}-other"
    theirs = docker(
        "create",
        "--label",
        f"{LABEL_INSTANCE}={other_instance}",
        "--label",
        f"{LABEL_JOB}=bogus",
        "--network",
        "none",
        busybox,
        "sleep",
        "60",
    ).strip()
    try:
        assert len(harness.containers()) == 2
        server = harness.start()
        # pruning is part of the start: done before the server answers
        assert not harness.containers(), [created.strip(), running]
        assert labelled(LABEL_INSTANCE, other_instance) == [theirs[:12]]
        assert "left by an earlier run" in server.output()
    finally:
        docker("rm", "-f", theirs, check=False)
    harness.assert_no_container()


# -- 13. no engine -------------------------------------------------------------------


def test_without_an_engine_docker_processes_answer_503_and_others_run(
    harness: Harness, busybox: str, tmp_path: Path
) -> None:
    harness.add(sleeper("napper", busybox, 1))
    for name in ("echo.yml", "echo.py"):
        shutil.copyfile(EXAMPLES / "examples" / name, harness.plugins / name)
    socket_path = tmp_path / "no-engine.sock"
    server = harness.start(DOCKER_HOST=f"unix://{socket_path}")
    with server.client() as http:
        listed = [p["id"] for p in http.get("/processes").json()["processes"]]
        assert sorted(listed) == ["echo", "napper"]
        for headers in ({}, ASYNC):
            response = http.post(
                "/processes/napper/execution", json={"inputs": {}}, headers=headers
            )
            body = assert_exception(response, 503, "service-unavailable")
            assert "Docker Engine" in body["detail"], body
        assert job_count(http) == 0
        echo = http.post("/processes/echo/execution", json={"inputs": {"stringInput": "still"}})
        assert echo.status_code == 200, echo.text
        assert echo.json() == "still"
        ready = http.get("/ready")  # a process runs on the engine: the server is not ready
        assert ready.status_code == 503, ready.text
        assert any("Docker Engine is unreachable" in p for p in ready.json()["problems"])
    assert server.stop() == 0
    output = server.output()
    assert "Traceback" not in output, output
    assert "the Docker Engine is unreachable" in output


# -- 14. provenance ------------------------------------------------------------------


def test_metadata_of_a_finished_docker_job(harness: Harness, busybox: str) -> None:
    script = "echo '{\"plugin_results\": 1}'"
    harness.add(shell_process("meta", busybox, script))
    server = harness.start()
    with server.client() as http:
        response = http.post("/processes/meta/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
        metadata = http.get(f"/jobs/{job_id}/metadata")
        assert metadata.status_code == 200
        assert metadata.headers["content-type"].startswith("application/json")
        document = metadata.json()
        image_id = json.loads(docker("image", "inspect", busybox))[0]["Id"]
        assert document["jobID"] == job_id
        assert document["processID"] == "meta"
        assert document["host"] == "docker"
        assert document["status"] == "successful"
        assert document["image"] == busybox
        assert document["imageId"] == image_id
        assert document["command"] == ["sh", "-c", script, "sh"]
        created, started, finished = (
            parse_time(document[name]) for name in ("created", "started", "finished")
        )
        assert created <= started <= finished
        assert document["container"]  # the container's id, for the record
        assert "start" not in document
        html = http.get(f"/jobs/{job_id}/metadata", params={"f": "html"})
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert busybox in html.text and image_id in html.text
    harness.assert_no_container()


# -- long lines and restarts ---------------------------------------------------------


def test_a_stdout_line_longer_than_16_kib_reaches_the_results_whole(
    harness: Harness, busybox: str
) -> None:
    # The engine stores a long line as 16 KiB parts, each with a timestamp of its own.
    script = 'printf \'{"plugin_results": "%20000s"}\\n\' x'
    harness.add(shell_process("long-line", busybox, script))
    server = harness.start()
    with server.client() as http:
        response = http.post("/processes/long-line/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text[:300]
        value = response.json()
        # what went wrong, short: the 16 KiB boundary, where the timestamp sneaks in
        assert value.strip() == "x", repr(value.strip()[:80])
        assert value == " " * 19999 + "x"
    harness.assert_no_container()


def test_the_timeout_still_holds_for_a_container_followed_after_a_restart(
    harness: Harness, busybox: str
) -> None:
    harness.add(sleeper("slowpoke", busybox, 30, timeout=3))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "slowpoke")
        running_container(http, job_id)
    started = time.monotonic()
    server.stop(signal.SIGKILL)
    restarted = harness.start()
    with restarted.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, timeout=20)
        # the 3 s timeout, not the 30 s sleep (a restart on a busy machine takes a few seconds)
        assert time.monotonic() - started < 20
        assert job["status"] == "failed" and "timeout" in job["message"], job
        wait_no_container(job_id, 5)
    harness.assert_no_container()


# -- hardening: the crash window (finding 19) --------------------------------------------

#: a large plugin_results line and many lines just before the exit: the server has work
#: left (reading, parsing, storing) after the container exits, so its end is recorded late.
LATE_RECORD = 'sleep 1; seq 20000; printf \'{"plugin_results": "%2000000s"}\\n\' done'


def job_status_in_store(server: Server, job_id: str) -> str:
    """The job's status as the database holds it, read while the server cannot write."""
    with contextlib.closing(sqlite3.connect(server.data_dir / "jobs.sqlite")) as db:
        (status,) = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return str(status)


def wait_for_event(since: float, job_id: str, action: str, timeout: float = 30) -> None:
    """Blocks until the job's container has had the engine event (since `since`, epoch s)."""
    watcher = subprocess.Popen(
        [
            "docker",
            "events",
            f"--since={since:.3f}",
            "--filter=type=container",
            f"--filter=event={action}",
            f"--filter=label={LABEL_JOB}={job_id}",
            "--format={{.Action}}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        ready, _, _ = select.select([watcher.stdout], [], [], timeout)
        assert ready and watcher.stdout.readline(), f"no {action} event within {timeout} s"
    finally:
        watcher.kill()
        watcher.communicate()


def test_finding_19_a_jobs_end_is_recorded_before_its_container_is_removed(
    harness: Harness, busybox: str
) -> None:
    harness.add(shell_process("late", busybox, LATE_RECORD))
    # About the SQLite file: the job's record is read from it while the server is stopped.
    sqlite = {"DB_PATH": str(harness.tmp_path / "data" / "jobs.sqlite")}
    server = harness.start(**sqlite)
    since = time.time() - 1
    with server.client() as http:
        # The order, from the engine's clock and the job's record: removed after `finished`.
        response = http.post("/processes/late/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
        finished = parse_time(http.get(f"/jobs/{job_id}").json()["finished"]).timestamp()
        wait_no_container(job_id)
        destroyed = container_events(since, job_id)["destroy"]
        assert destroyed >= finished, f"removed {finished - destroyed:.3f} s before the record"

        # A server stopped the moment the container exits: while the store says `running`,
        # the container is there. Killed then, the next start concludes the job from it.
        caught = None
        for _ in range(5):
            since = time.time() - 1
            job_id = submit(http, "late")
            wait_for_event(since, job_id, "die")
            server.pause()
            status = job_status_in_store(server, job_id)
            if status == "running":
                assert job_containers(job_id), "the container went before the job's end"
                caught = job_id
                break
            server.pause(signal.SIGCONT)
            wait_no_container(job_id)  # recorded before the server stopped: try again
        assert caught, "the server always recorded the end before it could be stopped"
    server.stop(signal.SIGKILL)
    (container,) = job_containers(caught)
    assert inspect(container)["State"]["Status"] == "exited"

    restarted = harness.start(**sqlite)
    with restarted.client() as http:
        job = wait_status(http, caught, {"successful", "failed", "dismissed"})
        assert job["status"] == "successful", job
        value = http.get(f"/jobs/{caught}/results").json()
        assert value == " " * 1999996 + "done"
        texts = [line["text"] for line in whole_log(http, caught)]
        assert texts[:-1] == [str(number) for number in range(1, 20001)], len(texts)
        wait_no_container(caught)
    harness.assert_no_container()


# -- hardening: containers (finding 9) ---------------------------------------------------

#: a fork bomb that refuses to start without a pids limit on its cgroup (v1 or v2).
FORK_BOMB = r"""
limit=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)
if [ "$limit" = max ] || [ -z "$limit" ]; then echo "no pids limit: not forking" >&2; exit 9; fi
echo "pids limit $limit"
sleep 60 &
# The bomb goes off in a subshell: the shell that waits has forked all it needs first (a
# fork refused to it would end it, and the job, at once).
( f() { f | f & }; f ) &
wait
"""


def test_finding_9_the_pids_limit_holds_a_fork_bomb(harness: Harness, busybox: str) -> None:
    limits = {"cpus": 0.5, "memory": 128, "pids": 64}
    # The timeout leaves room for `docker stats`, which takes seconds on a machine the bomb keeps busy.
    harness.add(shell_process("bomb", busybox, FORK_BOMB, timeout=12, maxResources=limits))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "bomb")
        info = running_container(http, job_id)
        assert info["HostConfig"]["PidsLimit"] == 64
        wait_until(
            lambda: any(line["text"] == "pids limit 64" for line in log_lines(http, job_id)),
            10,
            "the bomb to go off",
        )
        counts = []
        slowest = 0.0
        while http.get(f"/jobs/{job_id}").json()["status"] == "running":
            started = time.monotonic()
            assert http.get("/processes").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            found = docker("stats", "--no-stream", "--format", "{{.PIDs}}", info["Id"], check=False)
            if found.strip().isdigit():
                counts.append(int(found))
        assert counts and max(counts) <= 64, counts
        assert slowest < 5, slowest
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"})
        assert job["status"] == "failed" and "timeout" in job["message"], job
        wait_no_container(job_id)
    harness.assert_no_container()


NETWORK_SCRIPT = r"""
echo "interfaces: $(ls /sys/class/net)"
echo "routes: $(grep -vc Iface /proc/net/route)"
sleep 2
echo '{"plugin_results": "looked"}'
"""


def test_finding_9_containers_have_no_network_by_default(harness: Harness, busybox: str) -> None:
    # The container's interfaces and routes show what it can reach: nothing but itself.
    # (No test sends traffic off the machine, so 169.254.169.254 is not tried for real:
    # without a route, nothing could leave.)
    harness.add(shell_process("looker", busybox, NETWORK_SCRIPT, network=None))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "looker")
        assert running_container(http, job_id)["HostConfig"]["NetworkMode"] == "none"
        job = wait_status(http, job_id, {"successful", "failed"})
        assert job["status"] == "successful", job
        texts = [line["text"] for line in log_lines(http, job_id)]
        assert "interfaces: lo" in texts, texts
        assert "routes: 0" in texts, texts
    harness.assert_no_container()


def validate(plugins: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`process-api validate` of a directory, with the given settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run(
        [sys.executable, "-m", "process_api", "validate", str(plugins)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_finding_9_network_capabilities_user_and_pids_are_checked_at_validation(
    tmp_path: Path, busybox: str
) -> None:
    plugins = tmp_path / "checked"
    plugins.mkdir()
    wrong = {
        "host-net": ({"network": "host"}, "container.network", "DOCKER_ALLOW_HOST_NETWORK"),
        "joined": ({"network": "container:other"}, "container.network", "'container:other'"),
        "admin": ({"capabilities": ["CHOWN", "SYS_ADMIN"]}, "container.capabilities", "SYS_ADMIN"),
        "all-caps": ({"capabilities": ["ALL"]}, "container.capabilities", "'ALL'"),
        "net-admin": ({"capabilities": ["cap_net_admin"]}, "container.capabilities", "net_admin"),
        "bad-user": ({"user": "root; rm -rf /"}, "container.user", "user name or uid"),
        "big-uid": ({"user": "9999999999"}, "container.user", "up to"),
        "many-pids": ({"maxResources": {"pids": 5000}}, "container.maxResources.pids", "1024"),
    }
    fine = {
        "caps": {"capabilities": ["cap_chown", "NET_BIND_SERVICE", "Kill"]},
        "users": {"user": "worker:staff"},
        "uid": {"user": "1234"},
        "bridge": {"network": "bridge"},
        "named": {"network": "my-net_1"},
    }
    for name, (fields, _, _) in wrong.items():
        (plugins / f"{name}.yml").write_text(yaml.safe_dump(sleeper(name, busybox, **fields)))
    for name, fields in fine.items():
        (plugins / f"{name}.yml").write_text(yaml.safe_dump(sleeper(name, busybox, **fields)))

    def refused(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        """Problem line by process name."""
        lines = result.stderr.splitlines()
        return {Path(line.split(": ", 1)[0]).stem: line for line in lines}

    result = validate(plugins)
    assert result.returncode == 2, result
    problems = refused(result)
    assert set(problems) == set(wrong), result.stderr
    for name, (_, field, words) in wrong.items():
        line = problems[name]
        # file:line:column: field: message
        assert re.search(rf"/{name}\.yml:\d+:\d+: {re.escape(field)}: ", line), line
        assert words.lower() in line.lower(), line
    assert f"{len(fine)} valid process file(s)" in result.stdout

    # what the server's settings allow
    allowed = validate(
        plugins,
        DOCKER_ALLOW_HOST_NETWORK="true",
        DOCKER_ALLOWED_CAPABILITIES="SYS_ADMIN, net_admin",
        DOCKER_PIDS_LIMIT="5000",
    )
    assert set(refused(allowed)) == {"joined", "all-caps", "bad-user", "big-uid"}, allowed
    host_default = validate(plugins, DOCKER_NETWORK="host")
    assert host_default.returncode == 3, host_default
    assert "DOCKER_ALLOW_HOST_NETWORK" in host_default.stderr


WORKER_PASSWD = "root:x:0:0:root:/root:/bin/sh\nworker:x:2345:2346:worker:/tmp:/bin/sh\n"
WORKER_GROUP = "root:x:0:\nworkers:x:2346:\n"


@pytest.fixture(scope="session")
def worker_image(docker_engine: None) -> Iterator[str]:
    """A busybox image whose configured user is a name of its own /etc/passwd."""
    tag = f"process-api-test/e2e-docker-worker:{os.getpid()}"
    files = {"etc/passwd": WORKER_PASSWD, "etc/group": WORKER_GROUP}
    busybox_image(files, tag=tag, changes=("USER worker",))
    yield tag
    remove_image(tag)


SHORT_SECRET = "xy7"
SECRET_FILES_SCRIPT = r"""
sleep 2
echo "the secret is $(cat "$MY_SECRET_FILE")"
echo "short: $(cat "$SHORT_FILE")"
echo "inside a word: abc$(cat "$SHORT_FILE")def"
echo "i am $(id -u):$(id -g)"
echo written > "$PROCESS_API_RESULTS_DIR/out.txt"
echo '{"plugin_results": "read"}'
"""


def test_finding_9_secrets_are_files_owned_by_the_containers_user_and_always_masked(
    harness: Harness, worker_image: str, tmp_path: Path
) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(f"MY_SECRET={SECRET}\nSHORT={SHORT_SECRET}\n")
    harness.add(
        shell_process("reader", worker_image, SECRET_FILES_SCRIPT, secrets=["MY_SECRET", "SHORT"])
    )
    server = harness.start(SECRETS_FILE=str(secrets_file))
    with server.client() as http:
        job_id = submit(http, "reader")
        info = running_container(http, job_id)
        assert SECRET not in json.dumps(info)
        env = info["Config"]["Env"]
        assert "MY_SECRET_FILE=/run/secrets/MY_SECRET" in env, env
        assert "SHORT_FILE=/run/secrets/SHORT" in env, env
        assert not any(item.startswith(("MY_SECRET=", "SHORT=")) for item in env), env
        (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/run/secrets"]
        assert mount["RW"] is False
        source = Path(mount["Source"])
        assert str(source).startswith("/dev/shm/"), source  # a tmpfs: never on a disk
        secret_file = (source / "MY_SECRET").stat()
        assert (secret_file.st_uid, secret_file.st_gid) == (2345, 2346)
        assert stat.S_IMODE(secret_file.st_mode) == 0o400
        assert stat.S_IMODE(source.parent.stat().st_mode) == 0o700  # other users stay out

        job = wait_status(http, job_id, {"successful", "failed"})
        assert job["status"] == "successful", job
        texts = [line["text"] for line in log_lines(http, job_id)]
        assert "the secret is ********" in texts, texts
        assert "short: ********" in texts, texts
        # a short value is masked where it stands alone, not inside every word
        assert f"inside a word: abc{SHORT_SECRET}def" in texts, texts
        assert "i am 2345:2346" in texts, texts
        wait_no_container(job_id)
        assert not source.exists()  # removed with the container
    results = server.data_dir / "storage" / "results" / job_id
    assert (results / "out.txt").read_text() == "written\n"
    assert (results.stat().st_uid, results.stat().st_gid) == (2345, 2346)
    assert stat.S_IMODE(results.stat().st_mode) == 0o750
    harness.assert_no_container()


# -- hardening: the log reader (finding 7) -----------------------------------------------


def test_finding_7_a_flood_of_lines_keeps_its_count_and_the_server_answers(
    harness: Harness, busybox: str
) -> None:
    lines = 200_000
    script = f'seq {lines}; echo \'{{"plugin_results": "printed"}}\''
    harness.add(shell_process("flood", busybox, script))
    server = harness.start()
    with server.client() as http:
        job_id = submit(http, "flood")
        took = []
        while True:
            started = time.monotonic()
            status = http.get(f"/jobs/{job_id}").json()["status"]
            took.append(time.monotonic() - started)
            if status not in ("accepted", "running"):
                break
            time.sleep(0.02)
        assert status == "successful", http.get(f"/jobs/{job_id}").json()["message"]
        assert http.get(f"/jobs/{job_id}/results").json() == "printed"
        texts = [line["text"] for line in whole_log(http, job_id)]
        assert len(texts) == lines + 1
        assert texts[-1] == '{"plugin_results": "printed"}'
        assert texts[:-1] == [str(number) for number in range(1, lines + 1)]
    # While 200,000 lines go by, answers stay quick: half within 200 ms, and 99 % within
    # a second (generous: the machine running the tests is shared and often loaded).
    took.sort()
    median, p99 = took[len(took) // 2], took[int(len(took) * 0.99)]
    assert median < 0.2 and p99 < 1.0, (median, p99, len(took))
    harness.assert_no_container()


def test_a_file_a_container_writes_to_results_is_served(harness: Harness, busybox: str) -> None:
    script = (
        "printf 'depth,flow\\n0,0\\n1,8\\n' > /results/table.csv && "
        'echo \'{"plugin_results": "table.csv"}\''
    )
    outputs = [{"id": "table", "schema": {"type": "string", "contentMediaType": "text/csv"}}]
    harness.add(shell_process("csv-writer", busybox, script, outputs=outputs))
    server = harness.start()
    with server.client() as http:
        response = http.post("/processes/csv-writer/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv"
        assert response.text == "depth,flow\n0,0\n1,8\n"
        job_id = response.headers["Link"].split(">")[0].rsplit("/", 1)[1]
        part = http.get(f"/jobs/{job_id}/results/table", headers={"Range": "bytes=11-"})
        assert part.status_code == 206 and part.text == "0,0\n1,8\n"
        listed = http.get(f"/jobs/{job_id}/files").json()["files"]
        assert [(f["name"], f["size"]) for f in listed] == [("table.csv", 19)]
    harness.assert_no_container()


def test_a_file_a_container_names_by_its_path_in_results_is_served(
    harness: Harness, busybox: str
) -> None:
    script = (
        "printf 'depth,flow\\n0,0\\n' > \"$PROCESS_API_RESULTS_DIR/table.csv\" && "
        'echo "{\\"plugin_results\\": \\"$PROCESS_API_RESULTS_DIR/table.csv\\"}"'
    )
    outputs = [{"id": "table", "schema": {"type": "string", "contentMediaType": "text/csv"}}]
    harness.add(shell_process("abs-writer", busybox, script, outputs=outputs))
    server = harness.start()
    with server.client() as http:
        response = http.post("/processes/abs-writer/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv"
        assert response.text == "depth,flow\n0,0\n"
    harness.assert_no_container()


# -- 15. two instances ---------------------------------------------------------------


def test_a_container_of_a_killed_instance_is_followed_to_its_end_by_another(
    harness: Harness, busybox: str
) -> None:
    """Two servers on one job store and one engine: when the one running a container is
    killed, the other takes the job over, follows the container to its end, records the
    right status once, and removes it."""
    harness.add(sleeper("napper", busybox, 4))
    first = harness.start(INSTANCE_LEASE="3")
    second = harness.start(INSTANCE_LEASE="3")
    with first.client() as on_first, second.client() as on_second:
        job_id = submit(on_first, "napper")
        wait_status(on_first, job_id, {"running"})
        first.stop(signal.SIGKILL)
        ended = wait_status(on_second, job_id, {"successful", "failed", "dismissed"}, 30)
        assert ended["status"] == "successful", ended
        assert on_second.get(f"/jobs/{job_id}/results").json() == "slept"
        logs = [line["text"] for line in on_second.get(f"/jobs/{job_id}/logs").json()["logs"]]
        assert logs.count("sleeping 4") == 1, logs  # one container, followed to its end
    harness.assert_no_container()


def test_a_container_dismissed_while_its_instance_is_dead_is_stopped_by_the_one_taking_over(
    harness: Harness, busybox: str
) -> None:
    """A dismiss recorded while the job's instance cannot act (stalled, then killed) is
    carried out by the instance that takes its jobs over: the container goes, the job
    stays dismissed."""
    harness.add(sleeper("stuck", busybox, 120))
    first = harness.start(INSTANCE_LEASE="30")
    second = harness.start(INSTANCE_LEASE="30")
    with first.client() as on_first, second.client() as on_second:
        job_id = submit(on_first, "stuck")
        running_container(on_first, job_id)
        assert first.proc is not None
        first.pause()  # alive, but sees no dismiss any more
        try:
            response = on_second.delete(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            time.sleep(1.5)  # a few of the owner's polls, had it been able to poll
            assert job_containers(job_id), "the container should still run"
        finally:
            first.stop(signal.SIGKILL)  # now dead: the second takes over at once
        wait_until(lambda: not job_containers(job_id), 20, "the dismissed job's container to go")
        job = on_second.get(f"/jobs/{job_id}").json()
        assert job["status"] == "dismissed", job
        assert job["message"] == "dismissed by the client", job
