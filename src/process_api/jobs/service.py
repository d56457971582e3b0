"""The job service: submit, wait, dismiss, list, reconcile at start, stop at shutdown.

Every job is written to the store before anything else happens to it, and each
later change goes through a status guard, so a terminal status is final even
when a dismiss races the job's own end. A job runs in one asyncio task that
awaits its host; dismissing the job cancels that task, and the host stops what
it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from process_api.asyncs import despite_cancellation
from process_api.errors import (
    InvalidInput,
    JobNotDismissable,
    NoSuchJob,
    ResultsExpired,
    ServiceUnavailable,
)
from process_api.hosts.base import Host, HostOutcome, JobRun, RunLost, Stream
from process_api.jobs.budget import ResourceBudget
from process_api.jobs.metadata import job_metadata
from process_api.jobs.model import ACTIVE, TERMINAL, Job, JobStatus, Mode, timestamp, utcnow
from process_api.jobs.output import (
    NO_RESULTS,
    JobLog,
    ResultsError,
    map_results,
    parse_log,
    parse_progress,
    plugin_results,
)
from process_api.processes.registry import Process, ProcessRegistry
from process_api.storage.base import Storage
from process_api.store.base import JobQuery, JobStore, JobSummary, Position

log = logging.getLogger(__name__)

#: seconds between two saves of a running job's log (so a crash keeps most of it).
LOG_SAVE_INTERVAL = 5.0
#: how long shutdown waits for dismissed jobs to be stopped and recorded.
SHUTDOWN_GRACE = 15.0


#: the file a process may write to its results location instead of a plugin_results line.
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobSummary]
    total: int
    has_older: bool
    has_newer: bool


@dataclass
class _Active:
    """A job this server instance is running."""

    job_id: str
    log: JobLog = field(default_factory=JobLog)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    progress: tuple[int | None, str | None] | None = None
    progress_writer: asyncio.Task[None] | None = None
    log_writer: asyncio.Task[None] | None = None
    log_saved_at: float = 0.0
    #: the server stops following the run, which goes on (a Batch job at shutdown).
    detaching: bool = False
    run: JobRun | None = None


def _time_left(process: Process, job: Job) -> float | None:
    """What is left of the process's timeout for a job that started before a restart."""
    if process.config.timeout is None:
        return None
    ran = (utcnow() - job.started).total_seconds() if job.started else 0.0
    return max(process.config.timeout - ran, 0.0)


class _Events:
    """What a host reports about one run, turned into job record changes."""

    def __init__(self, service: JobService, active: _Active) -> None:
        self._service = service
        self._active = active

    async def submitted(self, handle: dict[str, Any]) -> None:
        await self._service.store.update(
            self._active.job_id,
            {"handle": handle, "message": "submitted", "updated": utcnow()},
            frozenset({JobStatus.ACCEPTED}),
        )

    async def started(self, handle: dict[str, Any]) -> None:
        now = utcnow()
        changes = {"status": JobStatus.RUNNING, "message": "running", "started": now}
        job = await self._service.store.update(
            self._active.job_id,
            {**changes, "updated": now, "handle": handle},
            frozenset({JobStatus.ACCEPTED}),
        )
        self._service.notify(job)

    def output(self, stream: Stream, line: str, time: datetime | None = None) -> None:
        self._active.log.add(time or utcnow(), stream, line)
        self._service.save_log_soon(self._active)
        progress = parse_progress(line) if stream == "stdout" else None
        if progress is not None:
            self._active.progress = (progress.percent, progress.message)
            self._service.write_progress(self._active)


