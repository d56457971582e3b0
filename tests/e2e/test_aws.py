"""The aws-batch host and S3 storage against moto's server, whose Batch runs real containers.

Nothing reaches AWS: moto (tests/aws.py) answers Batch, CloudWatch Logs, S3 and
IAM on a loopback port, and runs each Batch job as a container of a locally
built image on the host network. moto gathers a job's CloudWatch log events only
once its container has ended, so logs are checked while a job runs (the route
answers) and afterwards (it holds the lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.aws import (
    JOB_DEFINITION,
    QUEUE,
    Moto,
    batch_job,
    busybox_with_date,
    moto_or_skip,
    register_definition,
    s3_get,
    s3_keys,
    server_env,
    session_moto,
    setup_aws,
)
from tests.conftest import DATA, EXAMPLES, Server, free_port, process_info, wait_status, wait_until
from tests.e2e.test_callbacks import Receiver
from tests.images import BUSYBOX, PYTHON, python_image
from tests.ogc import assert_valid

pytestmark = pytest.mark.usefixtures("docker_engine")

ASYNC = {"Prefer": "respond-async"}
OGC_EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
ALL_STATUSES = "accepted,running,successful,failed,dismissed"
GO_PLUGINS = DATA / "dewberry-plugins"
#: a Batch job: the container starts, moto notices its end and our server its status.
JOB_TIMEOUT = 60.0

#: a job that writes its results to S3 instead of printing them (argv[1]: the S3 endpoint).
PUT_RESULTS = """\
import json, os, sys, urllib.request
uri = os.environ["PROCESS_API_RESULTS_URI"]
print("results go to", uri)
bucket, _, prefix = uri.removeprefix("s3://").partition("/")
url = f"{sys.argv[1]}/{bucket}/{prefix}results.json"
body = json.dumps({"r": "from s3"}).encode()
# moto checks no signature, but wants one; urllib's default media type would make it a form.
headers = {
    "Content-Type": "application/json",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=00",
}
request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
with urllib.request.urlopen(request, timeout=10) as answer:
    print("PUT", url, answer.status)
"""


# -- helpers -----------------------------------------------------------------------


def batch_process(
    process_id: str,
    script: str = "",
    *,
    command: list[str] | None = None,
    definition: str = JOB_DEFINITION,
    queue: str = QUEUE,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An aws-batch process running `sh -c script sh` (the inputs JSON is $1)."""
    return {
        "info": process_info(process_id),
        "host": {"type": "aws-batch", "jobDefinition": definition, "jobQueue": queue},
        "container": {"command": command or ["sh", "-c", script, "sh"]},
        "inputs": inputs or [],
        "outputs": outputs if outputs is not None else [{"id": "result", "schema": {}}],
    }


def sleeper(process_id: str, seconds: float) -> dict[str, Any]:
    return batch_process(
        process_id,
        f'echo "sleeping {seconds}"; sleep {seconds}; echo \'{{"plugin_results": "slept"}}\'',
    )


