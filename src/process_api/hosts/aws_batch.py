"""The `aws-batch` host: each job is an AWS Batch job, followed by polling.

The job is submitted with the process's command plus the inputs JSON as its
last argument (none with `inputsAs: file`), and the job context, as container
overrides; the inputs are also an object in storage, PROCESS_API_INPUTS_URI. Its name ends with
the job id, so a job whose submission was never recorded (a crash right after
SubmitJob) finds its Batch job again instead of submitting a second one. One
monitor per server polls DescribeJobs for every followed job, up to 100 ids a
call, and reads the log streams of the running jobs from CloudWatch Logs, a few
at a time. Batch jobs go on when the server stops; the next start follows them
again from the job store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from process_api.asyncs import despite_cancellation
from process_api.errors import PayloadTooLarge, ServiceUnavailable
from process_api.hosts.base import (
    LARGE_INPUTS_REMEDY,
    HostBase,
    HostEvents,
    HostOutcome,
    JobRun,
    RunLost,
)
from process_api.jobs.budget import Resources, jobs_only
from process_api.processes.config import ProcessConfig
from process_api.processes.loader import HostConfigError
from process_api.processes.problems import ConfigProblem, pydantic_problems
from process_api.processes.registry import Process

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what SubmitJob takes in container overrides (command and environment), in bytes: AWS
#: Batch takes a job payload of at most 30 KiB, and the job's name, queue and definition
#: need some of it.
MAX_OVERRIDES = 30_000
#: DescribeJobs takes at most this many job ids per call.
DESCRIBE_BATCH = 100
WAITING = ("SUBMITTED", "PENDING", "RUNNABLE")
ENDED = ("SUCCEEDED", "FAILED")
#: reads of the log stream after a job ended, while new lines still arrive, and the wait between.
LATE_LOG_READS = 3
LATE_LOG_WAIT = 1.0
#: polls in a row a job may be missing from DescribeJobs before it counts as lost.
MISSING_POLLS = 5
#: log streams read at once; the thread pool has room besides for polls and stops.
LOG_READERS = 8
#: the longest name AWS Batch takes for a job.
MAX_NAME = 128

#: container fields of a process file that a Batch job cannot take, and why.
UNSUPPORTED = {
    "secrets": "AWS Batch processes take secrets from the job definition (secrets in its "
    "containerProperties); this server cannot pass them",
    "capabilities": "AWS Batch processes take Linux capabilities from the job definition "
    "(linuxParameters.capabilities in its containerProperties); this server cannot change them",
    "network": "AWS Batch processes use the network of their compute environment and job "
    "definition; this server cannot choose it",
    "user": "AWS Batch processes run as the user of the job definition (user in its "
    "containerProperties); this server cannot change it",
    "pullPolicy": "AWS Batch pulls the job definition's image as its compute environment is "
    "configured to; this server cannot choose when",
}


class BatchHostConfig(BaseModel):
    """The `host:` section of an aws-batch process file (the Go server's fields)."""

    model_config = ConfigDict(extra="forbid")
    type: str
    jobDefinition: str
    jobQueue: str
    #: a prefix for the Batch job's name.
    jobName: str | None = None


def _aws_reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__


@dataclass
class _Followed:
    """One Batch job the monitor follows."""

    events: HostEvents
    handle: dict[str, Any]
    done: asyncio.Future[HostOutcome]
    status: str = "SUBMITTED"
    started: bool = False
    log_stream: str | None = None
    log_token: str | None = None
    missing: int = 0
    ending: asyncio.Task[None] | None = None


class BatchHost(HostBase):
    detachable = True
    #: a Batch container sees no file of this machine: its inputs are an S3 object.
    inputs_in_storage = True

    def __init__(
        self,
        batch: Callable[[], Any],
        logs: Callable[[], Any],
        log_group: str,
        poll_interval: float,
        configured: bool,
        server_env: Callable[[list[str]], dict[str, str]],
        max_jobs: int = 1000,
    ) -> None:
        """`batch` and `logs` make the boto3 clients (lazily: AWS may not be configured);
        `server_env` looks up the variables a process names in container.envVars;
        `max_jobs`: Batch jobs submitted and followed at once (later ones wait their turn)."""
        self._capacity = jobs_only(max_jobs)
        self._make_batch, self._make_logs = batch, logs
        self._server_env = server_env
        self._batch: Any = None
        self._logs: Any = None
        self.log_group = log_group
        self.poll_interval = poll_interval
        self.configured = configured
        self._executor = ThreadPoolExecutor(max_workers=2 * LOG_READERS, thread_name_prefix="aws")
        self._log_readers = asyncio.Semaphore(LOG_READERS)
        self._followed: dict[str, _Followed] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        #: job definition -> what DescribeJobDefinitions said of it (image, resources).
        self.definitions: dict[str, dict[str, Any]] = {}

    # -- configuration ---------------------------------------------------------

    def _clients(self) -> tuple[Any, Any]:
        if self._batch is None:
            self._batch, self._logs = self._make_batch(), self._make_logs()
        return self._batch, self._logs

    def check(self, config: ProcessConfig, directory: Path) -> list[ConfigProblem]:
        container = config.container
        problems = [
            ConfigProblem(f"container.{name}", why)
            for name, why in UNSUPPORTED.items()
            if container is not None and getattr(container, name)
        ]
        try:
            host = BatchHostConfig.model_validate(config.host.model_dump())
        except ValidationError as exc:
            return pydantic_problems(exc, BatchHostConfig, ("host",)) + problems
        if self.configured and host.jobDefinition not in self.definitions:
            try:
                self._describe_definition(host.jobDefinition)
            except HostConfigError as exc:
                problems.append(ConfigProblem(exc.field, exc.message))
        return problems

    def _describe_definition(self, name: str) -> None:
        """Reads the definition's image and resources, as the Go server did at startup."""
        try:
            batch, _ = self._clients()
            found = batch.describe_job_definitions(jobDefinitions=[name])["jobDefinitions"]
            if not found and not name.startswith("arn:"):
                # By name, and the revision if one is given (not every endpoint takes name:rev).
                family, _, revision = name.partition(":")
                answer = batch.describe_job_definitions(jobDefinitionName=family, status="ACTIVE")
                found = [
                    d
                    for d in answer["jobDefinitions"]
                    if not revision or str(d.get("revision")) == revision
                ]
        except (ClientError, BotoCoreError) as exc:
            log.warning("cannot read AWS Batch job definition %s: %s", name, _aws_reason(exc))
            return
        if not found:
            raise HostConfigError("host.jobDefinition", f"AWS Batch has no job definition {name!r}")
        latest = max(found, key=lambda d: d.get("revision", 0))
        properties = latest.get("containerProperties", {})
        resources = {r["type"]: r["value"] for r in properties.get("resourceRequirements", [])}
        self.definitions[name] = {
            "jobDefinitionArn": latest.get("jobDefinitionArn"),
            "image": properties.get("image"),
            "vcpus": resources.get("VCPU", properties.get("vcpus")),
            "memory": resources.get("MEMORY", properties.get("memory")),
        }

    def capacity(self) -> Resources:
        return self._capacity

    async def budget_name(self) -> str | None:
        # The Batch jobs of every instance: BATCH_MAX_JOBS holds for all. An instance without
        # AWS settings claims none: another one runs them.
        return "aws-batch" if self.configured else None

    def resources(self, process: Process) -> Resources:
        return Resources(0.0, 0.0)  # Batch's compute environment limits CPUs and memory

    async def ready(self) -> None:
        if not self.configured:
            raise ServiceUnavailable(
                "AWS Batch is not configured on this server: set AWS_DEFAULT_REGION "
                "(or AWS_REGION) and AWS credentials"
            )

    def _overrides(self, run: JobRun) -> dict[str, Any]:
        container = run.process.config.container
        command = [*(container.command if container else []), *run.arguments]
        env = {**self._server_env(container.envVars if container else []), **run.env}
        # A Batch container sees no file or directory of this machine: only s3:// locations.
        env.pop("PROCESS_API_RESULTS_DIR", None)
        env.pop("PROCESS_API_INPUTS_FILE", None)
        for name in ("PROCESS_API_RESULTS_URI", "PROCESS_API_INPUTS_URI"):
            if not env.get(name, "").startswith("s3://"):
                env.pop(name, None)
        overrides: dict[str, Any] = {
            "command": command,
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        }
        wanted = container.maxResources if container else None
        requirements = []
        if wanted is not None and wanted.cpus:
            requirements.append({"type": "VCPU", "value": f"{wanted.cpus:g}"})
        if wanted is not None and wanted.memory:
            requirements.append({"type": "MEMORY", "value": str(int(wanted.memory))})
        if requirements:
            overrides["resourceRequirements"] = requirements
        return overrides

    def admit(self, run: JobRun) -> None:
        if run.process.config.inputsAs == "file" and not (run.inputs_uri or "").startswith("s3://"):
            raise ServiceUnavailable(
                f"process {run.process.id!r} takes its inputs as a file, which an AWS Batch job "
                "gets from S3: this server keeps no storage in S3 (S3_BUCKET is not set)"
            )
        size = len(json.dumps(self._overrides(run)).encode())
        if size > MAX_OVERRIDES:
            raise PayloadTooLarge(
                f"the execute request is too large for AWS Batch: its command and environment "
                f"take {size} bytes, at most {MAX_OVERRIDES}; {LARGE_INPUTS_REMEDY}"
            )

    # -- runs ------------------------------------------------------------------

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        host = BatchHostConfig.model_validate(run.process.config.host.model_dump())
        name = _job_name(host.jobName or run.process.id, run.job_id)
        try:
            batch, _ = await self._call(self._clients)
            submitting = asyncio.ensure_future(
                self._call(self._submit_once, batch, host, name, self._overrides(run))
            )
            try:
                batch_id = await asyncio.shield(submitting)
            except asyncio.CancelledError:
                # Stopped while AWS takes the job: the Batch job exists all the same.
                batch_id = await despite_cancellation(submitting)
                handle = self._handle(run, host, name, batch_id)
                if run.detach.is_set():
                    await despite_cancellation(events.submitted(handle))  # followed at start
                else:
                    await despite_cancellation(self._stop(batch_id))
                raise
        except (ClientError, BotoCoreError) as exc:
            return HostOutcome(None, f"AWS Batch did not take the job: {_aws_reason(exc)}")
        handle = self._handle(run, host, name, batch_id)
        try:
            await events.submitted(handle)
        except BaseException:  # the job store failed: a job nobody follows must not run
            await despite_cancellation(self._stop(batch_id))
            raise
        return await self._follow(run, handle, events)

    def _submit_once(
        self, batch: Any, host: BatchHostConfig, name: str, overrides: dict[str, Any]
    ) -> str:
        """The id of the job's Batch job, submitted now unless one of its name is in the
        queue already: a server that crashed between SubmitJob and recording its answer
        submitted it, and a second one would write to the same results."""
        if host.jobDefinition not in self.definitions:
            # A worker of `--workers N` did not load the process files: its supervisor did.
            with contextlib.suppress(HostConfigError):  # SubmitJob says so in its own words
                self._describe_definition(host.jobDefinition)
        earlier = _named(batch, host.jobQueue, name)
        if earlier is not None:
            log.info("following Batch job %s, submitted as %s before a restart", earlier, name)
            return earlier
        answer = batch.submit_job(
            jobName=name,
            jobQueue=host.jobQueue,
            jobDefinition=host.jobDefinition,
            containerOverrides=overrides,
        )
        return str(answer["jobId"])

    def _handle(
        self, run: JobRun, host: BatchHostConfig, name: str, batch_id: str
    ) -> dict[str, Any]:
        container = run.process.config.container
        return {
            "batchJobId": batch_id,
            "jobName": name,
            "jobQueue": host.jobQueue,
            "jobDefinition": host.jobDefinition,
            "image": self.definitions.get(host.jobDefinition, {}).get("image"),
            "command": container.command if container else [],
        }

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        if "batchJobId" not in handle:
            raise RunLost(
                "the server instance that ran the job stopped or restarted, and its Batch job "
                "id is unknown"
            )
        if not self.configured:
            raise RunLost(
                "the server instance that ran the job stopped or restarted, and AWS is not "
                "configured here: its Batch job is lost"
            )
        return await self._follow(run, handle, events)

    async def _follow(self, run: JobRun, handle: dict[str, Any], events: HostEvents) -> HostOutcome:
        batch_id = handle["batchJobId"]
        followed = _Followed(events, handle, asyncio.get_running_loop().create_future())
        self._followed[batch_id] = followed
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._poll_forever())
        self._wake.set()
        try:
            return await asyncio.shield(followed.done)
        except asyncio.CancelledError:
            if not run.detach.is_set():
                # A second cancellation (a shutdown during a dismiss) must not leave the
                # Batch job running: nothing would follow it any more.
                await despite_cancellation(self._stop(batch_id))
            raise
        finally:
            self._followed.pop(batch_id, None)

    async def stop(self, job_id: str, handle: dict[str, Any]) -> None:
        batch_id = handle.get("batchJobId")
        if isinstance(batch_id, str) and self.configured:
            await self._stop(batch_id)

    async def _stop(self, batch_id: str) -> None:
        """Cancels a job still waiting in its queue; terminates one that started.

        The status is read afresh: a job that left its queue since the last poll would
        ignore a cancel.
        """
        reason = "dismissed through process-api"
        try:
            batch, _ = await self._call(self._clients)
            jobs = (await self._call(batch.describe_jobs, jobs=[batch_id])).get("jobs", [])
            status = jobs[0]["status"] if jobs else "UNKNOWN"
            if status in ENDED:
                return
            stop = batch.cancel_job if status in WAITING else batch.terminate_job
            await self._call(stop, jobId=batch_id, reason=reason)
        except (ClientError, BotoCoreError) as exc:
            log.error("could not stop AWS Batch job %s: %s", batch_id, _aws_reason(exc))

    # -- the monitor -----------------------------------------------------------

    async def _poll_forever(self) -> None:
        """One loop for every followed job: a DescribeJobs call per 100 jobs per interval."""
        while self._followed:
            try:
                await self.poll()
            except (ClientError, BotoCoreError) as exc:
                # Throttling, expired credentials, an endpoint down: jobs wait, polling goes on.
                log.warning("polling AWS Batch failed: %s", _aws_reason(exc))
            except Exception:
                log.exception("polling AWS Batch failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass

    async def poll(self) -> None:
        """One round: the status of every followed job, then each job's events and new log
        lines, side by side. What fails for one job (a throttled log read, a failed store
        write) is logged and tried again next round; the other jobs go on."""
        batch, _ = await self._call(self._clients)
        ids = [batch_id for batch_id, f in self._followed.items() if f.ending is None]
        updates = []
        for start in range(0, len(ids), DESCRIBE_BATCH):
            chunk = ids[start : start + DESCRIBE_BATCH]
            try:
                answer = await self._call(batch.describe_jobs, jobs=chunk)
            except (ClientError, BotoCoreError) as exc:
                log.warning(
                    "describing %d AWS Batch job(s) failed: %s", len(chunk), _aws_reason(exc)
                )
                continue
            described = {job["jobId"]: job for job in answer.get("jobs", [])}
            updates += [self._update_apart(batch_id, described.get(batch_id)) for batch_id in chunk]
        await asyncio.gather(*updates)

    async def _update_apart(self, batch_id: str, job: dict[str, Any] | None) -> None:
        followed = self._followed.get(batch_id)
        if followed is None or followed.ending is not None:
            return
        try:
            await self._update(batch_id, followed, job)
        except (ClientError, BotoCoreError) as exc:
            log.warning("following AWS Batch job %s: %s", batch_id, _aws_reason(exc))
        except Exception:
            log.exception("following AWS Batch job %s failed; trying again", batch_id)

    async def _update(self, batch_id: str, followed: _Followed, job: dict[str, Any] | None) -> None:
        if job is None:
            followed.missing += 1
            if followed.missing >= MISSING_POLLS and not followed.done.done():
                followed.done.set_exception(RunLost(f"AWS Batch no longer knows job {batch_id}"))
            return
        followed.missing = 0
        followed.status = job["status"]
        container = job.get("container", {})
        followed.log_stream = container.get("logStreamName") or followed.log_stream
        if followed.status not in WAITING and not followed.started:
            await followed.events.started(followed.handle)  # if it fails, again next round
            followed.started = True
        if followed.status in ENDED:
            followed.ending = asyncio.create_task(self._end(followed, job))
        else:
            await self._read_logs(followed)

    async def _end(self, followed: _Followed, job: dict[str, Any]) -> None:
        """Settles an ended job once CloudWatch has delivered its last lines (the results
        may arrive a little after the end); apart from the poll, which goes on."""
        for attempt in range(1 + LATE_LOG_READS):
            if attempt:
                await asyncio.sleep(LATE_LOG_WAIT)
            try:
                if not await self._read_logs(followed) and attempt:
                    break
            except (ClientError, BotoCoreError) as exc:
                log.warning("reading the end of a Batch job's log failed: %s", _aws_reason(exc))
        if not followed.done.done():
            followed.done.set_result(_outcome(job))

    async def _read_logs(self, followed: _Followed) -> int:
        """New lines of the job's CloudWatch log stream, paginated to its end; how many."""
        if followed.log_stream is None:
            return 0
        async with self._log_readers:
            return await self._read_stream(followed, followed.log_stream)

    async def _read_stream(self, followed: _Followed, stream: str) -> int:
        count = 0
        _, logs = await self._call(self._clients)
        while True:
            options: dict[str, Any] = {
                "logGroupName": self.log_group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if followed.log_token:
                options["nextToken"] = followed.log_token
            try:
                page = await self._call(logs.get_log_events, **options)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return count  # the stream appears once the container has printed something
                raise
            for event in page.get("events", []):
                moment = datetime.fromtimestamp(event["timestamp"] / 1000, UTC)
                followed.events.output("stdout", event["message"].rstrip("\n"), moment)
                count += 1
            token = page.get("nextForwardToken")
            if not token or token == followed.log_token:
                return count
            followed.log_token = token

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _job_name(prefix: str, job_id: str) -> str:
    """The Batch job's name: the prefix, cut to fit, and the job id whole (what finds the
    Batch job of a submission that was never recorded)."""
    prefix, job_id = (re.sub(r"[^A-Za-z0-9_-]", "-", part) for part in (prefix, job_id))
    return f"{prefix[: MAX_NAME - len(job_id) - 1]}-{job_id}"


def _named(batch: Any, queue: str, name: str) -> str | None:
    """The id of the newest Batch job of that name in the queue, whatever its status."""
    found = []
    # With a filter, ListJobs answers jobs of every status.
    pages = batch.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    for page in pages:
        found += [j for j in page.get("jobSummaryList", []) if j.get("jobName") == name]
    if not found:
        return None
    return str(max(found, key=lambda j: j.get("createdAt", 0))["jobId"])


def _outcome(job: dict[str, Any]) -> HostOutcome:
    container = job.get("container", {})
    code = container.get("exitCode")
    if job["status"] == "SUCCEEDED":
        return HostOutcome(code if isinstance(code, int) else 0)
    reasons = [r for r in (job.get("statusReason"), container.get("reason")) if r]
    why = "; ".join(reasons) or "no reason given"
    exit_part = f", exit code {code}" if isinstance(code, int) else ""
    return HostOutcome(None, f"the AWS Batch job failed ({why}{exit_part})")
