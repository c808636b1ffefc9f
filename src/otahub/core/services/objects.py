"""The object catalog behind otahub's S3-compatible endpoint: buckets, objects and
their versions, multipart uploads. Bytes live in the blob store; rows say which
blob holds which version of which key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from otahub.blobs.base import BlobStore
from otahub.core.services.base import ServiceContext
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from otahub.domain.limits import Refused, check_text
from otahub.store.tables import buckets, multipart_parts, multipart_uploads, objects

NULL_VERSION = "null"  # S3's version id of objects in an unversioned bucket
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_SHAPED = re.compile(r"\d+\.\d+\.\d+\.\d+")
# Names S3 keeps for its own access points, aliases and directory buckets.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# XML 1.0 cannot carry these, so a key holding one could never be listed by either
# cloud's XML listings; NUL and lone surrogates the store cannot hold at all.
_UNLISTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MAX_KEY_BYTES = 1024
MIN_PART = 5 * 1024 * 1024  # every part but the last, as S3 requires
MAX_PARTS = 10_000


def _width(column: Any) -> int:
    """The most characters `column` holds: PostgreSQL refuses to store a longer value."""
    length: int = column.type.length
    return length


# A value longer than its column names nothing stored, and may not be written.
MAX_BUCKET_NAME = _width(buckets.c.name)
MAX_VERSION_ID = _width(objects.c.version_id)
MAX_UPLOAD_ID = _width(multipart_uploads.c.id)
MAX_CONTENT_TYPE = _width(objects.c.content_type)


@dataclass(frozen=True)
class Bucket:
    id: int
    tenant_id: int
    name: str
    versioning: str  # Disabled, Enabled, Suspended
    created_at: datetime


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str
    blob_key: str | None
    size: int
    etag: str | None
    sha256: str | None
    md5: str | None
    content_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    is_latest: bool = True
    delete_marker: bool = False


@dataclass(frozen=True)
class Listing:
    objects: list[StoredObject]
    prefixes: list[str]
    truncated: bool
    next_marker: str | None


def _object(row: Any, bucket: str) -> StoredObject:
    return StoredObject(
        bucket=bucket,
        key=row.key,
        version_id=row.version_id,
        blob_key=row.blob_key,
        size=row.size,
        etag=row.etag,
        sha256=row.sha256,
        md5=row.md5,
        content_type=row.content_type,
        metadata=dict(row.metadata or {}),
        created_at=row.created_at,
        is_latest=row.is_latest,
        delete_marker=row.delete_marker,
    )


def _object_read(which: Any) -> Any:
    """A bucket by name with its tenant, and its object of the key that `which` picks
    (columns of NULLs when there is none): `get`, prepared once."""
    return (
        select(
            buckets.c.tenant_id.label("bucket_tenant_id"),
            *(c for c in objects.c if c.name not in ("id", "bucket_id")),
        )
        .select_from(
            buckets.outerjoin(
                objects,
                and_(
                    objects.c.bucket_id == buckets.c.id,
                    objects.c.key == bindparam("key", None),
                    which,
                ),
            )
        )
        .where(buckets.c.name == bindparam("bucket", None))
        .limit(1)
    )


LATEST_OBJECT = _object_read(objects.c.is_latest.is_(True))
OBJECT_VERSION = _object_read(objects.c.version_id == bindparam("version_id", None))


class ObjectService:
    def __init__(self, ctx: ServiceContext, blobs: BlobStore) -> None:
        self.ctx = ctx
        self.blobs = blobs
        # Job documents' objects are looked up on every device's job request.
        self._latest = ctx.db.prepare(LATEST_OBJECT)
        self._version = ctx.db.prepare(OBJECT_VERSION)

    # -- buckets --------------------------------------------------------------------

    async def create_bucket(self, tenant_id: int, name: str) -> Bucket:
        check_bucket_name(name)
        async with self.ctx.db.transaction() as conn:
            row = (await conn.execute(select(buckets).where(buckets.c.name == name))).first()
            if row is not None:
                code = (
                    "BucketAlreadyOwnedByYou"
                    if row.tenant_id == tenant_id
                    else "BucketAlreadyExists"
                )
                raise AlreadyExists(f"bucket {name} already exists", code=code)
            try:
                await conn.execute(
                    insert(buckets).values(
                        tenant_id=tenant_id, name=name, created_at=self.ctx.clock.now()
                    )
                )
            except IntegrityError as exc:
                raise AlreadyExists(
                    f"bucket {name} already exists", code="BucketAlreadyExists"
                ) from exc
            return await _bucket(conn, tenant_id, name)

    async def get_bucket(self, tenant_id: int, name: str) -> Bucket:
        async with self.ctx.db.read() as conn:
            return await _bucket(conn, tenant_id, name)

    async def list_buckets(self, tenant_id: int) -> list[Bucket]:
        async with self.ctx.db.read() as conn:
            rows = await conn.execute(
                select(buckets).where(buckets.c.tenant_id == tenant_id).order_by(buckets.c.name)
            )
            return [Bucket(r.id, r.tenant_id, r.name, r.versioning, r.created_at) for r in rows]

    async def delete_bucket(self, tenant_id: int, name: str) -> None:
        async with self.ctx.db.transaction() as conn:
            b = await _bucket(conn, tenant_id, name)
            used = (
                await conn.execute(select(func.count()).where(objects.c.bucket_id == b.id))
            ).scalar_one()
            if used:
                raise Conflict(f"bucket {name} is not empty", code="BucketNotEmpty")
            await conn.execute(delete(buckets).where(buckets.c.id == b.id))

    async def set_versioning(self, tenant_id: int, name: str, status: str) -> None:
        if status not in ("Enabled", "Suspended"):
            raise InvalidRequest(
                "versioning status must be Enabled or Suspended", code="MalformedXML"
            )
        async with self.ctx.db.transaction() as conn:
            b = await _bucket(conn, tenant_id, name)
            await conn.execute(
                update(buckets).where(buckets.c.id == b.id).values(versioning=status)
            )

    # -- objects --------------------------------------------------------------------

    async def put(
        self,
        tenant_id: int,
        bucket: str,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> StoredObject:
        """Store a new version of `key` (or replace the only one when unversioned)."""
        check_object_key(key)
        _check_attributes(content_type, metadata)
        b = await self.get_bucket(tenant_id, bucket)
        blob_key = f"objects/{b.id}/{uuid.uuid4().hex}"
        info = await self.blobs.put_stream(blob_key, chunks)
        return await self._record(
            b, key, blob_key, info.size, info.md5, info.sha256, info.md5, content_type, metadata
        )

    async def _record(
        self,
        b: Bucket,
        key: str,
        blob_key: str,
        size: int,
        etag: str,
        sha256: str,
        md5: str,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
    ) -> StoredObject:
        versioned = b.versioning == "Enabled"
        version_id = uuid.uuid4().hex if versioned else NULL_VERSION
        replaced: list[str] = []
        try:
            async with self.ctx.db.transaction() as conn:
                latest = and_(objects.c.bucket_id == b.id, objects.c.key == key)
                if not versioned:
                    old = (
                        await conn.execute(
                            delete(objects)
                            .where(latest, objects.c.version_id == NULL_VERSION)
                            .returning(objects.c.blob_key)
                        )
                    ).scalars()
                    replaced = [k for k in old if k]
                await conn.execute(update(objects).where(latest).values(is_latest=False))
                await conn.execute(
                    insert(objects).values(
                        bucket_id=b.id,
                        key=key,
                        version_id=version_id,
                        is_latest=True,
                        blob_key=blob_key,
                        size=size,
                        etag=etag,
                        sha256=sha256,
                        md5=md5,
                        content_type=content_type,
                        metadata=dict(metadata or {}),
                        created_at=self.ctx.clock.now(),
                    )
                )
        except Exception:
            await self.blobs.delete(blob_key)  # no row names it: a refused write stores nothing
            raise
        for k in replaced:
            await self.blobs.delete(k)
        return await self.get(b.tenant_id, b.name, key, version_id)

    async def get(
        self, tenant_id: int, bucket: str, key: str, version_id: str | None = None
    ) -> StoredObject:
        """The latest version of `key`, or the named version. A delete marker as the
        latest version means the key does not exist."""
        _check_existing_bucket_name(bucket)
        _check_texts(key=key, versionId=version_id)
        if _names_nothing(key, version_id):
            await self.get_bucket(tenant_id, bucket)  # NoSuchBucket first, as for any key
            raise _no_such_object(bucket, key, version_id)
        if version_id is None:
            read = self._latest
            found = await read.all(bucket=bucket, key=key)
        else:
            read = self._version
            found = await read.all(bucket=bucket, key=key, version_id=version_id)
        if not found or found[0][0] != tenant_id:
            raise NotFound(f"bucket {bucket} does not exist", code="NoSuchBucket")
        row = SimpleNamespace(**dict(zip(read.keys, found[0], strict=True)))
        if row.key is None or (version_id is None and row.delete_marker):
            raise _no_such_object(bucket, key, version_id)
        return _object(row, bucket)

    async def delete(
        self, tenant_id: int, bucket: str, key: str, version_id: str | None = None
    ) -> StoredObject | None:
        """Delete as S3 does: a version by id; in a versioned bucket without an id,
        add a delete marker; otherwise remove the object. Returns the delete marker."""
        _check_texts(key=key, versionId=version_id)
        check_key_length(key)  # a versioned bucket's delete marker is written under it
        b = await self.get_bucket(tenant_id, bucket)
        if _names_nothing(key, version_id):
            return None  # no such version: nothing to delete
        gone: list[str] = []
        marker: StoredObject | None = None
        async with self.ctx.db.transaction() as conn:
            latest = and_(objects.c.bucket_id == b.id, objects.c.key == key)
            if version_id is None and b.versioning == "Enabled":
                await conn.execute(update(objects).where(latest).values(is_latest=False))
                mid = uuid.uuid4().hex
                await conn.execute(
                    insert(objects).values(
                        bucket_id=b.id,
                        key=key,
                        version_id=mid,
                        is_latest=True,
                        delete_marker=True,
                        size=0,
                        created_at=self.ctx.clock.now(),
                    )
                )
                marker = StoredObject(
                    bucket, key, mid, None, 0, None, None, None, None, delete_marker=True
                )
            else:
                target = (
                    latest
                    if version_id is None
                    else and_(latest, objects.c.version_id == version_id)
                )
                rows = (
                    await conn.execute(
                        delete(objects)
                        .where(target)
                        .returning(objects.c.blob_key, objects.c.is_latest)
                    )
                ).all()
                gone = [r.blob_key for r in rows if r.blob_key]
                if any(r.is_latest for r in rows):
                    newest = (
                        select(objects.c.id)
                        .where(latest)
                        .order_by(objects.c.created_at.desc(), objects.c.id.desc())
                        .limit(1)
                    )
                    await conn.execute(
                        update(objects)
                        .where(objects.c.id.in_(newest.scalar_subquery()))
                        .values(is_latest=True)
                    )
        for k in gone:
            await self.blobs.delete(k)
        return marker

    async def list(
        self,
        tenant_id: int,
        bucket: str,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int = 1000,
        delimiter: str | None = None,
    ) -> Listing:
        """Latest versions in key order (ListObjectsV2), with common prefixes."""
        _check_texts(prefix=prefix, after=after, delimiter=delimiter)
        b = await self.get_bucket(tenant_id, bucket)
        q = select(objects).where(
            objects.c.bucket_id == b.id,
            objects.c.is_latest.is_(True),
            objects.c.delete_marker.is_(False),
        )
        if prefix:
            q = q.where(objects.c.key.startswith(prefix, autoescape=True))
        if after:
            q = q.where(objects.c.key > after)
        found: list[StoredObject] = []
        prefixes: list[str] = []
        last: str | None = None
        truncated = False
        q = q.order_by(objects.c.key)
        if not delimiter:
            q = q.limit(limit + 1)
        async with self.ctx.db.read() as conn:
            rows = (await conn.execute(q)).all()
        for r in rows:
            if len(found) + len(prefixes) >= limit:
                truncated = True
                break
            if delimiter:
                rest = r.key[len(prefix) :]
                cut = rest.find(delimiter)
                if cut >= 0:
                    common = prefix + rest[: cut + len(delimiter)]
                    if not prefixes or prefixes[-1] != common:
                        prefixes.append(common)
                    last = r.key
                    continue
            found.append(_object(r, bucket))
            last = r.key
        return Listing(found, prefixes, truncated, last if truncated else None)

    # -- multipart ------------------------------------------------------------------

    async def start_multipart(
        self,
        tenant_id: int,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        check_object_key(key)
        _check_attributes(content_type, metadata)
        b = await self.get_bucket(tenant_id, bucket)
        upload_id = uuid.uuid4().hex
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                insert(multipart_uploads).values(
                    id=upload_id,
                    bucket_id=b.id,
                    key=key,
                    content_type=content_type,
                    metadata=dict(metadata or {}),
                    created_at=self.ctx.clock.now(),
                )
            )
        return upload_id

    async def upload_part(
        self,
        tenant_id: int,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        chunks: AsyncIterator[bytes],
    ) -> str:
        """Store one part; returns its ETag (the part's MD5)."""
        if not 1 <= number <= MAX_PARTS:
            raise InvalidRequest("part numbers run from 1 to 10000", code="InvalidArgument")
        await self._upload(tenant_id, bucket, key, upload_id)
        blob_key = f"uploads/{upload_id}/{number}"
        info = await self.blobs.put_stream(blob_key, chunks)
        async with self.ctx.db.transaction() as conn:
            await conn.execute(
                delete(multipart_parts).where(
                    multipart_parts.c.upload_id == upload_id,
                    multipart_parts.c.part_number == number,
                )
            )
            await conn.execute(
                insert(multipart_parts).values(
                    upload_id=upload_id,
                    part_number=number,
                    blob_key=blob_key,
                    size=info.size,
                    etag=info.md5,
                    md5=info.md5,
                    created_at=self.ctx.clock.now(),
                )
            )
        return info.md5

    async def complete_multipart(
        self,
        tenant_id: int,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
    ) -> StoredObject:
        """Join the named parts, in order, into the object; the ETag is S3's
        md5-of-part-md5s followed by the part count."""
        upload = await self._upload(tenant_id, bucket, key, upload_id)
        if not parts:
            raise InvalidRequest("name at least one part", code="MalformedXML")
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise InvalidRequest("parts must be in ascending order", code="InvalidPartOrder")
        async with self.ctx.db.read() as conn:
            stored = {
                r.part_number: r
                for r in await conn.execute(
                    select(multipart_parts).where(multipart_parts.c.upload_id == upload_id)
                )
            }
        chosen = []
        for i, (n, etag) in enumerate(parts):
            part = stored.get(n)
            if part is None or part.etag != etag.strip('"'):
                raise InvalidRequest(f"part {n} was not uploaded as named", code="InvalidPart")
            if i < len(parts) - 1 and part.size < MIN_PART:
                raise InvalidRequest(f"part {n} is smaller than 5 MiB", code="EntityTooSmall")
            chosen.append(part)
        b = await self.get_bucket(tenant_id, bucket)
        blob_key = f"objects/{b.id}/{uuid.uuid4().hex}"

        async def joined() -> AsyncIterator[bytes]:
            for part in chosen:
                async for chunk in self.blobs.open_range(part.blob_key):
                    yield chunk

        info = await self.blobs.put_stream(blob_key, joined())
        combined = hashlib.md5(b"".join(bytes.fromhex(p.md5) for p in chosen)).hexdigest()
        result = await self._record(
            b,
            key,
            blob_key,
            info.size,
            f"{combined}-{len(chosen)}",
            info.sha256,
            info.md5,
            upload.content_type,
            upload.metadata,
        )
        await self._drop_upload(upload_id, list(stored.values()))
        return result

    async def abort_multipart(self, tenant_id: int, bucket: str, key: str, upload_id: str) -> None:
        await self._upload(tenant_id, bucket, key, upload_id)
        async with self.ctx.db.read() as conn:
            parts = list(
                await conn.execute(
                    select(multipart_parts).where(multipart_parts.c.upload_id == upload_id)
                )
            )
        await self._drop_upload(upload_id, parts)

    async def _upload(self, tenant_id: int, bucket: str, key: str, upload_id: str) -> Any:
        _check_texts(key=key, uploadId=upload_id)
        b = await self.get_bucket(tenant_id, bucket)
        if _names_nothing(key) or len(upload_id) > MAX_UPLOAD_ID:
            raise NotFound("no such upload", code="NoSuchUpload")
        async with self.ctx.db.read() as conn:
            row = (
                await conn.execute(
                    select(multipart_uploads).where(
                        multipart_uploads.c.id == upload_id,
                        multipart_uploads.c.bucket_id == b.id,
                        multipart_uploads.c.key == key,
                    )
                )
            ).first()
        if row is None:
            raise NotFound("no such upload", code="NoSuchUpload")
        return row

    async def _drop_upload(self, upload_id: str, parts: Sequence[Any]) -> None:
        async with self.ctx.db.transaction() as conn:
            await conn.execute(delete(multipart_uploads).where(multipart_uploads.c.id == upload_id))
        for p in parts:
            await self.blobs.delete(p.blob_key)


def check_bucket_name(name: str) -> str:
    """`name` if S3 allows it for a new bucket; InvalidRequest (InvalidBucketName) if not."""
    if (
        not _BUCKET.fullmatch(name)
        or ".." in name
        or _IP_SHAPED.fullmatch(name)
        or name.startswith(_RESERVED_PREFIXES)
        or name.endswith(_RESERVED_SUFFIXES)
    ):
        raise InvalidRequest(
            "The specified bucket is not valid: bucket names are 3 to 63 lowercase letters, "
            "digits, dots and hyphens, begin and end with a letter or digit, and are not "
            "formatted as an IP address",
            code="InvalidBucketName",
        )
    return name


def listable(text: str) -> bool:
    """True if the store can hold `text` and XML 1.0 can carry it in a listing."""
    return _UNLISTABLE.search(text) is None


def check_object_key(key: str) -> str:
    """`key` if both clouds can store and list it: 1 to 1024 bytes of UTF-8 without
    the characters XML 1.0 cannot carry (NUL, C0 controls but tab, LF and CR, lone
    surrogates, U+FFFE, U+FFFF). InvalidRequest with S3's code otherwise."""
    if not listable(key):
        raise InvalidRequest(
            "Object keys may not contain NUL, control characters other than tab, "
            "LF and CR, lone surrogates, U+FFFE or U+FFFF",
            code="InvalidArgument",
        )
    return check_key_length(key)


def check_key_length(key: str) -> str:
    """`key` if it is 1 to 1024 bytes of UTF-8, as S3 requires of every key it is
    sent; InvalidRequest (KeyTooLongError) if not."""
    if not key or _key_too_long(key):
        raise InvalidRequest(
            f"Object keys are 1 to {MAX_KEY_BYTES} bytes long", code="KeyTooLongError"
        )
    return key


def _key_too_long(key: str) -> bool:
    return len(key.encode(errors="surrogatepass")) > MAX_KEY_BYTES


def _names_nothing(key: str, version_id: str | None = None) -> bool:
    """True if no stored object can have `key` (and `version_id`): longer than any
    write takes, so looking it up could find nothing."""
    return _key_too_long(key) or (version_id is not None and len(version_id) > MAX_VERSION_ID)


def _no_such_object(bucket: str, key: str, version_id: str | None) -> NotFound:
    code = "NoSuchKey" if version_id is None else "NoSuchVersion"
    return NotFound(f"no object {key} in {bucket}", code=code)


def _check_texts(**values: str | None) -> None:
    """Each named string, where given, is text the store can hold (no NUL, no lone
    surrogate): checked before it reaches a query."""
    for name, value in values.items():
        if value is not None:
            try:
                check_text(value, name)
            except Refused as exc:
                raise InvalidRequest(str(exc), code="InvalidArgument") from None


def _check_attributes(content_type: str | None, metadata: Mapping[str, str] | None) -> None:
    _check_texts(content_type=content_type)
    if content_type is not None and len(content_type) > MAX_CONTENT_TYPE:
        raise InvalidRequest(
            f"Content-Type is longer than {MAX_CONTENT_TYPE} characters", code="InvalidArgument"
        )
    for name, value in (metadata or {}).items():
        _check_texts(metadata=name, metadata_value=value)


def _check_existing_bucket_name(name: str) -> None:
    # Buckets named before a rule was added stay reachable: only what no bucket can hold.
    if len(name) > MAX_BUCKET_NAME or not listable(name):
        raise InvalidRequest("The specified bucket is not valid.", code="InvalidBucketName")


async def _bucket(conn: AsyncConnection, tenant_id: int, name: str) -> Bucket:
    _check_existing_bucket_name(name)
    row = (await conn.execute(select(buckets).where(buckets.c.name == name))).first()
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"bucket {name} does not exist", code="NoSuchBucket")
    return Bucket(row.id, row.tenant_id, row.name, row.versioning, row.created_at)
