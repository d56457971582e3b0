"""The job record and its status rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal


class JobStatus(StrEnum):
    """The OGC statusCode values."""

    #: recorded, waiting to start.
    ACCEPTED = "accepted"
    #: started on its host.
    RUNNING = "running"
    #: finished with exit code 0; results are stored.
    SUCCESSFUL = "successful"
    #: finished otherwise; `message` says why.
    FAILED = "failed"
    #: terminated on request (dismiss, client gone, shutdown).
    DISMISSED = "dismissed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED})
ACTIVE = frozenset({JobStatus.ACCEPTED, JobStatus.RUNNING})


Mode = Literal["sync", "async"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with milliseconds, as every document of the API writes times."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    """Everything needed to serve a job, also after a restart."""

    id: str
    process_id: str
    process_version: str
    host_type: str
    mode: Mode
    status: JobStatus = JobStatus.ACCEPTED
    message: str = ""
    progress: int | None = None
    created: datetime = field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    updated: datetime = field(default_factory=utcnow)
    inputs: dict[str, Any] = field(default_factory=dict)
    #: the execute request's other members: outputs, response, subscriber.
    request: dict[str, Any] = field(default_factory=dict)
    #: output id -> value, once successful.
    results: dict[str, Any] | None = None
    #: what the host needs to find the job's run again (pid, container id, …).
    handle: dict[str, Any] | None = None
    #: the user who submitted it (see auth/user.py), and the name to show for them.
    submitter: str | None = None
    submitter_name: str | None = None
    #: its results, logs and metadata were removed after the retention period.
    expired: bool = False
    #: the server instance that runs or follows it (see jobs/instances.py); None while an
    #: async job waits in the queue for any instance to claim it (see jobs/queue.py).
    owner: str | None = None
    #: the budget its run counts in, named alike by every instance that shares it (a
    #: Docker Engine, a machine); None while it waits in the queue.
    slot: str | None = None
    #: CPUs and megabytes of memory its run counts for in that budget.
    cpus: float = 0.0
    memory: float = 0.0
    #: the stored version of a deployed process it runs; None for a process of a file.
    process_revision: int | None = None
