"""Versions of deployed processes in the job store (SQLite and PostgreSQL): one deploy of an
id at a time, every version kept, undeployment a mark."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from process_api.jobs.model import Job
from process_api.store.base import ProcessVersion
from process_api.store.sql import SqlJobStore
from tests.unit.conftest import StoreMaker

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def version(process_id: str = "p", text: str = "1.0.0", document: bool = True) -> ProcessVersion:
    return ProcessVersion(
        id=process_id,
        revision=0,
        version=text,
        document={"info": {"id": process_id, "version": text}} if document else None,
        package="sent" if document else None,
        media_type="application/yaml" if document else None,
        deployed=T0,
        deployed_by="key:admin",
    )


async def test_deploy_replace_undeploy_and_deploy_again(store: SqlJobStore) -> None:
    assert await store.deployed_processes() == {}
    assert await store.add_process_version(version(), replacing=True) is None  # nothing to replace
    assert await store.add_process_version(version(), replacing=False) == 1
    assert await store.add_process_version(version(), replacing=False) is None  # deployed already
    assert await store.add_process_version(version(text="2.0.0"), replacing=True) == 2
    assert await store.deployed_processes() == {"p": 2}
    current = await store.process_version("p", None)
    assert current is not None and current.version == "2.0.0" and current.package == "sent"
    assert current.document == {"info": {"id": "p", "version": "2.0.0"}}
    assert current.deployed == T0 and current.deployed_by == "key:admin"

    assert await store.add_process_version(version(document=False), replacing=True) == 3
    assert await store.deployed_processes() == {}
    mark = await store.process_version("p", None)
    assert mark is not None and mark.document is None
    older = await store.process_version("p", 1)
    assert older is not None and older.version == "1.0.0"  # kept for the jobs that ran it
    assert await store.add_process_version(version(document=False), replacing=True) is None
    assert await store.add_process_version(version(text="3.0.0"), replacing=False) == 4
    assert await store.deployed_processes() == {"p": 4}
    assert await store.process_version("other", None) is None


async def test_of_deploys_at_once_through_two_stores_one_wins(new_store: StoreMaker) -> None:
    one, two = new_store(), new_store()
    await one.open()
    await two.open()
    try:
        for attempt in range(5):
            process_id = f"raced-{attempt}"
            results = await asyncio.gather(
                one.add_process_version(version(process_id), replacing=False),
                two.add_process_version(version(process_id), replacing=False),
            )
            assert sorted(results, key=str) == [1, None], results
        assert len(await one.deployed_processes()) == 5
    finally:
        await one.close()
        await two.close()


async def test_a_job_records_the_revision_it_runs(store: SqlJobStore) -> None:
    job = Job(
        id="j",
        process_id="p",
        process_version="2.0.0",
        host_type="docker",
        mode="async",
        process_revision=2,
    )
    await store.create(job)
    stored = await store.get("j")
    summary = await store.summary("j")
    assert stored is not None and stored.process_revision == 2
    assert summary is not None and summary.process_revision == 2
