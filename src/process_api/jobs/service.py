"""The job service: what the API asks of jobs (submit, get, list, logs, wait, dismiss).

Every job is written to the store before anything else happens to it, and each
later change goes through a status guard, so a terminal status is final even
when a dismiss races the job's own end. Which instance runs a job is `queue.py`'s,
running it `running.py`'s, the server's start and stop `lifecycle.py`'s, its place
among other instances `instances.py`'s, retention `retention.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from process_api.errors import InvalidInput, JobNotDismissable, NoSuchJob, ServiceUnavailable
from process_api.hosts.base import Host
from process_api.jobs import lifecycle
from process_api.jobs.instances import DEFAULT_LEASE, Coordinator
from process_api.jobs.log import (
    LogCursor,
    LogPage,
    file_page,
    page_of,
    start_of,
    stream_page,
)
from process_api.jobs.model import ACTIVE, Job, JobStatus, Mode, utcnow
from process_api.jobs.queue import POLL_INTERVAL, JobQueue
from process_api.jobs.retention import Retention
from process_api.jobs.running import JobRunner
from process_api.processes.catalog import Catalog
from process_api.processes.registry import Process
from process_api.storage.base import Storage
from process_api.store.base import JobQuery, JobStore, JobSummary, Position

log = logging.getLogger(__name__)

#: the most a page of a job's log holds, in bytes (at least one line).
MAX_LOG_PAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobSummary]
    #: how many jobs match in all; None when more match than were counted, or none were.
    total: int | None
    has_older: bool
    has_newer: bool


class JobService:
    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        hosts: Mapping[str, Host],
        spool: Path,
        on_change: Callable[[Job], None] | None = None,
        expiry: timedelta | None = None,
        lease: timedelta = DEFAULT_LEASE,
        supervisor: int | None = None,
    ) -> None:
        """`spool` and `on_change` are the JobRunner's; `expiry`: how long results, logs and
        metadata of ended jobs are kept; `lease`: how long this instance's jobs wait before
        another instance takes them over, should it stop answering; `supervisor`: the pid of
        the supervisor of `--workers N` this is a worker of."""
        self.store = store
        self.storage = storage
        self.hosts = hosts
        self.runner = JobRunner(store, storage, hosts, spool, on_change)
        self.retention = Retention(store, storage, expiry)
        self.instance = Coordinator(store, self.runner, lease, supervisor)
        self.queue = JobQueue(store, self.runner)
        self.catalog: Catalog | None = None
        self._joined = False
        self._closing = False

    # -- submit --------------------------------------------------------------------

    async def submit(
        self,
        process: Process,
        inputs: dict[str, Any],
        request: dict[str, Any],
        mode: Mode,
        submitter: tuple[str, str] | None = None,
    ) -> Job:
        """Records the job (durably) in the queue; returns the accepted job. `submitter`: the
        id and the name to show of the user who asked for it."""
        if self._closing:
            raise ServiceUnavailable("the server is shutting down and accepts no new jobs")
        host = self.hosts[process.host_type]
        need = host.resources(process)
        capacity = host.capacity()
        if capacity is not None and need is not None and not capacity.holds(need):
            raise InvalidInput(
                f"process {process.id!r} needs {need}, more than its jobs may ever use "
                f"together on this server ({capacity})"
            )
        await host.ready()
        job_id = str(uuid.uuid4())
        # Before the job is recorded: a run the platform would refuse is never a job.
        host.admit(self.runner.job_run(host, process, job_id, inputs))
        job = Job(
            id=job_id,
            process_id=process.id,
            process_version=process.version,
            host_type=process.host_type,
            mode=mode,
            message="accepted",
            inputs=inputs,
            request=request,
            submitter=submitter[0] if submitter else None,
            submitter_name=submitter[1] if submitter else None,
            # A sync job is run by the instance its client waits on; an async one by any.
            owner=self.instance.id if mode == "sync" else None,
            cpus=need.cpus if need else 0.0,
            memory=need.memory if need else 0.0,
            process_revision=process.revision,
        )
        await self.store.create(job)
        self.queue.wake()
        return job

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

    async def find(self, query: JobQuery, count_up_to: int | None = None) -> JobPage:
        """A page of the job list, how many jobs match in all (None when more than
        `count_up_to` do, or when not asked to count), and whether there are more on either
        side of the page."""
        # One job more than the page: whether there are more on the side it is read towards.
        found = await self.store.find(replace(query, limit=query.limit + 1))
        more = len(found) > query.limit
        jobs = found if not more else found[1:] if query.before is not None else found[:-1]
        total = None if count_up_to is None else await self.count(query, count_up_to)
        if not jobs:
            return JobPage(jobs, total, False, False)
        edge = replace(query, limit=1, after=None, before=None)
        if query.before is not None:
            older = await self.store.find(replace(edge, after=(jobs[-1].created, jobs[-1].id)))
            return JobPage(jobs, total, bool(older), more)
        if query.after is None:  # the first page: no job is newer, but one submitted since
            return JobPage(jobs, total, more, False)
        newer = await self.store.find(replace(edge, before=(jobs[0].created, jobs[0].id)))
        return JobPage(jobs, total, more, bool(newer))

    async def count(self, query: JobQuery, up_to: int | None = None) -> int | None:
        """How many jobs match (the page's own filters and position aside); None when more
        than `up_to` do. Counting stops there: a count of every match reads every matching
        job's index entry, and grows with the store."""
        if up_to is None:
            return await self.store.count(query)
        found = await self.store.count(query, limit=up_to + 1)
        return found if found <= up_to else None

    async def position(
        self, job_id: str, submitters: Sequence[str] | None = None
    ) -> Position | None:
        """Where a job stands in the job list; None for an unknown job, or one not of these
        submitters (if any are named)."""
        job = await self.store.summary(job_id)
        if job is None or (submitters is not None and job.submitter not in submitters):
            return None
        return (job.created, job.id)

    async def active_of(self, submitters: Sequence[str]) -> int:
        """How many jobs of these submitters (one user) are accepted or running."""
        return await self.store.count(JobQuery(submitters=submitters, statuses=tuple(ACTIVE)))

    def check_kept(self, job: Job | JobSummary) -> None:
        self.retention.check_kept(job)

    async def logs(
        self, job_id: str, after: int = 0, limit: int = 10_000, cursor: LogCursor | None = None
    ) -> LogPage:
        """A page of the job's log: live while it runs here, from storage afterwards. While
        another instance runs it, live from that one's spool file when it shares this data
        directory (instances on one machine); otherwise empty until it ends. `cursor`: where
        the page before ended, so that a reader going on reads only what follows."""
        summary = await self.summary(job_id)
        self.check_kept(summary)
        running = self.runner.running.get(job_id)
        if running is not None:
            path, size, kept = running.log.readable()
            if path is None:
                return page_of(kept, after, limit)
            try:
                return await asyncio.to_thread(
                    file_page, path, size, after, limit, MAX_LOG_PAGE_BYTES, cursor
                )
            except FileNotFoundError:
                pass  # the job ended meanwhile: its spool file went once the log was kept
        elif not summary.status.terminal:
            return await self._spooled_elsewhere(job_id, after, limit, cursor)
        # Ended: from storage; when just ended elsewhere, from its spool file meanwhile.
        key = self.storage.layout.log(job_id)
        local = self.storage.local_path(key)
        if local is not None:
            try:
                return await asyncio.to_thread(
                    file_page, local, None, after, limit, MAX_LOG_PAGE_BYTES, cursor
                )
            except FileNotFoundError:
                return await self._spooled_elsewhere(job_id, after, limit, cursor)
        stored = await self.storage.stat(key)
        if stored is None:
            return await self._spooled_elsewhere(job_id, after, limit, cursor)
        source = f"storage:{key}"
        line, offset = start_of(cursor, source, after)
        chunks = self.storage.stream(key, offset, stored.size - offset)
        page = await stream_page(chunks, after - line, limit, MAX_LOG_PAGE_BYTES)
        return page.moved(source, line, offset)

    async def log_length(self, job_id: str) -> int:
        """How many lines the job's log holds now: the whole log is read, its lines counted
        but not parsed."""
        return (await self.logs(job_id, sys.maxsize, 1)).skipped

    async def _spooled_elsewhere(
        self, job_id: str, after: int, limit: int, cursor: LogCursor | None
    ) -> LogPage:
        """What the instance running the job has appended to its spool file so far, if it
        is in this data directory. Lines are appended whole, but one may be mid-write: the
        page ends before a line not yet whole."""
        spool = self.runner.spool_file(job_id)
        try:
            return await asyncio.to_thread(
                file_page, spool, None, after, limit, MAX_LOG_PAGE_BYTES, cursor, True
            )
        except FileNotFoundError:
            return LogPage([], False)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended, or as it is when the timeout passes. A job running here
        is awaited; one still queued or running elsewhere is looked for among the jobs
        starting here, and looked up in the store every POLL_INTERVAL."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        look_up = True
        while True:
            next_start = self.runner.next_start()
            left = None if deadline is None else max(deadline - loop.time(), 0.0)
            running = self.runner.running.get(job_id)
            if running is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.done.wait(), left)
                return await self.get(job_id)
            if look_up or left == 0.0:
                job = await self.get(job_id)
                if job.status.terminal or left == 0.0:
                    return job
            pause = POLL_INTERVAL if left is None else min(POLL_INTERVAL, left)
            try:
                await asyncio.wait_for(next_start.wait(), pause)
                look_up = False  # some job started here: is it this one?
            except TimeoutError:
                look_up = True

    # -- stopping ------------------------------------------------------------------

    async def dismiss(self, job_id: str, reason: str = "dismissed by the client") -> Job:
        """Records the job as dismissed, then stops its run and waits until it has stopped."""
        await self.get(job_id)
        now = utcnow()
        changes = {"status": JobStatus.DISMISSED, "message": reason, "finished": now}
        dismissed = await self.store.update(job_id, {**changes, "updated": now}, ACTIVE)
        if dismissed is None:
            job = await self.get(job_id)
            raise JobNotDismissable(f"job {job_id!r} has already ended: it is {job.status.value}")
        self.runner.notify(dismissed)
        running = self.runner.running.get(job_id)
        if running is None and dismissed.slot is None:  # still in the queue: no run ends it
            await self.runner.keep_metadata(dismissed)
        elif running is not None and running.task is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
            if not running.done.is_set():  # cancelled before it ever ran: nothing finishes it
                self.runner.drop(running)
        return dismissed

    @property
    def closing(self) -> bool:
        """The server is stopping (its streams of job events end)."""
        return self._closing

    def begin_shutdown(self) -> None:
        """Refuses new jobs from now on; called from the signal handler."""
        self._closing = True

    async def shutdown(self) -> None:
        """Dismisses the jobs running here and waits until each is recorded; jobs that have
        not started, and runs that go on without the server (Batch jobs), are left to the
        other instances or the next start."""
        self._closing = True
        await self.instance.stop_taking_over()
        await self.queue.stop()
        await lifecycle.shutdown(self.runner, self.dismiss, self.instance.id)
        if self._joined:
            await self.instance.leave()

    async def join(self, catalog: Catalog) -> None:
        """Takes part among the instances of the job store: takes over the jobs of stopped
        instances (an earlier run of this server, too) and keeps doing so."""
        settle = functools.partial(lifecycle.settle, self.runner, catalog.of_job)
        alone = await self.instance.join(settle)
        if alone:  # else another instance may run the processes this one lacks
            await lifecycle.fail_unserved(self.runner, catalog.file_ids)
        self.catalog = catalog
        self.queue.start(catalog)
        self._joined = True

    async def processes_removed(self, process_ids: set[str]) -> None:
        """Ends the queued jobs of processes whose files were removed, unless another server
        instance, which may still have them, is alive."""
        if self.catalog is not None and not await self.instance.others_alive():
            await lifecycle.fail_unserved(self.runner, self.catalog.file_ids, process_ids)

    async def expire(self) -> int:
        return await self.retention.expire()

    @property
    def expiry(self) -> timedelta | None:
        return self.retention.expiry
