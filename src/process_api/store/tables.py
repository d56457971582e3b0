"""The tables of the job store, as the migrations build them (store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("process_id", sa.String(128), nullable=False),
    sa.Column("process_version", sa.String(64), nullable=False),
    sa.Column("host_type", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("progress", sa.Integer, nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("results", sa.JSON, nullable=True),
    sa.Column("handle", sa.JSON, nullable=True),
    sa.Column("submitter", sa.String(256), nullable=True),
    sa.Column("submitter_name", sa.String(256), nullable=True),
    sa.Column("expired", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("owner", sa.String(64), nullable=True, index=True),
    sa.Column("slot", sa.String(200), nullable=True, index=True),
    sa.Column("cpus", sa.Float, nullable=False, default=0.0, server_default="0"),
    sa.Column("memory", sa.Float, nullable=False, default=0.0, server_default="0"),
    #: the stored version of a deployed process it runs (see process_versions); None for a
    #: process of a file.
    sa.Column("process_revision", sa.Integer, nullable=True),
)

# The job list's order, (created, id), behind the columns each of its filters compares for
# equality: a page of one status, of one process or submitter, is the head of one index
# range (see SqlJobStore.find). The queue's head is the head of (accepted, …) likewise.
sa.Index("ix_jobs_status_created", jobs.c.status, jobs.c.created, jobs.c.id)
sa.Index(
    "ix_jobs_process_status_created", jobs.c.process_id, jobs.c.status, jobs.c.created, jobs.c.id
)
sa.Index(
    "ix_jobs_submitter_status_created", jobs.c.submitter, jobs.c.status, jobs.c.created, jobs.c.id
)
# The retention's order: the jobs not yet expired, by the time they ended.
sa.Index("ix_jobs_expired_finished", jobs.c.expired, jobs.c.finished)

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("machine", sa.String(300), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("pid_started", sa.String(32), nullable=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    #: SHA-256 of the key: the key itself is shown once, when it is made, and kept nowhere.
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("roles", sa.Text, nullable=False, server_default=""),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

sign_ins = sa.Table(
    "sign_ins",
    metadata,
    sa.Column("state", sa.String(64), primary_key=True),
    sa.Column("verifier", sa.String(128), nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("next", sa.Text, nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False, index=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    #: SHA-256 of the cookie's value: a copy of the database signs no browser in.
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("user", sa.JSON, nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False, index=True),
)

#: every version of each process deployed over the API; the newest is the current one,
#: unless it is the mark (no document) of its undeployment.
process_versions = sa.Table(
    "process_versions",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.String(64), nullable=False),
    #: the process file, as JSON; None for the mark of an undeployment.
    sa.Column("document", sa.Text, nullable=True),
    #: what was deployed, as it was sent, and its media type.
    sa.Column("package", sa.Text, nullable=True),
    sa.Column("media_type", sa.String(100), nullable=True),
    sa.Column("deployed", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deployed_by", sa.String(256), nullable=True),
)


def aware(value: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
