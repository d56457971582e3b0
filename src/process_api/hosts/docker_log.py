"""Reading a container's log: lines out of the engine's frames, handed to the event loop.

The reader threads block on the engine's log streams; the event loop turns lines
into the job's log. Memory stays bounded whatever a process prints: a line keeps
at most MAX_LINE bytes (its head, marked as cut), and a reader waits while more
than MAX_WAITING bytes wait for the loop. The loop gets one callback per batch of
lines, not one per line, and each callback ends within a few milliseconds, so a
process printing fast cannot hold up the server's answers.
"""

from __future__ import annotations

import re
import threading
import time
from asyncio import AbstractEventLoop
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

#: the longest line kept whole (a large plugin_results line, say); longer ones keep their head.
MAX_LINE = 8 * 2**20
#: what ends a line that was cut.
CUT_MARK = b" [process-api: line cut at 8 MiB]"
#: bytes of lines that may wait for the event loop before the readers wait.
MAX_WAITING = 4 * 2**20
#: lines taken from the queue at once.
BATCH_LINES = 50
#: seconds one callback may spend on lines before it lets the loop do other work.
BATCH_TIME = 0.005
#: what a line costs beyond its text, for MAX_WAITING.
LINE_OVERHEAD = 100
#: what a secret value becomes in the job's log.
REDACTED = "********"
#: secret values shorter than this are masked only where they stand alone (see masker).
SHORT_SECRET = 4

#: (timestamp, line) of one line; the timestamp is the engine's, of the line's first frame.
Line = tuple[bytes, bytes]


class LineSplitter:
    """Cuts the frames of one stream ("<timestamp> <text>") into lines.

    The engine cuts lines over 16 KiB into several frames, each with its own
    timestamp: a line is kept whole, up to MAX_LINE, stamped with its first frame's.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._stamp: bytes | None = None
        self._cut = False

    def feed(self, frame: bytes) -> Iterator[Line]:
        stamp, _, text = frame.partition(b" ")
        while text:
            part, newline, text = text.partition(b"\n")
            if self._stamp is None:
                self._stamp = stamp
            room = MAX_LINE - len(self._pending)
            if len(part) > room:
                self._cut = True
            self._pending += part[: max(room, 0)]
            if newline:
                yield self._line()

    def end(self) -> Iterator[Line]:
        """The last line, if the stream did not end with a newline."""
        if self._stamp is not None:
            yield self._line()

    def _line(self) -> Line:
        line = bytes(self._pending) + (CUT_MARK if self._cut else b"")
        stamp = self._stamp or b""
        self._pending, self._stamp, self._cut = bytearray(), None, False
        return stamp, line


class Resume:
    """Where a stream of frames stopped, to read on from there without repeating a frame.

    The engine may end a followed log early when the container stops while the reader
    is behind; a second read `since` the last frame's time gets the rest. Frames of
    the same time that were already read are skipped by count.
    """

    def __init__(self) -> None:
        self._stamp = b""
        self._at_stamp = 0

    def seen(self, frame: bytes) -> None:
        stamp = frame.partition(b" ")[0]
        if stamp == self._stamp:
            self._at_stamp += 1
        else:
            self._stamp, self._at_stamp = stamp, 1

    def since(self) -> float | None:
        """Seconds since the epoch a little before the last frame, or None for the start."""
        nanoseconds = _nanoseconds(self._stamp)
        return None if nanoseconds is None else max(nanoseconds / 1e9 - 1e-6, 1e-6)

    def skip(self, frames: Iterator[bytes]) -> Iterator[bytes]:
        """The frames of a read `since` that come after those seen."""
        last = _nanoseconds(self._stamp)
        repeated = self._at_stamp
        for frame in frames:
            stamp = frame.partition(b" ")[0]
            current = _nanoseconds(stamp)
            if last is not None and current is not None and current < last:
                continue
            if stamp == self._stamp and repeated > 0:
                repeated -= 1
                continue
            yield frame


def _nanoseconds(stamp: bytes) -> int | None:
    """The engine's RFC 3339 time with nanoseconds, as nanoseconds since the epoch."""
    try:
        head, _, fraction = stamp.decode().rstrip("Z").partition(".")
        seconds = datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp()
        return int(seconds) * 10**9 + int(fraction[:9].ljust(9, "0"))
    except ValueError:
        return None


class Batches:
    """Lines from reader threads to the event loop, in batches.

    `put` (reader threads) queues a line and asks the loop for a callback only if
    none is pending; each callback emits lines for BATCH_TIME at most and leaves
    the rest to the next, after the loop's other work. A reader waits
    while MAX_WAITING bytes are queued: the engine keeps the log meanwhile.
    """

    def __init__(self, loop: AbstractEventLoop, emit: Callable[[str, bytes, bytes], None]) -> None:
        self._loop = loop
        self._emit = emit
        self._cond = threading.Condition()
        self._queued: deque[tuple[str, bytes, bytes]] = deque()
        self._size = 0
        self._scheduled = False
        self._closed = False
        #: lines received so far: tells a log that is slow from one that is stuck.
        self.received = 0

    def put(self, stream: str, stamp: bytes, line: bytes) -> None:
        """Called from a reader thread; returns at once after `close`."""
        with self._cond:
            while self._size >= MAX_WAITING and not self._closed:
                self._cond.wait()
            if self._closed:
                return
            self._queued.append((stream, stamp, line))
            self._size += len(line) + LINE_OVERHEAD
            self.received += 1
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _take(self, most: int | None) -> tuple[list[tuple[str, bytes, bytes]], bool]:
        with self._cond:
            count = len(self._queued) if most is None else min(most, len(self._queued))
            taken = [self._queued.popleft() for _ in range(count)]
            self._size -= sum(len(line) + LINE_OVERHEAD for _, _, line in taken)
            more = bool(self._queued)
            self._scheduled = more
            self._cond.notify_all()
        return taken, more

    def _flush(self) -> None:
        deadline = time.monotonic() + BATCH_TIME
        more = True
        while more and time.monotonic() < deadline:
            taken, more = self._take(BATCH_LINES)
            for item in taken:
                self._emit(*item)
        if more:
            self._loop.call_soon(self._flush)

    @property
    def queued(self) -> int:
        return len(self._queued)

    def close(self) -> None:
        """On the loop: emits what is queued; later lines are dropped, waiting readers freed."""
        with self._cond:
            self._closed = True
        taken, _ = self._take(None)
        for item in taken:
            self._emit(*item)


def masker(secrets: list[str]) -> Callable[[str], str]:
    """Replaces secret values in a line of the log.

    Every value is masked, whatever its length. A value of SHORT_SECRET or more
    characters is masked wherever it appears; a shorter one only where it stands
    alone (not inside a longer word or number): masking every "a" or "7" of a log
    would make it unreadable, and a two-letter fragment inside another word tells
    nothing about the secret. A value of several lines is masked line by line, as
    the log is read line by line.
    """
    values = {part for secret in secrets for part in secret.splitlines() if part.strip()}
    if not values:
        return lambda text: text
    patterns = []
    for value in sorted(values, key=len, reverse=True):  # a longer value first: it may hold one
        escaped = re.escape(value)
        patterns.append(escaped if len(value) >= SHORT_SECRET else rf"(?<!\w){escaped}(?!\w)")
    regex = re.compile("|".join(patterns))
    return lambda text: regex.sub(REDACTED, text)
