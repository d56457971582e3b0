"""Storage in a local directory: the embedded default."""

from __future__ import annotations

import asyncio
import errno
import functools
import heapq
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncGenerator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

from process_api.asyncs import owned
from process_api.disk import reason, write_problem
from process_api.errors import ApiError, InsufficientStorage, ServiceUnavailable
from process_api.storage.base import Layout, ObjectChanged, ObjectInfo, ObjectRefused

log = logging.getLogger(__name__)

#: errors of a write that say the storage cannot be written, rather than a fault of the server.
_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT)
#: bytes read at a time when a file is streamed.
CHUNK = 64 * 1024


class LocalStorage:
    """Objects as files under a root directory; keys are relative POSIX paths."""

    def __init__(self, root: Path, layout: Layout | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.layout = layout or Layout()

    def local_path(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or any(p in ("..", "/") for p in parts):
            raise ValueError(f"invalid storage key: {key!r}")
        return self.root.joinpath(*parts)

    def location(self, key: str) -> str:
        return str(self.local_path(key)) + ("/" if key.endswith("/") else "")

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        """Writes the object whole or not at all; a full or read-only disk raises an ApiError
        that says so (507, 503), and leaves no temporary file behind."""
        await self._replace(key, lambda file: file.write(data))

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        def copy(file: IO[bytes]) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, file)

        await self._replace(key, copy)

    async def _replace(self, key: str, fill: Callable[[IO[bytes]], object]) -> None:
        try:
            await asyncio.to_thread(_write, self.local_path(key), fill)
        except OSError as exc:
            error = _storage_error(exc)
            if error is None:
                raise
            raise error from exc

    async def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        return await asyncio.to_thread(_read, self.local_path(key), max_bytes)

    async def delete(self, *keys_or_prefixes: str) -> None:
        await asyncio.to_thread(self._delete, keys_or_prefixes)

    def _delete(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            path = self.local_path(key)
            if path.is_dir():
                # What cannot be removed is left (a later pass does not retry a job marked
                # expired): the log names it, for an operator to remove.
                shutil.rmtree(path, onerror=_not_removed)
            else:
                path.unlink(missing_ok=True)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._stat, key)

    def _stat(self, key: str) -> ObjectInfo | None:
        fd = self._open(key)
        if fd is None:
            return None
        try:
            return _info(key, os.fstat(fd))
        finally:
            os.close(fd)

    async def stream(
        self, key: str, start: int, length: int, etag: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        fd = await owned(functools.partial(self._open, key), _close)
        if fd is None:
            raise ObjectRefused(f"{key} is no longer a regular file")
        reading: asyncio.Future[bytes] | None = None
        try:
            if etag is not None and _info(key, os.fstat(fd)).etag != etag:
                raise ObjectChanged(f"{key} changed since its entity tag {etag}")
            left = length
            while left > 0:
                reading = asyncio.ensure_future(
                    asyncio.to_thread(os.pread, fd, min(CHUNK, left), start)
                )
                chunk = await asyncio.shield(reading)
                if not chunk:
                    break
                start += len(chunk)
                left -= len(chunk)
                yield chunk
        finally:
            if reading is None or reading.done():
                os.close(fd)
            else:  # cancelled while a thread reads it: closed once the read ends
                reading.add_done_callback(lambda _: os.close(fd))

    def _open(self, key: str) -> int | None:
        """A descriptor of the regular file at the key, reached from the root without following
        a symbolic link at any step (processes write to the results directories and could
        link out of them); None if there is no such file."""
        self.local_path(key)  # refuses .. and absolute keys
        *folders, name = PurePosixPath(key).parts
        directory = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for folder in folders:
                inner = os.open(folder, _FOLDER_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = inner
            before = os.stat(name, dir_fd=directory, follow_symlinks=False)
            if not stat.S_ISREG(before.st_mode):
                return None  # never opened: a FIFO or a device could block or act
            fd = os.open(name, _FILE_FLAGS, dir_fd=directory)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES):
                return None
            raise
        finally:
            os.close(directory)
        if not os.path.samestat(before, os.fstat(fd)):  # replaced meanwhile
            os.close(fd)
            return None
        return fd

    async def objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._objects, prefix, limit)

    def _objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        # The first by key of all (a walk's order is not the keys'), holding `limit` at most.
        return heapq.nsmallest(limit, self._walk(prefix), key=lambda item: item.key)

    def _walk(self, prefix: str) -> Iterator[ObjectInfo]:
        top = self.local_path(prefix)
        # fwalk follows no symbolic link, neither the top's nor any inside.
        for folder, _, names, directory in os.fwalk(top, follow_symlinks=False):
            relative = Path(folder).relative_to(top).as_posix()
            for name in names:
                try:
                    info = os.stat(name, dir_fd=directory, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    path = name if relative == "." else f"{relative}/{name}"
                    yield _info(prefix.rstrip("/") + "/" + path, info)

    async def presigned_url(
        self,
        key: str,
        expiry: int,
        media_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        return None

    async def problems(self) -> list[str]:
        problem = await asyncio.to_thread(write_problem, self.root, "the storage directory")
        return [problem] if problem else []

    async def close(self) -> None:
        return None


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _not_removed(function: object, path: str, error: tuple[type, BaseException, object]) -> None:
    log.error("%s could not be removed: %s", path, error[1])


def _info(key: str, info: os.stat_result) -> ObjectInfo:
    etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}"'
    modified = datetime.fromtimestamp(info.st_mtime, UTC)
    return ObjectInfo(key, info.st_size, etag, modified)


def _write(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            fill(file)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path, max_bytes: int | None) -> bytes | None:
    """The file's bytes, opened without following a link or waiting on a FIFO: processes
    write to the results directory, and must not make the server read anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ObjectRefused(f"{path.name} is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if stat.S_ISDIR(info.st_mode):
            return None
        if not stat.S_ISREG(info.st_mode):
            raise ObjectRefused(f"{path.name} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ObjectRefused(f"{path.name} is larger than {max_bytes} bytes")
        data = file.read() if max_bytes is None else file.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ObjectRefused(f"{path.name} is larger than {max_bytes} bytes")
    return data


def _storage_error(exc: OSError) -> ApiError | None:
    if exc.errno in _FULL:
        return InsufficientStorage(f"the storage cannot be written: {reason(exc)}")
    if exc.errno in _UNWRITABLE:
        return ServiceUnavailable(f"the storage cannot be written: {reason(exc)}")
    return None
