"""Storage in an S3 bucket (AWS, or S3-compatible stores such as MinIO)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from process_api.storage.base import Layout, ObjectInfo, ObjectRefused

#: presigned addresses signed with Signature Version 4 (every region takes it; v2 is retired).
SIGNING = Config(signature_version="s3v4")
#: bytes read at a time when an object is streamed.
CHUNK = 64 * 1024
_MISSING = ("NoSuchKey", "404", "NotFound")


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING


class S3Storage:
    """Objects in one bucket; the SDK blocks, so every call runs in a worker thread."""

    def __init__(self, client: Any, bucket: str, layout: Layout) -> None:
        self._client = client
        self.bucket = bucket
        self.layout = layout

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def local_path(self, key: str) -> Path | None:
        return None

    async def put(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.upload_file,
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
        )

    async def get(self, key: str, max_bytes: int | None = None) -> bytes | None:
        try:
            answer = await asyncio.to_thread(self._client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        size = answer.get("ContentLength")
        if max_bytes is not None and isinstance(size, int) and size > max_bytes:
            answer["Body"].close()
            raise ObjectRefused(f"{key.rsplit('/', 1)[-1]} is larger than {max_bytes} bytes")
        body: bytes = await asyncio.to_thread(answer["Body"].read)
        return body

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return ObjectInfo(key, int(head["ContentLength"]), head["ETag"], head["LastModified"])

    async def stream(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        if length <= 0:
            return
        try:
            answer = await asyncio.to_thread(
                self._client.get_object,
                Bucket=self.bucket,
                Key=key,
                Range=f"bytes={start}-{start + length - 1}",
            )
        except ClientError as exc:
            if _missing(exc):
                raise ObjectRefused(f"{key} is no longer there") from None
            raise
        body = answer["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(CHUNK)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        finally:
            await asyncio.to_thread(body.close)

    async def objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._objects, prefix, limit)

    def _objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"MaxItems": limit}
        )
        return [
            ObjectInfo(item["Key"], int(item["Size"]), item["ETag"], item["LastModified"])
            for page in pages
            for item in page.get("Contents", [])
        ]

    async def presigned_url(self, key: str, expiry: int) -> str | None:
        url: str = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expiry,
        )
        return url

    async def delete(self, *keys_or_prefixes: str) -> None:
        await asyncio.to_thread(self._delete, keys_or_prefixes)

    def _delete(self, keys: tuple[str, ...]) -> None:
        names: list[str] = []
        for key in keys:
            if not key.endswith("/"):
                names.append(key)
                continue
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=key
            )
            names += [item["Key"] for page in pages for item in page.get("Contents", [])]
        for start in range(0, len(names), 1000):
            chunk = [{"Key": name} for name in names[start : start + 1000]]
            self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
            )

    async def problems(self) -> list[str]:
        """Whether the bucket answers; what cannot be written is found when writing."""
        try:
            async with asyncio.timeout(10):
                await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except (ClientError, BotoCoreError, TimeoutError) as exc:
            return [f"the S3 bucket of the storage does not answer: {type(exc).__name__}"]
        return []

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
