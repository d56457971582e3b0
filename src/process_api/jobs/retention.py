"""Retention: what is kept of ended jobs, and for how long (EXPIRY_DAYS).

Past the retention period a job's results, logs and metadata are removed from
storage, and its inputs and callback addresses from its record; the record
itself stays, so the job is still listed with its status and times.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from process_api.errors import ResultsExpired
from process_api.jobs.model import TERMINAL, Job, timestamp, utcnow
from process_api.storage.base import Storage
from process_api.store.base import JobStore, JobSummary


class Retention:
    def __init__(self, store: JobStore, storage: Storage, expiry: timedelta | None) -> None:
        """`expiry`: how long results, logs and metadata of ended jobs are kept (None: ever)."""
        self.store = store
        self.storage = storage
        self.expiry = expiry

    def check_kept(self, job: Job | JobSummary) -> None:
        """Raises ResultsExpired once the job's results, logs and metadata are past retention."""
        if job.expired or self._past(job):
            assert job.finished is not None
            raise ResultsExpired(
                f"the results, logs and metadata of job {job.id} expired: they are kept "
                f"{self.expiry} after a job ends, and it ended at {timestamp(job.finished)}"
            )

    def _past(self, job: Job | JobSummary) -> bool:
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
        layout = self.storage.layout
        while batch := await self.store.finished_before(utcnow() - self.expiry):
            for job in batch:
                await self.storage.delete(
                    layout.log(job.id),
                    layout.meta(job.id),
                    layout.inputs(job.id),
                    layout.results_of(job.id),
                )
                # Inputs and callback addresses may be personal or secret: they go too.
                changes: dict[str, Any] = {
                    "expired": True,
                    "results": None,
                    "inputs": {},
                    "request": {},
                }
                await self.store.update(job.id, changes, TERMINAL)
                count += 1
        return count
