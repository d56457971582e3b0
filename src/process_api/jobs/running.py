"""Running one job: wait for its share of the host, start it, follow it, conclude, finish.

A job runs in one asyncio task that awaits its host; dismissing the job cancels
that task, and the host stops what it started. The end of a job is recorded in
the store first, retried until it is (a final status is always reached); its
log, metadata and callbacks follow as separate steps that may fail on their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from process_api.asyncs import despite_cancellation, retrying
from process_api.hosts.base import Host, HostOutcome, JobRun, RunLost, Stream
from process_api.jobs.contract import (
    ResultsError,
    check_outputs,
    job_run,
    keyed_results,
    parse_progress,
    returned_value,
)
from process_api.jobs.files import CONTAINER_RESULTS_DIR, FileError, resolve_files, stored_results
from process_api.jobs.log import FLUSH_INTERVAL, JobLog
from process_api.jobs.metadata import job_metadata
from process_api.jobs.model import ACTIVE, Job, JobStatus, utcnow
from process_api.jobs.workspace import Workspace, WorkspaceError
from process_api.processes.registry import Process
from process_api.server_log import bind_job
from process_api.storage.base import Storage
from process_api.store.base import JobStore

log = logging.getLogger(__name__)

#: attempts at keeping a job's log and metadata once it has ended.
KEEP_ATTEMPTS = 4


@dataclass
class RunningJob:
    """A job this server instance runs or follows."""

    job_id: str
    host: Host
    mode: str
    log: JobLog
    #: the host's name in process files (docker and local are one host).
    host_type: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    progress: tuple[int | None, str | None] | None = None
    progress_writer: asyncio.Task[None] | None = None
    #: the host was asked to run it (before, it can go back to the queue untouched).
    launched: bool = False
    #: the server stops following the run without ending the job (see JobRunner.detach).
    detaching: bool = False
    #: the run is over and the job's end is being recorded: it is not to be stopped.
    ending: bool = False
    run: JobRun | None = None


def _results_dirs(running: RunningJob, run: JobRun) -> list[str]:
    """The paths the run's process was given as its results directory: the one here, and
    inside a container the mount of it."""
    if run.results_dir is None:
        return []
    inside = [CONTAINER_RESULTS_DIR] if running.host_type == "docker" else []
    return [str(run.results_dir), *inside]


def _time_left(process: Process, job: Job) -> float | None:
    """What is left of the process's timeout for a job that started before a restart."""
    if process.config.timeout is None:
        return None
    ran = (utcnow() - job.started).total_seconds() if job.started else 0.0
    return max(process.config.timeout - ran, 0.0)


class _Events:
    """What a host reports about one run, turned into job record changes."""

    def __init__(self, runner: JobRunner, running: RunningJob) -> None:
        self._runner = runner
        self._running = running

    async def submitted(self, handle: dict[str, Any]) -> None:
        await self._runner.store.update(
            self._running.job_id,
            {"handle": handle, "message": "submitted", "updated": utcnow()},
            frozenset({JobStatus.ACCEPTED}),
        )

    async def started(self, handle: dict[str, Any]) -> None:
        now = utcnow()
        changes = {"status": JobStatus.RUNNING, "message": "running", "started": now}
        job = await self._runner.store.update(
            self._running.job_id,
            {**changes, "updated": now, "handle": handle},
            frozenset({JobStatus.ACCEPTED}),
        )
        self._runner.notify(job)

    def output(self, stream: Stream, line: str, time: datetime | None = None) -> None:
        self._running.log.add(time or utcnow(), stream, line)
        progress = parse_progress(line) if stream == "stdout" else None
        if progress is not None:
            self._running.progress = (progress.percent, progress.message)
            self._runner.write_progress(self._running)


