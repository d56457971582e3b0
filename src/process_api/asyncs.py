"""Small asyncio helpers the services and adapters share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


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
