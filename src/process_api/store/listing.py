"""The job list's statements: a page merged from index ranges, and a count that stops.

The list is ordered by (created, id), newest first, and filters on status, on submitter
or process, on creation time. Given `status IN (a, b)`, a database reads every matching
job and sorts them all: the cost grows with the table. So a page is split into lanes,
one per status (and per submitter, or else per process): each lane is one range of an
index that ends with (created, id) (store/tables.py), read in order, that stops after
`limit` entries; the lanes' keys are merged and the page's rows read by id. A page reads
at most lanes × limit index entries, for a thousand stored jobs as for a million.

Statements are built once per shape (which filters, how many lanes), their values given
as parameters: building a statement of several lanes costs more than running it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from process_api.jobs.model import JobStatus
from process_api.store.base import JobQuery
from process_api.store.tables import jobs

#: the most lanes a page is merged from; a query of more (many processes named) is one
#: statement with `IN` lists, whose matches the database sorts.
MAX_LANES = 50

_TIME = sa.DateTime(timezone=True)
_KEY = sa.tuple_(jobs.c.created, jobs.c.id)


@dataclass(frozen=True)
class Shape:
    """What a statement of the job list looks like, its values aside."""

    #: the column the lanes are split by besides status: "submitter", "process_id" or None.
    lead: str | None
    #: lanes per status (values of the lead, 1 without one); 0: no lanes, `IN` lists.
    leads: int
    #: statuses filtered on; 0: any.
    statuses: int
    #: process ids filtered on besides the lead (the lanes are a submitter's).
    processes: bool
    created_from: bool
    created_to: bool
    after: bool
    before: bool
    #: the page just before a position: the nearest newer jobs, oldest first.
    newer: bool
    min_duration: bool
    max_duration: bool


def shape(query: JobQuery, lanes: bool) -> tuple[Shape, dict[str, Any]]:
    """The shape of the query and its values; `lanes`: of a page, or else of a count.

    A position and a `datetime` bound on the same side are one bound, the tighter: a
    database starts its index range at one of them and would walk from there to the other.
    """
    # each value once: a lane named twice would give its jobs twice
    lead, leads = None, [""]
    if query.submitters is not None:
        lead, leads = "submitter", list(dict.fromkeys(query.submitters))
    elif query.process_ids:
        lead, leads = "process_id", list(dict.fromkeys(query.process_ids))
    statuses = list(dict.fromkeys(s.value for s in query.statuses))
    if lanes and not statuses:
        statuses = [s.value for s in JobStatus]  # every job has one
    split = lanes and 0 < len(leads) * len(statuses) <= MAX_LANES
    created_from, created_to = query.created_from, query.created_to
    after, before = query.after, query.before
    if after is not None and created_to is not None:
        after, created_to = (after, None) if after[0] <= created_to else (None, created_to)
    if before is not None and created_from is not None:
        before, created_from = (before, None) if before[0] >= created_from else (None, created_from)
    values: dict[str, Any] = {
        "limit": query.limit,
        "leads": leads,
        "statuses": statuses,
        "process_ids": list(query.process_ids),
        "created_from": _utc(created_from),
        "created_to": _utc(created_to),
        "min_duration": query.min_duration,
        "max_duration": query.max_duration,
    }
    values |= {f"lead_{n}": value for n, value in enumerate(leads)}
    values |= {f"status_{n}": value for n, value in enumerate(statuses)}
    for name, position in (("after", after), ("before", before)):
        if position is not None:
            values[f"{name}_created"], values[f"{name}_id"] = _utc(position[0]), position[1]
    found = Shape(
        lead=lead,
        leads=len(leads) if split else 0,
        statuses=len(statuses),
        processes=lead == "submitter" and bool(query.process_ids),
        created_from=created_from is not None,
        created_to=created_to is not None,
        after=after is not None,
        before=before is not None,
        newer=query.before is not None,
        min_duration=query.min_duration is not None,
        max_duration=query.max_duration is not None,
    )
    return found, values


def page(found: Shape, duration: Any, columns: Sequence[Any]) -> Any:
    """The statement of a page of these columns; `duration`: a job's, in the database's
    terms."""
    limit = sa.bindparam("limit", type_=sa.Integer)
    order = _order(jobs.c, found.newer)
    if found.leads * found.statuses <= 1:
        lane = (0, 0) if found.leads else (None, None)
        where = _conditions(found, duration, *lane)
        return sa.select(*columns).where(*where).order_by(*order).limit(limit)
    keys = [
        sa.select(jobs.c.created, jobs.c.id)
        .where(*_conditions(found, duration, lead, status))
        .order_by(*order)
        .limit(limit)
        .subquery()
        for lead in range(found.leads)
        for status in range(found.statuses)
    ]
    merged = sa.union_all(*(sa.select(lane) for lane in keys)).subquery()
    first = sa.select(merged.c.id).order_by(*_order(merged.c, found.newer)).limit(limit)
    return sa.select(*columns).where(jobs.c.id.in_(first)).order_by(*order)


def count(found: Shape, duration: Any, bounded: bool) -> Any:
    """The statement of a count; `bounded`: one that stops at `limit` matches."""
    where = _conditions(found, duration)
    if not bounded:
        return sa.select(sa.func.count()).select_from(jobs).where(*where)
    matching = sa.select(jobs.c.id).where(*where).limit(sa.bindparam("limit", type_=sa.Integer))
    return sa.select(sa.func.count()).select_from(matching.subquery())


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite keeps no offset: every stored time is in UTC.
    return None if moment is None else moment.astimezone(UTC)


def _order(columns: Any, newer: bool) -> list[Any]:
    order = [columns.created, columns.id]
    return order if newer else [column.desc() for column in order]


def _position(name: str) -> Any:
    return sa.tuple_(
        sa.bindparam(f"{name}_created", type_=_TIME), sa.bindparam(f"{name}_id", type_=sa.String)
    )


def _conditions(
    found: Shape, duration: Any, lead: int | None = None, status: int | None = None
) -> list[Any]:
    """The filters: of one lane (the numbers of its lead and status), or of all (None)."""
    where: list[Any] = []
    if found.lead is not None:
        column = jobs.c[found.lead]
        if lead is None:
            where.append(column.in_(sa.bindparam("leads", expanding=True)))
        else:
            where.append(column == sa.bindparam(f"lead_{lead}"))
    if found.processes:
        where.append(jobs.c.process_id.in_(sa.bindparam("process_ids", expanding=True)))
    if found.statuses:
        if status is None:
            where.append(jobs.c.status.in_(sa.bindparam("statuses", expanding=True)))
        else:
            where.append(jobs.c.status == sa.bindparam(f"status_{status}"))
    if found.created_from:
        where.append(jobs.c.created >= sa.bindparam("created_from", type_=_TIME))
    if found.created_to:
        where.append(jobs.c.created <= sa.bindparam("created_to", type_=_TIME))
    if found.after:
        where.append(_KEY < _position("after"))
    if found.before:
        where.append(_KEY > _position("before"))
    if found.min_duration or found.max_duration:
        where.append(jobs.c.started.is_not(None))
    if found.min_duration:
        where.append(duration >= sa.bindparam("min_duration", type_=sa.Float))
    if found.max_duration:
        where.append(duration <= sa.bindparam("max_duration", type_=sa.Float))
    return where
