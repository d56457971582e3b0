"""What only the PostgreSQL job store has: a database that stops answering, on a cluster of
the test's own."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

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
    monkeypatch.setattr(postgres, "POOL_TIMEOUT", 1.0)
    store = PostgresJobStore(Postgres(cluster.url).new_database())
    await store.open()
    try:
        await store.create(make_job("j1"))
        assert await store.summary("j1") is not None  # the status reads' pool has a connection
        cluster.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.count(JobQuery())
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.summary("j1")
            # more status reads than connections: those that wait give up after POOL_TIMEOUT,
            # not after their turn (five rounds of the statement timeout)
            waited = time.monotonic()
            reads = await asyncio.gather(
                *(store.summary("j1") for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, StoreUnavailable) for r in reads), reads
            assert time.monotonic() - waited < 6
            with pytest.raises(StoreUnavailable, match="did not answer in time"):
                await store.create(make_job("j2"))
            assert time.monotonic() - started < 20
            assert await store.problems() != []
        finally:
            cluster.thaw()
        # the next statements run on connections that answer
        assert await store.count(JobQuery()) == 1
        summary = await store.summary("j1")
        assert summary is not None and summary.id == "j1"
        await store.create(make_job("j2"))
        assert await store.problems() == []
    finally:
        await store.close()


class Forwarder:
    """A TCP forwarder to PostgreSQL that can forget its connections, as a NAT or a load
    balancer does after an idle timeout: the next packet a client sends on one of them is
    answered with a reset. New connections pass."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.generation = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Forwarder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def forget(self) -> None:
        self.generation += 1

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        generation = self.generation
        server, to_server = await asyncio.open_connection(*self.target)

        async def upstream() -> None:
            try:
                while data := await client.read(65536):
                    if self.generation != generation:
                        linger = struct.pack("ii", 1, 0)  # closed with a reset, not a FIN
                        sock = to_client.get_extra_info("socket")
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                        to_client.transport.abort()
                        return
                    to_server.write(data)
            finally:
                to_server.close()

        async def downstream() -> None:
            try:
                while data := await server.read(65536):
                    to_client.write(data)
            finally:
                to_client.close()

        for pump in (upstream(), downstream()):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def test_a_status_read_on_a_connection_the_network_dropped_is_read_again_on_a_new_one(
    cluster: Cluster,
) -> None:
    url = sa.make_url(Postgres(cluster.url).new_database())
    async with Forwarder(url.host or "127.0.0.1", url.port or 5432) as forwarder:
        store = PostgresJobStore(url.set(port=forwarder.port).render_as_string(False))
        await store.open()
        try:
            await store.create(make_job("j1"))
            assert await store.summary("j1") is not None  # the pool now holds a connection
            forwarder.forget()
            summary = await store.summary("j1")
            assert summary is not None and summary.id == "j1"
        finally:
            await store.close()


async def test_status_reads_cancelled_half_way_leave_the_next_reads_working(
    cluster: Cluster,
) -> None:
    """A client that goes away cancels its read; more of them than the reads' connections
    must neither use up those connections nor leave one in the middle of a query."""
    store = PostgresJobStore(Postgres(cluster.url).new_database())
    await store.open()
    try:
        await store.create(make_job("j1"))
        for _ in range(3):
            reads = [asyncio.create_task(store.summary("j1")) for _ in range(12)]
            await asyncio.sleep(0.001)
            for read in reads:
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
        summaries = await asyncio.wait_for(
            asyncio.gather(*(store.summary("j1") for _ in range(12))), 10
        )
        assert all(s is not None and s.id == "j1" for s in summaries)
    finally:
        await store.close()
