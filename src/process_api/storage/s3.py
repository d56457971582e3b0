"""Storage in an S3 bucket (AWS, or S3-compatible stores such as MinIO)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from process_api.storage.base import Layout, ObjectRefused


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
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        size = answer.get("ContentLength")
        if max_bytes is not None and isinstance(size, int) and size > max_bytes:
            answer["Body"].close()
            raise ObjectRefused(f"{key.rsplit('/', 1)[-1]} is larger than {max_bytes} bytes")
        body: bytes = await asyncio.to_thread(answer["Body"].read)
        return body

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

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
