"""The versions of processes deployed over the API, in the job store (a part of SqlJobStore).

Rows are never changed: a deploy, a replace and an undeploy each add the next
revision of the id, and the newest says what is deployed now (nothing, when it is
the mark of an undeployment). Each is one INSERT … SELECT whose condition reads
the newest revision, so two instances that deploy one id at once cannot both
succeed: the second computes the same revision and the primary key refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from process_api.errors import StoreUnavailable
from process_api.store.base import ProcessVersion
from process_api.store.tables import aware, process_versions

#: how often a version is tried again when another instance took its revision meanwhile.
RACE_ATTEMPTS = 3


def _newest(process_id: str) -> Any:
    table = process_versions
    return sa.select(sa.func.max(table.c.revision)).where(table.c.id == process_id)


def _deployed(process_id: str) -> Any:
    """Whether the newest version of the id is a process (not an undeployment's mark)."""
    table = process_versions
    return sa.exists().where(
        table.c.id == process_id,
        table.c.revision == _newest(process_id).scalar_subquery(),
        table.c.document.is_not(None),
    )


def _to_version(row: Row[Any]) -> ProcessVersion:
    values = dict(row._mapping)
    document = values.get("document")
    return ProcessVersion(
        id=values["id"],
        revision=values["revision"],
        version=values["version"],
        document=json.loads(document) if document else None,
        package=values.get("package"),
        media_type=values.get("media_type"),
        deployed=aware(values["deployed"]) or values["deployed"],
        deployed_by=values["deployed_by"],
    )


class ProcessVersionRows:
    """The process-version part of SqlJobStore, which runs its statements."""

    #: one statement read, or written in a transaction of its own (SqlJobStore's).
    _read: Callable[[Any], Awaitable[Sequence[Row[Any]]]]
    _write: Callable[[Any], Awaitable[Sequence[Row[Any]]]]

    async def add_process_version(self, version: ProcessVersion, replacing: bool) -> int | None:
        table = process_versions
        document = None if version.document is None else json.dumps(version.document)
        values = [
            sa.literal(version.id, sa.String),
            sa.func.coalesce(_newest(version.id).scalar_subquery(), 0) + 1,
            sa.literal(version.version, sa.String),
            sa.literal(document, sa.Text),
            sa.literal(version.package, sa.Text),
            sa.literal(version.media_type, sa.String),
            sa.literal(version.deployed.astimezone(UTC), sa.DateTime(timezone=True)),
            sa.literal(version.deployed_by, sa.String),
        ]
        condition = _deployed(version.id) if replacing else ~_deployed(version.id)
        names = ["id", "revision", "version", "document", "package", "media_type"]
        statement = (
            table.insert()
            .from_select([*names, "deployed", "deployed_by"], sa.select(*values).where(condition))
            .returning(table.c.revision)
        )
        for _ in range(RACE_ATTEMPTS):
            try:
                rows = await self._write(statement)
            except sa.exc.IntegrityError:
                continue
            return int(rows[0].revision) if rows else None
        raise StoreUnavailable(f"process {version.id!r} is being changed by others; try again")

    async def process_version(self, process_id: str, revision: int | None) -> ProcessVersion | None:
        table = process_versions
        wanted = _newest(process_id).scalar_subquery() if revision is None else revision
        statement = table.select().where(table.c.id == process_id, table.c.revision == wanted)
        rows = await self._read(statement)
        return _to_version(rows[0]) if rows else None

    async def deployed_processes(self) -> dict[str, int]:
        table = process_versions
        newest = process_versions.alias("newest")
        statement = sa.select(table.c.id, table.c.revision).where(
            table.c.document.is_not(None),
            table.c.revision
            == sa.select(sa.func.max(newest.c.revision))
            .where(newest.c.id == table.c.id)
            .scalar_subquery(),
        )
        return {row.id: int(row.revision) for row in await self._read(statement)}
