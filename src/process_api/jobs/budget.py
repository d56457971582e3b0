"""A resource budget shared by the jobs of one host, handed out first come, first served.

Every host has one: CPUs and memory for containers, and for any host a number of
jobs that may run at once, so that a burst of requests queues instead of starting
as many processes, containers or Batch submissions.

A job that does not fit waits (its status stays `accepted`) until enough is
released. The queue is strict FIFO, so a large job is never overtaken forever
by small ones; cancelling a waiting job (dismiss) takes it out of the queue.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    cpus: float
    #: megabytes
    memory: float
    #: jobs: one for what a job needs, how many may run at once for a capacity.
    jobs: int = 1

    def __str__(self) -> str:
        return f"{self.cpus:g} CPU(s) and {self.memory:g} MB"


def jobs_only(jobs: int) -> Resources:
    """A capacity that counts jobs only (hosts whose platform limits CPUs and memory)."""
    return Resources(math.inf, math.inf, jobs)


class ResourceBudget:
    def __init__(self, total: Resources) -> None:
        self.total = total
        self._used_cpus = 0.0
        self._used_memory = 0.0
        self._used_jobs = 0
        self._queue: deque[tuple[Resources, asyncio.Future[None]]] = deque()

    def fits_ever(self, need: Resources) -> bool:
        return (
            need.cpus <= self.total.cpus
            and need.memory <= self.total.memory
            and need.jobs <= self.total.jobs
        )

    def _fits_now(self, need: Resources) -> bool:
        # A small tolerance: fractions such as 0.1 CPU must add up to the total exactly.
        return (
            self._used_cpus + need.cpus <= self.total.cpus + 1e-9
            and self._used_memory + need.memory <= self.total.memory + 1e-9
            and self._used_jobs + need.jobs <= self.total.jobs
        )

    def take(self, need: Resources) -> None:
        """Counts resources as used without waiting (a run found again after a restart)."""
        self._used_cpus += need.cpus
        self._used_memory += need.memory
        self._used_jobs += need.jobs

    async def acquire(self, need: Resources) -> None:
        """Waits for the job's turn and for the resources, then counts them as used."""
        if not self._queue and self._fits_now(need):
            self.take(need)
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((need, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(need)  # granted just as it was cancelled
            else:
                self._queue = deque(item for item in self._queue if item[1] is not turn)
                self._grant()
            raise

    def release(self, need: Resources) -> None:
        self._used_cpus = max(self._used_cpus - need.cpus, 0.0)
        self._used_memory = max(self._used_memory - need.memory, 0.0)
        self._used_jobs = max(self._used_jobs - need.jobs, 0)
        self._grant()

    def _grant(self) -> None:
        while self._queue and self._fits_now(self._queue[0][0]):
            need, turn = self._queue.popleft()
            if turn.cancelled():
                continue
            self.take(need)
            turn.set_result(None)
