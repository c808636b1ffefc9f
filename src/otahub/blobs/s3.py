"""Blobs as objects in an S3-compatible bucket, through boto3 in the loop's executor."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from otahub.blobs._threads import run_blocking
from otahub.blobs.base import DEFAULT_MAX_SIZE, READ_CHUNK, BlobInfo
from otahub.blobs.errors import BlobError, BlobNotFound
from otahub.blobs.hashing import StreamDigest
from otahub.blobs.keys import check_key

PART_SIZE = 8 * 1024 * 1024
S3_READ = 16 * READ_CHUNK  # per read from an S3 response body, on a thread
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_COPY_OBJECT = 5 * 1024**3
INCOMING_PREFIX = ".incoming/"
"""Give the bucket a lifecycle rule aborting incomplete multipart uploads under
this prefix: a process killed mid-upload cannot abort its own."""
NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}

log = logging.getLogger("otahub.blobs.s3")


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Parsed from `s3://bucket[/prefix]?endpoint=http://host:port&region=...`.

    Optional query members: `access_key`, `secret_key`, `session_token`,
    `addressing_style` (`path` by default when an endpoint is given). Missing
    credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, ...).
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    addressing_style: str | None = None

    @classmethod
    def from_url(cls, url: str) -> S3Settings:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket URL: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"endpoint", "region", "access_key", "secret_key", "session_token"}
        unknown = set(query) - known - {"addressing_style"}
        if unknown:
            raise ValueError(f"unknown s3 URL parameters: {sorted(unknown)}")
        prefix = parts.path.strip("/")
        return cls(
            bucket=parts.netloc,
            prefix=f"{prefix}/" if prefix else "",
            addressing_style=query.get("addressing_style"),
            **{k: query.get(k) for k in known},
        )

    def client(self) -> Any:
        style = self.addressing_style or ("path" if self.endpoint else "auto")
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region or "us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            config=Config(signature_version="s3v4", s3={"addressing_style": style}),
        )


class S3BlobStore:
    """Blob `key` is the object `prefix + key`.

    Small blobs (under one part) are one PutObject. Larger ones go up as a
    multipart upload to a hidden `.incoming/` key, one part in flight while the
    next is read, then are copied server-side to their key with their hashes
    as metadata (S3 fixes metadata when an upload starts, before the hashes are
    known) and the temporary object is deleted. So a key never shows a partial
    or unhashed object, and a refused or failed upload is aborted.
    """

    def __init__(
        self,
        settings: S3Settings,
        *,
        client: Any = None,
        max_size: int = DEFAULT_MAX_SIZE,
        part_size: int = PART_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.max_size = max_size
        self.part_size = part_size
        self._client = client if client is not None else settings.client()

    @classmethod
    def from_url(cls, url: str, *, max_size: int = DEFAULT_MAX_SIZE) -> S3BlobStore:
        return cls(S3Settings.from_url(url), max_size=max_size)

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def _call(self, method: str, **params: Any) -> Any:
        try:
            return await run_blocking(partial(getattr(self._client, method), **params))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in NOT_FOUND_CODES:
                raise BlobNotFound(f"no blob {params.get('Key')!r}", key=params.get("Key")) from exc
            raise BlobError(f"S3 {method} failed: {code or exc}", code=code) from exc
        except BotoCoreError as exc:
            raise BlobError(f"S3 {method} failed: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_get_url(self, key: str, expires_s: int) -> str | None:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._object_key(key)},
            ExpiresIn=expires_s,
        )
        return url

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> BlobInfo:
        object_key = self._object_key(key)
        digest = StreamDigest(key, self.max_size if max_size is None else max_size)
        buffer = bytearray()
        upload: _MultipartUpload | None = None
        try:
            async for chunk in chunks:
                digest.accept(chunk)
                buffer += chunk
                while len(buffer) >= self.part_size:
                    with memoryview(buffer) as view:
                        part = bytes(view[: self.part_size])
                    del buffer[: self.part_size]
                    if upload is None:
                        upload = await _MultipartUpload.start(self, digest)
                    await upload.send(part)
            if upload is None:
                return await self._put_small(key, object_key, digest, bytes(buffer))
            await upload.send(bytes(buffer))
            await upload.complete()
            return await self._publish(key, object_key, digest, upload.temp_key)
        finally:
            if upload is not None:
                await asyncio.shield(upload.discard())

    async def _put_small(
        self, key: str, object_key: str, digest: StreamDigest, data: bytes
    ) -> BlobInfo:
        await run_blocking(digest.update, data)
        response = await self._call(
            "put_object",
            Bucket=self.bucket,
            Key=object_key,
            Body=data,
            ContentType="application/octet-stream",
            Metadata={"sha256": digest.sha256, "md5": digest.md5},
        )
        return _info(key, digest, response.get("VersionId"))

    async def _publish(
        self, key: str, object_key: str, digest: StreamDigest, temp_key: str
    ) -> BlobInfo:
        source = {"Bucket": self.bucket, "Key": temp_key}
        extra = {
            "Metadata": {"sha256": digest.sha256, "md5": digest.md5},
            "MetadataDirective": "REPLACE",
            "ContentType": "application/octet-stream",
        }
        if digest.size <= MAX_COPY_OBJECT:
            response = await self._call(
                "copy_object", Bucket=self.bucket, Key=object_key, CopySource=source, **extra
            )
            return _info(key, digest, response.get("VersionId"))
        config = TransferConfig(multipart_threshold=MAX_COPY_OBJECT)
        await self._call(
            "copy",
            CopySource=source,
            Bucket=self.bucket,
            Key=object_key,
            ExtraArgs=extra,
            Config=config,
        )
        head = await self._call("head_object", Bucket=self.bucket, Key=object_key)
        return _info(key, digest, head.get("VersionId"))

    async def stat(self, key: str) -> BlobInfo:
        head = await self._call("head_object", Bucket=self.bucket, Key=self._object_key(key))
        meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
        s3_etag = str(head.get("ETag", "")).strip('"')
        sha256 = meta.get("sha256", "")
        md5 = meta.get("md5") or ("" if "-" in s3_etag else s3_etag)
        version = head.get("VersionId")
        return BlobInfo(
            key=key,
            size=int(head["ContentLength"]),
            sha256=sha256,
            md5=md5,
            etag=sha256 or s3_etag,
            version=version if version and version != "null" else (sha256 or s3_etag),
        )

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        object_key = self._object_key(key)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": object_key}
        if end is not None and end <= start:
            return
        if start > 0 or end is not None:
            params["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            response = await self._call("get_object", **params)
        except BlobError as exc:
            if exc.details.get("code") == "InvalidRange":
                return
            raise
        body = response["Body"]
        try:
            # One thread hop per S3_READ, handed on in READ_CHUNK pieces.
            while data := await self._read(body):
                for at in range(0, len(data), READ_CHUNK):
                    yield data[at : at + READ_CHUNK]
        finally:
            body.close()

    async def _read(self, body: Any) -> bytes:
        try:
            data: bytes = await run_blocking(body.read, S3_READ)
        except BotoCoreError as exc:
            raise BlobError(f"S3 read failed: {exc}") from exc
        return data

    async def delete(self, key: str) -> bool:
        object_key = self._object_key(key)
        try:
            await self._call("head_object", Bucket=self.bucket, Key=object_key)
        except BlobNotFound:
            return False
        await self._call("delete_object", Bucket=self.bucket, Key=object_key)
        return True


class _MultipartUpload:
    """One multipart upload to a temporary key, at most one part in flight."""

    def __init__(self, store: S3BlobStore, digest: StreamDigest, upload_id: str, temp_key: str):
        self._store = store
        self._digest = digest
        self.upload_id = upload_id
        self.temp_key = temp_key
        self._parts: list[dict[str, Any]] = []
        self._in_flight: asyncio.Future[None] | None = None
        self._completed = False
        self._discarded = False

    @classmethod
    async def start(cls, store: S3BlobStore, digest: StreamDigest) -> _MultipartUpload:
        temp_key = f"{store.prefix}{INCOMING_PREFIX}{uuid.uuid4().hex}"
        response = await store._call("create_multipart_upload", Bucket=store.bucket, Key=temp_key)
        return cls(store, digest, str(response["UploadId"]), temp_key)

    async def send(self, part: bytes) -> None:
        """Wait for the previous part, then start this one in the background."""
        await self._drain()
        if not part and self._parts:
            return
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        self._in_flight = asyncio.ensure_future(self._upload(number, part))

    async def _upload(self, number: int, part: bytes) -> None:
        # hashing here keeps it off the event loop; parts run one at a time, in order
        await run_blocking(self._digest.update, part)
        response = await self._store._call(
            "upload_part",
            Bucket=self._store.bucket,
            Key=self.temp_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self._parts[number - 1]["ETag"] = response["ETag"]

    async def _drain(self) -> None:
        if self._in_flight is not None:
            await self._in_flight
            self._in_flight = None

    async def complete(self) -> None:
        await self._drain()
        await self._store._call(
            "complete_multipart_upload",
            Bucket=self._store.bucket,
            Key=self.temp_key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._completed = True

    async def discard(self) -> None:
        """Abort the upload, or delete the temporary object once it is complete."""
        if self._discarded:
            return
        self._discarded = True
        if self._in_flight is not None:
            await asyncio.gather(self._in_flight, return_exceptions=True)
        store = self._store
        try:
            if self._completed:
                await store._call("delete_object", Bucket=store.bucket, Key=self.temp_key)
            else:
                await store._call(
                    "abort_multipart_upload",
                    Bucket=store.bucket,
                    Key=self.temp_key,
                    UploadId=self.upload_id,
                )
        except BlobError:
            # cleanup must not hide the upload's own outcome or error
            log.warning("could not clean up S3 upload %s", self.temp_key, exc_info=True)


def _info(key: str, digest: StreamDigest, version_id: str | None) -> BlobInfo:
    version = version_id if version_id and version_id != "null" else digest.sha256
    return BlobInfo(key, digest.size, digest.sha256, digest.md5, digest.sha256, version)
