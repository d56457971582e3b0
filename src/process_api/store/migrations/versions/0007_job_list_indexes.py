"""The job list's indexes: one per filter, in the list's order, so that a page reads as many
rows as it shows however many jobs are stored.

The list is ordered by (created, id), newest first, and always filters on status (without a
`status` parameter: every status but accepted). Each index leads with the columns a filter
compares for equality and ends with that order: a page of one status (and one process, or
one submitter) is the first entries of one index range. The single-column indexes these
replace served none of this without a sort of every matching job.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: name → columns; as store/tables.py declares them.
INDEXES = {
    "ix_jobs_status_created": ["status", "created", "id"],
    "ix_jobs_process_status_created": ["process_id", "status", "created", "id"],
    "ix_jobs_submitter_status_created": ["submitter", "status", "created", "id"],
}
#: the indexes they replace: each but `created` is the head of one of them, and no query
#: orders or filters by creation alone (the list and the queue always name a status).
REPLACED = {
    "ix_jobs_status": ["status"],
    "ix_jobs_process_id": ["process_id"],
    "ix_jobs_submitter_created": ["submitter", "created"],
    "ix_jobs_created": ["created"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)
    for name in REPLACED:
        op.drop_index(name, "jobs")


def downgrade() -> None:
    for name, columns in REPLACED.items():
        op.create_index(name, "jobs", columns)
    for name in INDEXES:
        op.drop_index(name, "jobs")
