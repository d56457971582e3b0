"""Storage in a local directory: the embedded default."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

from process_api.storage.base import Layout, ObjectRefused


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
        await asyncio.to_thread(self._write, self.local_path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        Path(temporary).replace(path)

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._copy, path, self.local_path(key))

    @staticmethod
    def _copy(source: Path, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.close(handle)
        try:
            shutil.copyfile(source, temporary)
            Path(temporary).replace(path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        return await asyncio.to_thread(_read, self.local_path(key), max_bytes)

    async def delete(self, *keys_or_prefixes: str) -> None:
        await asyncio.to_thread(self._delete, keys_or_prefixes)

    def _delete(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            path = self.local_path(key)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    async def close(self) -> None:
        return None


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
