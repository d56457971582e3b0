"""Pages of a stored log read from a stream (S3): the same pages as from a file, and the
stream read only as far as the page needs, never whole."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from process_api.jobs.log import LogCursor, file_page, read_page, stream_page

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


def test_a_page_from_the_cursor_reads_on_from_its_byte(tmp_path: Path) -> None:
    """Not the log again from its start: a stream's polls of a long log stay cheap."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(LOG)
    page = file_page(path, None, 0, 10, 10**6)
    assert page.cursor is not None
    # the first ten lines' bytes rewritten as twenty other lines: read from the start,
    # the eleventh line would be one of these
    head = page.cursor.offset
    filler = [b'{"line": "pad"}'] * 20
    filler[-1] += b" " * (head - sum(len(f) + 1 for f in filler))
    path.write_bytes(b"\n".join(filler) + b"\n" + LOG[head:])
    assert path.stat().st_size == len(LOG)
    following = file_page(path, None, 10, 5, 10**6, page.cursor)
    assert [line["line"] for line in following.lines] == [f"line {i}" for i in range(10, 15)]
    assert following.skipped == 10
    assert following.cursor == LogCursor(str(path), 15, len(b"".join(LOG.splitlines(True)[:15])))


def test_a_cursor_of_another_file_or_a_file_made_again_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(LOG)
    page = file_page(path, None, 0, 10, 10**6)
    assert page.cursor == LogCursor(str(path), 10, len(b"".join(LOG.splitlines(True)[:10])))
    other = tmp_path / "other.jsonl"
    other.write_bytes(LOG)
    again = file_page(other, None, 10, 5, 10**6, page.cursor)
    assert [line["line"] for line in again.lines] == [f"line {i}" for i in range(10, 15)]
    # the file made again with other, longer lines: its cursor falls inside one of them
    made_again = b"".join(b'{"line": "new %d", "pad": "%s"}\n' % (i, b"x" * 60) for i in range(20))
    path.write_bytes(made_again)
    assert (
        page.cursor is not None and made_again[page.cursor.offset - 1 : page.cursor.offset] != b"\n"
    )
    anew = file_page(path, None, 10, 5, 10**6, page.cursor)
    assert [line["line"] for line in anew.lines] == [f"new {i}" for i in range(10, 15)]
    assert anew.skipped == 10


def test_a_page_from_a_cursor_counts_the_lines_before_it(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(LOG)
    first = file_page(path, None, 0, 400, 10**6)
    length = file_page(path, None, 10**9, 1, 10**6, first.cursor)
    assert length.skipped == 1000 and not length.lines
    # a file being written: a line not yet whole is not read
    path.write_bytes(LOG + b'{"line": "half')
    whole = file_page(path, None, 998, 10, 10**6, first.cursor, whole_lines=True)
    assert [line["line"] for line in whole.lines] == ["line 998", "line 999"]


@pytest.mark.parametrize("chunk", [7, 4096])
def test_a_streamed_page_has_the_cursor_of_the_file_page(chunk: int) -> None:
    expected = read_page(LOG.splitlines(keepends=True), 20, 30, 10**6)
    page = asyncio.run(stream_page(chunked(LOG, chunk, []), 20, 30, 10**6))
    assert page.cursor == expected.cursor and page.cursor is not None
    rest = LOG[page.cursor.offset :]
    assert rest.startswith(b'{"time": "t50"')
