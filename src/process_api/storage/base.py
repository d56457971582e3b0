"""The Storage port: where job logs, results and metadata are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Writes an object, replacing any previous one."""

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if there is none."""

    def job_dir(self, job_id: str) -> Path:
        """A directory on this machine where a job's process may write its result files."""
