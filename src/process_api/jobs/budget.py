"""What a host's jobs may use together, and what one job counts for.

Every host has a capacity: CPUs and memory for containers, and for any host a
number of jobs that may run at once, so that a burst of requests queues instead
of starting as many processes, containers or Batch submissions. The budget is
kept in the job store, not here: every instance that shares a Docker Engine or a
machine counts the same jobs against it (see jobs/queue.py and store.claim).
"""

from __future__ import annotations

import math
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

    def holds(self, need: Resources) -> bool:
        """Whether a job needing `need` could ever run within this capacity."""
        return need.cpus <= self.cpus and need.memory <= self.memory and need.jobs <= self.jobs


def jobs_only(jobs: int) -> Resources:
    """A capacity that counts jobs only (hosts whose platform limits CPUs and memory)."""
    return Resources(math.inf, math.inf, jobs)