@pytest.fixture(scope="session")
def moto(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    yield from session_moto(tmp_path_factory)


class Aws:
    """The processes, bucket and servers of one test, against one moto server."""

    def __init__(self, moto: Moto, factory: Callable[..., Server], tmp_path: Path) -> None:
        self.moto = moto
        self.factory = factory
        self.tmp_path = tmp_path
        self.plugins = tmp_path / "aws-plugins"
        self.plugins.mkdir(exist_ok=True)
        self.env = setup_aws(moto)
        self.bucket = self.env["S3_BUCKET"]

    def add(self, document: dict[str, Any]) -> None:
        name = document["info"]["id"]
        (self.plugins / f"{name}.yml").write_text(yaml.safe_dump(document, sort_keys=False))

    def start(self, *args: str, **env: str) -> Server:
        return self.factory(self.plugins, *args, env={**self.env, **env})

    def keys(self, prefix: str = "") -> list[str]:
        return s3_keys(self.moto, self.bucket, prefix)


@pytest.fixture
def aws(moto: Moto, server_factory: Callable[..., Server], tmp_path: Path) -> Aws:
    return Aws(moto, server_factory, tmp_path)


@pytest.fixture(scope="session")
def python_definition(moto: Moto) -> str:
    """A job definition whose image has a real Python."""
    python_image()
    register_definition(moto, "test-py", PYTHON)
    return "test-py"


def submit(http: httpx.Client, process_id: str, inputs: dict[str, Any] | None = None) -> str:
    response = http.post(
        f"/processes/{process_id}/execution", json={"inputs": inputs or {}}, headers=ASYNC
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def job_count(http: httpx.Client) -> int:
    response = http.get("/jobs", params={"status": ALL_STATUSES})
    assert response.status_code == 200, response.text
    return int(response.json()["numberMatched"])


def log_texts(http: httpx.Client, job_id: str) -> list[str]:
    response = http.get(f"/jobs/{job_id}/logs")
    assert response.status_code == 200, response.text
    return [line["text"] for line in response.json()["logs"]]


def assert_exception(response: httpx.Response, status: int, type_suffix: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("exception", body)
    assert body["type"] == OGC_EXC + type_suffix, body
    return dict(body)


def handle(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """What the server recorded of the job's Batch job (its metadata)."""
    response = http.get(f"/jobs/{job_id}/metadata")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_batch(moto: Moto, batch_job_id: str, statuses: set[str], timeout: float = 30) -> dict:
    return dict(
        wait_until(
            lambda: (job := batch_job(moto, batch_job_id))["status"] in statuses and job,
            timeout,
            f"Batch job {batch_job_id} to be {statuses}",
        )
    )


def container_gone(name: str) -> bool:
    result = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=^{name}$"], capture_output=True, text=True
    )
    return result.returncode == 0 and not result.stdout.strip()


#: what the proxy does not pass on as it is (it gives the body whole and decoded).
HOP_HEADERS = ("content-length", "content-encoding", "transfer-encoding", "connection")


class SlowProxy:
    """A loopback HTTP proxy to moto that holds each call of a slowed Batch action some
    seconds: the window in which a job is being submitted or stopped, made wide enough
    to act in."""

    def __init__(self, moto: Moto) -> None:
        self.moto = moto
        #: URL path of the action (e.g. /v1/submitjob) -> seconds; set while it runs.
        self.delays: dict[str, float] = {}
        #: URL path -> set once a call of it came.
        self.seen: dict[str, threading.Event] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                for path, delay in list(proxy.delays.items()):
                    if self.path.startswith(path):
                        proxy.seen[path].set()
                        time.sleep(delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.request(
                    self.command, proxy.moto.url + self.path, headers=headers, content=body
                )
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def slow(self, path: str, delay: float) -> threading.Event:
        """Holds each later call of the action `delay` seconds; the event is set at the first."""
        self.seen.setdefault(path, threading.Event())
        self.delays[path] = delay
        return self.seen[path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SlowSubmit(SlowProxy):
    """The proxy, holding each SubmitJob call `delay` seconds."""

    def __init__(self, moto: Moto, delay: float) -> None:
        super().__init__(moto)
        self.submitting = self.slow("/v1/submitjob", delay)


def jobs_named(moto: Moto, name: str) -> list[dict[str, Any]]:
    """Every Batch job of the name in the test queue, whatever its status."""
    listed = moto.client("batch").list_jobs(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    return list(listed["jobSummaryList"])


# -- 1. success --------------------------------------------------------------------


def test_sync_job_returns_its_plugin_results(aws: Aws) -> None:
    aws.add(
        batch_process(
            "bwecho",
            'echo "got $1"; echo "results at $PROCESS_API_RESULTS_URI"; '
            'echo "{\\"plugin_results\\": \\"ok\\"}"',
            inputs=[{"id": "text", "schema": {"type": "string"}}],
        )
    )
    server = aws.start()
    with server.client() as http:
        response = http.post("/processes/bwecho/execution", json={"inputs": {"text": "hi"}})
        assert response.status_code == 200, response.text
        assert response.json() == "ok"
        job_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]
        job = http.get(f"/jobs/{job_id}").json()
        assert job["status"] == "successful", job
        texts = log_texts(http, job_id)
    assert 'got {"text": "hi"}' in texts, texts
    assert f"results at s3://{aws.bucket}/results/{job_id}/" in texts, texts


def test_results_json_written_to_s3_by_the_process(aws: Aws, python_definition: str) -> None:
    aws.add(
        batch_process(
            "pywrites3",
            command=["python", "-c", PUT_RESULTS, aws.moto.url],
            definition=python_definition,
            outputs=[{"id": "r", "schema": {"type": "string"}}],
        )
    )
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "pywrites3")
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", (job["message"], log_texts(http, job_id))
        results = http.get(f"/jobs/{job_id}/results")
        assert results.status_code == 200, results.text
        assert results.json() == "from s3"
        texts = log_texts(http, job_id)
    key = f"results/{job_id}/results.json"
    assert json.loads(s3_get(aws.moto, aws.bucket, key)) == {"r": "from s3"}
    assert f"results go to s3://{aws.bucket}/results/{job_id}/" in texts, texts


# -- 2. failure --------------------------------------------------------------------


def test_a_failing_batch_job_fails_the_job(aws: Aws) -> None:
    aws.add(batch_process("bwfail", 'echo "about to fail" >&2; exit 3'))
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "bwfail")
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "failed", job
        # moto reports neither the container's exit code nor a statusReason for it.
        assert job["message"].startswith("the AWS Batch job failed ("), job
        batch = batch_job(aws.moto, handle(http, job_id)["batchJobId"])
        assert batch["status"] == "FAILED", batch
        for given in (batch.get("statusReason"), batch["container"].get("exitCode")):
            if given is not None:
                assert str(given) in job["message"], (job, batch)
        assert "about to fail" in log_texts(http, job_id)


# -- 3. logs and metadata ------------------------------------------------------------


def test_logs_while_running_and_after_and_what_s3_keeps(aws: Aws) -> None:
    aws.add(
        batch_process(
            "bwlogs",
            'echo "line one"; echo "line two" >&2; sleep 3; '
            'echo "{\\"plugin_results\\": \\"logged\\"}"',
        )
    )
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "bwlogs")
        wait_status(http, job_id, {"running"}, JOB_TIMEOUT)
        running = http.get(f"/jobs/{job_id}/logs")
        assert running.status_code == 200, running.text
        assert running.json()["status"] == "running"
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", job
        texts = log_texts(http, job_id)
        assert {"line one", "line two", '{"plugin_results": "logged"}'} <= set(texts), texts
        metadata = handle(http, job_id)
    assert metadata["jobQueue"] == QUEUE
    assert metadata["jobDefinition"] == JOB_DEFINITION
    assert metadata["image"] == BUSYBOX
    assert metadata["status"] == "successful"
    batch = batch_job(aws.moto, metadata["batchJobId"])
    assert batch["status"] == "SUCCEEDED", batch
    assert batch["jobName"] == metadata["jobName"]
    assert f"logs/{job_id}.jsonl" in aws.keys("logs/")
    stored = [
        json.loads(line)
        for line in s3_get(aws.moto, aws.bucket, f"logs/{job_id}.jsonl").splitlines()
    ]
    assert [r["text"] for r in stored] == texts
    kept = json.loads(s3_get(aws.moto, aws.bucket, f"metadata/{job_id}.json"))
    assert kept["batchJobId"] == metadata["batchJobId"]
    assert kept["status"] == "successful"


def test_the_metadata_of_a_batch_job_run_by_a_worker_names_its_image(aws: Aws) -> None:
    # The supervisor of --workers loads the process files; each worker learns the job
    # definition's image itself.
    aws.add(batch_process("bwimage", 'echo "{\\"plugin_results\\": \\"ok\\"}"'))
    server = aws.start("--workers", "2")
    with server.client() as http:
        response = http.post("/processes/bwimage/execution", json={"inputs": {}})
        assert response.status_code == 200, response.text
        job_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]
        metadata = handle(http, job_id)
    assert metadata["image"] == BUSYBOX, metadata
    assert metadata["jobDefinition"] == JOB_DEFINITION


# -- 4. dismiss --------------------------------------------------------------------


def test_dismissing_a_running_batch_job_terminates_it(aws: Aws) -> None:
    aws.add(sleeper("bwsleep", 60))
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "bwsleep")
        wait_status(http, job_id, {"running"}, JOB_TIMEOUT)
        run = handle(http, job_id)
        wait_batch(aws.moto, run["batchJobId"], {"RUNNING"})
        container = f"{run['jobName']}-{run['batchJobId']}"
        wait_until(lambda: not container_gone(container), 20, "the job's container")
        response = http.delete(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "dismissed"
        batch = wait_batch(aws.moto, run["batchJobId"], {"FAILED", "SUCCEEDED"})
        assert batch["status"] == "FAILED", batch
        assert batch["statusReason"] == "dismissed through process-api", batch
        wait_until(lambda: container_gone(container), 20, "the job's container to go")
        assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"


def test_dismissing_a_batch_job_still_in_its_queue_cancels_it(aws: Aws) -> None:
    aws.add(sleeper("bwqueued", 30))
    server = aws.start()
    # moto's jobs stay a few seconds in SUBMITTED, PENDING and RUNNABLE, as in a busy queue.
    aws.moto.set_batch_transition(3)
    try:
        with server.client() as http:
            job_id = submit(http, "bwqueued")
            wait_until(
                lambda: http.get(f"/jobs/{job_id}").json()["message"] == "submitted",
                10,
                "the job to be submitted",
            )
            batch_id = handle(http, job_id)["batchJobId"]
            assert batch_job(aws.moto, batch_id)["status"] in ("SUBMITTED", "PENDING"), batch_id
            response = http.delete(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "dismissed"
            queued = batch_job(aws.moto, batch_id)
            assert queued["status"] in ("SUBMITTED", "PENDING", "RUNNABLE"), queued
            assert queued["statusReason"] == "dismissed through process-api", queued
    finally:
        aws.moto.set_batch_transition(None)
    batch = wait_batch(aws.moto, batch_id, {"FAILED", "SUCCEEDED"})
    assert batch["status"] == "FAILED", batch


def test_dismissing_a_job_while_it_is_being_submitted_stops_its_batch_job(aws: Aws) -> None:
    aws.add(sleeper("bwrace", 3))
    proxy = SlowSubmit(aws.moto, 1.5)
    try:
        server = aws.start(AWS_ENDPOINT_URL=proxy.url)
        with server.client() as http:
            job_id = submit(http, "bwrace")
            assert proxy.submitting.wait(10), "SubmitJob never came"
            response = http.delete(f"/jobs/{job_id}")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "dismissed"
            batch = aws.moto.client("batch")

            def created() -> list[dict[str, Any]]:
                jobs = batch.list_jobs(
                    jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [f"bwrace-{job_id}"]}]
                )["jobSummaryList"]
                return list(jobs)

            (summary,) = wait_until(created, 10, "the Batch job to be created")
            ended = wait_batch(aws.moto, summary["jobId"], {"FAILED", "SUCCEEDED"})
            assert http.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
    finally:
        proxy.close()
    # What a dismiss does to a Batch job it knows of (see the tests above).
    assert ended["status"] == "FAILED", ended
    assert ended.get("statusReason") == "dismissed through process-api", ended


