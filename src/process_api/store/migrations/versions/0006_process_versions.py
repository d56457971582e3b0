"""Processes deployed over the API: every version kept, and the version each job ran.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_versions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=True),
        sa.Column("package", sa.Text, nullable=True),
        sa.Column("media_type", sa.String(100), nullable=True),
        sa.Column("deployed", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployed_by", sa.String(256), nullable=True),
    )
    op.add_column("jobs", sa.Column("process_revision", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("process_revision")
    op.drop_table("process_versions")
