"""The migrations build exactly the schema the job store's tables describe."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from process_api.store.sql import SqlJobStore, metadata


async def test_migrations_match_the_tables(tmp_path: Path) -> None:
    store = SqlJobStore.sqlite(tmp_path / "jobs.sqlite")
    await store.open()
    await store.open()  # a second start finds the schema current and changes nothing
    await store.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == "0001"
        assert compare_metadata(context, metadata) == []
    engine.dispose()


async def test_a_database_made_before_migrations_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)  # how the first version made its schema
    engine.dispose()
    store = SqlJobStore.sqlite(path)
    await store.open()
    assert await store.active() == []
    await store.close()
