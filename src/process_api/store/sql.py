"""JobStore on SQLAlchemy Core: SQLite by default, any async SQLAlchemy URL later."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from process_api.jobs.model import ACTIVE, TERMINAL, Job, JobStatus
from process_api.store.base import JobQuery, Position

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("process_id", sa.String(128), nullable=False, index=True),
    sa.Column("process_version", sa.String(64), nullable=False),
    sa.Column("host_type", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("progress", sa.Integer, nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("results", sa.JSON, nullable=True),
    sa.Column("handle", sa.JSON, nullable=True),
    sa.Column("submitter", sa.String(256), nullable=True),
    sa.Column("expired", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
)

_TIMES = ("created", "started", "finished", "updated")


def _aware(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _to_job(row: Row[Any]) -> Job:
    data = dict(row._mapping)
    data["status"] = JobStatus(data["status"])
    for name in _TIMES:
        data[name] = _aware(data[name])
    return Job(**data)


MIGRATIONS = Path(__file__).parent / "migrations"


def _migrate(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    tables = sa.inspect(connection).get_table_names()
    if "jobs" in tables and "alembic_version" not in tables:
        command.stamp(config, "0001")  # made before migrations existed: it is revision 0001
    command.upgrade(config, "head")


def _position(position: Position) -> Any:
    created, job_id = position
    return sa.tuple_(sa.literal(created.astimezone(UTC), sa.DateTime(timezone=True)), job_id)


def _to_row(job: Job) -> dict[str, Any]:
    return _utc({c.name: getattr(job, c.name) for c in jobs.columns})


def _utc(values: dict[str, Any]) -> dict[str, Any]:
    """Datetimes in UTC: SQLite keeps no offset, so every stored time must share one."""
    return {
        k: v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo else v
        for k, v in values.items()
    }


class SqlJobStore:
    """Job records in one table; status guards are part of each UPDATE's WHERE."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @classmethod
    def sqlite(cls, path: Path) -> SqlJobStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

        @sa.event.listens_for(engine.sync_engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cursor = conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return cls(engine)

    async def open(self) -> None:
        """Brings the database to the current schema (alembic migrations)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(_migrate)

    async def close(self) -> None:
        await self._engine.dispose()

    async def create(self, job: Job) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(jobs.insert().values(**_to_row(job)))

    async def get(self, job_id: str) -> Job | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(jobs.select().where(jobs.c.id == job_id))).first()
        return _to_job(row) if row else None

    async def update(
        self, job_id: str, changes: dict[str, Any], from_statuses: frozenset[JobStatus]
    ) -> Job | None:
        guard = jobs.c.status.in_([s.value for s in from_statuses])
        values = _utc({k: (v.value if isinstance(v, JobStatus) else v) for k, v in changes.items()})
        async with self._engine.begin() as conn:
            result = await conn.execute(
                jobs.update().where(jobs.c.id == job_id, guard).values(**values)
            )
            if result.rowcount != 1:
                return None
            row = (await conn.execute(jobs.select().where(jobs.c.id == job_id))).one()
        return _to_job(row)

    def _duration(self) -> Any:
        """Seconds from start to end, or to now while running, in this database's terms."""
        end = sa.func.coalesce(jobs.c.finished, sa.func.now())
        if self._engine.dialect.name == "sqlite":
            end = sa.func.coalesce(jobs.c.finished, sa.func.datetime("now"))
            return (sa.func.julianday(end) - sa.func.julianday(jobs.c.started)) * 86400.0
        return sa.func.extract("epoch", end - jobs.c.started)

    def _filtered(self, statement: Any, query: JobQuery) -> Any:
        conditions: list[Any] = []
        if query.process_ids:
            conditions.append(jobs.c.process_id.in_(list(query.process_ids)))
        if query.statuses:
            conditions.append(jobs.c.status.in_([s.value for s in query.statuses]))
        if query.created_from is not None:
            conditions.append(jobs.c.created >= query.created_from.astimezone(UTC))
        if query.created_to is not None:
            conditions.append(jobs.c.created <= query.created_to.astimezone(UTC))
        if query.min_duration is not None or query.max_duration is not None:
            duration = self._duration()
            conditions.append(jobs.c.started.is_not(None))
            if query.min_duration is not None:
                conditions.append(duration >= query.min_duration)
            if query.max_duration is not None:
                conditions.append(duration <= query.max_duration)
        return statement.where(*conditions) if conditions else statement

    async def find(self, query: JobQuery) -> list[Job]:
        statement = self._filtered(jobs.select(), query)
        key = sa.tuple_(jobs.c.created, jobs.c.id)
        if query.after is not None:
            statement = statement.where(key < _position(query.after))
        if query.before is not None:
            # The page just before a position: the nearest newer jobs, then newest first.
            statement = statement.where(key > _position(query.before))
            statement = statement.order_by(jobs.c.created, jobs.c.id).limit(query.limit)
            async with self._engine.connect() as conn:
                rows = (await conn.execute(statement)).all()
            return [_to_job(r) for r in reversed(rows)]
        statement = statement.order_by(jobs.c.created.desc(), jobs.c.id.desc()).limit(query.limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_to_job(r) for r in rows]

    async def count(self, query: JobQuery) -> int:
        statement = self._filtered(sa.select(sa.func.count()).select_from(jobs), query)
        async with self._engine.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def finished_before(self, cutoff: datetime, limit: int = 100) -> list[Job]:
        """Ended jobs, not yet expired, that finished before the cutoff, oldest first."""
        statement = (
            jobs.select()
            .where(
                jobs.c.status.in_([s.value for s in TERMINAL]),
                jobs.c.expired.is_(False),
                jobs.c.finished < cutoff.astimezone(UTC),
            )
            .order_by(jobs.c.finished)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_to_job(r) for r in rows]

    async def active(self) -> list[Job]:
        statement = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in ACTIVE]))
            .order_by(jobs.c.created)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_to_job(r) for r in rows]
