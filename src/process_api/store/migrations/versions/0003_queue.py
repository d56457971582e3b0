"""The queue shared by instances: the budget each job's run counts in, and what it needs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE: SQLite adds these columns in place, without copying the table.
    op.add_column("jobs", sa.Column("slot", sa.String(200), nullable=True))
    op.add_column("jobs", sa.Column("cpus", sa.Float, nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("memory", sa.Float, nullable=False, server_default="0"))
    op.create_index("ix_jobs_slot", "jobs", ["slot"])
    # Active jobs of earlier versions were each taken by a server already: they count in
    # no budget, and whoever takes them over follows them or puts them back in the queue.
    jobs = sa.table("jobs", sa.column("status", sa.String), sa.column("slot", sa.String))
    op.execute(jobs.update().where(jobs.c.status.in_(["accepted", "running"])).values(slot=""))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_slot")
        batch.drop_column("memory")
        batch.drop_column("cpus")
        batch.drop_column("slot")