def test_finding_2_a_shutdown_during_a_dismiss_still_stops_the_batch_job(aws: Aws) -> None:
    aws.add(sleeper("bwstopping", 60))
    proxy = SlowProxy(aws.moto)
    try:
        server = aws.start(AWS_ENDPOINT_URL=proxy.url)
        with server.client() as http:
            job_id = submit(http, "bwstopping")
            wait_status(http, job_id, {"running"}, JOB_TIMEOUT)
            batch_id = handle(http, job_id)["batchJobId"]
            wait_batch(aws.moto, batch_id, {"RUNNING"})
            # Stopping reads the job's status, then terminates it: each call held long enough
            # for the server's shutdown (which cancels the run again) to come in between.
            proxy.slow("/v1/describejobs", 3.0)
            proxy.slow("/v1/terminatejob", 3.0)

            def dismiss() -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server may go first
                    httpx.delete(f"{server.url}/jobs/{job_id}", timeout=60)

            threading.Thread(target=dismiss, daemon=True).start()
            wait_until(
                lambda: http.get(f"/jobs/{job_id}").json()["status"] == "dismissed",
                10,
                "the job to be dismissed",
            )
        time.sleep(0.5)  # the stop is waiting for DescribeJobs
        assert server.stop(signal.SIGTERM) == 0, server.output()
    finally:
        proxy.close()
    batch = wait_batch(aws.moto, batch_id, {"FAILED", "SUCCEEDED"}, 20)
    assert batch["status"] == "FAILED", batch
    assert batch["statusReason"] == "dismissed through process-api", batch


# -- 5. restarts -------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_batch_job_goes_on_while_the_server_restarts(aws: Aws, sig: int) -> None:
    aws.add(sleeper("bwrestart", 6))
    first = aws.start()
    with first.client() as http:
        job_id = submit(http, "bwrestart")
        wait_status(http, job_id, {"running"}, JOB_TIMEOUT)
        batch_id = handle(http, job_id)["batchJobId"]
    code = first.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), first.output()
    batch = batch_job(aws.moto, batch_id)  # not stopped by the server's stop
    assert batch["status"] in ("RUNNING", "SUCCEEDED") and "statusReason" not in batch, batch
    second = aws.start()
    with second.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", (job, second.output())
        assert http.get(f"/jobs/{job_id}/results").json() == "slept"
        assert "sleeping 6" in log_texts(http, job_id)
    assert batch_job(aws.moto, batch_id)["status"] == "SUCCEEDED"


def test_a_restart_while_a_job_is_being_submitted_runs_one_batch_job(aws: Aws) -> None:
    aws.add(sleeper("bwdup", 1))
    proxy = SlowSubmit(aws.moto, 1.5)
    try:
        first = aws.start(AWS_ENDPOINT_URL=proxy.url)
        with first.client() as http:
            job_id = submit(http, "bwdup")
            assert proxy.submitting.wait(10), "SubmitJob never came"
        assert first.stop(signal.SIGTERM) == 0, first.output()
    finally:
        proxy.close()
    second = aws.start()
    with second.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", job["message"]
    listed = aws.moto.client("batch").list_jobs(
        jobQueue=QUEUE, filters=[{"name": "JOB_NAME", "values": [f"bwdup-{job_id}"]}]
    )["jobSummaryList"]
    assert len(listed) == 1, listed


