"""The aws-batch host without AWS: what its process files may say, and how its monitor
copes with one job's failures.

The monitor tests use in-process fakes of the Batch and CloudWatch Logs clients:
moto (which the e2e tests use) can neither throttle a call nor make a job store
write fail, and these tests are about exactly that.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from process_api.hosts import build_hosts, host_checks
from process_api.hosts.aws_batch import LOG_READERS, BatchHost
from process_api.hosts.base import HostOutcome, JobRun, Stream
from process_api.processes.config import ProcessConfig
from process_api.processes.loader import HostChecks, load_processes
from process_api.processes.registry import Process
from process_api.settings import Settings

DEWBERRY = Path(__file__).resolve().parents[1] / "data" / "dewberry-plugins"

# -- finding 9: what a Batch process file may not say ------------------------------------

BATCH_FILE = """\
info:
  id: onbatch
host:
  type: aws-batch
  jobDefinition: some-definition
  jobQueue: some-queue
container:
  command: [python, run.py]
"""


@pytest.fixture
def checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostChecks:
    monkeypatch.chdir(tmp_path)
    return host_checks(build_hosts(Settings()))


@pytest.mark.parametrize(
    ("field", "yaml_value", "why"),
    [
        ("secrets", "[DB_PASSWORD]", "secrets in its containerProperties"),
        ("capabilities", "[NET_ADMIN]", "linuxParameters.capabilities"),
        ("network", "host", "network of their compute environment"),
        ("user", '"1000"', "user of the job definition"),
        ("pullPolicy", "always", "pulls the job definition's image"),
    ],
)
def test_finding_9_batch_files_with_container_fields_batch_ignores_are_refused(
    tmp_path: Path, checks: HostChecks, field: str, yaml_value: str, why: str
) -> None:
    path = tmp_path / "onbatch.yml"
    path.write_text(BATCH_FILE + f"  {field}: {yaml_value}\n")
    processes, problems = load_processes(tmp_path, checks)
    assert processes == []
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.file, problem.field) == (path, f"container.{field}")
    assert "AWS Batch" in problem.message and why in problem.message, problem.message
    assert "this server cannot" in problem.message, problem.message


def test_finding_9_empty_container_fields_and_the_go_servers_files_still_load(
    tmp_path: Path, checks: HostChecks
) -> None:
    empty = "  secrets: []\n  capabilities:\n  network:\n  user:\n  pullPolicy:\n"
    (tmp_path / "onbatch.yml").write_text(BATCH_FILE + empty)
    processes, problems = load_processes(tmp_path, checks)
    assert problems == [] and [p.id for p in processes] == ["onbatch"]
    processes, problems = load_processes(DEWBERRY, checks)
    assert problems == []
    batch = {p.id for p in processes if p.host_type == "aws-batch"}
    assert batch == {"dfc", "logHelloWorld", "aepGrid"}


# -- finding 4: the monitor ------------------------------------------------------------


def throttled(operation: str) -> ClientError:
    """What boto3 raises once its retries of a throttled call are used up."""
    error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    return ClientError({"Error": error}, operation)


class FakeBatch:
    """DescribeJobs of a few jobs, all RUNNING, each with a log stream named after it."""

    def __init__(self) -> None:
        self.rounds = 0

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        self.rounds += 1
        return {
            "jobs": [
                {"jobId": j, "status": "RUNNING", "container": {"logStreamName": f"stream-{j}"}}
                for j in jobs
            ]
        }


class FakeLogs:
    """GetLogEvents: two lines per stream; `throttled` streams always fail."""

    def __init__(self, batch: FakeBatch, throttled: set[str], delay: float = 0.0) -> None:
        self.batch = batch
        self.throttled = throttled
        self.delay = delay
        #: stream -> the poll round in which it was first read.
        self.first_read: dict[str, int] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def get_log_events(self, logStreamName: str, **options: Any) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if logStreamName in self.throttled:
                raise throttled("GetLogEvents")
            self.first_read.setdefault(logStreamName, self.batch.rounds)
            if options.get("nextToken"):
                return {"events": [], "nextForwardToken": options["nextToken"]}
            events = [
                {"timestamp": 1_700_000_000_000, "message": f"{logStreamName} line {i}\n"}
                for i in (1, 2)
            ]
            return {"events": events, "nextForwardToken": "end"}
        finally:
            with self._lock:
                self.in_flight -= 1


class Events:
    """A job's record: the first `failing_writes` writes of `started` fail, as a store
    that is briefly unavailable does."""

    def __init__(self, failing_writes: int = 0) -> None:
        self.failing_writes = failing_writes
        self.started_writes = 0
        self.running = False
        self.lines: list[str] = []

    async def submitted(self, handle: dict[str, Any]) -> None:
        return None

    async def started(self, handle: dict[str, Any]) -> None:
        self.started_writes += 1
        if self.started_writes <= self.failing_writes:
            raise OSError("database is locked")
        self.running = True

    def output(self, stream: Stream, line: str, time: datetime | None = None) -> None:
        self.lines.append(line)


def job_run(job_id: str) -> JobRun:
    config = ProcessConfig.model_validate(
        {
            "info": {"id": "fake"},
            "host": {"type": "aws-batch", "jobDefinition": "jd", "jobQueue": "q"},
            "container": {"command": ["true"]},
        }
    )
    return JobRun(job_id, Process.from_config(config, Path("fake.yml")), "{}")


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Monitor:
    """A BatchHost on the fakes, following one job per entry of `jobs` (in that order)."""

    def __init__(self, logs_throttled: set[str], delay: float = 0.0) -> None:
        self.batch = FakeBatch()
        self.logs = FakeLogs(self.batch, logs_throttled, delay)
        self.host = BatchHost(
            batch=lambda: self.batch,
            logs=lambda: self.logs,
            log_group="/aws/batch/job",
            poll_interval=0.05,
            configured=True,
            server_env=lambda names: {},
        )
        self.runs: list[JobRun] = []
        self.tasks: list[asyncio.Task[HostOutcome]] = []

    def follow(self, jobs: dict[str, Events]) -> None:
        for batch_id, events in jobs.items():
            run = job_run(f"job-{batch_id}")
            self.runs.append(run)
            handle = {"batchJobId": batch_id}
            self.tasks.append(asyncio.create_task(self.host.reattach(run, handle, events)))

    async def close(self) -> None:
        for run in self.runs:
            run.detach.set()  # the server stops following; the fake jobs go on
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.host.close()


async def test_finding_4_a_throttled_log_read_or_failed_write_holds_up_no_other_job() -> None:
    monitor = Monitor(logs_throttled={"stream-a"})
    throttled_job, unlucky_store, fine = Events(), Events(failing_writes=1), Events()
    # The throttled job first: before, its error ended the round for every job after it.
    monitor.follow({"a": throttled_job, "b": unlucky_store, "c": fine})
    try:
        await wait_for(lambda: monitor.batch.rounds >= 3, "three poll rounds")
        # The first round read the logs of every job whose read did not fail.
        assert monitor.logs.first_read.get("stream-c") == 1, monitor.logs.first_read
        assert fine.running and fine.started_writes == 1
        assert fine.lines == ["stream-c line 1", "stream-c line 2"]
        # The failed `started` write was made again, and then the job's lines were read.
        await wait_for(lambda: unlucky_store.running, "the started write to be retried")
        assert unlucky_store.started_writes == 2
        await wait_for(lambda: len(unlucky_store.lines) == 2, "the lines of job b")
        # The throttled job is running, its log read is tried each round, and it has no
        # lines yet; no job got a line twice.
        assert throttled_job.running and throttled_job.lines == []
        assert fine.lines == ["stream-c line 1", "stream-c line 2"]
        assert not any(task.done() for task in monitor.tasks)
    finally:
        await monitor.close()


async def test_finding_4_the_logs_of_running_jobs_are_read_side_by_side_bounded() -> None:
    monitor = Monitor(logs_throttled=set(), delay=0.3)
    jobs = {f"j{i}": Events() for i in range(2 * LOG_READERS)}
    monitor.follow(jobs)
    try:
        await wait_for(
            lambda: all(len(e.lines) == 2 for e in jobs.values()), "every job's lines", 30
        )
        # One at a time, this would take 16 x 0.3 s; side by side, never above the bound.
        assert 1 < monitor.logs.most_in_flight <= LOG_READERS, monitor.logs.most_in_flight
    finally:
        await monitor.close()
