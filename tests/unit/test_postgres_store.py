"""What only the PostgreSQL job store has: a database that stops answering, on a cluster of
the test's own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from process_api.errors import StoreUnavailable
from process_api.store import postgres
from process_api.store.base import JobQuery
from process_api.store.postgres import PostgresJobStore
from tests.postgres import Cluster, Postgres, own_cluster
from tests.unit.test_job_store import make_job


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    yield from own_cluster()


async def test_a_database_that_stops_answering_gives_503_in_bounded_time_and_is_used_again(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # shorter than in service (30 s and 10 s), for a quick test
    monkeypatch.setattr(postgres, "STATEMENT_TIMEOUT", 2.0)
    monkeypatch.setattr(postgres, "CONNECT_TIMEOUT", 2.0)
    store = PostgresJobStore(Postgres(cluster.url).new_database())
    await store.open()
    try:
        await store.create(make_job("j1"))
        cluster.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.count(JobQuery())
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.create(make_job("j2"))
            assert time.monotonic() - started < 20
            assert await store.problems() != []
        finally:
            cluster.thaw()
        # the next statements run on connections that answer
        assert await store.count(JobQuery()) == 1
        await store.create(make_job("j2"))
        assert await store.problems() == []
    finally:
        await store.close()