class JobRunner:
    """Runs jobs on their hosts and records how they end."""

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        hosts: Mapping[str, Host],
        spool: Path,
        on_change: Callable[[Job], None] | None = None,
        workspace: Workspace | None = None,
    ) -> None:
        """`spool`: where running jobs' logs are appended; `on_change` hears of each change
        of a job (callbacks) and must not block; `workspace`: where runs' files are on this
        machine (beside the spool by default)."""
        self.store = store
        self.storage = storage
        self.hosts = hosts
        self.spool = spool
        self.workspace = workspace or Workspace(spool.parent, storage)
        self._on_change = on_change
        self.running: dict[str, RunningJob] = {}
        #: the instance whose jobs these are (set when it joins the others).
        self.owner: str | None = None
        #: the ids it had before it was taken for dead (see Coordinator._renew).
        self.former_owners: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None
        #: hears that a job ended here, leaving room in its budget (the queue claims then).
        self.on_end: Callable[[], None] = lambda: None
        self._started = asyncio.Event()

    def next_start(self) -> asyncio.Event:
        """Set when a job starts here next (see JobService.wait)."""
        return self._started

    def job_run(self, host: Host, process: Process, job_id: str, inputs: dict[str, Any]) -> JobRun:
        """What the host is given to run the job (see the job contract)."""
        here = not host.inputs_in_storage
        results_dir = self.workspace.results_dir(job_id, here)
        inputs_file = self.workspace.inputs_file(job_id) if here else None
        return job_run(process, job_id, inputs, self.storage, results_dir, inputs_file)

    def host_types(self) -> Iterator[str]:
        """The host type of each job this instance runs or follows."""
        for running in list(self.running.values()):
            yield running.host_type

    def start(self, process: Process, job: Job, handle: dict[str, Any] | None) -> RunningJob:
        """Runs a new job (handle None), or follows again one started before a restart."""
        host = self.hosts[job.host_type]
        job_log = JobLog(self.spool_file(job.id))
        running = RunningJob(job.id, host, job.mode, job_log, job.host_type)
        self.running[job.id] = running
        running.task = asyncio.create_task(self._run(process, job, running, handle))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_logs())
        self._started.set()
        self._started = asyncio.Event()
        return running

    def spool_file(self, job_id: str) -> Path:
        """Where a job run here appends its log until it is kept in storage; instances
        sharing the data directory read it there."""
        return self.spool / f"{job_id}.jsonl"

    async def _flush_logs(self) -> None:
        """Appends what running jobs printed lately, also when they print nothing more."""
        while self.running:
            await asyncio.sleep(FLUSH_INTERVAL)
            for running in list(self.running.values()):
                running.log.flush()

    async def _run(
        self, process: Process, job: Job, running: RunningJob, handle: dict[str, Any] | None
    ) -> None:
        bind_job(job.id, job.process_id)
        # The host the job was recorded with: the process file may have changed since.
        host = running.host
        run = self.job_run(host, process, job.id, job.inputs)
        running.run = run
        events = _Events(self, running)
        results: dict[str, Any] | None = None
        limit = process.config.timeout if handle is None else _time_left(process, job)
        scope: asyncio.Timeout | None = None
        try:
            if handle is None:
                if not await self._still_ours(job.id):
                    self._let_go(running)
                    return
                await self.workspace.prepare(run)
            running.launched = True
            async with asyncio.timeout(limit) as scope:
                if handle is None:
                    outcome = await host.run(run, events)
                else:
                    outcome = await host.reattach(run, handle, events)
                await self.workspace.publish(run)
                status, message, results = await self._conclude(
                    process, job.id, outcome, running.log, _results_dirs(running, run)
                )
        except asyncio.CancelledError:
            if running.detaching:
                self._let_go(running)
                return
            status, message = JobStatus.DISMISSED, "dismissed"
        except TimeoutError:
            status = JobStatus.FAILED
            if scope is not None and scope.expired() and process.config.timeout is not None:
                message = f"the job ran longer than its timeout of {process.config.timeout:g} s"
            else:
                log.exception("job %s: the host timed out", job.id)
                message = "the job's host did not answer in time"
        except (RunLost, WorkspaceError) as exc:
            status, message = JobStatus.FAILED, str(exc)
        except Exception:
            # The exception's text may hold internals (SQL, paths, credentials): the log has it.
            log.exception("job %s: the host failed", job.id)
            status, message = JobStatus.FAILED, "the job could not be run: an internal error"
        running.ending = True
        await despite_cancellation(self._finish(running, status, message, results))
        self.on_end()
        await despite_cancellation(self._release(host, job.id))
        await despite_cancellation(self.workspace.clear(run))

    def _let_go(self, running: RunningJob) -> None:
        """Stops following a job without ending it: another instance (or the next start)
        follows or runs it."""
        running.log.close()
        self.drop(running)

    def drop(self, running: RunningJob) -> None:
        """Stops tracking a run that will not finish here (let go of, or cancelled before
        it ran); whoever waits for it is told."""
        self.running.pop(running.job_id, None)
        running.done.set()

    async def _still_ours(self, job_id: str) -> bool:
        """Whether a job that waited its turn is still this instance's to start: one taken
        for dead while it waited finds it taken over, and must not run it a second time."""
        if self.owner is None:
            return True
        # A store away a moment must not fail the job: it waits, as a start does.
        job = await retrying(lambda: self.store.get(job_id), f"job {job_id}: reading it")
        owners = {self.owner, *self.former_owners}
        if job is not None and job.status is JobStatus.ACCEPTED and job.owner in owners:
            return True
        log.warning("job %s: taken over by another server instance; not starting it", job_id)
        return False

    async def _conclude(
        self,
        process: Process,
        job_id: str,
        outcome: HostOutcome,
        job_log: JobLog,
        results_dirs: list[str],
    ) -> tuple[JobStatus, str, dict[str, Any] | None]:
        """The job's end from its run's: its status, message and results. `results_dirs`:
        the paths the process was given as its results directory."""
        if outcome.error is not None:
            return JobStatus.FAILED, outcome.error, None
        code = outcome.exit_code
        if code != 0:
            how = (
                f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
            )
            # What it said last on stderr is most often why it failed.
            last = job_log.last_stderr or job_log.last_stdout or ""
            return JobStatus.FAILED, f"the process {how}" + (f": {last}" if last else ""), None
        try:
            value = await returned_value(self.storage, job_id, job_log.results_line)
            results = keyed_results(process, value)
            results, files = await resolve_files(
                process, results, self.storage, job_id, results_dirs
            )
            check_outputs(process, {k: v for k, v in results.items() if k not in files})
            return JobStatus.SUCCESSFUL, "finished", stored_results(results)
        except (ResultsError, FileError) as exc:
            return JobStatus.FAILED, str(exc), None

    async def _finish(
        self,
        running: RunningJob,
        status: JobStatus,
        message: str,
        results: dict[str, Any] | None,
    ) -> None:
        """Records the job's end, then keeps its log and metadata."""
        try:
            if running.progress_writer is not None:
                await asyncio.gather(running.progress_writer, return_exceptions=True)
            changes: dict[str, Any] = {"status": status, "message": message, "results": results}
            if status is JobStatus.SUCCESSFUL:
                changes["progress"] = 100
            ended = await self.record_end(running.job_id, changes)
        finally:
            running.done.set()  # a synchronous request may answer now
        try:
            running.log.close()
            kept = await self._keep_log(running)
        finally:
            # Readers of the log go to storage from now on; then the spool file can go.
            self.running.pop(running.job_id, None)
        if kept and running.log.spool is not None:
            running.log.spool.unlink(missing_ok=True)
        if ended is not None:
            await self.keep_metadata(ended)

    async def record_end(self, job_id: str, changes: dict[str, Any]) -> Job | None:
        """Records a job's final status, trying until the store takes it; the ended job, or
        None if it had ended already (a dismiss won the race). Tells `on_change` of it."""
        now = utcnow()
        changes = {**changes, "finished": now, "updated": now}

        async def record() -> Job | None:
            return await self.store.update(job_id, changes, ACTIVE)

        ended = await retrying(record, f"job {job_id}: recording its end")
        self.notify(ended)
        return ended or await retrying(
            lambda: self.store.get(job_id), f"job {job_id}: reading it", KEEP_ATTEMPTS
        )

    async def _keep_log(self, running: RunningJob) -> bool:
        """Hands the spool file to storage: this run's, or one an earlier run left (a run
        lost at a restart), so that what it printed is not lost. Whether it was kept."""
        spool = running.log.spool
        if spool is None or not (running.log.written or spool.exists()):
            return False
        key = self.storage.layout.log(running.job_id)
        try:
            await retrying(
                lambda: self.storage.put_file(key, spool, "application/x-ndjson"),
                f"job {running.job_id}: keeping its log",
                KEEP_ATTEMPTS,
            )
        except Exception:
            log.exception(
                "job %s: its log could not be kept; it stays in %s", running.job_id, spool
            )
            return False
        return True

    async def keep_metadata(self, job: Job) -> None:
        data = json.dumps(job_metadata(job)).encode()
        try:
            await retrying(
                lambda: self.storage.put(self.storage.layout.meta(job.id), data),
                f"job {job.id}: keeping its metadata",
                KEEP_ATTEMPTS,
            )
        except Exception:
            log.exception("job %s: its metadata could not be kept", job.id)

    async def _release(self, host: Host, job_id: str) -> None:
        """Lets the host remove what the run left, now that the job's end is recorded."""
        try:
            await host.release(job_id)
        except Exception:
            log.exception("job %s: removing what its run left failed", job_id)

    def notify(self, job: Job | None) -> None:
        """Tells `on_change` of a job's new state; its failures never reach the job."""
        if job is None or self._on_change is None:
            return
        try:
            self._on_change(job)
        except Exception:
            log.exception("job %s: notifying its change failed", job.id)

    def write_progress(self, running: RunningJob) -> None:
        """Writes the latest progress report; one writer per job, so the newest wins."""
        if running.progress_writer is None or running.progress_writer.done():
            running.progress_writer = asyncio.get_running_loop().create_task(
                self._progress_loop(running)
            )

    async def _progress_loop(self, running: RunningJob) -> None:
        while running.progress is not None:
            percent, message = running.progress
            running.progress = None
            changes: dict[str, Any] = {"progress": percent, "updated": utcnow()}
            if message:
                changes["message"] = message
            try:
                self.notify(await self.store.update(running.job_id, changes, ACTIVE))
            except Exception:  # a progress report is worth no failure: the next one may pass
                log.warning("job %s: its progress could not be recorded", running.job_id)

    async def detach(self, which: Callable[[RunningJob], bool]) -> list[RunningJob]:
        """Stops following the chosen runs without ending their jobs: another instance or the
        next start follows them again (Batch jobs) or runs them (jobs not launched yet)."""
        detached = []
        for running in list(self.running.values()):
            if running.detaching or running.task is None or not which(running):
                continue
            running.detaching = True
            if running.run is not None:
                running.run.detach.set()
            running.task.cancel()
            detached.append(running)
        if detached:
            await asyncio.gather(*(r.task for r in detached if r.task), return_exceptions=True)
        for running in list(self.running.values()):
            if running.detaching and not running.done.is_set():  # cancelled before it ran
                self.drop(running)
        return detached
