"""Running one job against the real job store and local storage, with hosts that fail in
ways a real platform cannot be made to fail on demand (an in-process fake host, the one
fake here: an SDK raising with internals in its message, a timeout inside the SDK)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from process_api.hosts.base import HostBase, HostEvents, HostOutcome, JobRun
from process_api.jobs.model import Job, JobStatus
from process_api.jobs.running import JobRunner
from process_api.processes.config import ProcessConfig
from process_api.processes.registry import Process
from process_api.storage.local import LocalStorage
from process_api.store.sql import SqlJobStore

SECRET = "postgresql://admin:hunter2@db.internal/jobs"


class FailingHost(HostBase):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def check(self, config: ProcessConfig) -> None:
        return None

    async def run(self, run: JobRun, events: HostEvents) -> HostOutcome:
        raise self.error

    async def reattach(
        self, run: JobRun, handle: dict[str, Any], events: HostEvents
    ) -> HostOutcome:
        raise self.error


def process(timeout: int | None = None) -> Process:
    document: dict[str, Any] = {"info": {"id": "p"}, "host": {"type": "fake"}}
    if timeout is not None:
        document["timeout"] = timeout
    return Process.from_config(ProcessConfig.model_validate(document), Path("p.yml"))


async def ended(store: SqlJobStore, tmp_path: Path, error: BaseException) -> Job:
    runner = JobRunner(
        store, LocalStorage(tmp_path / "storage"), {"fake": FailingHost(error)}, tmp_path / "spool"
    )
    job = Job(id="j1", process_id="p", process_version="1", host_type="fake", mode="async")
    await store.create(job)
    running = runner.start(process(), job, None)
    await asyncio.wait_for(running.done.wait(), 10)
    found = await store.get("j1")
    assert found is not None
    return found


async def test_finding_14_a_hosts_error_text_stays_out_of_the_job(
    store: SqlJobStore, tmp_path: Path
) -> None:
    job = await ended(store, tmp_path, RuntimeError(f"cannot connect to {SECRET}"))
    assert job.status is JobStatus.FAILED
    assert "hunter2" not in job.message and "internal error" in job.message


async def test_finding_5_a_timeout_inside_a_host_without_a_limit_fails_the_job_cleanly(
    store: SqlJobStore, tmp_path: Path
) -> None:
    """A TimeoutError from an SDK, for a process without a timeout, used to kill the job's
    task while formatting its message (leaving the job running for ever)."""
    job = await ended(store, tmp_path, TimeoutError())
    assert job.status is JobStatus.FAILED
    assert "did not answer in time" in job.message