class JobService:
    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        hosts: Mapping[str, Host],
        on_change: Callable[[Job], None] | None = None,
        expiry: timedelta | None = None,
    ) -> None:
        """`on_change` hears of each change of a running job (callbacks); it must not block.
        `expiry`: how long results, logs and metadata of ended jobs are kept."""
        self.store = store
        self.storage = storage
        self.hosts = hosts
        self.expiry = expiry
        self._on_change = on_change
        self._active: dict[str, _Active] = {}
        self._closing = False
        #: one resource budget per host that has a capacity (docker and local share one).
        self._budgets: dict[int, ResourceBudget] = {}
        for host in hosts.values():
            capacity = host.capacity()
            if capacity is not None and id(host) not in self._budgets:
                self._budgets[id(host)] = ResourceBudget(capacity)

    # -- submit and run ------------------------------------------------------------

    async def submit(
        self,
        process: Process,
        inputs: dict[str, Any],
        request: dict[str, Any],
        mode: Mode,
        submitter: str | None = None,
    ) -> Job:
        """Records the job (durably) and starts it; returns the accepted job."""
        if self._closing:
            raise ServiceUnavailable("the server is shutting down and accepts no new jobs")
        host = self.hosts[process.host_type]
        need = host.resources(process)
        budget = self._budgets.get(id(host))
        if budget is not None and need is not None and not budget.fits_ever(need):
            raise InvalidInput(
                f"process {process.id!r} needs {need}, more than its jobs may ever use "
                f"together on this server ({budget.total})"
            )
        await host.ready()
        job_id = str(uuid.uuid4())
        host.admit(self._job_run(process, job_id, inputs))
        job = Job(
            id=job_id,
            process_id=process.id,
            process_version=process.version,
            host_type=process.host_type,
            mode=mode,
            message="accepted",
            inputs=inputs,
            request=request,
            submitter=submitter,
        )
        await self.store.create(job)
        self._start(process, job, handle=None)
        return job

    def _start(self, process: Process, job: Job, handle: dict[str, Any] | None) -> None:
        active = _Active(job.id)
        self._active[job.id] = active
        active.task = asyncio.create_task(self._run(process, job, active, handle))

    def _job_run(self, process: Process, job_id: str, inputs: dict[str, Any]) -> JobRun:
        results = self.storage.layout.results_of(job_id)
        results_dir = self.storage.local_path(results)
        env = {
            "PROCESS_API_JOB_ID": job_id,
            "PROCESS_API_PROCESS_ID": process.id,
            "PROCESS_API_PROCESS_VERSION": process.version,
            "PROCESS_API_RESULTS_URI": self.storage.location(results),
        }
        if results_dir is not None:
            env["PROCESS_API_RESULTS_DIR"] = str(results_dir)
        return JobRun(job_id, process, json.dumps(inputs), env, results_dir)

    async def _run(
        self, process: Process, job: Job, active: _Active, handle: dict[str, Any] | None
    ) -> None:
        host = self.hosts[process.host_type]
        run = self._job_run(process, job.id, job.inputs)
        active.run = run
        events = _Events(self, active)
        results: dict[str, Any] | None = None
        try:
            async with self._reserved(host, process, queue=handle is None):
                if handle is None:
                    if run.results_dir is not None:
                        await asyncio.to_thread(run.results_dir.mkdir, parents=True, exist_ok=True)
                    async with asyncio.timeout(process.config.timeout):
                        outcome = await host.run(run, events)
                else:
                    async with asyncio.timeout(_time_left(process, job)):
                        outcome = await host.reattach(run, handle, events)
            status, message, results = await self._conclude(process, job.id, outcome, active.log)
        except asyncio.CancelledError:
            if active.detaching:
                self._active.pop(job.id, None)
                active.done.set()
                return
            status, message = JobStatus.DISMISSED, "dismissed"
        except TimeoutError:
            limit = process.config.timeout
            status, message = (
                JobStatus.FAILED,
                f"the job ran longer than its timeout of {limit:g} s",
            )
        except RunLost as exc:
            status, message = JobStatus.FAILED, str(exc)
        except Exception as exc:
            log.exception("job %s: the host failed", job.id)
            status, message = JobStatus.FAILED, f"the job could not be run: {exc}"
        await despite_cancellation(self._finish(active, status, message, results))

    @contextlib.asynccontextmanager
    async def _reserved(self, host: Host, process: Process, queue: bool) -> AsyncIterator[None]:
        """Holds the job's share of its host's budget while it runs; a new job waits its turn
        (still accepted), a run found again after a restart takes its share at once."""
        need = host.resources(process)
        budget = self._budgets.get(id(host))
        if need is None or budget is None:
            yield
            return
        if queue:
            await budget.acquire(need)
        else:
            budget.take(need)
        try:
            yield
        finally:
            budget.release(need)

    async def _conclude(
        self, process: Process, job_id: str, outcome: HostOutcome, job_log: JobLog
    ) -> tuple[JobStatus, str, dict[str, Any] | None]:
        """The job's end from its run's: its status, message and results."""
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
        value = plugin_results(job_log.results_line)
        if value is NO_RESULTS:
            written = await self.storage.get(self.storage.layout.results_of(job_id) + RESULTS_FILE)
            if written is not None:
                try:
                    value = json.loads(written)
                except ValueError as exc:
                    return JobStatus.FAILED, f"{RESULTS_FILE} is not valid JSON: {exc}", None
        try:
            return JobStatus.SUCCESSFUL, "finished", map_results(process, value)
        except ResultsError as exc:
            return JobStatus.FAILED, str(exc), None

    async def _finish(
        self,
        active: _Active,
        status: JobStatus,
        message: str,
        results: dict[str, Any] | None,
    ) -> None:
        """Stores the log, then the terminal status (a no-op if one was already set)."""
        try:
            writers = [w for w in (active.progress_writer, active.log_writer) if w is not None]
            await asyncio.gather(*writers, return_exceptions=True)
            if active.log.lines or active.log.dropped:
                # An empty log (a run found again that cannot replay it) keeps the saved one.
                log_key = self.storage.layout.log(active.job_id)
                await self.storage.put(log_key, active.log.to_jsonl(), "application/x-ndjson")
            now = utcnow()
            changes: dict[str, Any] = {"status": status, "message": message}
            changes.update(finished=now, updated=now, results=results)
            if status is JobStatus.SUCCESSFUL:
                changes["progress"] = 100
            ended = await self.store.update(active.job_id, changes, ACTIVE)
            self.notify(ended)
            ended = ended or await self.store.get(active.job_id)  # dismissed meanwhile
            if ended is not None:
                metadata = json.dumps(job_metadata(ended)).encode()
                await self.storage.put(self.storage.layout.meta(ended.id), metadata)
        except Exception:
            log.exception("job %s: could not record the end of the job", active.job_id)
        finally:
            self._active.pop(active.job_id, None)
            active.done.set()

    def notify(self, job: Job | None) -> None:
        """Tells `on_change` of a job's new state; its failures never reach the job."""
        if job is None or self._on_change is None:
            return
        try:
            self._on_change(job)
        except Exception:
            log.exception("job %s: notifying its change failed", job.id)

    def save_log_soon(self, active: _Active) -> None:
        """Saves the log of a running job now and then, not on every line."""
        loop = asyncio.get_running_loop()
        idle = active.log_writer is None or active.log_writer.done()
        if idle and loop.time() - active.log_saved_at >= LOG_SAVE_INTERVAL:
            active.log_saved_at = loop.time()
            key, data = self.storage.layout.log(active.job_id), active.log.to_jsonl()
            active.log_writer = loop.create_task(
                self.storage.put(key, data, "application/x-ndjson")
            )

    def write_progress(self, active: _Active) -> None:
        """Writes the latest progress report; one writer per job, so the newest wins."""
        if active.progress_writer is None or active.progress_writer.done():
            active.progress_writer = asyncio.get_running_loop().create_task(
                self._progress_loop(active)
            )

    async def _progress_loop(self, active: _Active) -> None:
        while active.progress is not None:
            percent, message = active.progress
            active.progress = None
            changes: dict[str, Any] = {"progress": percent, "updated": utcnow()}
            if message:
                changes["message"] = message
            self.notify(await self.store.update(active.job_id, changes, ACTIVE))

    # -- queries -------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise NoSuchJob(f"job {job_id!r} does not exist")
        return job

    async def summary(self, job_id: str) -> JobSummary:
        """The job without its inputs, request and results: what its status needs."""
        job = await self.store.summary(job_id)
        if job is None:
            raise NoSuchJob(f"job {job_id!r} does not exist")
        return job

    async def find(self, query: JobQuery) -> JobPage:
        """A page of the job list, how many jobs match in all, and whether there are more
        on either side of the page."""
        jobs = await self.store.find(query)
        total = await self.store.count(query)
        if not jobs:
            return JobPage(jobs, total, False, False)
        edge = replace(query, limit=1, after=None, before=None)
        older = await self.store.find(replace(edge, after=(jobs[-1].created, jobs[-1].id)))
        newer = await self.store.find(replace(edge, before=(jobs[0].created, jobs[0].id)))
        return JobPage(jobs, total, bool(older), bool(newer))

    async def position(self, job_id: str) -> Position | None:
        """Where a job stands in the job list; None for an unknown job."""
        job = await self.store.summary(job_id)
        return (job.created, job.id) if job else None

    def check_kept(self, job: Job) -> None:
        """Raises ResultsExpired once the job's results, logs and metadata are past retention."""
        if job.expired or self._past_retention(job):
            assert job.finished is not None
            raise ResultsExpired(
                f"the results, logs and metadata of job {job.id} expired: they are kept "
                f"{self.expiry} after a job ends, and it ended at {timestamp(job.finished)}"
            )

    def _past_retention(self, job: Job) -> bool:
        return (
            self.expiry is not None
            and job.finished is not None
            and utcnow() - job.finished > self.expiry
        )

    async def expire(self) -> int:
        """Removes what retention no longer keeps; the job records stay. Returns how many."""
        if self.expiry is None:
            return 0
        count = 0
        while batch := await self.store.finished_before(utcnow() - self.expiry):
            for job in batch:
                layout = self.storage.layout
                await self.storage.delete(
                    layout.log(job.id), layout.meta(job.id), layout.results_of(job.id)
                )
                changes = {"expired": True, "results": None}
                await self.store.update(job.id, changes, TERMINAL)
                count += 1
        return count

    async def logs(self, job_id: str) -> list[dict[str, str]]:
        """The job's log lines: live while it runs here, from storage afterwards."""
        self.check_kept(await self.get(job_id))
        active = self._active.get(job_id)
        if active is not None:
            return list(active.log.lines)
        data = await self.storage.get(self.storage.layout.log(job_id))
        return parse_log(data) if data else []

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended, or as it is when the timeout passes."""
        active = self._active.get(job_id)
        if active is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(active.done.wait(), timeout)
        return await self.get(job_id)

    # -- stopping ------------------------------------------------------------------

    async def dismiss(self, job_id: str, reason: str = "dismissed by the client") -> Job:
        """Records the job as dismissed, then stops its run and waits until it has stopped."""
        job = await self.get(job_id)
        now = utcnow()
        changes = {"status": JobStatus.DISMISSED, "message": reason, "finished": now}
        dismissed = await self.store.update(job_id, {**changes, "updated": now}, ACTIVE)
        if dismissed is None:
            job = await self.get(job_id)
            raise JobNotDismissable(f"job {job_id!r} has already ended: it is {job.status.value}")
        active = self._active.get(job_id)
        if active is not None and active.task is not None:
            active.task.cancel()
            await asyncio.gather(active.task, return_exceptions=True)
            if not active.done.is_set():  # cancelled before it ever ran: nothing will finish it
                await self._finish(active, JobStatus.DISMISSED, reason, None)
        return dismissed

    def begin_shutdown(self) -> None:
        """Refuses new jobs from now on; called from the signal handler."""
        self._closing = True

    async def shutdown(self) -> None:
        """Dismisses every job still running here and waits until each is recorded; runs that
        go on without the server (Batch jobs) are only left to go on."""
        self._closing = True
        await self._detach()
        # Again while any is left: a request may have been between its check and its record.
        for _ in range(3):
            pending = [job_id for job_id, a in self._active.items() if not a.detaching]
            if not pending:
                break
            log.info("shutdown: dismissing %d active job(s)", len(pending))
            results = await asyncio.gather(
                *(self.dismiss(job_id, "the server shut down") for job_id in pending),
                return_exceptions=True,
            )
            for job_id, result in zip(pending, results, strict=True):
                if isinstance(result, Exception) and not isinstance(result, JobNotDismissable):
                    log.error("shutdown: job %s: %s", job_id, result)
            await self._settle()
        await self._settle()  # runs being detached by a concurrent call, too

    async def _settle(self) -> None:
        tasks = [a.task for a in self._active.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        await asyncio.sleep(0)

    async def _detach(self) -> None:
        """Stops following the runs that go on without this server (Batch jobs): the next
        start follows them again."""
        detached = []
        for active in list(self._active.values()):
            if active.detaching:
                continue
            job = await self.store.get(active.job_id)
            host = self.hosts.get(job.host_type) if job else None
            if host is not None and host.detachable and active.task is not None:
                active.detaching = True
                if active.run is not None:
                    active.run.detach.set()
                active.task.cancel()
                detached.append(active.task)
        if detached:
            log.info("shutdown: %d job(s) go on without this server", len(detached))
            await asyncio.gather(*detached, return_exceptions=True)

    # -- start ---------------------------------------------------------------------

    async def reconcile(self, registry: ProcessRegistry) -> None:
        """Settles the jobs the store says are active, left by a previous run of the server.

        A run that was started is followed again (or failed, if its host cannot find
        it); a queued asynchronous job waits for its turn again; a synchronous job
        that never started is failed, since its client is gone. Then each host
        removes what it left behind for jobs that are not followed.
        """
        followed: set[str] = set()
        queued: list[tuple[Process, Job]] = []
        for job in await self.store.active():
            process = registry.get(job.process_id)
            host = self.hosts.get(job.host_type)
            if process is None or host is None:
                await self._fail(
                    job, f"the server restarted and process {job.process_id!r} is gone"
                )
            elif job.handle is not None:
                log.info("job %s: following its run again after a restart", job.id)
                self._start(process, job, job.handle)
                followed.add(job.id)
            elif job.mode == "async":
                queued.append((process, job))
            else:
                await self._fail(job, "the server restarted before the job started")
        # Leftovers go first: a queued job's new container must not be taken for one.
        for host in {id(h): h for h in self.hosts.values()}.values():
            await host.prune(followed)
        for process, job in queued:
            log.info("job %s: waiting again for its turn after a restart", job.id)
            self._start(process, job, None)

    async def _fail(self, job: Job, reason: str) -> None:
        now = utcnow()
        changes = {"status": JobStatus.FAILED, "message": reason, "finished": now}
        await self.store.update(job.id, {**changes, "updated": now}, ACTIVE)
        log.warning("job %s: %s", job.id, reason)
