"""The retention's index: the jobs not yet expired, by the time they ended.

A few times per retention period (EXPIRY_DAYS) the server asks for the oldest ended jobs
not yet expired. Without this index that was a read of every ended job, sorted: its cost
grew with the history. With it, one index range read in order, stopping at the batch's end.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_expired_finished", "jobs", ["expired", "finished"])


def downgrade() -> None:
    op.drop_index("ix_jobs_expired_finished", "jobs")
