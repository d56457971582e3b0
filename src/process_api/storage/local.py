"""Storage in a local directory: the embedded default."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from process_api.disk import reason, write_problem
from process_api.errors import ApiError, InsufficientStorage, ServiceUnavailable
from process_api.storage.base import Layout

#: errors of a write that say the storage cannot be written, rather than a fault of the server.
_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT)


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
        try:
            await asyncio.to_thread(self._write, self.local_path(key), data)
        except OSError as exc:
            error = _storage_error(exc)
            if error is None:
                raise
            raise error from exc

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes | None:
        path = self.local_path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            return None

    async def delete(self, *keys_or_prefixes: str) -> None:
        await asyncio.to_thread(self._delete, keys_or_prefixes)

    def _delete(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            path = self.local_path(key)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    async def problems(self) -> list[str]:
        problem = await asyncio.to_thread(write_problem, self.root, "the storage directory")
        return [problem] if problem else []

    async def close(self) -> None:
        return None


def _storage_error(exc: OSError) -> ApiError | None:
    if exc.errno in _FULL:
        return InsufficientStorage(f"the storage cannot be written: {reason(exc)}")
    if exc.errno in _UNWRITABLE:
        return ServiceUnavailable(f"the storage cannot be written: {reason(exc)}")
    return None
