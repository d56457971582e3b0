"""The queue shared by instances: claims in order, within a budget, each job once (on SQLite
and on PostgreSQL, with several connections claiming at once)."""

from __future__ import annotations

import asyncio
import math
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from process_api.hosts import build_hosts
from process_api.jobs.budget import Resources, jobs_only
from process_api.jobs.model import JobStatus
from process_api.jobs.queue import budgets
from process_api.machine import this_machine
from process_api.settings import Settings
from process_api.store.sql import SqlJobStore
from tests.unit.conftest import StoreMaker, live
from tests.unit.test_job_store import make_job

HOSTS = ["docker", "local"]
PROCESSES = ["echo"]


async def claim(store: SqlJobStore, owner: str, capacity: Resources | None, slot: str = "engine"):
    await live(store, owner)
    return await store.claim(owner, slot, capacity, HOSTS, PROCESSES)


async def claim_all(store: SqlJobStore, owner: str, capacity: Resources) -> list[str]:
    """The ids of the jobs one instance claims until the budget is full or the queue empty."""
    claimed = []
    while (job := await claim(store, owner, capacity)) is not None:
        claimed.append(job.id)
    return claimed


async def test_jobs_are_claimed_oldest_first_and_only_while_the_budget_has_room(
    store: SqlJobStore,
) -> None:
    for index in range(3):
        await store.create(make_job(f"j{index}", 10 - index, host_type="docker"))
    two = jobs_only(2)
    first, second = await claim(store, "a", two), await claim(store, "b", two)
    assert (first.id, second.id) == ("j2", "j1")  # type: ignore[union-attr]
    assert (first.owner, first.slot) == ("a", "engine")  # type: ignore[union-attr]
    assert await claim(store, "a", two) is None  # full
    assert await claim(store, "a", two, slot="another-engine") is not None  # its own budget
    await store.update("j2", {"status": JobStatus.SUCCESSFUL}, frozenset({JobStatus.ACCEPTED}))
    assert await store.queued() == {}


async def test_a_large_job_at_the_head_is_not_overtaken_by_smaller_ones(store: SqlJobStore) -> None:
    capacity = Resources(4, 4096, 10)
    await store.create(make_job("small", 0, host_type="docker", cpus=3, memory=100))
    await store.create(make_job("large", 1, host_type="docker", cpus=2, memory=100))
    await store.create(make_job("later", 2, host_type="docker", cpus=1, memory=100))
    assert (await claim(store, "a", capacity)).id == "small"  # type: ignore[union-attr]
    # 1 CPU is left: "later" would fit, but "large" came first and waits for room.
    assert await claim(store, "a", capacity) is None
    assert await store.queued() == {"docker": 2}
    await store.update("small", {"status": JobStatus.FAILED}, frozenset({JobStatus.ACCEPTED}))
    assert (await claim(store, "a", capacity)).id == "large"  # type: ignore[union-attr]
    assert (await claim(store, "a", capacity)).id == "later"  # type: ignore[union-attr]


async def test_a_job_larger_than_the_whole_budget_is_left_to_instances_of_a_larger_one(
    store: SqlJobStore,
) -> None:
    await store.create(make_job("huge", 0, host_type="docker", cpus=8, memory=100))
    await store.create(make_job("small", 1, host_type="docker", cpus=1, memory=100))
    small_engine, large_engine = Resources(4, 4096, 10), Resources(16, 65536, 10)
    assert (await claim(store, "a", small_engine)).id == "small"  # type: ignore[union-attr]
    assert await claim(store, "a", small_engine) is None
    assert (await claim(store, "b", large_engine, "large")).id == "huge"  # type: ignore[union-attr]


async def test_memory_counts_as_cpus_do(store: SqlJobStore) -> None:
    capacity = Resources(math.inf, 1000, 10)
    await store.create(make_job("a", 0, host_type="docker", memory=600))
    await store.create(make_job("b", 1, host_type="docker", memory=600))
    assert await claim(store, "x", capacity) is not None
    assert await claim(store, "x", capacity) is None


async def test_a_sync_job_is_claimed_only_by_the_instance_its_client_waits_on(
    store: SqlJobStore,
) -> None:
    await store.create(make_job("asked-of-b", 0, host_type="docker", mode="sync", owner="b"))
    await store.create(make_job("anyone", 1, host_type="docker"))
    assert (await claim(store, "a", None)).id == "anyone"  # type: ignore[union-attr]
    assert await claim(store, "a", None) is None
    assert (await claim(store, "b", None)).id == "asked-of-b"  # type: ignore[union-attr]


async def test_only_jobs_of_the_claimers_hosts_and_processes_are_claimed(
    store: SqlJobStore,
) -> None:
    await store.create(make_job("batch", 0, host_type="aws-batch"))
    await store.create(make_job("unknown", 1, host_type="docker", process_id="deployed-later"))
    assert await claim(store, "a", None) is None
    assert await store.queued() == {"aws-batch": 1, "docker": 1}


