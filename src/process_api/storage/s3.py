"""Storage in an S3 bucket (AWS, or S3-compatible stores such as MinIO).

A read the bucket refuses (a missing permission, throttling past the client's retries) or
an endpoint that does not answer is ServiceUnavailable (503) with a plain reason; the
log has S3's own error.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from process_api.asyncs import owned
from process_api.errors import ServiceUnavailable
from process_api.storage.base import Layout, ObjectChanged, ObjectInfo, ObjectRefused

log = logging.getLogger(__name__)

#: presigned addresses signed with Signature Version 4 (every region takes it; v2 is retired).
SIGNING = Config(signature_version="s3v4")
#: bytes read at a time when an object is streamed.
CHUNK = 64 * 1024
_MISSING = ("NoSuchKey", "404", "NotFound")
_FORBIDDEN = ("403", "AccessDenied")
#: what a refused HEAD means (S3 answers 403 for a missing key without s3:ListBucket).
REFUSED_HEAD = (
    "the storage refuses to tell whether the object exists: the server's role may lack "
    "s3:ListBucket / s3:GetObject"
)


def _code(exc: Exception) -> str | None:
    if not isinstance(exc, ClientError):
        return None
    code = exc.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _missing(exc: Exception) -> bool:
    return _code(exc) in _MISSING


def _failure(exc: Exception, doing: str, refused: str | None = None) -> ServiceUnavailable:
    """The 503 for an S3 error that is not "missing"; `refused`: the reason for a 403."""
    log.warning("S3 storage: %s failed: %s", doing, exc)
    code = _code(exc)
    if code is None:
        return ServiceUnavailable(f"the storage does not answer ({type(exc).__name__})")
    if code in _FORBIDDEN:
        return ServiceUnavailable(refused or f"the storage refuses to {doing}: access denied")
    return ServiceUnavailable(f"the storage refuses to {doing} ({code}); try again later")


def _close_body(answer: dict[str, Any]) -> None:
    answer["Body"].close()


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
            answer = await owned(
                functools.partial(self._client.get_object, Bucket=self.bucket, Key=key),
                _close_body,
            )
        except (ClientError, BotoCoreError) as exc:
            if _missing(exc):
                return None
            raise _failure(exc, "read an object") from None
        try:
            size = answer.get("ContentLength")
            if max_bytes is not None and isinstance(size, int) and size > max_bytes:
                raise ObjectRefused(f"{key.rsplit('/', 1)[-1]} is larger than {max_bytes} bytes")
            body: bytes = await asyncio.to_thread(answer["Body"].read)
            return body
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "read an object") from None
        finally:
            answer["Body"].close()

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            if _missing(exc):
                return None
            raise _failure(exc, "describe an object", REFUSED_HEAD) from None
        return ObjectInfo(key, int(head["ContentLength"]), head["ETag"], head["LastModified"])

    async def stream(
        self, key: str, start: int, length: int, etag: str | None = None
    ) -> AsyncGenerator[bytes, None]:
        if length <= 0:
            return
        ranged = {"Bucket": self.bucket, "Key": key, "Range": f"bytes={start}-{start + length - 1}"}
        if etag is not None:  # the version the headers describe, or none
            ranged["IfMatch"] = etag
        try:
            answer = await owned(functools.partial(self._client.get_object, **ranged), _close_body)
        except (ClientError, BotoCoreError) as exc:
            if _missing(exc):
                raise ObjectRefused(f"{key} is no longer there") from None
            if _code(exc) in ("PreconditionFailed", "412"):
                raise ObjectChanged(f"{key} changed since its entity tag {etag}") from None
            raise _failure(exc, "read an object") from None
        body = answer["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(CHUNK)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "read an object") from None
        finally:
            # Not in a thread: a second cancellation could interrupt that and leak the body.
            body.close()

    async def objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        try:
            return await asyncio.to_thread(self._objects, prefix, limit)
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "list objects") from None

    def _objects(self, prefix: str, limit: int) -> list[ObjectInfo]:
        # S3 lists keys in order: the first `limit` are the first by key.
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"MaxItems": limit}
        )
        return [
            ObjectInfo(item["Key"], int(item["Size"]), item["ETag"], item["LastModified"])
            for page in pages
            for item in page.get("Contents", [])
        ]

    async def presigned_url(
        self,
        key: str,
        expiry: int,
        media_type: str | None = None,
        disposition: str | None = None,
    ) -> str | None:
        params = {"Bucket": self.bucket, "Key": key}
        if media_type is not None:
            params["ResponseContentType"] = media_type
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        try:
            url: str = await asyncio.to_thread(
                self._client.generate_presigned_url,
                "get_object",
                Params=params,
                ExpiresIn=expiry,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, "sign an address") from None
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
            answer = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            # S3 answers 200 even when it kept some: raised, so that a later pass tries again.
            if errors := answer.get("Errors"):
                first = errors[0]
                log.warning("S3 storage: objects not removed: %s", errors[:10])
                raise ServiceUnavailable(
                    f"the storage did not remove {len(errors)} object(s), such as "
                    f"{first.get('Key')} ({first.get('Code')})"
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
