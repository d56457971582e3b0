"""The migrations build exactly the schema the job store's tables describe, on SQLite and
on PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from process_api.store.sql import jobs, metadata
from tests.unit.conftest import StoreMaker

#: the newest migration.
HEAD = "0002"


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
    sa.Table("jobs", first, *(c._copy() for c in jobs.columns if c.name != "owner"))
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