def test_finding_3_a_crash_right_after_submitjob_runs_one_batch_job(aws: Aws) -> None:
    aws.add(sleeper("bwcrash", 1))
    proxy = SlowSubmit(aws.moto, 2.0)
    try:
        first = aws.start(AWS_ENDPOINT_URL=proxy.url)
        with first.client() as http:
            job_id = submit(http, "bwcrash")
            assert proxy.submitting.wait(10), "SubmitJob never came"
        # Killed before SubmitJob answers: the Batch job is made, its id is never recorded.
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL, first.output()
        name = f"bwcrash-{job_id}"
        wait_until(lambda: jobs_named(aws.moto, name), 15, "the Batch job to be created")
    finally:
        proxy.close()
    second = aws.start()
    with second.client() as http:
        job = wait_status(http, job_id, {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", (job["message"], second.output())
        assert http.get(f"/jobs/{job_id}/results").json() == "slept"
        listed = jobs_named(aws.moto, name)
        assert len(listed) == 1, listed  # before, the restart submitted a second one
        assert handle(http, job_id)["batchJobId"] == listed[0]["jobId"]


# -- 6. AWS unreachable ------------------------------------------------------------


def test_an_unreachable_aws_endpoint_fails_jobs_and_the_server_goes_on(
    server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    plugins = tmp_path / "aws-plugins"
    plugins.mkdir()
    (plugins / "bwecho.yml").write_text(
        yaml.safe_dump(batch_process("bwecho", 'echo "{\\"plugin_results\\": \\"ok\\"}"'))
    )
    bucket = "bkt-unreachable"
    env = server_env(Moto(port), bucket)  # a moto server that is not there
    # It starts although it cannot read its job definitions.
    server = server_factory(plugins, env=env, start=False).start(wait=False)
    server.wait_ready(timeout=45)
    with server.client() as http:
        job_id = submit(http, "bwecho")
        job = wait_status(http, job_id, {"successful", "failed"}, 45)
        assert job["status"] == "failed", job
        # Its inputs go to S3 first, at the same unreachable endpoint.
        assert "inputs could not be written" in job["message"], job
        assert http.get("/processes").status_code == 200
        # AWS comes (back): the same server runs jobs.
        with moto_or_skip(port=port, log_dir=tmp_path) as revived:
            setup_aws(revived, bucket)
            response = http.post("/processes/bwecho/execution", json={"inputs": {}})
            assert response.status_code == 200, response.text
            assert response.json() == "ok"
        # And goes away again.
        job_id = submit(http, "bwecho")
        job = wait_status(http, job_id, {"successful", "failed"}, 45)
        assert job["status"] == "failed", job
        assert "inputs could not be written" in job["message"], job
        assert http.get("/processes/bwecho").status_code == 200
        assert http.get(f"/jobs/{job_id}").status_code == 200
    assert server.proc is not None and server.proc.poll() is None


# -- 7. expiry ---------------------------------------------------------------------


def test_results_logs_and_metadata_expire_from_s3(aws: Aws, python_definition: str) -> None:
    aws.add(
        batch_process(
            "pyexpire",
            command=["python", "-c", PUT_RESULTS, aws.moto.url],
            definition=python_definition,
            outputs=[{"id": "r", "schema": {"type": "string"}}],
        )
    )
    server = aws.start(EXPIRY_DAYS="0.0001")  # about 8.6 s
    with server.client() as http:
        job_id = submit(http, "pyexpire")
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", job
        assert aws.keys(f"results/{job_id}/") == [f"results/{job_id}/results.json"]
        # the log and metadata are kept just after the status is recorded
        kept = {f"logs/{job_id}.jsonl", f"metadata/{job_id}.json"}
        wait_until(lambda: kept <= set(aws.keys()), 5, "the log and metadata to be kept")
        wait_until(lambda: http.get(f"/jobs/{job_id}/results").status_code == 410, 30, "expiry")
        for path in ("results", "logs", "metadata"):
            assert_exception(http.get(f"/jobs/{job_id}/{path}"), 410, "results-expired")
        wait_until(
            lambda: (
                not any(
                    key
                    for prefix in ("results/", "logs/", "metadata/")
                    for key in aws.keys(prefix)
                    if job_id in key
                )
            ),
            10,
            "the S3 objects of the job to go",
        )
        listed = http.get("/jobs", params={"status": ALL_STATUSES}).json()["jobs"]
        assert [j["status"] for j in listed if j["jobID"] == job_id] == ["successful"]
        assert http.get(f"/jobs/{job_id}").json()["status"] == "successful"


# -- 8. the Go server's .env -------------------------------------------------------


def test_the_go_servers_env_file_configures_batch_and_s3(
    moto: Moto,
    server_factory: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "S3_BUCKET",
        "S3_RESULTS_DIR",
        "S3_LOGS_DIR",
        "S3_META_DIR",
        "BATCH_LOG_STREAM_GROUP",
        "EXPIRY_DAYS",
    ):
        monkeypatch.delenv(name, raising=False)
    bucket = "bkt-dotenv"
    setup_aws(moto, bucket)
    dotenv = tmp_path / "go.env"
    dotenv.write_text(
        "# the Go process-api's .env\n"
        "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n"
        "AWS_SECRET_ACCESS_KEY='example/secret+key'\n"
        "AWS_DEFAULT_REGION=us-east-1\n"
        f"S3_BUCKET={bucket}\n"
        "S3_RESULTS_DIR=jobresults\n"
        "S3_LOGS_DIR=joblogs\n"
        "S3_META_DIR=jobmeta\n"
        "BATCH_LOG_STREAM_GROUP=/aws/batch/job\n"
        "EXPIRY_DAYS=7\n"
        f"AWS_ENDPOINT_URL={moto.url}\n"
    )
    plugins = tmp_path / "aws-plugins"
    plugins.mkdir()
    script = 'echo "results at $PROCESS_API_RESULTS_URI"; echo "{\\"plugin_results\\": \\"ok\\"}"'
    (plugins / "bwdotenv.yml").write_text(yaml.safe_dump(batch_process("bwdotenv", script)))
    server = server_factory(plugins, "-e", str(dotenv), env={"BATCH_POLL_INTERVAL": "0.3"})
    with server.client() as http:
        job_id = submit(http, "bwdotenv")
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", (job, server.output())
        assert f"results at s3://{bucket}/jobresults/{job_id}/" in log_texts(http, job_id)
        assert handle(http, job_id)["image"] == BUSYBOX  # read at start through the .env
    keys = s3_keys(moto, bucket)
    assert f"joblogs/{job_id}.jsonl" in keys, keys
    assert f"jobmeta/{job_id}.json" in keys, keys
    assert not [k for k in keys if k.startswith(("logs/", "metadata/"))], keys


# -- 9. the Go server's process files ----------------------------------------------


@pytest.fixture(scope="session")
def go_definitions(moto: Moto) -> str:
    """The job definitions and queue the Go server's dfc.yml and logHelloWorld.yml name.

    logHelloWorld's script calls `date`: its image is busybox with that applet too.
    """
    image = busybox_with_date()
    setup_aws(moto, queue="micro-test", definitions={})
    register_definition(moto, "process-sandbox", BUSYBOX, revision=2)
    return register_definition(moto, "gdal-ogrinfo", image, revision=5)["jobDefinitionArn"]


def test_a_missing_job_definition_stops_the_server_from_starting(aws: Aws) -> None:
    aws.add(batch_process("bwmissing", "true", definition="no-such-definition"))
    server = aws.factory(aws.plugins, env=aws.env, start=False).start(wait=False)
    assert server.proc is not None
    server.proc.wait(45)
    code = server.stop()
    output = server.output()
    assert code != 0, output
    assert "bwmissing.yml" in output and "host.jobDefinition" in output, output
    assert "no-such-definition" in output, output


def test_the_go_servers_batch_files_load_unchanged(aws: Aws, go_definitions: str) -> None:
    for name in ("dfc.yml", "logHelloWorld.yml"):
        shutil.copy(GO_PLUGINS / name, aws.plugins / name)
    server = aws.factory(aws.plugins, env=aws.env, start=False).start(wait=False)
    try:
        server.wait_ready()
    except AssertionError:
        server.stop()
        raise
    with server.client() as http:
        ids = {p["id"] for p in http.get("/processes").json()["processes"]}
    assert {"dfc", "logHelloWorld"} <= ids


def test_the_go_servers_log_hello_world_runs(aws: Aws, go_definitions: str) -> None:
    shutil.copy(GO_PLUGINS / "logHelloWorld.yml", aws.plugins / "logHelloWorld.yml")
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "logHelloWorld")
        job = wait_status(http, job_id, {"successful", "failed"}, 100)
        assert job["status"] == "successful", job
        # It declares no outputs: its plugin_results is output `result`.
        output = http.get(f"/jobs/{job_id}/results/result")
        assert output.json() == "Hello World printed 3000 times", output.text
        texts = log_texts(http, job_id)
    assert len(texts) == 3001, texts[:3]
    assert [json.loads(t)["msg"] for t in texts[:3000]] == [f"hello world {i}" for i in range(3000)]
    assert json.loads(texts[-1]) == {"plugin_results": "Hello World printed 3000 times"}


def test_the_value_of_a_process_declaring_no_outputs_is_in_its_results(aws: Aws) -> None:
    document = batch_process("bwnoout", 'echo "{\\"plugin_results\\": \\"hello\\"}"', outputs=[])
    document["info"]["outputTransmission"] = ["reference"]  # as in logHelloWorld.yml
    aws.add(document)
    server = aws.start()
    with server.client() as http:
        job_id = submit(http, "bwnoout")
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", job["message"]
        assert http.get(f"/jobs/{job_id}/results/result").json() == "hello"
        results = http.get(f"/jobs/{job_id}/results")
        if results.status_code == 204:
            assert f"/jobs/{job_id}/results/result" in results.headers.get("Link", ""), results
        else:
            assert results.status_code == 200 and results.json() in ("hello", {"result": "hello"})


# -- 10. too large for Batch --------------------------------------------------------


def test_an_execute_request_too_large_for_batch_answers_413(aws: Aws) -> None:
    aws.add(batch_process("bwbig", "true", inputs=[{"id": "blob", "schema": {"type": "string"}}]))
    server = aws.start()
    with server.client() as http:
        before = job_count(http)
        response = http.post(
            "/processes/bwbig/execution", json={"inputs": {"blob": "x" * 40_000}}, headers=ASYNC
        )
        body = assert_exception(response, 413, "payload-too-large")
        assert "AWS Batch" in body["detail"], body
        assert "30000" in body["detail"], body
        assert "inputsAs: file" in body["detail"], body
        assert job_count(http) == before


#: a job that reads its inputs from S3 (argv[1]: the S3 endpoint) and says what it got.
GET_INPUTS = """import json, os, sys, urllib.request
uri = os.environ["PROCESS_API_INPUTS_URI"]
bucket, _, key = uri.removeprefix("s3://").partition("/")
headers = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=00",
}
request = urllib.request.Request(f"{sys.argv[1]}/{bucket}/{key}", headers=headers)
with urllib.request.urlopen(request, timeout=10) as answer:
    inputs = json.load(answer)
print(json.dumps({"plugin_results": {
    "uri": uri, "blob": len(inputs["blob"]), "arguments": len(sys.argv) - 2,
    "file": os.environ.get("PROCESS_API_INPUTS_FILE"),
}}))
"""


def test_inputs_too_large_for_batch_reach_a_process_taking_them_from_s3(
    aws: Aws, python_definition: str
) -> None:
    document = batch_process(
        "pyinputs",
        command=["python", "-c", GET_INPUTS, aws.moto.url],
        definition=python_definition,
        inputs=[{"id": "blob", "schema": {"type": "string"}}],
    )
    aws.add({**document, "inputsAs": "file"})
    server = aws.start(EXPIRY_DAYS="0.0001")  # about 8.6 s
    with server.client() as http:
        job_id = submit(http, "pyinputs", {"blob": "x" * 40_000})
        job = wait_status(http, job_id, {"successful", "failed"}, JOB_TIMEOUT)
        assert job["status"] == "successful", (job["message"], log_texts(http, job_id))
        key = f"metadata/{job_id}.inputs.json"
        seen = http.get(f"/jobs/{job_id}/results/result").json()
        # Not among the results the process writes, and no argument nor file of this machine.
        assert seen == {
            "uri": f"s3://{aws.bucket}/{key}",
            "blob": 40_000,
            "arguments": 0,
            "file": None,
        }
        assert not [k for k in aws.keys("results/") if job_id in k]
        wait_until(lambda: key not in aws.keys("metadata/"), 30, "retention to remove the inputs")


# -- 11. files written to S3 -------------------------------------------------------

#: writes a CSV table and a note to the job's S3 results prefix (argv[1]: the S3 endpoint),
#: and returns them: by name, and by its own s3:// URI.
S3_WRITER = """\
import json, os, sys, urllib.request
uri = os.environ["PROCESS_API_RESULTS_URI"]
bucket, _, prefix = uri.removeprefix("s3://").partition("/")
headers = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=00",
}
def put(name, body, media):
    url = f"{sys.argv[1]}/{bucket}/{prefix}{name}"
    request = urllib.request.Request(
        url, data=body, method="PUT", headers={**headers, "Content-Type": media}
    )
    urllib.request.urlopen(request, timeout=10).close()
put("rating.csv", b"depth,flow\\n" + b"".join(b"%d,%d\\n" % (i, i * i) for i in range(5000)),
    "text/csv")
put("extra/notes.txt", b"notes", "text/plain")
print(json.dumps({"plugin_results": {
    "table": "rating.csv",
    "notes": {"href": uri + "extra/notes.txt"},
    "elsewhere": {"href": "s3://another-bucket/x.csv"},
}}))
"""
TABLE = b"depth,flow\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(5000))


def s3_writer(aws: Aws) -> None:
    (aws.plugins / "s3writer.py").write_text(S3_WRITER)
    aws.add(
        {
            "info": {**process_info("s3writer"), "outputTransmission": ["value", "reference"]},
            "host": {"type": "subprocess", "command": ["python3", "s3writer.py", aws.moto.url]},
            "outputs": [
                {"id": "table", "schema": {"type": "string", "contentMediaType": "text/csv"}},
                {"id": "notes", "schema": {"type": "string"}},
                {"id": "elsewhere", "schema": {"type": "object"}},
            ],
        }
    )


def run_s3_writer(http: httpx.Client) -> tuple[str, dict[str, Any]]:
    response = http.post("/processes/s3writer/execution", json={"response": "document"})
    assert response.status_code == 200, response.text
    job_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]
    return job_id, response.json()


def test_files_a_process_writes_to_s3_are_streamed_with_ranges(aws: Aws) -> None:
    s3_writer(aws)
    server = aws.start()
    with server.client() as http:
        job_id, document = run_s3_writer(http)
        table = document["table"]
        assert table["href"] == f"{server.url}/jobs/{job_id}/results/table"
        assert table["type"] == "text/csv"
        whole = http.get(table["href"])
        assert whole.status_code == 200 and whole.content == TABLE
        assert whole.headers["content-length"] == str(len(TABLE))
        head = aws.moto.client("s3").head_object(
            Bucket=aws.bucket, Key=f"results/{job_id}/rating.csv"
        )
        assert whole.headers["etag"] == head["ETag"]
        part = http.get(table["href"], headers={"Range": "bytes=11-14"})
        assert part.status_code == 206 and part.content == TABLE[11:15]
        assert part.headers["content-range"] == f"bytes 11-14/{len(TABLE)}"
        beyond = http.get(table["href"], headers={"Range": f"bytes={len(TABLE)}-"})
        assert beyond.status_code == 416
        unchanged = http.get(table["href"], headers={"If-None-Match": head["ETag"]})
        assert unchanged.status_code == 304
        # the process's s3:// URI of its own results became the server's address
        notes = document["notes"]
        assert notes["href"] == f"{server.url}/jobs/{job_id}/results/notes"
        assert http.get(notes["href"]).text == "notes"
        # a link to another bucket stays the value it is
        assert document["elsewhere"]["value"] == {"href": "s3://another-bucket/x.csv"}
        listed = http.get(f"/jobs/{job_id}/files").json()["files"]
        assert [(f["name"], f["size"]) for f in listed] == [
            ("extra/notes.txt", 5),
            ("rating.csv", len(TABLE)),
        ]
        assert http.get(listed[0]["href"]).text == "notes"


def test_presigned_redirects_lead_to_the_file_in_s3(aws: Aws) -> None:
    s3_writer(aws)
    server = aws.start(RESULTS_REDIRECT="presigned", RESULTS_URL_EXPIRY="120")
    with server.client() as http:
        job_id, document = run_s3_writer(http)
        href = document["table"]["href"]
        assert href == f"{server.url}/jobs/{job_id}/results/table"  # the stable address
        redirect = http.get(href)
        assert redirect.status_code == 307
        location = redirect.headers["location"]
        assert location.startswith(f"{aws.moto.url}/{aws.bucket}/results/{job_id}/rating.csv?")
        assert "X-Amz-Expires=120" in location and "X-Amz-Signature=" in location
        followed = http.get(href, follow_redirects=True)
        assert followed.status_code == 200 and followed.content == TABLE
        ranged = http.get(href, headers={"Range": "bytes=0-9"}, follow_redirects=True)
        assert ranged.status_code == 206 and ranged.content == b"depth,flow"
        listed = http.get(f"/jobs/{job_id}/files/extra/notes.txt", follow_redirects=True)
        assert listed.text == "notes"
        assert http.get(f"/jobs/{job_id}/files/missing.txt").status_code == 404


def test_files_a_local_process_writes_are_kept_in_s3(aws: Aws) -> None:
    """With S3 storage a subprocess (or container) still writes its files to a directory,
    PROCESS_API_RESULTS_DIR; they are put in S3 when it ends: the bundled rating example
    runs unchanged."""
    for name in ("rating.yml", "rating.py"):
        shutil.copyfile(EXAMPLES / "examples" / name, aws.plugins / name)
    server = aws.start()
    with server.client() as http:
        response = http.post(
            "/processes/rating/execution",
            json={"inputs": {"maxDepth": 1, "step": 0.25}, "response": "document"},
        )
        assert response.status_code == 200, response.text
        job_id = response.headers["Link"].split("/jobs/")[1].split(">")[0]
        document = response.json()
        assert document["rows"] == 5
        table = http.get(document["table"]["href"])
        assert table.status_code == 200, table.text
        assert table.headers["content-type"] == "text/csv"
        lines = table.text.splitlines()
        assert lines[0] == "depth_m,area_m2,velocity_ms,discharge_m3s" and len(lines) == 6
    assert f"results/{job_id}/rating.csv" in aws.keys("results/")
    # nothing of the run is left on the server's machine
    assert not (server.data_dir / "results" / job_id).exists()
    assert not (server.data_dir / "inputs" / f"{job_id}.json").exists()


#: writes files to its results directory (with S3 storage, put in S3 when it ends), and
#: returns them: a table under a name that says nothing of its type, and a page by a link.
DIR_WRITER = """\
import json, os
folder = os.environ["PROCESS_API_RESULTS_DIR"]
with open(os.path.join(folder, "table.dat"), "w") as file:
    file.write("depth,flow\\n0,0\\n1,8\\n")
with open(os.path.join(folder, "page.html"), "w") as file:
    file.write("<script>alert(1)</script>")
print(json.dumps({"plugin_results": {"table": "table.dat", "page": {"href": "page.html"}}}))
"""
DIR_TABLE = "depth,flow\n0,0\n1,8\n"


def run_dir_writer(aws: Aws, http: httpx.Client) -> tuple[str, dict[str, Any]]:
    response = http.post("/processes/dirwriter/execution", json={"response": "document"})
    assert response.status_code == 200, response.text
    return response.headers["Link"].split("/jobs/")[1].split(">")[0], response.json()


def dir_writer(aws: Aws) -> None:
    (aws.plugins / "dirwriter.py").write_text(DIR_WRITER)
    aws.add(
        {
            "info": process_info("dirwriter"),
            "host": {"type": "subprocess", "command": ["python3", "dirwriter.py"]},
            "outputs": [
                {"id": "table", "schema": {"type": "string", "contentMediaType": "text/csv"}},
                {"id": "page", "schema": {}},
            ],
        }
    )


def test_presigned_downloads_keep_the_files_type_and_a_head_is_answered_by_the_server(
    aws: Aws,
) -> None:
    dir_writer(aws)
    server = aws.start(RESULTS_REDIRECT="presigned", RESULTS_URL_EXPIRY="120")
    with server.client() as http:
        job_id, document = run_dir_writer(aws, http)
        table = document["table"]["href"]
        # A presigned address is signed for GET: S3 refuses it to a HEAD.
        head = http.head(table)
        assert head.status_code == 200, head.headers
        assert head.headers["content-type"] == "text/csv"
        assert head.headers["content-length"] == str(len(DIR_TABLE))
        stored = aws.moto.client("s3").head_object(
            Bucket=aws.bucket, Key=f"results/{job_id}/table.dat"
        )
        assert head.headers["etag"] == stored["ETag"]
        assert http.head(f"/jobs/{job_id}/files/missing.txt").status_code == 404
        # The download from S3 has the output's type, not the one the file was stored with.
        assert http.get(table).status_code == 307
        followed = http.get(table, follow_redirects=True)
        assert followed.status_code == 200 and followed.text == DIR_TABLE
        assert followed.headers["content-type"] == "text/csv"
        assert "content-disposition" not in followed.headers
        # A type a browser could run is a download from S3 too.
        page = http.get(document["page"]["href"], follow_redirects=True)
        assert page.headers["content-type"] == "text/html"
        assert page.headers["content-disposition"] == 'attachment; filename="page.html"'


def test_a_storage_that_does_not_answer_makes_file_routes_answer_503(aws: Aws) -> None:
    dir_writer(aws)
    server = aws.start()
    with server.client() as http:
        job_id, document = run_dir_writer(aws, http)
    server.stop()
    # The same server (its job database), with S3 at a loopback port nothing listens on.
    gone = aws.start(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    with gone.client() as http:
        for path in ("results/table", "files/table.dat", "files"):
            answer = http.get(f"/jobs/{job_id}/{path}")
            body = assert_exception(answer, 503, "service-unavailable")
            assert body["detail"] == "the storage does not answer (EndpointConnectionError)"
        assert http.head(f"/jobs/{job_id}/results/table").status_code == 503
        assert http.get(f"/jobs/{job_id}").status_code == 200


def test_an_object_replaced_after_its_headers_were_sent_is_not_streamed_as_it(
    aws: Aws,
) -> None:
    """The bytes streamed are those of the version the headers describe (size, tag)."""
    from process_api.storage.base import Layout, ObjectChanged
    from process_api.storage.s3 import S3Storage

    storage = S3Storage(aws.moto.client("s3"), aws.bucket, Layout())
    key = "results/j/f.txt"

    async def replaced() -> None:
        await storage.put(key, b"old", "text/plain")
        info = await storage.stat(key)
        assert info is not None
        await storage.put(key, b"newer", "text/plain")
        with pytest.raises(ObjectChanged):
            await anext(storage.stream(key, 0, info.size, info.etag))
        fresh = await storage.stat(key)
        assert fresh is not None
        assert [c async for c in storage.stream(key, 0, fresh.size, fresh.etag)] == [b"newer"]

    asyncio.run(replaced())


# -- several instances on one PostgreSQL job store ---------------------------------

#: lease of the instances of these tests: takeover rounds every 2 s; an instance whose
#: process is gone (both run on this machine) is taken for dead at the next round.
SHARED_LEASE = "6"


@pytest.fixture
def shared_db(postgres: Any) -> Iterator[str]:
    """A PostgreSQL database of the test's own, for its server instances to share."""
    url = postgres.new_database()
    yield url
    postgres.drop_database(url)


def callbacks_to(receiver: Receiver, tag: str) -> dict[str, Any]:
    base = f"{receiver.url}/{tag}"
    return {
        "subscriber": {
            "successUri": f"{base}/success",
            "inProgressUri": f"{base}/progress",
            "failedUri": f"{base}/failed",
        }
    }


def test_batch_jobs_of_a_killed_instance_end_rightly_on_another(
    aws: Aws, shared_db: str, receiver: Receiver
) -> None:
    """Instance A runs three Batch jobs and is killed; B, on the same PostgreSQL job store,
    follows each to its end: the successful one with its results, the failing one failed
    with Batch's reason, and the one dismissed through B while A could not act (stalled,
    then killed) dismissed with its Batch job terminated. Each Batch job is submitted once,
    and each callback is sent once."""
    aws.add(sleeper("bwok", 12))
    aws.add(batch_process("bwbad", 'echo "working"; sleep 12; echo "about to fail" >&2; exit 3'))
    aws.add(sleeper("bwlong", 120))
    env = {"DB_URL": shared_db, "INSTANCE_LEASE": SHARED_LEASE, "CALLBACK_ALLOW_PRIVATE": "true"}
    a, b = aws.start(**env), aws.start(**env)
    with a.client() as on_a, b.client() as on_b:
        jobs = {name: submit_with(on_a, name, callbacks_to(receiver, name)) for name in PROCESSES}
        for name, job_id in jobs.items():
            wait_status(on_a, job_id, {"running"}, JOB_TIMEOUT)
            receiver.wait_for(f"/{name}/progress")  # A said it runs
        batch_ids = {name: handle(on_a, job_id)["batchJobId"] for name, job_id in jobs.items()}
        assert a.proc is not None
        a.pause()  # alive, but sees no dismiss any more
        try:
            response = on_b.delete(f"/jobs/{jobs['bwlong']}")
            assert response.status_code == 200, response.text
        finally:
            a.stop(signal.SIGKILL)
        dismissed = wait_batch(aws.moto, batch_ids["bwlong"], {"FAILED", "SUCCEEDED"})
        assert dismissed["statusReason"] == "dismissed through process-api", dismissed
        ok = wait_status(on_b, jobs["bwok"], {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert ok["status"] == "successful", (ok, b.output())
        assert on_b.get(f"/jobs/{jobs['bwok']}/results").json() == "slept"
        assert "sleeping 12" in log_texts(on_b, jobs["bwok"])
        bad = wait_status(on_b, jobs["bwbad"], {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert bad["status"] == "failed", bad
        assert bad["message"].startswith("the AWS Batch job failed ("), bad
        assert "about to fail" in log_texts(on_b, jobs["bwbad"])
        long = on_b.get(f"/jobs/{jobs['bwlong']}").json()
        assert (long["status"], long["message"]) == ("dismissed", "dismissed by the client")
    for name, job_id in jobs.items():
        assert len(jobs_named(aws.moto, f"{name}-{job_id}")) == 1, name  # submitted once
    receiver.wait_for("/bwok/success")
    receiver.wait_for("/bwbad/failed")
    time.sleep(2)  # room for a callback sent twice
    for name in PROCESSES:
        assert len(receiver.at(f"/{name}/progress")) == 1, receiver.received
    assert len(receiver.at("/bwok/success")) == 1, receiver.received
    assert len(receiver.at("/bwbad/failed")) == 1, receiver.received
    assert not receiver.at("/bwlong/failed") and not receiver.at("/bwlong/success")


PROCESSES = ("bwok", "bwbad", "bwlong")


def submit_with(http: httpx.Client, process_id: str, body: dict[str, Any]) -> str:
    response = http.post(
        f"/processes/{process_id}/execution", json={"inputs": {}, **body}, headers=ASYNC
    )
    assert response.status_code == 201, response.text
    return str(response.json()["jobID"])


def test_a_stopping_instance_leaves_its_batch_jobs_running_for_another_to_follow(
    aws: Aws, shared_db: str
) -> None:
    """SIGTERM of A: its Batch job goes on in Batch and B follows it to its end at once
    (A's lease ends as it stops); the job A ran on this machine is dismissed."""
    aws.add(sleeper("bwon", 8))
    aws.add(
        {
            "info": process_info("localnap"),
            "host": {"type": "subprocess", "command": ["sh", "-c", "sleep 60", "sh"]},
            "inputs": [],
            "outputs": [{"id": "result", "schema": {}}],
        }
    )
    env = {"DB_URL": shared_db, "INSTANCE_LEASE": SHARED_LEASE}
    a = aws.start(**env)
    with a.client() as on_a:
        batch = submit(on_a, "bwon")
        local = submit(on_a, "localnap")
        wait_status(on_a, batch, {"running"}, JOB_TIMEOUT)
        wait_status(on_a, local, {"running"})
    b = aws.start(**env)  # now: started before, it could have claimed either job first
    with a.client() as on_a, b.client() as on_b:
        batch_id = handle(on_a, batch)["batchJobId"]
        assert a.stop(signal.SIGTERM) == 0, a.output()
        going_on = batch_job(aws.moto, batch_id)
        assert going_on["status"] in ("RUNNING", "SUCCEEDED"), going_on
        assert "statusReason" not in going_on, going_on
        assert on_b.get(f"/jobs/{local}").json()["status"] == "dismissed"
        done = wait_status(on_b, batch, {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert done["status"] == "successful", (done, b.output())
        assert on_b.get(f"/jobs/{batch}/results").json() == "slept"
    assert batch_job(aws.moto, batch_id)["status"] == "SUCCEEDED"
    assert len(jobs_named(aws.moto, f"bwon-{batch}")) == 1


@pytest.mark.timeout(240)  # three server starts and a Batch job in moto
def test_instances_stopped_together_leave_each_others_batch_jobs_running(
    aws: Aws, shared_db: str
) -> None:
    """A stops at once; B, still stopping a stubborn local job, must not take A's Batch job
    over and dismiss it with its own: it is for the next start to follow."""
    aws.add(sleeper("bwboth", 12))
    aws.add(
        {
            "info": process_info("stubborn"),
            # SIGTERM ignored: stopping it takes the host's grace before SIGKILL
            "host": {"type": "subprocess", "command": ["sh", "-c", "trap '' TERM; sleep 60"]},
            "inputs": [],
            "outputs": [{"id": "result", "schema": {}}],
        }
    )
    env = {"DB_URL": shared_db, "INSTANCE_LEASE": "3"}
    a = aws.start(**env)
    with a.client() as on_a:
        batch = submit(on_a, "bwboth")  # A alone runs: A claims it
        wait_status(on_a, batch, {"running"}, JOB_TIMEOUT)
        batch_id = handle(on_a, batch)["batchJobId"]
    b = aws.start(**env)
    with b.client() as on_b:
        waiting = threading.Thread(
            target=lambda: on_b.post("/processes/stubborn/execution", json={"inputs": {}}),
            daemon=True,
        )
        waiting.start()  # a sync job: B runs it
        wait_until(
            lambda: any(j["processID"] == "stubborn" for j in on_b.get("/jobs").json()["jobs"]),
            what="the stubborn job",
        )
        (local,) = [
            j["jobID"] for j in on_b.get("/jobs").json()["jobs"] if j["processID"] == "stubborn"
        ]
        wait_status(on_b, local, {"running"})
        a.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        b.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for server in (a, b):
            server.proc.wait(30)  # type: ignore[union-attr]
            assert server.stop() == 0, server.output()
    going_on = batch_job(aws.moto, batch_id)
    assert going_on["status"] in ("RUNNING", "SUCCEEDED"), going_on
    assert "statusReason" not in going_on, going_on
    c = aws.start(**env)
    with c.client() as on_c:
        assert on_c.get(f"/jobs/{local}").json()["status"] == "dismissed"
        done = wait_status(on_c, batch, {"successful", "failed", "dismissed"}, JOB_TIMEOUT)
        assert done["status"] == "successful", (done, c.output())
