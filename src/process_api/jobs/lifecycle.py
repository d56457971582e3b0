"""The jobs of a server's life: taken over at start, stopped or handed on at shutdown.

Jobs an instance takes over (at its start, or when another instance dies; see
instances.py) are settled: a run that was started is followed again (or failed,
if its host cannot find it), a job that had not started goes back to the queue, and each
host removes what was left behind for jobs that no instance follows. The runs of
jobs dismissed while their instance was dead are stopped by their handle. At shutdown,
running jobs are dismissed, while async jobs that have not started go back to
the queue and runs that go on without the server (Batch jobs) are left to the other
instances or the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection

from process_api.errors import ApiError, JobNotDismissable
from process_api.jobs.model import Job, JobStatus
from process_api.jobs.running import JobRunner, RunningJob
from process_api.processes.registry import Process
from process_api.server_log import job_context

log = logging.getLogger(__name__)

#: how long shutdown waits for dismissed jobs to be stopped and recorded.
SHUTDOWN_GRACE = 15.0


#: the process a job runs (the version it was accepted for), if it is still served.
ProcessOf = Callable[[Job], Awaitable[Process | None]]


async def settle(runner: JobRunner, process_of: ProcessOf, jobs: list[Job], reason: str) -> None:
    """Follows, runs again or fails each job taken over; `reason` says what happened to the
    instance that had it ("the server instance that ran it stopped")."""
    queued: list[str] = []
    for job in jobs:
        process = await process_of(job)
        host = runner.hosts.get(job.host_type)
        if process is None or host is None:
            await fail(runner, job, f"{reason} and process {job.process_id!r} is gone")
        elif job.handle is not None:
            log.info("job %s: following its run again (%s)", job.id, reason)
            runner.start(process, job, job.handle)
        elif job.mode == "async":
            queued.append(job.id)
        else:
            await fail(runner, job, f"{reason} before the job started")
    # Leftovers go first: a queued job's new container must not be taken for one. What an
    # active job has stays, whoever runs it (another instance may have just begun a run
    # whose handle is not recorded yet), except what the earlier run of a job run again
    # here left. Inputs files of jobs that ended go.
    again = set(queued)

    async def active() -> set[str]:
        return {job.id for job in await runner.store.active()}

    async def not_run_again() -> set[str]:
        return await active() - again

    for host in {id(h): h for h in runner.hosts.values()}.values():
        await host.prune(not_run_again)
    await runner.workspace.prune(active)
    if queued:
        log.info("%d job(s) that had not started went back to the queue (%s)", len(queued), reason)
        await runner.store.requeue(queued)


async def fail_unserved(
    runner: JobRunner, served: Collection[str], only: Collection[str] | None = None
) -> None:
    """Ends the queued jobs of files' processes this server no longer has (their file was
    removed while they waited; of those in `only`, if given): with no other instance to
    run them, they would wait for ever. A deployed process's jobs keep their version."""
    for job in await runner.store.active():
        if only is not None and job.process_id not in only:
            continue
        if job.slot is None and job.process_revision is None and job.process_id not in served:
            reason = f"process {job.process_id!r} is gone: no server instance runs it"
            await fail(runner, job, reason)


async def stop_dismissed(runner: JobRunner, jobs: list[Job]) -> None:
    """Stops the runs of jobs dismissed while the instance that ran them was dead: their
    status is recorded already, their run (a Batch job, a container) may go on."""
    for job in jobs:
        host = runner.hosts.get(job.host_type)
        if host is None or job.handle is None:
            continue
        with job_context(job.id, job.process_id):
            log.info("job %s: dismissed while nobody followed it; stopping its run", job.id)
            try:
                await host.stop(job.id, job.handle)
            except Exception:
                log.exception("job %s: stopping its run failed", job.id)
            await runner.keep_metadata(job)


async def fail(runner: JobRunner, job: Job, reason: str) -> None:
    """Ends a job that cannot be run, as any other failure ends: callback and metadata too."""
    with job_context(job.id, job.process_id):
        log.warning("job %s: %s", job.id, reason)
        ended = await runner.record_end(job.id, {"status": JobStatus.FAILED, "message": reason})
        if ended is not None:
            await runner.keep_metadata(ended)


def _left_to_next_start(running: RunningJob) -> bool:
    """Runs that go on without the server, and async jobs that have not started."""
    return running.host.detachable or (not running.launched and running.mode == "async")


async def shutdown(
    runner: JobRunner, dismiss: Callable[[str, str], Awaitable[Job]], owner: str
) -> None:
    """Hands on what others or the next start take up, dismisses the rest (and the sync jobs
    of `owner`, this instance, still in the queue) and waits until each dismissed job is
    recorded."""
    handed = await runner.detach(_left_to_next_start)
    if handed:
        log.info("shutdown: %d job(s) left to the other instances or the next start", len(handed))
    waiting: list[str] = []
    try:
        mine = [j for j in await runner.store.active() if j.owner == owner]
        unlaunched = {r.job_id for r in handed if not r.launched}
        # and jobs claimed as the queue stopped, never handed to the runner
        known = {r.job_id for r in handed} | set(runner.running)
        unlaunched |= {
            j.id
            for j in mine
            if j.slot is not None
            and j.mode == "async"
            and j.status is JobStatus.ACCEPTED
            and j.handle is None
            and j.id not in known
        }
        await runner.store.requeue(sorted(unlaunched))
        waiting = [j.id for j in mine if j.slot is None]
    except ApiError as exc:  # whoever takes this instance's jobs over requeues or ends them
        log.warning("shutdown: the queue could not be updated: %s", exc.detail)
    # Again while any is left: a request may have been between its check and its record.
    for _ in range(3):
        pending = [job_id for job_id, r in runner.running.items() if not r.detaching]
        pending += [job_id for job_id in waiting if job_id not in runner.running]
        waiting = []
        if not pending:
            break
        log.info("shutdown: dismissing %d active job(s)", len(pending))
        results = await asyncio.gather(
            *(dismiss(job_id, "the server shut down") for job_id in pending),
            return_exceptions=True,
        )
        for job_id, result in zip(pending, results, strict=True):
            if isinstance(result, Exception) and not isinstance(result, JobNotDismissable):
                log.error("shutdown: job %s: %s", job_id, type(result).__name__)
        await _settle(runner)
    await _settle(runner)  # runs being detached by a concurrent call, too


async def _settle(runner: JobRunner) -> None:
    tasks = [r.task for r in runner.running.values() if r.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
    await asyncio.sleep(0)
