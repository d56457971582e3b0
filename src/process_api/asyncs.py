"""Small asyncio helpers the services and adapters share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from process_api.errors import ApiError

T = TypeVar("T")
log = logging.getLogger(__name__)


async def despite_cancellation(work: Awaitable[T]) -> T:
    """Sees work through to its end even if the awaiting task is cancelled meanwhile
    (recording a job's end, stopping what a half-done start created)."""
    future = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()


async def owned(call: Callable[[], T], release: Callable[[T], object]) -> T:
    """The result of a blocking call run in a worker thread. If the awaiting task is cancelled
    meanwhile (a client went away), the thread goes on: what it returns (a descriptor, a
    response body) is then released once it does, rather than lost open."""
    running = asyncio.ensure_future(asyncio.to_thread(call))
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:

        def done(ended: asyncio.Future[T]) -> None:
            if not ended.cancelled() and ended.exception() is None:
                release(ended.result())

        running.add_done_callback(done)
        raise


async def retrying(
    operation: Callable[[], Awaitable[T]],
    what: str,
    attempts: int | None = None,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
) -> T:
    """The operation's result, tried again with backoff while it fails (a busy database, a
    transient storage error); `attempts=None` keeps trying, for what must happen."""
    delay = first_delay
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("%s failed (%s); trying again in %.1f s", what, _short(exc), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def _short(exc: Exception) -> str:
    """The kind of failure, for the log: an exception's type, not its text (it may hold SQL)."""
    return type(exc).__name__


class Outage:
    """Says once that a step repeated every fraction of a second fails, and once that it works
    again, not twice a second while it lasts (a store away for a minute)."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what
        self._log = logger
        self._failing = False

    def failed(self, exc: Exception) -> None:
        if not self._failing:
            if isinstance(exc, ApiError):  # says what is wrong in plain words already
                self._log.warning("%s: %s", self._what, exc.detail)
            else:
                self._log.error("%s failed", self._what, exc_info=exc)
        self._failing = True

    def passed(self) -> None:
        if self._failing:
            self._log.info("%s works again", self._what)
        self._failing = False
