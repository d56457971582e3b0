"""Users: who submitted each job (and the name to show), and the API keys of the server.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("roles", sa.Text, nullable=False, server_default=""),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    # Plain ALTER TABLE: SQLite adds a nullable column in place, without copying the table.
    op.add_column("jobs", sa.Column("submitter_name", sa.String(256), nullable=True))
    # The job list of one user, newest first, without a scan of everybody's jobs.
    op.create_index("ix_jobs_submitter_created", "jobs", ["submitter", "created"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_submitter_created")
        batch.drop_column("submitter_name")
    op.drop_table("api_keys")
