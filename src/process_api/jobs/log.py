"""A running job's log: appended to a spool file as lines come, read back by pages.

Memory per job stays bounded whatever the process prints: lines wait in a short
buffer (sorted by time, since stdout and stderr are read apart) and are appended
to the job's spool file now and then; past `MAX_LOG_BYTES` only a tail of the
last lines is kept, and the log says how many lines were left out. When the job
ends the spool file is handed to storage whole, never rebuilt in memory.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from process_api.jobs.contract import NO_RESULTS, plugin_results

log = logging.getLogger(__name__)

#: the longest line kept in the log; the rest of it is cut (a results line is kept whole
#: for the results, not in the log).
MAX_LINE_CHARS = 64 * 1024
#: what a job's log may hold on disk; later lines are left out, except the last ones.
MAX_LOG_BYTES = 256 * 1024 * 1024
#: the last lines kept when the log is over MAX_LOG_BYTES (they often say why it failed).
TAIL_LINES = 1000
#: buffered lines are appended at least this often, or when this many wait.
FLUSH_INTERVAL = 0.5
FLUSH_LINES = 512

Record = dict[str, str]


def _record(time: datetime, stream: str, text: str) -> Record:
    if len(text) > MAX_LINE_CHARS:
        cut = len(text) - MAX_LINE_CHARS
        text = text[:MAX_LINE_CHARS] + f" [process-api: {cut} characters cut]"
    return {"time": time.isoformat(), "stream": stream, "text": text}


def _encode(record: Record) -> bytes:
    return (json.dumps(record) + "\n").encode()


@dataclass(frozen=True)
class LogCursor:
    """Where a page of a log ended, in the file or object it was read from: the next page
    of the same source starts there instead of reading the log again from its start (a
    stream's polls would read a long log over and over)."""

    source: str
    #: lines before this place.
    line: int
    #: bytes before it.
    offset: int


@dataclass
class LogPage:
    lines: list[Record]
    #: more lines follow this page (already printed, beyond its limit or size).
    more: bool
    #: the lines passed over before the page (`after`, or fewer when the log is shorter):
    #: asked with a large `after`, the log's length, its lines not read.
    skipped: int = 0
    #: where the page ended, when it was read from a file or an object.
    cursor: LogCursor | None = None

    def moved(self, source: str, line: int, offset: int) -> LogPage:
        """This page, read from `source` from line `line` at byte `offset`."""
        cursor = self.cursor or LogCursor(source, 0, 0)
        return replace(
            self,
            skipped=self.skipped + line,
            cursor=LogCursor(source, cursor.line + line, cursor.offset + offset),
        )


class JobLog:
    """The lines a running job printed, and what its results and failure are read from."""

    def __init__(self, spool: Path | None = None) -> None:
        """`spool`: the file the lines are appended to (None keeps nothing on disk)."""
        self.spool = spool
        self.last_stdout: str | None = None
        self.last_stderr: str | None = None
        #: the last stdout line that is {"plugin_results": …}; where a platform merges the
        #: streams (AWS Batch), a warning printed after it does not hide it.
        self.results_line: str | None = None
        self._pending: list[Record] = []
        self._file: IO[bytes] | None = None
        self._flushed_at = 0.0  # the first line is written at once
        #: lines written to the spool file (plus those still pending: see `count`).
        self._written = 0
        self._bytes = 0
        self.dropped = 0
        #: the last lines left out of a full log; all lines when there is no spool file.
        self._tail: deque[Record] = deque(maxlen=TAIL_LINES if spool is not None else None)
        self.failed: str | None = None
        self._closed = False

    @property
    def count(self) -> int:
        return self._written + len(self._pending)

    @property
    def empty(self) -> bool:
        return self.count == 0 and self.dropped == 0

    def add(self, time_: datetime, stream: str, text: str) -> None:
        if self._closed:  # a late line of a run already concluded
            return
        line = text.strip()
        if line and stream == "stdout":
            self.last_stdout = line
            if '"plugin_results"' in line and plugin_results(line) is not NO_RESULTS:
                self.results_line = line
        elif line:
            self.last_stderr = line
        record = _record(time_, stream, text)
        if self._pending and self._pending[-1]["time"] > record["time"]:
            bisect.insort(self._pending, record, key=lambda r: r["time"])
        else:
            self._pending.append(record)
        if (
            len(self._pending) >= FLUSH_LINES
            or time.monotonic() - self._flushed_at > FLUSH_INTERVAL
        ):
            self.flush()

    def flush(self) -> None:
        """Appends the buffered lines to the spool file (small writes: the page cache)."""
        if not self._pending:  # a flush of nothing must not hold back the next first line
            return
        pending, self._pending = self._pending, []
        self._flushed_at = time.monotonic()
        if self.spool is None:
            self._tail.extend(pending)
            self._written += len(pending)
            return
        for record in pending:
            data = _encode(record)
            if self._bytes + len(data) > MAX_LOG_BYTES or self.failed:
                self._tail.append(record)
                self.dropped += 1
                continue
            try:
                self._open().write(data)
            except OSError as exc:
                self.failed = f"the log could not be written: {exc.strerror or exc}"
                log.warning("spool %s: %s", self.spool, self.failed)
                self.dropped += 1
                continue
            self._bytes += len(data)
            self._written += 1
        if self._file is not None and pending:
            try:
                self._file.flush()  # to the system: a crash of the server loses none of it
            except OSError as exc:
                self.failed = f"the log could not be written: {exc.strerror or exc}"

    def _open(self) -> IO[bytes]:
        if self._file is None:
            assert self.spool is not None
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            # A run found again after a restart replays its whole output: start afresh.
            self._file = self.spool.open("wb")
        return self._file

    def close(self) -> None:
        """Writes what is buffered, then the note and tail of lines left out, if any."""
        self.flush()
        self._closed = True
        if self.dropped and self.spool is not None and not self.failed:
            tail = list(self._tail)
            note = {
                "time": tail[0]["time"] if tail else "",
                "stream": "server",
                "text": f"[process-api: {self.dropped - len(tail)} lines left out: the log is "
                f"over {MAX_LOG_BYTES} bytes; the last {len(tail)} follow]",
            }
            try:
                file = self._open()
                file.write(b"".join(_encode(r) for r in [note, *tail]))
            except OSError as exc:
                log.warning("spool %s: %s", self.spool, exc)
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("spool %s: %s", self.spool, exc)
            self._file = None

    @property
    def written(self) -> bool:
        """Whether this run wrote to the spool file (else one left by an earlier run is kept)."""
        return self._file is not None

    def readable(self) -> tuple[Path | None, int | None, list[Record]]:
        """What a reader may read now: the spool file up to a size, or the lines kept in
        memory when there is no spool; call on the event loop, then read in a thread."""
        self.flush()
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                pass
            return self.spool, self._bytes, []
        if self.spool is not None and self.spool.exists():
            return self.spool, None, []  # what the run printed before a restart
        return None, 0, list(self._tail) if self.spool is None else []


def file_page(
    path: Path,
    size: int | None,
    after: int,
    limit: int,
    max_bytes: int,
    cursor: LogCursor | None = None,
    whole_lines: bool = False,
) -> LogPage:
    """A page of a JSONL log file, read up to `size` bytes (what was whole when asked),
    from `cursor` when it is a place in this file before the page. `whole_lines`: the
    file is being appended to by another process; the page ends before a line not yet
    whole."""
    with path.open("rb") as source:
        line, offset = _start(source, str(path), after, cursor)
        lines: Iterator[bytes] = _upto(source, None if size is None else size - offset)
        if whole_lines:
            lines = itertools.takewhile(lambda raw: raw.endswith(b"\n"), lines)
        return read_page(lines, after - line, limit, max_bytes).moved(str(path), line, offset)


def _start(source: IO[bytes], name: str, after: int, cursor: LogCursor | None) -> tuple[int, int]:
    """The line and byte to read `source` from: the cursor's place when it is one of this
    file, before `after`, and still the end of a line (a file made again starts over)."""
    if cursor is None or cursor.source != name or cursor.line > after or cursor.offset <= 0:
        return 0, 0
    source.seek(cursor.offset - 1)
    if source.read(1) != b"\n":
        source.seek(0)
        return 0, 0
    return cursor.line, cursor.offset


def _upto(source: IO[bytes], size: int | None) -> Iterator[bytes]:
    read = 0
    for raw in source:
        read += len(raw)
        if size is not None and read > size:
            return
        yield raw


class _Pager:
    """Lines `after`.. of a JSONL log: `limit` lines at most, and `max_bytes` (one at least)."""

    def __init__(self, after: int, limit: int, max_bytes: int) -> None:
        self.lines: list[Record] = []
        self.skipped = 0
        #: the bytes of the lines skipped and taken.
        self.read = 0
        self._skip = after
        self._limit = limit
        self._room = max_bytes

    def take(self, raw: bytes) -> bool:
        """Adds the next line of the log; False when it is beyond the page (more follow)."""
        if not raw.strip():
            self.read += len(raw)
            return True
        if self._skip:
            self._skip -= 1
            self.skipped += 1
            self.read += len(raw)
            return True
        if len(self.lines) >= self._limit or (self.lines and len(raw) > self._room):
            return False
        self.lines.append(json.loads(raw))
        self._room -= len(raw)
        self.read += len(raw)
        return True

    def page(self, more: bool) -> LogPage:
        cursor = LogCursor("", self.skipped + len(self.lines), self.read)
        return LogPage(self.lines, more, self.skipped, cursor)


def read_page(source: Iterable[bytes], after: int, limit: int, max_bytes: int) -> LogPage:
    """A page of `source` read from its start (its cursor's source to be named: `moved`)."""
    pager = _Pager(after, limit, max_bytes)
    for raw in source:
        if not pager.take(raw):
            return pager.page(True)
    return pager.page(False)


async def stream_page(
    chunks: AsyncIterator[bytes], after: int, limit: int, max_bytes: int
) -> LogPage:
    """A page of a JSONL log read from a stream (a stored log in S3): read as far as the
    page needs and no further, never whole."""
    pager = _Pager(after, limit, max_bytes)
    partial = b""
    try:
        async for chunk in chunks:
            *complete, partial = (partial + chunk).split(b"\n")
            for raw in complete:
                if not pager.take(raw + b"\n"):
                    return pager.page(True)
    finally:
        if isinstance(chunks, AsyncGenerator):  # stop the download where the page ends
            await chunks.aclose()
    more = not pager.take(partial)
    return pager.page(more)


def start_of(cursor: LogCursor | None, source: str, after: int) -> tuple[int, int]:
    """The line and byte an object `source` is read from: the cursor's place, when it is
    one of that object before `after` (an object is stored whole, never made again)."""
    if cursor is None or cursor.source != source or cursor.line > after:
        return 0, 0
    return cursor.line, cursor.offset


def page_of(records: list[Record], after: int, limit: int) -> LogPage:
    return LogPage(
        records[after : after + limit], len(records) > after + limit, min(after, len(records))
    )


def parse_log(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
