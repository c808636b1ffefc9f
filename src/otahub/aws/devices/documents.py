"""Job documents as a device receives them: `${aws:iot:s3-presigned-url:<url>}`
placeholders become download URLs of otahub, signed for that device."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qs, unquote, urlsplit

from otahub.core.services.batching import Coalescer
from otahub.core.services.objects import ObjectService, StoredObject
from otahub.domain.entities import Device, Job
from otahub.domain.errors import NotFound
from otahub.gateway.download_urls import DeviceUrls

PLACEHOLDER = re.compile(r"\$\{aws:iot:s3-presigned-url:(https?://[^}]+)\}")
DEFAULT_EXPIRES_S = 3600


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URL, path-style or virtual-hosted."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    path = unquote(parts.path).lstrip("/")
    if ".s3." in host or host.endswith(".s3.amazonaws.com"):
        return host.split(".s3", 1)[0], path
    bucket, _, key = path.partition("/")
    return bucket, key


ObjectRef = tuple[int, str, str, str | None]  # tenant, bucket, key, version


class DocumentRenderer:
    def __init__(self, objects: ObjectService, urls: DeviceUrls) -> None:
        self.objects = objects
        self.urls = urls
        # A fleet asking for its job at once looks the object up once, not per device.
        self._lookup: Coalescer[ObjectRef, StoredObject] = Coalescer(self._objects)

    async def _objects(self, refs: list[ObjectRef]) -> dict[ObjectRef, StoredObject]:
        found: dict[ObjectRef, StoredObject] = {}
        for ref in refs:
            with contextlib.suppress(NotFound):
                found[ref] = await self.objects.get(*ref)
        return found

    async def __call__(self, job: Job, device: Device, document: str | None) -> str | None:
        if not document or "${aws:iot:s3-presigned-url:" not in document:
            return document
        expires = int(
            (job.data.get("presignedUrlConfig") or {}).get("expiresInSec") or DEFAULT_EXPIRES_S
        )
        out, pos = [], 0
        for m in PLACEHOLDER.finditer(document):
            out.append(document[pos : m.start()])
            out.append(await self._url(job, device, m.group(1), expires))
            pos = m.end()
        out.append(document[pos:])
        return "".join(out)

    async def _url(self, job: Job, device: Device, s3_url: str, expires: int) -> str:
        bucket, key = s3_location(s3_url)
        # `?versionId=` pins the version the update was made of (its size, signature).
        versions = parse_qs(urlsplit(s3_url).query).get("versionId") or []
        version = versions[0] if versions else None
        obj = await self._lookup.get((job.tenant_id, bucket, key, version))
        if obj is None:
            return s3_url  # nothing of ours to sign: leave the URL as the operator wrote it
        if obj.blob_key is None:
            return s3_url
        return self.urls.url(obj.blob_key, device.id, expires)
