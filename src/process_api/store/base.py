"""The JobStore port: where job records live (SQLite embedded, PostgreSQL shared)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from process_api.jobs.budget import Resources
from process_api.jobs.model import Job, JobStatus, Mode

#: a position in the job list: (created, id), the order key.
Position = tuple[datetime, str]


@dataclass(frozen=True)
class JobQuery:
    """A page of the job list, newest first, from a stable position so that new jobs
    never make a page repeat or skip a job."""

    process_ids: Sequence[str] = ()
    #: jobs of these submitters (the identities of one user); anybody's if None.
    submitters: Sequence[str] | None = None
    statuses: Sequence[JobStatus] = ()
    limit: int = 10
    #: created within these bounds (inclusive; None is open).
    created_from: datetime | None = None
    created_to: datetime | None = None
    #: seconds from start to end (or to now, while running); only started jobs have one.
    min_duration: float | None = None
    max_duration: float | None = None
    #: jobs after this position (older: the next page) or before it (newer: the previous page).
    after: Position | None = None
    before: Position | None = None


@dataclass
class JobSummary:
    """What the job list and a job's status answer: a job without its inputs, request,
    results and handle, which may be large (a job's results may be tens of MB)."""

    id: str
    process_id: str
    process_version: str
    host_type: str
    mode: Mode
    status: JobStatus
    message: str
    progress: int | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    updated: datetime
    submitter: str | None
    submitter_name: str | None
    expired: bool
    process_revision: int | None


@dataclass(frozen=True)
class ProcessVersion:
    """One version of a process deployed over the API, or the mark (document None) of its
    undeployment; `revision` counts the versions of its id from 1."""

    id: str
    revision: int
    #: its `info.version`.
    version: str
    #: the process file, as JSON.
    document: dict[str, Any] | None
    #: what was deployed, as it was sent, and its media type.
    package: str | None
    media_type: str | None
    deployed: datetime
    #: the user who deployed (or undeployed) it.
    deployed_by: str | None


@dataclass(frozen=True)
class ApiKey:
    """A key a script signs in with: a user of this name with these roles."""

    name: str
    roles: tuple[str, ...]
    created: datetime


@dataclass(frozen=True)
class SignIn:
    """A browser's sign-in under way: what the provider's answer is checked against."""

    state: str
    verifier: str
    nonce: str
    #: the page to go back to once signed in.
    next: str
    expires: datetime


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its user, and the token its forms must carry (CSRF)."""

    user: dict[str, Any]
    csrf: str
    expires: datetime


@dataclass(frozen=True)
class Instance:
    """A running server process: jobs it owns are its to run, follow, dismiss and end."""

    id: str
    #: the machine (host name and boot) and the process on it, to find it dead at once.
    machine: str
    pid: int
    pid_started: str | None
    started: datetime
    #: its lease: past this time, other instances take its jobs over.
    expires: datetime


class JobStore(Protocol):
    async def open(self) -> None:
        """Creates the tables if needed; called once at start."""

    async def close(self) -> None: ...

    async def create(self, job: Job) -> None:
        """Records a new job; it is durable when this returns."""

    async def get(self, job_id: str) -> Job | None:
        """The whole job, results included: for the results routes and the job's run."""

    async def summary(self, job_id: str) -> JobSummary | None:
        """The job without its inputs, request, results and handle."""

    async def update(
        self, job_id: str, changes: dict[str, Any], from_statuses: frozenset[JobStatus]
    ) -> Job | None:
        """Applies changes if the job's status is one of `from_statuses`.

        Returns the updated job, or None when the job is unknown or in another
        status: the guard that keeps terminal statuses final under races.
        """

    async def find(self, query: JobQuery) -> list[JobSummary]: ...

    async def count(self, query: JobQuery, limit: int | None = None) -> int:
        """How many jobs match; with `limit`, at most that many (counting stops there)."""

    async def finished_before(self, cutoff: datetime, limit: int = 100) -> list[JobSummary]:
        """Ended jobs, not yet expired, that finished before the cutoff, oldest first."""

    async def active(self) -> list[Job]:
        """Jobs accepted or running, oldest first (for reconciliation at start)."""

    async def add_key(self, key: ApiKey, digest: str) -> bool:
        """Records a key by the digest of its secret; False if one of its name exists."""

    async def key_of(self, digest: str) -> ApiKey | None: ...

    async def keys(self) -> list[ApiKey]: ...

    async def remove_key(self, name: str) -> bool: ...

    async def add_sign_in(self, sign_in: SignIn) -> None: ...

    async def take_sign_in(self, state: str) -> SignIn | None:
        """The sign-in of this state, removed (each is finished once); None once expired."""

    async def add_session(self, digest: str, session: Session) -> None: ...

    async def session_of(self, digest: str) -> Session | None:
        """The session of a cookie's digest; None if unknown or expired."""

    async def remove_session(self, digest: str) -> None: ...

    async def register(self, instance: Instance) -> None: ...

    async def renew(self, instance_id: str, expires: datetime) -> bool:
        """Extends an instance's lease; False once it has run out (taken for dead, even if
        nobody took its jobs yet) or the instance was forgotten."""

    async def hand_over(self, old: str, new: str) -> list[str]:
        """Gives the active jobs still owned by instance `old` to `new`; their ids."""

    async def instances(self) -> list[Instance]: ...

    async def forget(self, instance_id: str) -> None: ...

    async def take_over(self, dead: Sequence[str], new_owner: str) -> list[Job]:
        """The active jobs taken by dead or unregistered instances (or by none), each given
        to `new_owner` by one conditional update, oldest first; queued jobs stay queued."""

    async def claim(
        self,
        owner: str,
        slot: str,
        capacity: Resources | None,
        host_types: Sequence[str],
        process_ids: Sequence[str],
    ) -> Job | None:
        """The oldest queued job `owner` may run (of `host_types`, and of `process_ids` unless
        it runs a deployed process's version), counted in `slot` if it fits in what
        `capacity` leaves there; None if none waits or the oldest does not fit."""

    async def requeue(self, job_ids: Sequence[str]) -> None:
        """Puts claimed jobs that never started back in the queue, at their place."""

    async def queued(self) -> dict[str, int]:
        """How many jobs wait in the queue, by host type."""

    async def ended_among(self, job_ids: Sequence[str]) -> list[str]:
        """Those of the jobs that have a final status."""

    async def take_over_dismissed(self, dead: str, since: datetime, new_owner: str) -> list[Job]:
        """The jobs of a dead instance recorded dismissed since `since`, each given to
        `new_owner` by one conditional update: their runs may go on, nobody stopped them."""

    async def taken_among(self, job_ids: Sequence[str], owner: str) -> list[str]:
        """Those of the jobs that another instance owns now (taken over)."""

    async def add_process_version(self, version: ProcessVersion, replacing: bool) -> int | None:
        """Records the next version of a process (its revision is the next of its id and is
        returned): a first one (`replacing` False) only when none is deployed, a replacement
        or an undeployment mark only when one is; None otherwise."""

    async def process_version(self, process_id: str, revision: int | None) -> ProcessVersion | None:
        """That version (the newest if `revision` is None, which may be a mark)."""

    async def deployed_processes(self) -> dict[str, int]:
        """The revision of each process deployed now."""

    async def problems(self) -> list[str]:
        """What keeps the store from serving (for /ready); empty when it answers."""
