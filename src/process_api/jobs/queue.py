"""The queue of jobs waiting for their host's budget, shared by the instances of a job store.

A job is recorded in the queue: without a slot, and without an owner for an async
job (a sync job belongs to the instance that holds its client's request). Each
instance claims from it the oldest job it may run whose resources fit what is left
of its host's budget, a budget counted in the store across every instance that
shares it (one Docker Engine, one machine, AWS Batch: see store.claim), and runs
it. The oldest job is never overtaken by later ones of its budget, so a large job
is not starved by small ones. An instance claims as soon as it accepts a job or one
of its jobs ends, and otherwise every POLL_INTERVAL: that is how a job accepted by
a full instance reaches one with room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from process_api.asyncs import Outage
from process_api.hosts.base import Host
from process_api.jobs.budget import Resources
from process_api.jobs.lifecycle import fail
from process_api.jobs.running import JobRunner
from process_api.processes.catalog import Catalog
from process_api.store.base import JobStore

log = logging.getLogger(__name__)

#: how often an instance looks for queued jobs it has not been woken for.
POLL_INTERVAL = 0.5


@dataclass(frozen=True)
class Budget:
    name: str
    capacity: Resources | None
    #: the host types whose jobs count in it (docker and local are one host).
    host_types: tuple[str, ...]


async def budgets(hosts: dict[str, Host]) -> list[Budget]:
    """The budgets of this instance's hosts, leaving out those not known now."""
    by_host: dict[int, tuple[Host, list[str]]] = {}
    for host_type, host in hosts.items():
        by_host.setdefault(id(host), (host, []))[1].append(host_type)
    found = []
    for host, host_types in by_host.values():
        name = await host.budget_name()
        if name is not None:
            found.append(Budget(name, host.capacity(), tuple(host_types)))
    return found


class JobQueue:
    def __init__(self, store: JobStore, runner: JobRunner) -> None:
        self.store = store
        self.runner = runner
        #: jobs waiting in the queue, by host type, as last counted (also for the metrics).
        self.lengths: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        runner.on_end = self.wake

    def wake(self) -> None:
        """Claims at once rather than at the next poll (a job was accepted or has ended)."""
        self._wake.set()

    def start(self, catalog: Catalog) -> None:
        self._task = asyncio.create_task(self._loop(catalog))

    async def stop(self) -> None:
        """Claims no more: jobs still queued are left to the other instances."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def claim(self, catalog: Catalog) -> int:
        """Claims and starts queued jobs while the oldest of a budget fits; how many. Looks
        first (a read) which hosts have jobs waiting, so that an idle queue costs no write."""
        self.lengths = await self.store.queued()
        # Jobs of deployed processes are claimed by their revision (see store.claim).
        process_ids = sorted(catalog.file_ids)
        claimed = 0
        for budget in await budgets(dict(self.runner.hosts)):
            if not any(self.lengths.get(host_type) for host_type in budget.host_types):
                continue
            while True:
                assert self.runner.owner is not None  # it claims once the instance joined
                job = await self.store.claim(
                    self.runner.owner, budget.name, budget.capacity, budget.host_types, process_ids
                )
                if job is None:
                    break
                try:
                    process = await catalog.of_job(job)
                except Exception:
                    await self.store.requeue([job.id])
                    raise
                if process is None and job.process_revision is not None:
                    await fail(self.runner, job, f"process {job.process_id!r} cannot be read")
                    continue
                if process is None:  # its file was removed since the claim began
                    await self.store.requeue([job.id])
                    break
                self.runner.start(process, job, None)
                claimed += 1
        return claimed

    async def _loop(self, catalog: Catalog) -> None:
        outage = Outage("claiming queued jobs", log)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            self._wake.clear()
            try:
                await self.claim(catalog)
            except Exception as exc:  # the store may be away a while: try at the next poll
                outage.failed(exc)
            else:
                outage.passed()
