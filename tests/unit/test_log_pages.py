"""Pages of a stored log read from a stream (S3): the same pages as from a file, and the
stream read only as far as the page needs, never whole."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from process_api.jobs.log import read_page, stream_page

LOG = b"".join(
    json.dumps({"time": f"t{i}", "stream": "stdout", "line": f"line {i}"}).encode() + b"\n"
    for i in range(1000)
)


async def chunked(data: bytes, size: int, read: list[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        read.append(start)
        yield data[start : start + size]


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, len(LOG)])
@pytest.mark.parametrize(
    ("after", "limit", "max_bytes"), [(0, 10, 10**6), (995, 10, 10**6), (3, 500, 300)]
)
def test_a_streamed_page_is_the_page_of_the_file(
    chunk: int, after: int, limit: int, max_bytes: int
) -> None:
    expected = read_page(LOG.splitlines(keepends=True), after, limit, max_bytes)
    page = asyncio.run(stream_page(chunked(LOG, chunk, []), after, limit, max_bytes))
    assert page == expected


def test_the_stream_stops_where_the_page_ends() -> None:
    read: list[int] = []
    page = asyncio.run(stream_page(chunked(LOG, 1024, read), 0, 5, 10**6))
    assert [line["line"] for line in page.lines] == [f"line {i}" for i in range(5)]
    assert page.more
    assert len(read) == 1  # one chunk of a 70 kB log was enough


def test_a_log_without_a_final_newline_keeps_its_last_line() -> None:
    page = asyncio.run(stream_page(chunked(LOG.rstrip(b"\n"), 50, []), 998, 10, 10**6))
    assert [line["line"] for line in page.lines] == ["line 998", "line 999"]
    assert not page.more
