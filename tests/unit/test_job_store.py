"""The job store, on SQLite and on PostgreSQL: records, status guards, listing, and durability."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from process_api.jobs.model import ACTIVE, TERMINAL, Job, JobStatus
from process_api.store.base import JobQuery
from process_api.store.sql import SqlJobStore
from tests.unit.conftest import StoreMaker

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_job(job_id: str, minutes: int = 0, **fields: Any) -> Job:
    created = T0 + timedelta(minutes=minutes)
    defaults: dict[str, Any] = {
        "process_id": "echo",
        "process_version": "1.0.0",
        "host_type": "subprocess",
        "mode": "async",
        "created": created,
        "updated": created,
    }
    return Job(id=job_id, **{**defaults, **fields})


async def test_create_get_round_trip(store: SqlJobStore) -> None:
    job = make_job(
        "j1",
        status=JobStatus.SUCCESSFUL,
        message="finished",
        progress=100,
        started=T0 + timedelta(seconds=1),
        finished=T0 + timedelta(seconds=2),
        inputs={"text": "héllo", "numbers": [1, 2.5], "nested": {"a": None, "b": True}},
        request={"response": "document", "outputs": {"text": {}}},
        results={"text": "héllo", "count": 2},
        handle={"pid": 1234, "start": "98765"},
        submitter="alice",
    )
    await store.create(job)
    loaded = await store.get("j1")
    assert loaded == job
    assert loaded is not None
    assert loaded.status is JobStatus.SUCCESSFUL
    for moment in (loaded.created, loaded.started, loaded.finished, loaded.updated):
        assert moment is not None
        assert moment.tzinfo is not None
        assert moment.utcoffset() == timedelta(0)


async def test_defaults_round_trip(store: SqlJobStore) -> None:
    job = make_job("j1")
    await store.create(job)
    loaded = await store.get("j1")
    assert loaded == job
    assert loaded is not None
    assert loaded.status is JobStatus.ACCEPTED
    assert (loaded.started, loaded.finished, loaded.results, loaded.handle) == (
        None,
        None,
        None,
        None,
    )
    assert loaded.inputs == {} and loaded.request == {}


async def test_non_utc_datetime_keeps_its_instant(store: SqlJobStore) -> None:
    paris = timezone(timedelta(hours=2))
    created = datetime(2024, 5, 1, 14, 0, tzinfo=paris)
    await store.create(make_job("j1", created=created, updated=created))
    loaded = await store.get("j1")
    assert loaded is not None
    assert loaded.created == created  # the same instant, 12:00 UTC


async def test_unknown_job(store: SqlJobStore) -> None:
    assert await store.get("nope") is None
    assert await store.update("nope", {"message": "x"}, ACTIVE) is None


async def test_update_from_an_allowed_status(store: SqlJobStore) -> None:
    await store.create(make_job("j1"))
    started = T0 + timedelta(seconds=5)
    updated = await store.update(
        "j1",
        {
            "status": JobStatus.RUNNING,
            "started": started,
            "updated": started,
            "handle": {"pid": 42},
        },
        frozenset({JobStatus.ACCEPTED}),
    )
    assert updated is not None
    assert updated.status is JobStatus.RUNNING
    assert updated.started == started
    assert updated.handle == {"pid": 42}
    assert await store.get("j1") == updated


async def test_update_guarded_by_status(store: SqlJobStore) -> None:
    await store.create(make_job("j1", status=JobStatus.RUNNING))
    # only an accepted job may start running
    assert await store.update("j1", {"message": "x"}, frozenset({JobStatus.ACCEPTED})) is None
    loaded = await store.get("j1")
    assert loaded is not None and loaded.message == ""


async def test_terminal_status_never_changes(store: SqlJobStore) -> None:
    await store.create(make_job("j1"))
    done = await store.update("j1", {"status": JobStatus.SUCCESSFUL, "results": {"a": 1}}, ACTIVE)
    assert done is not None and done.status is JobStatus.SUCCESSFUL
    # a late dismiss or failure report loses the race
    for status in TERMINAL:
        assert await store.update("j1", {"status": status, "results": None}, ACTIVE) is None
    loaded = await store.get("j1")
    assert loaded is not None
    assert loaded.status is JobStatus.SUCCESSFUL
    assert loaded.results == {"a": 1}


async def test_update_with_no_allowed_status_changes_nothing(store: SqlJobStore) -> None:
    await store.create(make_job("j1"))
    assert await store.update("j1", {"message": "x"}, frozenset()) is None


async def test_update_only_touches_its_job(store: SqlJobStore) -> None:
    await store.create(make_job("j1"))
    await store.create(make_job("j2"))
    await store.update("j1", {"status": JobStatus.FAILED, "message": "boom"}, ACTIVE)
    other = await store.get("j2")
    assert other is not None
    assert (other.status, other.message) == (JobStatus.ACCEPTED, "")


async def test_duplicate_id_is_refused(store: SqlJobStore) -> None:
    await store.create(make_job("j1"))
    with pytest.raises(IntegrityError):
        await store.create(make_job("j1", process_id="other"))
    loaded = await store.get("j1")
    assert loaded is not None and loaded.process_id == "echo"


@pytest.fixture
async def filled(store: SqlJobStore) -> SqlJobStore:
    """Six jobs, one a minute: j0 the oldest, j5 the newest."""
    plan = [
        ("echo", JobStatus.SUCCESSFUL),
        ("stats", JobStatus.FAILED),
        ("echo", JobStatus.RUNNING),
        ("echo", JobStatus.ACCEPTED),
        ("stats", JobStatus.ACCEPTED),
        ("fail", JobStatus.DISMISSED),
    ]
    # inserted out of order: the order must come from `created`, not from insertion
    for n in (3, 0, 5, 1, 4, 2):
        process_id, status = plan[n]
        await store.create(make_job(f"j{n}", minutes=n, process_id=process_id, status=status))
    return store


def ids(jobs: list[Job]) -> list[str]:
    return [job.id for job in jobs]


async def test_find_newest_first(filled: SqlJobStore) -> None:
    assert ids(await filled.find(JobQuery(limit=100))) == ["j5", "j4", "j3", "j2", "j1", "j0"]


def position(job: Job) -> tuple:
    return job.created, job.id


async def test_find_pages_from_positions(filled: SqlJobStore) -> None:
    first = await filled.find(JobQuery(limit=2))
    assert ids(first) == ["j5", "j4"]
    second = await filled.find(JobQuery(limit=2, after=position(first[-1])))
    assert ids(second) == ["j3", "j2"]
    assert ids(await filled.find(JobQuery(limit=10, after=position(second[-1])))) == ["j1", "j0"]
    oldest = (await filled.find(JobQuery(limit=10)))[-1]
    assert await filled.find(JobQuery(limit=10, after=position(oldest))) == []
    # the page before a position: the nearest newer jobs, still newest first
    assert ids(await filled.find(JobQuery(limit=2, before=position(second[0])))) == ["j5", "j4"]
    assert ids(await filled.find(JobQuery(limit=1, before=position(second[0])))) == ["j4"]


async def test_find_by_created_and_duration(filled: SqlJobStore) -> None:
    everything = await filled.find(JobQuery(limit=10))
    j2 = next(job for job in everything if job.id == "j2")
    query = JobQuery(created_from=j2.created, created_to=j2.created, limit=10)
    assert ids(await filled.find(query)) == ["j2"]
    assert ids(await filled.find(JobQuery(created_from=j2.created, limit=10)))[-1] == "j2"

    # only started jobs have a duration: to their end, or to now while running
    short = make_job("short", started=T0, finished=T0 + timedelta(seconds=5))
    long = make_job("long", started=T0, finished=T0 + timedelta(seconds=50))
    running = make_job("running", started=datetime.now(UTC) - timedelta(seconds=20))
    for job in (short, long, running):
        await filled.create(job)
    assert set(ids(await filled.find(JobQuery(min_duration=0, limit=10)))) == {
        "short",
        "long",
        "running",
    }
    assert ids(await filled.find(JobQuery(min_duration=30, limit=10))) == ["long"]
    assert ids(await filled.find(JobQuery(max_duration=10, limit=10))) == ["short"]
    query = JobQuery(min_duration=10, max_duration=40, limit=10)
    assert ids(await filled.find(query)) == ["running"]


async def test_find_by_process_ids(filled: SqlJobStore) -> None:
    assert ids(await filled.find(JobQuery(process_ids=["echo"]))) == ["j3", "j2", "j0"]
    found = await filled.find(JobQuery(process_ids=["stats", "fail"]))
    assert ids(found) == ["j5", "j4", "j1"]
    assert await filled.find(JobQuery(process_ids=["stats", "fail", "stats"])) == found
    assert await filled.find(JobQuery(process_ids=["unknown"])) == []


async def test_find_by_statuses(filled: SqlJobStore) -> None:
    found = await filled.find(JobQuery(statuses=[JobStatus.ACCEPTED]))
    assert ids(found) == ["j4", "j3"]
    found = await filled.find(JobQuery(statuses=[JobStatus.SUCCESSFUL, JobStatus.FAILED]))
    assert ids(found) == ["j1", "j0"]


async def test_find_by_process_and_status(filled: SqlJobStore) -> None:
    query = JobQuery(process_ids=["echo"], statuses=list(ACTIVE), limit=1)
    assert ids(await filled.find(query)) == ["j3"]


async def test_count(filled: SqlJobStore) -> None:
    assert await filled.count(JobQuery()) == 6
    # limit pages the list; the count is of all matches
    assert await filled.count(JobQuery(limit=1)) == 6
    assert await filled.count(JobQuery(process_ids=["echo"])) == 3
    assert await filled.count(JobQuery(statuses=[JobStatus.ACCEPTED])) == 2
    assert await filled.count(JobQuery(process_ids=["stats"], statuses=list(TERMINAL))) == 1
    assert await filled.count(JobQuery(process_ids=["unknown"])) == 0


async def test_a_bounded_count_stops_at_its_limit(filled: SqlJobStore) -> None:
    # exact up to the limit; at the limit, "that many or more"
    assert await filled.count(JobQuery(), limit=7) == 6
    assert await filled.count(JobQuery(), limit=6) == 6
    assert await filled.count(JobQuery(), limit=3) == 3
    assert await filled.count(JobQuery(process_ids=["echo"]), limit=4) == 3
    assert await filled.count(JobQuery(statuses=[JobStatus.ACCEPTED]), limit=1) == 1
    # the page's position is not the count's
    first = (await filled.find(JobQuery(limit=1)))[0]
    assert await filled.count(JobQuery(after=position(first)), limit=10) == 6


ALICE_TWICE = ["alice", "email:alice@example.org", "alice"]


async def test_pages_merge_the_statuses_and_submitters_in_order(store: SqlJobStore) -> None:
    # Read one status and one submitter at a time (see store/listing.py), then merged: the
    # order is the list's whatever the mix.
    statuses = [JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.RUNNING, JobStatus.DISMISSED]
    for n in range(12):
        who = ("alice", "email:alice@example.org", "bob")[n % 3]
        job = make_job(f"j{n:02}", minutes=n, status=statuses[n % 4], submitter=who)
        await store.create(job)
    everything = JobQuery(submitters=ALICE_TWICE[:2], statuses=statuses, limit=100)
    found = await store.find(everything)
    theirs = ids(found)
    assert theirs == [f"j{n:02}" for n in range(11, -1, -1) if n % 3 != 2]
    pages, page = [], await store.find(replace(everything, limit=3))
    while page:
        pages += ids(page)
        page = await store.find(replace(everything, limit=3, after=position(page[-1])))
    assert pages == theirs
    back = await store.find(replace(everything, limit=3, before=position(found[5])))
    assert ids(back) == theirs[2:5]
    twice = replace(everything, submitters=ALICE_TWICE, statuses=statuses + statuses[:1])
    assert ids(await store.find(twice)) == theirs
    assert ids(await store.find(JobQuery(submitters=[], limit=100))) == []
    assert await store.count(JobQuery(submitters=[])) == 0


async def test_a_position_and_a_creation_bound_on_one_side(filled: SqlJobStore) -> None:
    # The tighter of the two bounds a page; either may be the tighter.
    everything = await filled.find(JobQuery(limit=10))
    j3, j1 = (next(job for job in everything if job.id == name) for name in ("j3", "j1"))
    within = JobQuery(created_to=j3.created, limit=10, after=position(j1))
    assert ids(await filled.find(within)) == ["j0"]
    beyond = JobQuery(created_to=j1.created, limit=10, after=position(j3))
    assert ids(await filled.find(beyond)) == ["j1", "j0"]
    within = JobQuery(created_from=j1.created, limit=10, before=position(j3))
    assert ids(await filled.find(within)) == ["j5", "j4"]
    beyond = JobQuery(created_from=j3.created, limit=10, before=position(j1))
    assert ids(await filled.find(beyond)) == ["j5", "j4", "j3"]


async def test_active_jobs_oldest_first(filled: SqlJobStore) -> None:
    active = await filled.active()
    assert ids(active) == ["j2", "j3", "j4"]
    assert {job.status for job in active} <= ACTIVE


async def test_no_active_jobs(store: SqlJobStore) -> None:
    assert await store.active() == []
    await store.create(make_job("j1", status=JobStatus.SUCCESSFUL))
    assert await store.active() == []


async def test_data_survives_closing_and_reopening(new_store: StoreMaker) -> None:
    first = new_store()
    await first.open()
    job = make_job("j1", inputs={"text": "kept"})
    await first.create(job)
    running = await first.update("j1", {"status": JobStatus.RUNNING}, ACTIVE)
    await first.close()

    second = new_store()
    await second.open()  # creating tables again must not lose rows
    try:
        assert await second.get("j1") == running
        assert ids(await second.active()) == ["j1"]
        assert await second.count(JobQuery()) == 1
    finally:
        await second.close()


async def test_store_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "jobs.sqlite"
    store = SqlJobStore.sqlite(path)
    await store.open()
    try:
        await store.create(make_job("j1"))
        assert path.is_file()
    finally:
        await store.close()


async def test_servers_starting_together_on_a_new_database_all_start(
    new_store: StoreMaker,
) -> None:
    # Each server migrates the database as it starts; those that come second must wait for
    # the first and find the schema made, not fail on tables that appeared meanwhile.
    stores = [new_store() for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].create(make_job("j1"))
        assert [await store.count(JobQuery()) for store in stores] == [1, 1, 1, 1]
    finally:
        for store in stores:
            await store.close()


async def test_text_with_nul_characters_is_recorded_and_looked_up_safely(
    store: SqlJobStore,
) -> None:
    # A process may print anything, NUL included, into its progress and failure messages;
    # PostgreSQL text cannot hold NUL, and recording the job must not fail for it.
    await store.create(make_job("j1", message="before\x00after", inputs={"text": "a\x00b"}))
    updated = await store.update("j1", {"message": "failed: \x00\x01"}, ACTIVE)
    assert updated is not None and updated.message.startswith("failed: ")
    loaded = await store.get("j1")
    assert loaded is not None and loaded.inputs == {"text": "a\x00b"}
    # lookups of ids no job can have find nothing instead of failing
    assert await store.get("j1\x00") is None
    assert await store.summary("j1\x00") is None
    assert await store.update("j1\x00", {"message": "x"}, ACTIVE) is None
    assert await store.find(JobQuery(process_ids=["echo\x00"])) == []
    assert await store.count(JobQuery(process_ids=["echo\x00"])) == 0
    assert ids(await store.find(JobQuery(process_ids=["echo\x00", "echo"]))) == ["j1"]
