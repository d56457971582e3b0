"""The job list reads through its indexes, on SQLite and on PostgreSQL: a page of each filter
reads index ranges in the list's order and stops at the page's end; a count stops at its
bound. Neither reads the jobs table whole or sorts every match, which is what keeps a page
as cheap at a million stored jobs as at a thousand (bench/job_list.py measures it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from process_api.api.job_list import DEFAULT_STATUSES
from process_api.jobs.model import JobStatus
from process_api.store import listing
from process_api.store.base import JobQuery
from process_api.store.sql import SqlJobStore, finished_before
from process_api.store.tables import jobs
from tests.postgres import execute
from tests.unit.conftest import StoreMaker
from tests.unit.test_job_store import T0, make_job

STATUSES = list(JobStatus)
ALICE = ["alice", "email:alice@example.org"]
MIDDLE = T0 + timedelta(minutes=1000)

#: each filter of the job list alone (as the API asks: without `status`, all but accepted),
#: and the index its lanes read.
FILTERS = {
    "none": (JobQuery(statuses=DEFAULT_STATUSES), "ix_jobs_status_created"),
    "status": (JobQuery(statuses=[JobStatus.FAILED]), "ix_jobs_status_created"),
    "process": (
        JobQuery(statuses=DEFAULT_STATUSES, process_ids=["p3"]),
        "ix_jobs_process_status_created",
    ),
    "datetime": (
        JobQuery(
            statuses=DEFAULT_STATUSES,
            created_from=MIDDLE - timedelta(minutes=500),
            created_to=MIDDLE + timedelta(minutes=500),
        ),
        "ix_jobs_status_created",
    ),
    "own jobs": (
        JobQuery(statuses=DEFAULT_STATUSES, submitters=ALICE),
        "ix_jobs_submitter_status_created",
    ),
}
#: the first page, the next one and the previous one.
PAGES = {
    "first": {},
    "next": {"after": (MIDDLE, "m")},
    "previous": {"before": (MIDDLE, "m")},
}


def _rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        status = STATUSES[n % len(STATUSES)]
        job = make_job(
            f"j{n:05}",
            minutes=n,
            process_id=f"p{n % 10}",
            status=status,
            submitter=(ALICE + ["bob", "carol"])[n % 4],
            finished=T0 + timedelta(minutes=n, seconds=30) if status.terminal else None,
        )
        rows.append({c.name: getattr(job, c.name) for c in jobs.columns})
    return rows


@pytest.fixture
async def filled(store: SqlJobStore, new_store: StoreMaker) -> SqlJobStore:
    """Two thousand jobs of ten processes, four submitters, every status; analysed (what
    PostgreSQL's autovacuum does), so that the planner knows the table."""

    def fill(connection: sa.Connection) -> None:
        connection.execute(jobs.insert(), _rows(2000))

    await new_store.run(fill)
    if new_store.kind == "postgres":
        execute(new_store.url, "VACUUM ANALYZE jobs")
    return store


def _literal(statement: sa.Executable, dialect: sa.Dialect) -> str:
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _sql(store: SqlJobStore, kind: str, query: JobQuery, dialect: sa.Dialect) -> str:
    """The statement the store runs for the query, its values written in."""
    found, values = listing.shape(query, lanes=kind == "page")
    return _literal(store._listing(kind, found).params(values), dialect)


async def _plan(new_store: StoreMaker, sql: Callable[[sa.Dialect], str]) -> Any:
    """SQLite: the rows of EXPLAIN QUERY PLAN. PostgreSQL: the plan tree (EXPLAIN), with
    scans of the whole table ruled out unless nothing else can answer: on a table of test
    size a scan is cheapest, on a large one the planner takes the index."""

    def explain(connection: sa.Connection) -> Any:
        text = sql(connection.dialect)
        if new_store.kind == "sqlite":
            return connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {text}").all()
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        found = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {text}").scalar()
        return (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]

    return await new_store.run(explain)


def _sqlite_reads(rows: list[Any]) -> list[str]:
    """The indexes the plan reads the jobs table by; fails on a scan of the table, or on a
    sort of what a job-list index gave (a temporary B-tree beside its read)."""
    sorted_under = {row[1] for row in rows if row[3].startswith("USE TEMP B-TREE")}
    used = []
    for _, parent, _, detail in rows:
        assert not detail.startswith("SCAN jobs"), rows
        if detail.startswith("SEARCH jobs"):
            assert " INDEX " in detail, rows
            used.append(detail.split(" INDEX ")[1].split()[0])
            if "ix_jobs_" in detail:
                assert parent not in sorted_under, rows
    return used


def _postgres_reads(plan: dict[str, Any], parent: str = "") -> list[str]:
    """The indexes the plan reads the jobs table by; fails on a scan of the table, and on a
    job-list index read that does not stop at a limit."""
    node = plan["Node Type"]
    assert node not in ("Seq Scan", "Bitmap Heap Scan"), plan
    used = []
    if "Index Name" in plan:
        used.append(plan["Index Name"])
        if plan["Index Name"].startswith("ix_jobs_"):
            assert parent == "Limit", plan
    for child in plan.get("Plans", []):
        used += _postgres_reads(child, node)
    return used


def _reads(new_store: StoreMaker, plan: Any) -> list[str]:
    return _sqlite_reads(plan) if new_store.kind == "sqlite" else _postgres_reads(plan)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("name", FILTERS)
async def test_a_page_of_each_filter_reads_its_index_in_order(
    filled: SqlJobStore, new_store: StoreMaker, name: str, page: str
) -> None:
    query, index = FILTERS[name]
    query = replace(query, limit=11, **PAGES[page])  # the API reads a page and one more
    used = _reads(new_store, await _plan(new_store, lambda d: _sql(filled, "page", query, d)))
    assert index in used
    # besides: the page's rows by id, once several lanes are merged
    assert set(used) <= {index, "ix_jobs_status_created", "jobs_pkey", "sqlite_autoindex_jobs_1"}


@pytest.mark.parametrize("name", FILTERS)
async def test_a_bounded_count_of_each_filter_stops_at_its_bound(
    filled: SqlJobStore, new_store: StoreMaker, name: str
) -> None:
    query, index = FILTERS[name]
    bounded = replace(query, limit=11)
    used = _reads(new_store, await _plan(new_store, lambda d: _sql(filled, "bounded", bounded, d)))
    assert used and set(used) <= {index, "ix_jobs_status_created"}
    # exact under the bound; the bound when more match
    every = await filled.count(query)
    assert every > 11
    assert await filled.count(query, limit=11) == 11
    assert await filled.count(query, limit=every + 1) == every


async def test_the_retention_reads_the_oldest_ended_jobs_through_its_index(
    filled: SqlJobStore, new_store: StoreMaker
) -> None:
    cutoff = MIDDLE
    plan = await _plan(new_store, lambda d: _literal(finished_before(cutoff, 100), d))
    if new_store.kind == "sqlite":
        assert not any(row[3].startswith("USE TEMP B-TREE") for row in plan), plan
    assert _reads(new_store, plan) == ["ix_jobs_expired_finished"]
    # and it finds them, oldest first
    found = await filled.finished_before(cutoff, 100)
    assert len(found) == 100
    assert all(job.status.terminal and job.finished and job.finished < cutoff for job in found)
    assert [job.finished for job in found] == sorted(job.finished or cutoff for job in found)