async def test_a_deployed_processs_jobs_are_claimed_by_their_version_and_a_files_by_its_id(
    store: SqlJobStore,
) -> None:
    """A queued job of a removed file must not be claimed once its id is deployed: no version
    of it could run it, and put back at the head each time it would block its budget."""
    await store.create(make_job("file-gone", 0, host_type="docker", process_id="x"))
    await store.create(
        make_job("deployed", 1, host_type="docker", process_id="x", process_revision=2)
    )
    claimed = await claim(store, "a", None)  # "x" is no file's process here
    assert claimed is not None and claimed.id == "deployed"
    assert await claim(store, "a", None) is None


async def test_a_requeued_job_keeps_its_place(store: SqlJobStore) -> None:
    await store.create(make_job("first", 0, host_type="docker"))
    await store.create(make_job("second", 1, host_type="docker"))
    assert (await claim(store, "a", None)).id == "first"  # type: ignore[union-attr]
    await store.requeue(["first"])
    job = await store.get("first")
    assert (job.owner, job.slot) == (None, None)  # type: ignore[union-attr]
    assert (await claim(store, "b", None)).id == "first"  # type: ignore[union-attr]


async def test_instances_claiming_at_once_get_each_job_once_and_never_exceed_the_budget(
    new_store: StoreMaker,
) -> None:
    async with new_store.opened(3) as stores:
        for index in range(30):
            await stores[0].create(make_job(f"j{index:02}", index, host_type="docker", cpus=1))
        budget = Resources(7, math.inf, 100)
        await live(stores[0], "owner-0", "owner-1", "owner-2", "elsewhere")

        results = await asyncio.gather(
            *(
                claim_all(each, f"owner-{n}", budget)
                for n, each in enumerate(stores)
                for _ in range(2)
            )
        )
        claimed = [job_id for result in results for job_id in result]
        assert sorted(claimed) == [f"j{index:02}" for index in range(7)]  # oldest first, once
        # Another engine's instance claims from the same queue, the next jobs in order.
        others = await asyncio.gather(
            *(claim(each, "elsewhere", jobs_only(2), "other-engine") for each in stores)
        )
        assert sorted(j.id for j in others if j is not None) == ["j07", "j08"]


async def test_instances_claiming_different_jobs_at_once_never_exceed_the_budget(
    new_store: StoreMaker,
) -> None:
    """Each instance claims its own sync jobs, so no two claims wait on one job's row: only the
    budget's lock keeps them from each counting the same room."""
    async with new_store.opened(4) as stores:
        for index in range(40):
            owner = f"owner-{index % 4}"
            job = make_job(f"j{index:02}", index, host_type="docker", cpus=1, mode="sync")
            job.owner = owner
            await stores[0].create(job)
        budget = Resources(5, math.inf, 100)
        await live(stores[0], "owner-0", "owner-1", "owner-2", "owner-3")

        results = await asyncio.gather(
            *(claim_all(s, f"owner-{n}", budget) for n, s in enumerate(stores))
        )
        assert sum(len(result) for result in results) == 5


@pytest.mark.parametrize("new_store", ["postgres"], indirect=True)
async def test_on_postgresql_a_claim_waits_for_a_claim_of_the_same_budget_in_progress(
    store: SqlJobStore, new_store: StoreMaker
) -> None:
    """What keeps two claims from counting the same room: the budget's lock, held by a claim's
    transaction (here by hand) until it commits. SQLite's one writer serialises claims."""
    await store.create(make_job("j", 0, host_type="docker"))
    await live(store, "a")
    engine = create_async_engine(new_store.url)
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('engine'))"))
            claiming = asyncio.ensure_future(claim(store, "a", jobs_only(1)))
            for _ in range(100):  # until the claim waits for the lock
                if (await conn.execute(sa.text(waiting))).scalar() == 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the claim did not wait for the budget's lock")
            assert not claiming.done()
        assert (await asyncio.wait_for(claiming, 10)).id == "j"  # type: ignore[union-attr]
    finally:
        await engine.dispose()


async def test_an_instance_claims_only_for_the_hosts_it_can_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, docker_engine: None
) -> None:
    """Without AWS settings an instance claims no Batch job (another instance runs them). The
    subprocess budget is this machine's and the docker one the engine's, named alike by every
    instance on them."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    engine = subprocess.run(
        ["docker", "info", "--format", "{{.ID}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    expected = {
        f"subprocess:{this_machine()}": ("subprocess",),
        f"docker:{engine}": ("docker", "local"),
    }
    for region, batch in ((None, {}), ("us-east-1", {"aws-batch": ("aws-batch",)})):
        if region:
            monkeypatch.setenv("AWS_DEFAULT_REGION", region)
        hosts = build_hosts(Settings(DATA_DIR=str(tmp_path)))
        try:
            found = {budget.name: budget.host_types for budget in await budgets(hosts)}
        finally:
            await hosts["docker"].close()
        assert found == {**expected, **batch}
