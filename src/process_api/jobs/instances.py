"""This server among the instances that share one job store.

Each server process is an instance with an id of its own and a lease it renews in
the store. A job belongs to the instance that accepted it: only that one runs,
follows and ends it. Work passes between instances through the store only:
- a dismiss received by another instance records the job as dismissed; the owner
  sees it within a poll and stops the run;
- an instance that dies (its lease runs out, or on this machine its process is
  gone) has its active jobs taken over by another: runs are followed again where
  the host can find them, and jobs that cannot be recovered end failed; the runs
  of its jobs dismissed while nobody followed them are stopped;
- an instance that finds itself taken for dead (it stalled past its lease) lets go
  of the jobs taken from it without recording anything: their new owner ends them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from process_api.asyncs import Outage
from process_api.jobs.lifecycle import stop_dismissed
from process_api.jobs.model import Job, utcnow
from process_api.jobs.running import JobRunner
from process_api.machine import parent_of, process_started, this_machine
from process_api.store.base import Instance, JobStore

log = logging.getLogger(__name__)

#: how often an instance looks for jobs dismissed elsewhere (a dismiss takes at most this).
POLL_INTERVAL = 0.5
#: how long the jobs of an instance that stopped answering wait before others take them.
DEFAULT_LEASE = timedelta(seconds=30)

#: what settles jobs taken over: follow, run or fail each one (see lifecycle.settle).
Settle = Callable[[list[Job], str], Awaitable[None]]


def new_instance(lease: timedelta) -> Instance:
    pid = os.getpid()
    now = utcnow()
    return Instance(str(uuid.uuid4()), this_machine(), pid, process_started(pid), now, now + lease)


def is_dead(other: Instance, machine: str) -> bool:
    """Its lease ran out, or it ran on this machine and its process is gone."""
    if other.expires < utcnow():
        return True
    if other.machine != machine or other.pid_started is None:
        return False
    return process_started(other.pid) != other.pid_started


class Coordinator:
    def __init__(
        self, store: JobStore, runner: JobRunner, lease: timedelta, supervisor: int | None = None
    ) -> None:
        """`supervisor`: its pid when this instance is one of the workers of `--workers N`;
        the other workers are the same server, with the same processes."""
        self.store = store
        self.supervisor = supervisor
        self.runner = runner
        self.lease = lease
        self.me = new_instance(lease)
        runner.owner = self.me.id
        self._task: asyncio.Task[None] | None = None
        self._leaving = False
        self._taking_over = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.me.id

    async def join(self, settle: Settle) -> bool:
        """Registers this instance and takes over what dead instances left; then keeps the
        lease, stops jobs dismissed elsewhere and takes over from instances that die.
        Whether no other server has a live instance."""
        await self.store.register(self.me)
        alive = await self.take_over(settle, at_start=True)
        self._task = asyncio.create_task(self._loop(settle))
        return alive == 0

    async def stop_taking_over(self) -> None:
        """From the start of a shutdown: the jobs of instances stopping beside it (workers
        stopped together) are for those still running, or the next start, to take; taken now,
        they would be dismissed with this instance's own. The lease is still renewed and
        dismisses from elsewhere still heard until it leaves. Waits for a round under way:
        what that takes is among the jobs the shutdown stops."""
        self._leaving = True
        async with self._taking_over:
            pass

    async def leave(self) -> None:
        """Stops taking part; the jobs it still owns (queued, or runs that go on without the
        server) go to the other instances, or to the next start. Its lease ends now rather
        than its row going: the one that takes its jobs over knows since when a dismiss of
        them was left to it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.store.renew(self.me.id, utcnow() - timedelta(microseconds=1))

    async def take_over(self, settle: Settle, at_start: bool = False) -> int:
        """Takes the active jobs of dead instances (and of none, from before instances). At
        start they are settled even when there are none: what earlier runs left (stopped
        containers, inputs files) is removed then. How many instances of other servers are
        alive."""
        machine = self.me.machine
        others = [i for i in await self.store.instances() if i.id != self.me.id]
        dead = [i for i in others if is_dead(i, machine)]
        taken = await self.store.take_over([i.id for i in dead], self.me.id)
        dismissed = []
        for instance in dead:
            # A dismiss is seen by a live owner within a poll: those since its last renewal
            # (a lease before its expiry), with a lease to spare, may never have been.
            since = instance.expires - 2 * self.lease
            dismissed += await self.store.take_over_dismissed(instance.id, since, self.me.id)
            await self.store.forget(instance.id)
        if taken:
            log.info("took over %d job(s) of stopped server instance(s)", len(taken))
        if taken or at_start:
            await settle(taken, "the server instance that had it stopped or restarted")
        await stop_dismissed(self.runner, dismissed)
        return self._of_other_servers([i for i in others if i not in dead])

    async def others_alive(self) -> int:
        """How many instances of other servers are alive."""
        others = [i for i in await self.store.instances() if i.id != self.me.id]
        return self._of_other_servers([i for i in others if not is_dead(i, self.me.machine)])

    def _of_other_servers(self, alive: list[Instance]) -> int:
        return sum(1 for i in alive if not self._sibling(i))

    def _sibling(self, other: Instance) -> bool:
        """Another worker of this instance's supervisor."""
        return (
            self.supervisor is not None
            and other.machine == self.me.machine
            and parent_of(other.pid) == self.supervisor
        )

    async def _loop(self, settle: Settle) -> None:
        loop = asyncio.get_running_loop()
        every = self.lease.total_seconds() / 3
        next_renewal = next_takeover = loop.time() + every
        outage = Outage("coordinating with the other server instances", log)
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                # First: after a stall, jobs may have been taken from it meanwhile.
                if loop.time() >= next_renewal:
                    await self._renew()
                    next_renewal = loop.time() + every
                await self._stop_dismissed()
                if loop.time() >= next_takeover:
                    async with self._taking_over:
                        if not self._leaving:
                            await self.take_over(settle)
                    next_takeover = loop.time() + every
            except Exception as exc:  # the store may be away a while: try at the next poll
                outage.failed(exc)
            else:
                outage.passed()

    async def _renew(self) -> None:
        if not await self.store.renew(self.me.id, utcnow() + self.lease):
            # Taken for dead (the lease ran out while this process stalled): some of its
            # jobs may have gone to others, which follow or run them now. It joins again
            # under a new id, which no one takes for dead, and keeps the jobs still under
            # its old one (one conditional update: a job goes to it or to whoever takes the
            # old one over, never both); it lets go of the others without recording
            # anything, so that none is run twice or ended twice.
            log.error("this server instance was taken for stopped; joining again as a new one")
            old = self.me.id
            self.me = new_instance(self.lease)
            await self.store.register(self.me)
            self.runner.former_owners.add(old)
            self.runner.owner = self.me.id
            await self.store.hand_over(old, self.me.id)
            await self._let_go_of_taken()

    async def _let_go_of_taken(self) -> None:
        followed = list(self.runner.running)
        taken = set(await self.store.taken_among(followed, self.me.id))
        if taken:
            log.warning("letting go of %d job(s) another server instance took over", len(taken))
            await self.runner.detach(lambda running: running.job_id in taken)

    async def _stop_dismissed(self) -> None:
        """Stops the runs of jobs that another instance recorded as dismissed."""
        following = [
            r.job_id
            for r in list(self.runner.running.values())
            if r.task is not None and not r.ending and not r.detaching and not r.task.cancelling()
        ]
        for job_id in await self.store.ended_among(following):
            running = self.runner.running.get(job_id)
            if running is not None and running.task is not None and not running.ending:
                log.info("job %s: dismissed by another server instance; stopping it", job_id)
                running.task.cancel()
