"""The Storage port: where job logs, results and metadata are kept (a local directory, or S3)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Layout:
    """Where each kind of object goes: the Go server's S3_RESULTS_DIR, S3_LOGS_DIR, S3_META_DIR."""

    results: str = "results"
    logs: str = "logs"
    metadata: str = "metadata"

    def log(self, job_id: str) -> str:
        return f"{self.logs}/{job_id}.jsonl"

    def meta(self, job_id: str) -> str:
        return f"{self.metadata}/{job_id}.json"

    def inputs(self, job_id: str) -> str:
        """The job's inputs, for a process that cannot be given a file (AWS Batch): beside
        its metadata, not among the results it writes."""
        return f"{self.metadata}/{job_id}.inputs.json"

    def results_of(self, job_id: str) -> str:
        """The prefix under which a job's process may write its result files."""
        return f"{self.results}/{job_id}/"


@dataclass(frozen=True)
class ObjectInfo:
    """What is known of a stored object without reading it."""

    key: str
    size: int
    #: a strong entity tag, quoted: S3's own, or made from a file's size and time.
    etag: str
    modified: datetime


class ObjectRefused(Exception):
    """An object the server will not read: not a regular file (a link, a FIFO), or too large."""


class ObjectChanged(Exception):
    """An object that is no longer the version its entity tag named (replaced meanwhile)."""


class Storage(Protocol):
    layout: Layout

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        """Writes an object, replacing any previous one."""

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Writes an object from a file of this machine, streamed (a job's whole log)."""

    async def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        """The object's bytes, or None if there is none; ObjectRefused for one larger than
        `max_bytes` or, in a directory, anything but a regular file (a process writes there)."""

    async def delete(self, *keys_or_prefixes: str) -> None:
        """Removes objects; a key ending in / removes everything under it."""

    def location(self, key: str) -> str:
        """Where the object is, for a process to write it: a path, or an s3:// URI."""

    def local_path(self, key: str) -> Path | None:
        """The object's path on this machine, if the storage is local."""

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's size, entity tag and time; None if there is none or, in a directory,
        if it is anything but a regular file reached without a symbolic link."""

    def stream(
        self, key: str, start: int, length: int, etag: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        """`length` bytes of the object from `start`, a chunk at a time (never read whole);
        ObjectRefused if it is no longer there or no longer a file, ObjectChanged if it is
        no longer the version `etag` names (its stat's): the bytes would not be that one's."""
        ...

    async def objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        """The first `limit` objects under the prefix by key, at any depth, sorted; in a
        directory, regular files only (symbolic links are neither listed nor followed)."""

    async def presigned_url(
        self,
        key: str,
        expiry: int,
        media_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        """An address that serves the object for `expiry` seconds without credentials, with
        that Content-Type and Content-Disposition, when the storage has such addresses (S3);
        None otherwise. It is signed for GET only."""

    async def problems(self) -> list[str]:
        """What keeps the storage from being written (for /ready); empty when it can be."""

    async def close(self) -> None: ...
