"""Storage in a local directory: the embedded default."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from process_api.storage.base import Layout


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

    async def close(self) -> None:
        return None
