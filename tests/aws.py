"""AWS for the tests: moto's standalone server on a loopback port, and what a server needs of it.

Nothing reaches AWS. moto's Batch runs each job as a real container on the local
Docker Engine (on the host network, so a job reaches moto at 127.0.0.1), from
images that exist locally; its S3, IAM and CloudWatch Logs keep their state in
the moto process, which the `moto` fixture starts once per session.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import free_port
from tests.images import (
    BUSYBOX,
    _add_symlink,
    _busybox,
    busybox_image,
    docker_import,
    image_exists,
)

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
QUEUE = "test-queue"
COMPUTE_ENVIRONMENT = "test-ce"
ROLE = "process-api-test-batch"
JOB_DEFINITION = "test-jd"
#: how often the servers of the tests poll DescribeJobs (the default is 5 s).
POLL_INTERVAL = "0.3"


class MotoError(Exception):
    """moto's server could not be started."""


class Moto:
    """A `moto_server` process on a loopback port."""

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = (log_dir or Path("/tmp")) / f"moto-{self.port}-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Moto:
        if not MOTO_SERVER.exists():
            raise MotoError(f"{MOTO_SERVER} does not exist: install moto[server,batch]")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOTO_"))}
        env["MOTO_DOCKER_NETWORK_MODE"] = "host"
        env["MOTO_PORT"] = str(self.port)  # what moto tells each Batch container
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise MotoError(f"moto_server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                httpx.get(self.url + "/", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise MotoError(f"moto_server did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stops the server and removes the containers of Batch jobs it still ran."""
        if not self.running():
            return
        with contextlib.suppress(Exception):
            self.remove_job_containers()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def remove_job_containers(self) -> None:
        """moto names a job's container `<jobName>-<jobId>`; it leaves them when stopped."""
        batch = self.client("batch")
        names = []
        for queue in batch.describe_job_queues()["jobQueues"]:
            for status in ("STARTING", "RUNNING"):
                listed = batch.list_jobs(jobQueue=queue["jobQueueName"], jobStatus=status)
                names += [f"{j['jobName']}-{j['jobId']}" for j in listed["jobSummaryList"]]
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=30)

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
        ).client(
            service,
            endpoint_url=self.url,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
        )

    def set_batch_transition(self, seconds: float | None) -> None:
        """Batch jobs stay `seconds` in each state before RUNNING (SUBMITTED, PENDING, …);
        None gives back moto's default, where a job starts at once."""
        if seconds is None:
            body: dict[str, Any] = {"model_name": "batch::job"}
            path = "/moto-api/state-manager/unset-transition"
        else:
            transition = {"progression": "time", "seconds": seconds}
            body = {"model_name": "batch::job", "transition": transition}
            path = "/moto-api/state-manager/set-transition"
        response = httpx.post(self.url + path, content=json.dumps(body), timeout=10)
        response.raise_for_status()


def start_moto(port: int | None = None, log_dir: Path | None = None) -> Moto:
    return Moto(port, log_dir).start()


@contextlib.contextmanager
def moto_or_skip(port: int | None = None, log_dir: Path | None = None) -> Iterator[Moto]:
    """A running moto server; when it cannot start, a failure in CI and a skip elsewhere."""
    try:
        moto = start_moto(port, log_dir)
    except (MotoError, OSError) as exc:
        message = f"moto's server cannot be started: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield moto
    finally:
        moto.stop()


def session_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """The body of a session fixture: one moto server for the session, and the busybox
    image of the `test-jd` job definition. Batch runs containers: the fixture must
    depend on `docker_engine`."""
    busybox_image()
    with moto_or_skip(log_dir=tmp_path_factory.mktemp("moto")) as server:
        yield server


def busybox_with_date(tag: str = "process-api-test/busybox-date:1") -> str:
    """The busybox image with its `date` applet too (the Go server's logHelloWorld calls it)."""
    if not image_exists(tag):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            _busybox(archive)
            _add_symlink(archive, "bin/date", "busybox")
        docker_import(buffer.getvalue(), tag)
    return tag


def register_definition(
    moto: Moto, name: str, image: str, revision: int | None = None, **properties: Any
) -> dict[str, Any]:
    """Registers a container job definition (again until it reaches `revision`, if given)."""
    batch = moto.client("batch")
    container = {"image": image, "vcpus": 1, "memory": 128, "command": ["echo", "x"]}
    container.update(properties)
    while True:
        found = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
        latest = max(found, key=lambda d: d["revision"], default=None)
        if latest is not None and (revision is None or latest["revision"] >= revision):
            if revision is not None or latest["containerProperties"]["image"] == image:
                return latest
        batch.register_job_definition(
            jobDefinitionName=name, type="container", containerProperties=container
        )


def setup_aws(
    moto: Moto,
    bucket: str | None = None,
    *,
    queue: str = QUEUE,
    definitions: dict[str, str] | None = None,
) -> dict[str, str]:
    """The Batch compute environment, queue and job definitions, and an S3 bucket, in moto.

    Idempotent: each test calls it, most often with a bucket of its own. `definitions`
    is job definition name -> image (default: `test-jd` with the busybox image).
    Returns the environment a process-api server needs to use them.
    """
    bucket = bucket or f"bkt-{uuid.uuid4().hex[:10]}"
    iam, batch, s3 = moto.client("iam"), moto.client("batch"), moto.client("s3")
    try:
        role = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")["Role"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
        role = iam.get_role(RoleName=ROLE)["Role"]
    environments = batch.describe_compute_environments(computeEnvironments=[COMPUTE_ENVIRONMENT])
    if environments["computeEnvironments"]:
        environment_arn = environments["computeEnvironments"][0]["computeEnvironmentArn"]
    else:
        environment_arn = batch.create_compute_environment(
            computeEnvironmentName=COMPUTE_ENVIRONMENT,
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=role["Arn"],
        )["computeEnvironmentArn"]
    if not batch.describe_job_queues(jobQueues=[queue])["jobQueues"]:
        batch.create_job_queue(
            jobQueueName=queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment_arn}],
        )
    for name, image in (definitions or {JOB_DEFINITION: BUSYBOX}).items():
        register_definition(moto, name, image)
    s3.create_bucket(Bucket=bucket)
    return server_env(moto, bucket)


def server_env(moto: Moto, bucket: str) -> dict[str, str]:
    """What a process-api server needs to use moto's Batch, Logs and S3."""
    return {
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "S3_BUCKET": bucket,
        "BATCH_POLL_INTERVAL": POLL_INTERVAL,
    }


def s3_keys(moto: Moto, bucket: str, prefix: str = "") -> list[str]:
    """Every key of the bucket under the prefix."""
    pages = (
        moto.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def s3_get(moto: Moto, bucket: str, key: str) -> bytes:
    return bytes(moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def batch_job(moto: Moto, batch_job_id: str) -> dict[str, Any]:
    """What moto's DescribeJobs says of a Batch job."""
    jobs = moto.client("batch").describe_jobs(jobs=[batch_job_id])["jobs"]
    assert jobs, f"moto knows no Batch job {batch_job_id}"
    return dict(jobs[0])
