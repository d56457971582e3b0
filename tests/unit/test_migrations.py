"""The migrations build exactly the schema the job store's tables describe, on SQLite and
on PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from process_api.jobs.model import JobStatus
from process_api.store.sql import MIGRATIONS
from process_api.store.tables import jobs, metadata
from tests.unit.conftest import StoreMaker, live
from tests.unit.test_job_store import make_job

#: the newest migration.
HEAD = "0008"


def _revision_and_differences(connection: sa.Connection) -> tuple[str | None, list[Any]]:
    context = MigrationContext.configure(connection)
    return context.get_current_revision(), compare_metadata(context, metadata)


async def test_migrations_match_the_tables(new_store: StoreMaker) -> None:
    store = new_store()
    await store.open()
    await store.open()  # a second start finds the schema current and changes nothing
    await store.close()
    revision, differences = await new_store.run(_revision_and_differences)
    assert revision == HEAD
    assert differences == []


def _first_schema(connection: sa.Connection) -> None:
    """How the first version made its schema: the jobs table of that time, no migrations."""
    first = sa.MetaData()
    later = ("owner", "slot", "cpus", "memory", "submitter_name", "process_revision")
    table = sa.Table("jobs", first, *(c._copy() for c in jobs.columns if c.name not in later))
    for name in ("process_id", "status", "created"):  # its columns' own indexes
        sa.Index(f"ix_jobs_{name}", table.c[name])
    first.create_all(connection)


async def test_a_database_made_before_migrations_is_taken_over(new_store: StoreMaker) -> None:
    await new_store.run(_first_schema)
    store = new_store()
    await store.open()
    assert await store.active() == []
    await store.close()
    revision, differences = await new_store.run(_revision_and_differences)
    assert revision == HEAD
    assert differences == []


def _at_0002_with_active_jobs(connection: sa.Connection) -> None:
    """A database of the version before the shared queue, with jobs its server had taken."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "0002")
    new = ("slot", "cpus", "memory", "submitter_name", "process_revision")
    table = sa.Table("jobs", sa.MetaData(), *(c._copy() for c in jobs.columns if c.name not in new))
    for job_id, status, handle in (
        ("waiting", "accepted", None),
        ("running", "running", {"pid": 1}),
        ("ended", "successful", None),
    ):
        row = {
            c.name: getattr(make_job(job_id, status=JobStatus(status)), c.name)
            for c in jobs.columns
        }
        row = {k: v for k, v in row.items() if k not in new}
        connection.execute(table.insert().values(**{**row, "status": status, "handle": handle}))


async def test_jobs_taken_before_the_shared_queue_are_taken_over_and_the_waiting_one_requeued(
    new_store: StoreMaker,
) -> None:
    await new_store.run(_at_0002_with_active_jobs)
    store = new_store()
    await store.open()
    try:
        taken = await store.take_over([], "me")
        assert {job.id for job in taken} == {"waiting", "running"}
        assert all(job.slot == "" for job in taken)  # counted in no budget
        await store.requeue(["waiting"])  # what settle does with a job that had not started
        await live(store, "me")
        claimed = await store.claim("me", "docker:x", None, ["subprocess"], ["echo"])
        assert claimed is not None and claimed.id == "waiting"
    finally:
        await store.close()
