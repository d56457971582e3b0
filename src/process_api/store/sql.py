"""JobStore on SQLAlchemy Core: SQLite embedded by default, PostgreSQL when DB_URL names one.

Every write is one short statement in its own transaction (an UPDATE returns the
row it changed), retried while the database is busy. What differs between
databases is small and lives in a subclass: SQLite (store/sqlite.py) serialises
the writes of the process on one connection; PostgreSQL (store/postgres.py) runs
on a pool of the async engine and guards its migrations with a lock.
A database error never reaches a client as such: it becomes a StoreUnavailable
(or InsufficientStorage) that says what is wrong in plain words.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from process_api.errors import ApiError, StoreUnavailable
from process_api.jobs.budget import Resources
from process_api.jobs.model import ACTIVE, TERMINAL, Job, JobStatus, utcnow
from process_api.store import listing
from process_api.store.base import (
    ApiKey,
    Instance,
    JobQuery,
    JobSummary,
    Session,
    SignIn,
)
from process_api.store.process_versions import ProcessVersionRows
from process_api.store.tables import (
    api_keys,
    aware,
    instances,
    jobs,
    sessions,
    sign_ins,
)

log = logging.getLogger(__name__)

_TIMES = ("created", "started", "finished", "updated")


#: what the job list and a job's status read: never inputs, request, results or handle.
SUMMARY = [
    c
    for c in jobs.columns
    if c.name not in ("inputs", "request", "results", "handle", "owner", "slot", "cpus", "memory")
]

#: how long a write is retried while the database is busy, and the longest pause between tries.
BUSY_RETRY_SECONDS = 15.0
BUSY_PAUSE_MAX = 0.5
#: how long /ready waits for the database to answer.
READY_TIMEOUT = 5.0


def _fields(row: Row[Any] | Mapping[str, Any]) -> dict[str, Any]:
    data = dict(row._mapping if isinstance(row, Row) else row)
    data["status"] = JobStatus(data["status"])
    for name in _TIMES:
        data[name] = aware(data[name])
    return data


def _to_key(row: Row[Any]) -> ApiKey:
    roles = tuple(r for r in row.roles.split(",") if r)
    return ApiKey(row.name, roles, aware(row.created) or row.created)


def to_job(row: Row[Any] | Mapping[str, Any]) -> Job:
    return Job(**_fields(row))


def to_summary(row: Row[Any] | Mapping[str, Any]) -> JobSummary:
    return JobSummary(**_fields(row))


def finished_before(cutoff: datetime, limit: int) -> sa.Select[Any]:
    """The retention's next jobs to expire: the head of one range of ix_jobs_expired_finished
    (only ended jobs have a `finished`), however many jobs are stored."""
    return (
        sa.select(*SUMMARY)
        .where(
            jobs.c.expired.is_(False),
            jobs.c.finished < cutoff.astimezone(UTC),
            jobs.c.status.in_([s.value for s in TERMINAL]),
        )
        .order_by(jobs.c.finished)
        .limit(limit)
    )


MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    tables = sa.inspect(connection).get_table_names()
    if "jobs" in tables and "alembic_version" not in tables:
        command.stamp(config, "0001")  # made before migrations existed: it is revision 0001
    command.upgrade(config, "head")


def _fits(slot: str, capacity: Resources) -> list[Any]:
    """Conditions on a claimed job: it fits beside the active jobs already in the slot."""
    held = jobs.alias("held")
    in_slot = sa.and_(held.c.slot == slot, held.c.status.in_([s.value for s in ACTIVE]))

    def used(column: Any) -> Any:
        return sa.select(sa.func.coalesce(sa.func.sum(column), 0.0)).where(in_slot)

    conditions = [sa.select(sa.func.count()).where(in_slot).scalar_subquery() < capacity.jobs]
    # A small tolerance: fractions such as 0.1 CPU must add up to the total exactly.
    if math.isfinite(capacity.cpus):
        conditions.append(used(held.c.cpus).scalar_subquery() + jobs.c.cpus <= capacity.cpus + 1e-9)
    if math.isfinite(capacity.memory):
        conditions.append(
            used(held.c.memory).scalar_subquery() + jobs.c.memory <= capacity.memory + 1e-9
        )
    return conditions


def _now() -> datetime:
    return utcnow().astimezone(UTC)


#: the time a statement runs at, read when it runs: the statement itself can be kept.
NOW = sa.bindparam("now", callable_=_now, type_=sa.DateTime(timezone=True))


@functools.lru_cache(maxsize=64)
def _claim_statements(
    owner: str,
    slot: str,
    capacity: Resources | None,
    host_types: tuple[str, ...],
    process_ids: tuple[str, ...],
) -> tuple[Any, Any]:
    """The read that finds whether a job may be claimed, and the claim (see claim). Made
    once for each budget: building statements of this size took more of an instance's
    time than running them."""
    queued = jobs.alias("queued")
    mine = [
        queued.c.status == JobStatus.ACCEPTED.value,
        queued.c.slot.is_(None),
        queued.c.host_type.in_(list(host_types)),
        # a deployed process's version is in the store: every instance can run it
        sa.or_(queued.c.process_id.in_(list(process_ids)), queued.c.process_revision.is_not(None)),
        sa.or_(queued.c.owner.is_(None), queued.c.owner == owner),
    ]
    if capacity is not None:
        # A job larger than this whole budget is for instances of a larger one: it does
        # not hold back the jobs this instance can run.
        if math.isfinite(capacity.cpus):
            mine.append(queued.c.cpus <= capacity.cpus + 1e-9)
        if math.isfinite(capacity.memory):
            mine.append(queued.c.memory <= capacity.memory + 1e-9)
    head = (
        sa.select(queued.c.id)
        .where(*mine)
        .order_by(queued.c.created, queued.c.id)
        .limit(1)
        .scalar_subquery()
    )
    conditions = [
        jobs.c.id == head,
        jobs.c.slot.is_(None),
        jobs.c.status == JobStatus.ACCEPTED.value,
        # an instance taken for dead claims nothing: whoever takes over would run it too
        sa.exists().where(instances.c.id == owner, instances.c.expires > NOW),
    ]
    if capacity is not None:
        conditions.extend(_fits(slot, capacity))
    return (
        sa.select(jobs.c.id).where(*conditions),
        jobs.update().where(*conditions).values(owner=owner, slot=slot).returning(*jobs.c),
    )


#: how many jobs wait in the queue, by host type (asked at each look at the queue).
QUEUE_LENGTHS = (
    sa.select(jobs.c.host_type, sa.func.count().label("count"))
    .where(jobs.c.status == JobStatus.ACCEPTED.value, jobs.c.slot.is_(None))
    .group_by(jobs.c.host_type)
)


def _to_row(job: Job) -> dict[str, Any]:
    return _utc({c.name: getattr(job, c.name) for c in jobs.columns})


def _utc(values: dict[str, Any]) -> dict[str, Any]:
    """Datetimes in UTC: SQLite keeps no offset, so every stored time must share one."""
    return {
        k: v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo else v
        for k, v in values.items()
    }


class SqlJobStore(ProcessVersionRows):
    """Job records in one table; status guards are part of each UPDATE's WHERE.

    Statements run on an async engine (PostgreSQL: asyncpg). A subclass names what
    its database needs: `_read_once` and `_write_once` to run statements otherwise
    (SQLite: in threads of its own), `_check` to find the database gone, `_busy` for
    errors worth a retry, `_error` for what a client is told.
    """

    #: what a failing database raises (beyond SQLAlchemy's own errors).
    FAILURES: tuple[type[Exception], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError)

    def __init__(self, engine: AsyncEngine | None, dialect: str = "") -> None:
        self._engine = engine
        self._dialect = dialect or (engine.dialect.name if engine is not None else "")
        self._statements: dict[tuple[str, listing.Shape], Any] = {}

    @property
    def location(self) -> str:
        """Where the records are, for logs: never a password."""
        assert self._engine is not None
        return self._engine.url.render_as_string(hide_password=True)

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        from process_api.store.sqlite import SqliteJobStore

        return SqliteJobStore(path)

    # -- what a database needs (overridden by subclasses) ----------------------------

    def _check(self) -> None:
        """Raises StoreUnavailable when the database is known to be gone."""

    def _busy(self, exc: Exception) -> bool:
        """Whether the failure passes by itself (a lock held by another writer)."""
        return False

    def _error(self, exc: Exception) -> ApiError:
        """What a client is told of a database failure: never SQL, never a path."""
        if isinstance(exc, sa.exc.TimeoutError):
            return StoreUnavailable("the job database is overloaded; try again shortly")
        return StoreUnavailable("the job database cannot be reached; try again shortly")

    async def _read_once(
        self, statement: Any, values: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        assert self._engine is not None
        async with self._engine.connect() as conn:
            return (await conn.execute(statement, values)).all()

    async def _write_once(self, statement: Any, lock: str | None = None) -> Sequence[Row[Any]]:
        """One statement in a transaction of its own; `lock` names what no other writer may
        change meanwhile (a budget: see claim)."""
        assert self._engine is not None
        async with self._engine.begin() as conn:
            if lock is not None and self._dialect == "postgresql":
                # Held until the transaction ends; taken before the statement reads anything.
                hashed = sa.func.hashtext(sa.literal(lock, sa.Text))
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(hashed)))
            result = await conn.execute(statement)
            return result.all() if result.returns_rows else []

    # -- running statements ------------------------------------------------------------

    def _failed(self, exc: Exception) -> ApiError:
        error = self._error(exc)
        # The driver's own words; the statement and its parameters (a job's results) stay out.
        cause = getattr(exc, "orig", None) or exc
        log.error("job database: %s (%s)", error.detail, str(cause) or type(cause).__name__)
        return error

    async def _read(
        self, statement: Any, values: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Runs a query; `values`: of its parameters, if it has any unset."""
        self._check()
        try:
            return await self._read_once(statement, values)
        except sa.exc.IntegrityError:
            raise
        except self.FAILURES as exc:
            raise self._failed(exc) from exc

    async def _write(self, statement: Any, lock: str | None = None) -> Sequence[Row[Any]]:
        """Runs one statement in a transaction of its own, retried while the database is
        busy; once started it completes even if the caller is cancelled."""
        return await asyncio.shield(self._write_retrying(statement, lock))

    async def _write_retrying(self, statement: Any, lock: str | None) -> Sequence[Row[Any]]:
        deadline = time.monotonic() + BUSY_RETRY_SECONDS
        pause = 0.01
        while True:
            self._check()
            try:
                return await self._write_once(statement, lock)
            except sa.exc.IntegrityError:
                raise
            except self.FAILURES as exc:
                if not self._busy(exc) or time.monotonic() + pause > deadline:
                    raise self._failed(exc) from exc
                log.debug("job database busy; writing again in %.2f s", pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, BUSY_PAUSE_MAX)

    # -- the port ----------------------------------------------------------------------

    async def open(self) -> None:
        """Brings the database to the current schema (alembic migrations)."""
        assert self._engine is not None
        async with self._engine.begin() as conn:
            await conn.run_sync(migrate)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    def _storable(self, values: dict[str, Any]) -> dict[str, Any]:
        """Values as this database can store them (all of them, unless a subclass says)."""
        return values

    async def create(self, job: Job) -> None:
        await self._write(jobs.insert().values(**self._storable(_to_row(job))))

    async def get(self, job_id: str) -> Job | None:
        rows = await self._read(jobs.select().where(jobs.c.id == job_id))
        return to_job(rows[0]) if rows else None

    async def summary(self, job_id: str) -> JobSummary | None:
        rows = await self._read(sa.select(*SUMMARY).where(jobs.c.id == job_id))
        return to_summary(rows[0]) if rows else None

    async def update(
        self, job_id: str, changes: dict[str, Any], from_statuses: frozenset[JobStatus]
    ) -> Job | None:
        guard = jobs.c.status.in_([s.value for s in from_statuses])
        values = _utc({k: (v.value if isinstance(v, JobStatus) else v) for k, v in changes.items()})
        values = self._storable(values)
        statement = (
            jobs.update().where(jobs.c.id == job_id, guard).values(**values).returning(*jobs.c)
        )
        rows = await self._write(statement)
        return to_job(rows[0]) if rows else None

    def _duration(self) -> Any:
        """Seconds from start to end, or to now while running, in this database's terms."""
        end = sa.func.coalesce(jobs.c.finished, sa.func.now())
        if self._dialect == "sqlite":
            end = sa.func.coalesce(jobs.c.finished, sa.func.datetime("now"))
            return (sa.func.julianday(end) - sa.func.julianday(jobs.c.started)) * 86400.0
        return sa.func.extract("epoch", end - jobs.c.started)

    def _listing(self, kind: str, found: listing.Shape) -> Any:
        """The job-list statement of this kind ("page", "count", "bounded") and shape, built
        once (see store/listing.py)."""
        statement = self._statements.get((kind, found))
        if statement is None:
            if len(self._statements) >= 500:  # shapes a client could make up: kept few
                self._statements.clear()
            if kind == "page":
                statement = listing.page(found, self._duration(), SUMMARY)
            else:
                statement = listing.count(found, self._duration(), bounded=kind == "bounded")
            self._statements[kind, found] = statement
        return statement

    async def find(self, query: JobQuery) -> list[JobSummary]:
        """A page of summaries: the list never loads inputs, requests or results. However
        many jobs match, it reads a few index entries per status (see store/listing.py)."""
        found, values = listing.shape(query, lanes=True)
        rows = await self._read(self._listing("page", found), values)
        return [to_summary(r) for r in (reversed(rows) if found.newer else rows)]

    async def count(self, query: JobQuery, limit: int | None = None) -> int:
        """How many jobs match (positions aside); with `limit`, counted no further: at most
        `limit` (a count of every match reads every matching index entry)."""
        found, values = listing.shape(replace(query, after=None, before=None), lanes=False)
        values["limit"] = limit
        kind = "count" if limit is None else "bounded"
        return int((await self._read(self._listing(kind, found), values))[0][0])

    async def finished_before(self, cutoff: datetime, limit: int = 100) -> list[JobSummary]:
        """Ended jobs, not yet expired, that finished before the cutoff, oldest first."""
        return [to_summary(r) for r in await self._read(finished_before(cutoff, limit))]

    async def active(self) -> list[Job]:
        statement = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in ACTIVE]))
            .order_by(jobs.c.created)
        )
        return [to_job(r) for r in await self._read(statement)]

    # -- API keys ----------------------------------------------------------------------

    async def add_key(self, key: ApiKey, digest: str) -> bool:
        row = {"name": key.name, "digest": digest, "roles": ",".join(key.roles)}
        try:
            await self._write(api_keys.insert().values(**row, created=key.created.astimezone(UTC)))
        except sa.exc.IntegrityError:
            return False
        return True

    async def key_of(self, digest: str) -> ApiKey | None:
        rows = await self._read(api_keys.select().where(api_keys.c.digest == digest))
        return _to_key(rows[0]) if rows else None

    async def keys(self) -> list[ApiKey]:
        return [_to_key(r) for r in await self._read(api_keys.select().order_by(api_keys.c.name))]

    async def remove_key(self, name: str) -> bool:
        statement = api_keys.delete().where(api_keys.c.name == name).returning(api_keys.c.name)
        return bool(await self._write(statement))

    # -- browser sign-in ---------------------------------------------------------------

    async def add_sign_in(self, sign_in: SignIn) -> None:
        now = utcnow().astimezone(UTC)
        await self._write(sign_ins.delete().where(sign_ins.c.expires < now))
        row = {**sign_in.__dict__, "expires": sign_in.expires.astimezone(UTC)}
        await self._write(sign_ins.insert().values(**row))

    async def take_sign_in(self, state: str) -> SignIn | None:
        statement = (
            sign_ins.delete()
            .where(sign_ins.c.state == state, sign_ins.c.expires > utcnow().astimezone(UTC))
            .returning(*sign_ins.columns)
        )
        rows = await self._write(statement)
        if not rows:
            return None
        return SignIn(**{**rows[0]._mapping, "expires": aware(rows[0].expires)})

    async def add_session(self, digest: str, session: Session) -> None:
        now = utcnow().astimezone(UTC)
        await self._write(sessions.delete().where(sessions.c.expires < now))
        expires = session.expires.astimezone(UTC)
        row = {"digest": digest, "user": session.user, "csrf": session.csrf, "expires": expires}
        await self._write(sessions.insert().values(**row))

    async def session_of(self, digest: str) -> Session | None:
        statement = sessions.select().where(
            sessions.c.digest == digest, sessions.c.expires > utcnow().astimezone(UTC)
        )
        rows = await self._read(statement)
        if not rows:
            return None
        return Session(rows[0].user, rows[0].csrf, aware(rows[0].expires) or utcnow())

    async def remove_session(self, digest: str) -> None:
        await self._write(sessions.delete().where(sessions.c.digest == digest))

    # -- instances ---------------------------------------------------------------------

    async def register(self, instance: Instance) -> None:
        row = _utc({c.name: getattr(instance, c.name) for c in instances.columns})
        await self._write(instances.insert().values(**row))

    async def renew(self, instance_id: str, expires: datetime) -> bool:
        statement = (
            instances.update()
            .where(instances.c.id == instance_id, instances.c.expires > utcnow().astimezone(UTC))
            .values(expires=expires.astimezone(UTC))
            .returning(instances.c.id)
        )
        return bool(await self._write(statement))

    async def hand_over(self, old: str, new: str) -> list[str]:
        statement = (
            jobs.update()
            .where(jobs.c.owner == old, jobs.c.status.in_([s.value for s in ACTIVE]))
            .values(owner=new)
            .returning(jobs.c.id)
        )
        return [row.id for row in await self._write(statement)]

    async def instances(self) -> list[Instance]:
        rows = await self._read(instances.select())
        return [
            Instance(
                **{**row._mapping, "started": aware(row.started), "expires": aware(row.expires)}
            )
            for row in rows
        ]

    async def forget(self, instance_id: str) -> None:
        await self._write(instances.delete().where(instances.c.id == instance_id))

    async def take_over(self, dead: Sequence[str], new_owner: str) -> list[Job]:
        """The jobs the dead instances had taken (claimed from the queue, or sync jobs they
        were asked for), and those of instances no longer registered or of none (recorded
        before instances existed), now owned by `new_owner`. Jobs waiting in the queue are
        no one's and stay there. One conditional update: of two instances taking over at
        once each job goes to exactly one, and an instance registered meanwhile keeps its
        jobs."""
        orphaned = sa.or_(
            jobs.c.owner.is_(None),
            jobs.c.owner.in_(list(dead)),
            jobs.c.owner.not_in(sa.select(instances.c.id)),
        )
        taken = sa.or_(jobs.c.slot.is_not(None), jobs.c.mode == "sync")
        statement = (
            jobs.update()
            .where(orphaned, taken, jobs.c.status.in_([s.value for s in ACTIVE]))
            .values(owner=new_owner)
            .returning(*jobs.c)
        )
        taken_over = [to_job(r) for r in await self._write(statement)]
        return sorted(taken_over, key=lambda job: job.created)

    # -- the queue ---------------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        slot: str,
        capacity: Resources | None,
        host_types: Sequence[str],
        process_ids: Sequence[str],
    ) -> Job | None:
        """The oldest job in the queue that `owner` may run (of its hosts, and of its processes
        or deployed ones, not
        a sync job another instance was asked for), now counted in `slot`, if it fits in
        what `capacity` leaves of the slot; None when none is waiting or the oldest does
        not fit (it is not overtaken). One statement, under the slot's lock: of instances
        claiming at once, each job goes to one, and a budget is never exceeded."""
        check, claim = _claim_statements(
            owner, slot, capacity, tuple(host_types), tuple(process_ids)
        )
        # A read first: while the oldest job does not fit (a full budget), claims cost no
        # write, and take no lock a stalled instance could hold.
        if not await self._read(check):
            return None
        rows = await self._write(claim, lock=slot)
        return to_job(rows[0]) if rows else None

    async def requeue(self, job_ids: Sequence[str]) -> None:
        """Puts jobs that were claimed but never launched (no handle) back in the queue, at
        their place."""
        if not job_ids:
            return
        statement = (
            jobs.update()
            .where(jobs.c.id.in_(list(job_ids)), jobs.c.status == JobStatus.ACCEPTED.value)
            .values(owner=None, slot=None)
        )
        await self._write(statement)

    async def queued(self) -> dict[str, int]:
        """How many jobs wait in the queue, by host type."""
        rows = await self._read(QUEUE_LENGTHS)
        return {row.host_type: int(row._mapping["count"]) for row in rows}

    async def ended_among(self, job_ids: Sequence[str]) -> list[str]:
        """Those of the jobs that have a final status (dismissed by another instance)."""
        if not job_ids:
            return []
        statement = sa.select(jobs.c.id).where(
            jobs.c.id.in_(list(job_ids)), jobs.c.status.in_([s.value for s in TERMINAL])
        )
        return [row.id for row in await self._read(statement)]

    async def take_over_dismissed(self, dead: str, since: datetime, new_owner: str) -> list[Job]:
        """Jobs of the dead instance dismissed since `since` (by another instance, while
        nobody followed them), now owned by `new_owner`: of two instances taking over at
        once, exactly one stops each run."""
        statement = (
            jobs.update()
            .where(
                jobs.c.owner == dead,
                jobs.c.status == JobStatus.DISMISSED.value,
                jobs.c.finished >= since.astimezone(UTC),
            )
            .values(owner=new_owner)
            .returning(*jobs.c)
        )
        return [to_job(r) for r in await self._write(statement)]

    async def taken_among(self, job_ids: Sequence[str], owner: str) -> list[str]:
        """Those of the jobs owned by another instance than `owner` now."""
        if not job_ids:
            return []
        statement = sa.select(jobs.c.id).where(
            jobs.c.id.in_(list(job_ids)),
            sa.or_(jobs.c.owner.is_(None), jobs.c.owner != owner),
        )
        return [row.id for row in await self._read(statement)]

    async def problems(self) -> list[str]:
        """Whether the database answers a query, within READY_TIMEOUT."""
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await self._read(sa.select(jobs.c.id).limit(1))
        except ApiError as exc:
            return [exc.detail]
        except TimeoutError:
            return [f"the job database did not answer within {READY_TIMEOUT:g} s"]
        return []
