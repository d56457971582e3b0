"""Instances sharing one job store: leases, and jobs taken over exactly once (on SQLite and
on PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import timedelta
from pathlib import Path

from process_api.jobs.instances import Coordinator, is_dead, new_instance
from process_api.jobs.model import Job, JobStatus, utcnow
from process_api.jobs.running import JobRunner
from process_api.machine import process_started
from process_api.settings import Settings
from process_api.storage import build_storage
from process_api.store.base import Instance
from process_api.store.sql import SqlJobStore
from tests.unit.conftest import HOUR, StoreMaker
from tests.unit.test_job_store import make_job

LEASE = timedelta(seconds=30)


def expired(instance: Instance) -> Instance:
    return Instance(**{**instance.__dict__, "expires": utcnow() - timedelta(seconds=1)})


async def test_two_instances_taking_over_the_same_jobs_get_each_job_once(
    new_store: StoreMaker,
) -> None:
    async with new_store.opened(2) as (first, second):
        dead, a, b = expired(new_instance(LEASE)), new_instance(LEASE), new_instance(LEASE)
        for instance in (dead, a, b):
            await first.register(instance)
        for index in range(40):
            await first.create(make_job(f"j{index:02}", index, owner=dead.id, slot="s"))
        taken = await asyncio.gather(
            first.take_over([dead.id], a.id), second.take_over([dead.id], b.id)
        )
        ids = [{job.id for job in jobs} for jobs in taken]
        assert not ids[0] & ids[1]
        assert ids[0] | ids[1] == {f"j{index:02}" for index in range(40)}
        for owner, jobs in zip((a.id, b.id), taken, strict=True):
            assert all(job.owner == owner for job in jobs)
            assert [j.created for j in jobs] == sorted(j.created for j in jobs)


async def test_a_live_instance_keeps_its_jobs_and_ended_jobs_stay_put(store: SqlJobStore) -> None:
    live = new_instance(LEASE)
    await store.register(live)
    await store.create(make_job("live", owner=live.id, slot="s"))
    # Recorded before instances existed: the migration puts it in no budget ("").
    await store.create(make_job("unowned", slot=""))
    await store.create(make_job("gone", owner="an-instance-that-left", slot="s"))
    await store.create(make_job("asked", owner="an-instance-that-left", mode="sync"))
    await store.create(make_job("queued"))  # no one's: it waits for any instance to claim it
    done = make_job("done", owner="an-instance-that-left", slot="s", status=JobStatus.FAILED)
    await store.create(done)
    taken = await store.take_over([], "me")
    assert {job.id for job in taken} == {"unowned", "gone", "asked"}
    assert (await store.get("queued")).owner is None  # type: ignore[union-attr]
    assert (await store.get("live")).owner == live.id  # type: ignore[union-attr]
    assert (await store.get("done")).owner == "an-instance-that-left"  # type: ignore[union-attr]
    assert await store.ended_among(["live", "done", "nope"]) == ["done"]


async def test_a_lease_is_renewed_until_the_instance_is_forgotten(store: SqlJobStore) -> None:
    me = new_instance(LEASE)
    await store.register(me)
    later = utcnow() + timedelta(minutes=5)
    assert await store.renew(me.id, later)
    (found,) = await store.instances()
    assert found.id == me.id and abs((found.expires - later).total_seconds()) < 1
    await store.forget(me.id)
    assert not await store.renew(me.id, later)
    assert await store.instances() == []


def test_an_instance_is_dead_when_its_lease_ran_out_or_its_process_here_is_gone() -> None:
    me = new_instance(LEASE)
    assert not is_dead(me, me.machine)
    assert is_dead(expired(me), me.machine)
    # a process of this machine that is gone (the pid of a process that ended)
    gone = Instance(**{**me.__dict__, "pid": _ended_pid()})
    assert is_dead(gone, me.machine)
    # on another machine only the lease counts
    assert not is_dead(gone, "elsewhere/boot")


def _ended_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


async def test_jobs_dismissed_while_their_instance_was_dead_are_taken_once_and_stay_dismissed(
    new_store: StoreMaker,
) -> None:
    """Their runs are for one instance to stop: the one whose update took them."""
    async with new_store.opened(2) as (first, second):
        now = utcnow()
        dismissed = {"status": JobStatus.DISMISSED, "handle": {"pid": 1}}
        await first.create(make_job("late", owner="dead", finished=now, **dismissed))
        long_ago = now - timedelta(hours=1)
        await first.create(make_job("early", owner="dead", finished=long_ago, **dismissed))
        await first.create(make_job("failed", owner="dead", finished=now, status=JobStatus.FAILED))
        await first.create(make_job("other", owner="alive", finished=now, **dismissed))
        since = now - timedelta(minutes=1)
        taken = await asyncio.gather(
            first.take_over_dismissed("dead", since, "a"),
            second.take_over_dismissed("dead", since, "b"),
        )
        assert sorted(job.id for jobs in taken for job in jobs) == ["late"]
        late = await first.get("late")
        assert late is not None and late.status is JobStatus.DISMISSED


async def test_jobs_taken_from_an_instance_are_told_apart_from_its_own(store: SqlJobStore) -> None:
    await store.create(make_job("mine", owner="me"))
    await store.create(make_job("taken", owner="other"))
    await store.create(make_job("unowned"))
    assert sorted(await store.taken_among(["mine", "taken", "unowned", "nope"], "me")) == [
        "taken",
        "unowned",
    ]
    assert await store.taken_among([], "me") == []


async def test_an_instance_whose_lease_ran_out_can_neither_renew_nor_claim(
    store: SqlJobStore,
) -> None:
    """Fenced off: another instance may be taking its jobs over at that moment."""
    late = expired(new_instance(LEASE))
    await store.register(late)
    await store.create(make_job("queued", host_type="docker"))
    assert not await store.renew(late.id, utcnow() + LEASE)
    assert await store.claim(late.id, "s", None, ["docker"], ["echo"]) is None
    alive = new_instance(LEASE)
    await store.register(alive)
    claimed = await store.claim(alive.id, "s", None, ["docker"], ["echo"])
    assert claimed is not None and claimed.id == "queued"


async def test_a_returning_instance_keeps_only_the_jobs_nobody_took_over(
    store: SqlJobStore,
) -> None:
    await store.create(make_job("kept", owner="old", slot="s"))
    await store.create(make_job("taken", owner="old", slot="s"))
    await store.create(make_job("ended", owner="old", slot="s", status=JobStatus.SUCCESSFUL))
    # another instance took one over just before
    await store.update("taken", {"owner": "other"}, frozenset({JobStatus.ACCEPTED}))
    assert await store.hand_over("old", "new") == ["kept"]
    assert (await store.get("kept")).owner == "new"  # type: ignore[union-attr]
    assert (await store.get("taken")).owner == "other"  # type: ignore[union-attr]
    assert (await store.get("ended")).owner == "old"  # type: ignore[union-attr]


async def test_only_instances_of_other_servers_count_as_others(
    store: SqlJobStore, tmp_path: Path
) -> None:
    """Workers of one supervisor have the same processes: a worker starting beside another
    still is the only server, and ends the queued jobs of processes it does not have."""
    runner = JobRunner(store, build_storage(Settings(DATA_DIR=tmp_path)), {}, tmp_path / "spool")
    sibling = subprocess.Popen(["sleep", "30"])  # a worker of this test process
    try:
        machine = new_instance(LEASE).machine
        now = utcnow()
        started = process_started(sibling.pid)
        await store.register(Instance("sibling", machine, sibling.pid, started, now, now + HOUR))

        async def nothing_to_settle(jobs: list[Job], why: str) -> None:
            assert jobs == []

        as_worker = Coordinator(store, runner, LEASE, supervisor=os.getpid())
        assert await as_worker.take_over(nothing_to_settle) == 0
        alone = Coordinator(store, runner, LEASE)
        assert await alone.take_over(nothing_to_settle) == 1
        elsewhere = Instance("elsewhere", "another-machine", sibling.pid, None, now, now + HOUR)
        await store.register(elsewhere)
        assert await as_worker.take_over(nothing_to_settle) == 1
    finally:
        sibling.kill()
        sibling.wait()
