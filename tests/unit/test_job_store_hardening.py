"""The job store under contention and faults (findings 15, 16, 18): SQLite's locks and file on
real SQLite files, the rest on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from process_api.errors import StoreUnavailable
from process_api.jobs.model import ACTIVE, JobStatus
from process_api.store.base import JobQuery
from process_api.store.sql import SqlJobStore
from tests.unit.test_job_store import make_job


async def test_finding_15_a_write_outlasts_another_process_holding_the_lock(
    sqlite_store: SqlJobStore, tmp_path: Path
) -> None:
    store = sqlite_store
    # Another connection (as another process would) holds the write lock for longer than
    # SQLite's own busy timeout; the write must wait and succeed, not fail "database is locked".
    blocker = sqlite3.connect(
        tmp_path / "jobs.sqlite", isolation_level=None, check_same_thread=False
    )
    blocker.execute("BEGIN IMMEDIATE")
    threading.Timer(6.0, blocker.execute, ["COMMIT"]).start()
    started = time.monotonic()
    await store.create(make_job("j1"))
    assert time.monotonic() - started >= 5.0
    assert (await store.get("j1")) is not None
    blocker.close()


async def test_finding_15_concurrent_writes_and_reads_all_succeed(store: SqlJobStore) -> None:
    count = 400
    await asyncio.gather(*(store.create(make_job(f"j{n}", minutes=n)) for n in range(count)))

    async def start(n: int) -> None:
        job = await store.update(
            f"j{n}", {"status": JobStatus.RUNNING, "handle": {"pid": n}}, ACTIVE
        )
        assert job is not None and job.status is JobStatus.RUNNING and job.handle == {"pid": n}

    async def read(n: int) -> None:
        assert len(await store.find(JobQuery(statuses=list(JobStatus), limit=50))) == 50
        assert (await store.summary(f"j{n}")) is not None

    await asyncio.gather(*(start(n) for n in range(count)), *(read(n) for n in range(count)))
    assert await store.count(JobQuery(statuses=[JobStatus.RUNNING])) == count


async def test_finding_16_list_and_status_reads_leave_out_results_and_inputs(
    store: SqlJobStore,
) -> None:
    large = {"value": "x" * 1_000_000}
    await store.create(make_job("j1", status=JobStatus.SUCCESSFUL, inputs=large, results=large))
    (listed,) = await store.find(JobQuery(statuses=[JobStatus.SUCCESSFUL]))
    summary = await store.summary("j1")
    assert summary is not None and summary.status is JobStatus.SUCCESSFUL
    for light in (listed, summary):
        for column in ("results", "inputs", "request", "handle"):
            assert not hasattr(light, column)
    whole = await store.get("j1")
    assert whole is not None and whole.results == large


async def test_finding_18_deleted_database_is_reported_and_never_recreated(
    sqlite_store: SqlJobStore, tmp_path: Path
) -> None:
    store = sqlite_store
    path = tmp_path / "jobs.sqlite"
    await store.create(make_job("j1"))
    path.unlink()
    for attempt in (
        store.create(make_job("j2")),
        store.get("j1"),
        store.find(JobQuery()),
        store.update("j1", {"status": JobStatus.RUNNING}, ACTIVE),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            await attempt
        assert "database file is missing" in caught.value.detail
        assert "SQL" not in caught.value.detail and str(tmp_path) not in caught.value.detail
    assert any("missing" in problem for problem in await store.problems())
    assert not path.exists()


async def test_finding_18_replaced_database_is_reported(
    sqlite_store: SqlJobStore, tmp_path: Path
) -> None:
    store = sqlite_store
    path = tmp_path / "jobs.sqlite"
    await store.create(make_job("j1"))
    shutil.copy(path, tmp_path / "copy.sqlite")
    os.replace(tmp_path / "copy.sqlite", path)
    with pytest.raises(StoreUnavailable, match="replaced"):
        await store.get("j1")


async def test_finding_18_ready_when_the_database_answers(store: SqlJobStore) -> None:
    assert await store.problems() == []
