"""The S3-compatible endpoint for boto3's `s3` client (path-style): buckets,
versioning, objects with ranges, listings and multipart uploads, over the object
catalog. Bodies stream in and out; nothing is held whole in memory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.types import Receive, Scope, Send

from otahub.blobs.ranges import RangeNotSatisfiable, parse_range
from otahub.core.clock import Clock
from otahub.core.errors import AlreadyExists, Conflict, InvalidRequest, NotFound, OtahubError
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService, StoredObject
from otahub.faces.aws.wire import sigv4
from otahub.faces.aws.wire.errors import AwsError

log = logging.getLogger("otahub.faces.s3")
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
# What this endpoint answers, by the operation names of botocore's s3 model.
OPERATIONS = frozenset(
    {
        "ListBuckets",
        "CreateBucket",
        "HeadBucket",
        "DeleteBucket",
        "PutBucketVersioning",
        "GetBucketVersioning",
        "ListObjectsV2",
        "PutObject",
        "GetObject",
        "HeadObject",
        "DeleteObject",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
    }
)
STATUS = {
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchVersion": 404,
    "NoSuchUpload": 404,
    "BucketAlreadyOwnedByYou": 409,
    "BucketAlreadyExists": 409,
    "BucketNotEmpty": 409,
    "InvalidAccessKeyId": 403,
    "SignatureDoesNotMatch": 403,
    "AccessDenied": 403,
    "RequestTimeTooSkewed": 403,
    "AuthorizationQueryParametersError": 400,
    "InvalidRange": 416,
    "NotImplemented": 501,
    "InternalError": 500,
}
# Query parameters that name a sub-resource: a request with one this endpoint does
# not answer is refused, never served as the plain bucket or object call.
_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "uploads",
        "versioning",
        "versions",
        "website",
    ]
)
_SIGV4_TO_S3 = {
    "UnrecognizedClientException": "InvalidAccessKeyId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "MissingAuthenticationTokenException": "AccessDenied",
    "IncompleteSignatureException": "AccessDenied",
}


class _Crc32:
    """zlib's CRC-32 behind hashlib's update/digest, as S3 encodes it (big-endian)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _BodyChecksums:
    """The body checksums a client declared in headers (Content-MD5 and the
    x-amz-checksum-* that botocore adds to every upload), checked as the body
    streams; a mismatch is S3's BadDigest (InvalidDigest for a malformed value)."""

    HEADERS: dict[str, tuple[str, Callable[[], Any]]] = {
        "content-md5": ("MD5", lambda: hashlib.md5(usedforsecurity=False)),
        "x-amz-checksum-crc32": ("CRC32", _Crc32),
        "x-amz-checksum-sha1": ("SHA1", lambda: hashlib.sha1(usedforsecurity=False)),
        "x-amz-checksum-sha256": ("SHA256", hashlib.sha256),
    }

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.pending: list[tuple[str, bytes, Any]] = []
        for header, (name, make) in self.HEADERS.items():
            if header not in headers:
                continue
            try:
                expected = base64.b64decode(headers[header], validate=True)
            except ValueError:
                raise S3Error("InvalidDigest", f"The {header} you specified was invalid.") from None
            self.pending.append((name, expected, make()))

    def update(self, chunk: bytes) -> None:
        for _, _, digest in self.pending:
            digest.update(chunk)

    def verify(self) -> None:
        for name, expected, digest in self.pending:
            if digest.digest() != expected:
                what = "Content-MD5" if name == "MD5" else name
                raise S3Error(
                    "BadDigest", f"The {what} you specified did not match the calculated checksum."
                )


class S3Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class S3App:
    def __init__(self, services: Services, objects: ObjectService, clock: Clock) -> None:
        self.services = services
        self.objects = objects
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = uuid.uuid4().hex.upper()
        method = scope["method"]
        try:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            raw_path = scope.get("raw_path", scope["path"].encode()).decode()
            raw_query = scope.get("query_string", b"").decode()
            try:
                if "authorization" not in headers and sigv4.is_v2_presigned(raw_query):
                    signed = await sigv4.verify_v2_presigned(
                        method,
                        raw_path,
                        raw_query,
                        headers,
                        self.services.accounts.lookup_key,
                        self.clock.now(),
                    )
                else:
                    signed = await sigv4.verify(
                        method,
                        raw_path,
                        raw_query,
                        headers,
                        b"",
                        self.services.accounts.lookup_key,
                        self.clock.now(),
                        double_encode=False,
                    )
            except sigv4.SignatureError as err:
                raise S3Error(err.s3_code, err.message) from None
            except AwsError as err:
                raise S3Error(_SIGV4_TO_S3.get(err.code, "AccessDenied"), err.message) from None
            tenant = (await self.services.accounts.tenant(signed.account_id)).id
            query = dict(parse_qsl(raw_query, keep_blank_values=True))
            path = unquote(raw_path).lstrip("/")
            bucket, _, key = path.partition("/")
            ctx = _Request(self, tenant, method, bucket, key, query, headers, receive, send)
            await ctx.dispatch()
        except S3Error as err:
            await _error(send, method, err.code, err.message, request_id)
        except OtahubError as exc:
            code = exc.details.get("code") or _core_code(exc)
            await _error(send, method, code, exc.message, request_id)
        except Exception:
            log.exception("S3 request failed")
            await _error(send, method, "InternalError", "otahub failed", request_id)


def _core_code(exc: OtahubError) -> str:
    if isinstance(exc, NotFound):
        return "NoSuchKey"
    if isinstance(exc, AlreadyExists | Conflict):
        return "OperationAborted"
    if isinstance(exc, InvalidRequest):
        return "InvalidArgument"
    return "InternalError"


class _Request:
    def __init__(
        self,
        app: S3App,
        tenant: int,
        method: str,
        bucket: str,
        key: str,
        query: dict[str, str],
        headers: dict[str, str],
        receive: Receive,
        send: Send,
    ) -> None:
        self.app, self.tenant, self.method = app, tenant, method
        self.bucket, self.key, self.query, self.headers = bucket, key, query, headers
        self.receive, self.send = receive, send
        self.objects = app.objects

    async def dispatch(self) -> None:
        m, q = self.method, self.query
        handled = {"versioning"} if not self.key else set()
        if self.key and m == "POST":
            handled.add("uploads")
        unknown = sorted((q.keys() & _SUBRESOURCES) - handled)
        if unknown:
            raise S3Error(
                "NotImplemented", f"otahub does not implement this S3 call ({m} ?{unknown[0]})"
            )
        if not self.bucket:
            if m == "GET":
                return await self.list_buckets()
            raise S3Error("MethodNotAllowed", "not on the service root")
        if not self.key:
            if m == "PUT" and "versioning" in q:
                return await self.put_versioning()
            if m == "GET" and "versioning" in q:
                return await self.get_versioning()
            if m == "PUT":
                await self._drain()
                await self.objects.create_bucket(self.tenant, self.bucket)
                return await _respond(self.send, 200, {"Location": f"/{self.bucket}"})
            if m == "HEAD":
                await self.objects.get_bucket(self.tenant, self.bucket)
                return await _respond(self.send, 200, {})
            if m == "DELETE":
                await self.objects.delete_bucket(self.tenant, self.bucket)
                return await _respond(self.send, 204, {})
            if m == "GET":
                return await self.list_objects()
        else:
            if m == "PUT" and "partNumber" in q and "uploadId" in q:
                return await self.upload_part()
            if m == "PUT":
                return await self.put_object()
            if m == "POST" and "uploads" in q:
                return await self.create_multipart()
            if m == "POST" and "uploadId" in q:
                return await self.complete_multipart()
            if m == "DELETE" and "uploadId" in q:
                await self.objects.abort_multipart(
                    self.tenant, self.bucket, self.key, q["uploadId"]
                )
                return await _respond(self.send, 204, {})
            if m in ("GET", "HEAD"):
                return await self.get_object(head=m == "HEAD")
            if m == "DELETE":
                marker = await self.objects.delete(
                    self.tenant, self.bucket, self.key, q.get("versionId")
                )
                extra = (
                    {"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_id}
                    if marker
                    else {}
                )
                return await _respond(self.send, 204, extra)
        raise S3Error("NotImplemented", f"otahub does not implement this S3 call ({m})")

    # -- bodies ---------------------------------------------------------------------

    async def _body(self) -> AsyncIterator[bytes]:
        """The request body, checked against the signed SHA-256 as it streams."""
        declared = self.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        if declared.startswith("STREAMING-"):
            raise S3Error("NotImplemented", "aws-chunked uploads are not supported yet")
        digest = hashlib.sha256()
        checks = _BodyChecksums(self.headers)
        while True:
            message = await self.receive()
            chunk = message.get("body", b"")
            if chunk:
                digest.update(chunk)
                checks.update(chunk)
                yield chunk
            if not message.get("more_body"):
                break
        if declared != "UNSIGNED-PAYLOAD" and digest.hexdigest() != declared:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        checks.verify()

    async def _drain(self) -> bytes:
        return b"".join([c async for c in self._body()])

    def _metadata(self) -> dict[str, str]:
        return {
            k[len("x-amz-meta-") :]: v
            for k, v in self.headers.items()
            if k.startswith("x-amz-meta-")
        }

    # -- operations -----------------------------------------------------------------

    async def list_buckets(self) -> None:
        root = _el("ListAllMyBucketsResult")
        owner = ET.SubElement(root, "Owner")
        ET.SubElement(owner, "ID").text = str(self.tenant)
        items = ET.SubElement(root, "Buckets")
        for b in await self.objects.list_buckets(self.tenant):
            node = ET.SubElement(items, "Bucket")
            ET.SubElement(node, "Name").text = b.name
            ET.SubElement(node, "CreationDate").text = _iso(b.created_at)
        await _xml(self.send, root)

    async def put_versioning(self) -> None:
        doc = ET.fromstring(await self._drain() or b"<x/>")
        status = next((e.text for e in doc.iter() if e.tag.endswith("Status")), None)
        await self.objects.set_versioning(self.tenant, self.bucket, status or "")
        await _respond(self.send, 200, {})

    async def get_versioning(self) -> None:
        b = await self.objects.get_bucket(self.tenant, self.bucket)
        root = _el("VersioningConfiguration")
        if b.versioning != "Disabled":
            ET.SubElement(root, "Status").text = b.versioning
        await _xml(self.send, root)

    async def put_object(self) -> None:
        stored = await self.objects.put(
            self.tenant,
            self.bucket,
            self.key,
            self._body(),
            content_type=self.headers.get("content-type"),
            metadata=self._metadata(),
        )
        await _respond(self.send, 200, _object_headers(stored, with_size=False))

    async def get_object(self, *, head: bool) -> None:
        obj = await self.objects.get(
            self.tenant, self.bucket, self.key, self.query.get("versionId")
        )
        headers = _object_headers(obj)
        try:
            rng = parse_range(self.headers.get("range"), obj.size)
        except RangeNotSatisfiable:
            raise S3Error("InvalidRange", "The requested range is not satisfiable") from None
        start, end, status = 0, obj.size, 200
        if rng is not None:
            start, end, status = rng.start, rng.stop, 206
            headers["Content-Range"] = f"bytes {rng.start}-{rng.stop - 1}/{obj.size}"
        headers["Content-Length"] = str(end - start)
        await _start(self.send, status, headers)
        if head or obj.blob_key is None or end <= start:
            await self.send({"type": "http.response.body", "body": b""})
            return
        async for chunk in self.objects.blobs.open_range(obj.blob_key, start, end):
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        await self.send({"type": "http.response.body", "body": b""})

    async def list_objects(self) -> None:
        q = self.query
        after = q.get("continuation-token") or q.get("start-after") or None
        limit = min(int(q.get("max-keys", "1000")), 1000)
        listing = await self.objects.list(
            self.tenant,
            self.bucket,
            prefix=q.get("prefix", ""),
            after=after,
            limit=limit,
            delimiter=q.get("delimiter") or None,
        )
        root = _el("ListBucketResult")
        for tag, value in (
            ("Name", self.bucket),
            ("Prefix", q.get("prefix", "")),
            ("KeyCount", str(len(listing.objects) + len(listing.prefixes))),
            ("MaxKeys", str(limit)),
            ("IsTruncated", "true" if listing.truncated else "false"),
        ):
            ET.SubElement(root, tag).text = value
        if listing.next_marker:
            ET.SubElement(root, "NextContinuationToken").text = listing.next_marker
        for o in listing.objects:
            node = ET.SubElement(root, "Contents")
            ET.SubElement(node, "Key").text = o.key
            ET.SubElement(node, "LastModified").text = _iso(o.created_at)
            ET.SubElement(node, "ETag").text = f'"{o.etag}"'
            ET.SubElement(node, "Size").text = str(o.size)
            ET.SubElement(node, "StorageClass").text = "STANDARD"
        for p in listing.prefixes:
            ET.SubElement(ET.SubElement(root, "CommonPrefixes"), "Prefix").text = p
        await _xml(self.send, root)

    async def create_multipart(self) -> None:
        await self._drain()
        upload = await self.objects.start_multipart(
            self.tenant,
            self.bucket,
            self.key,
            content_type=self.headers.get("content-type"),
            metadata=self._metadata(),
        )
        root = _el("InitiateMultipartUploadResult")
        ET.SubElement(root, "Bucket").text = self.bucket
        ET.SubElement(root, "Key").text = self.key
        ET.SubElement(root, "UploadId").text = upload
        await _xml(self.send, root)

    async def upload_part(self) -> None:
        try:
            number = int(self.query["partNumber"])
        except ValueError:
            raise S3Error("InvalidArgument", "partNumber must be a number") from None
        etag = await self.objects.upload_part(
            self.tenant, self.bucket, self.key, self.query["uploadId"], number, self._body()
        )
        await _respond(self.send, 200, {"ETag": f'"{etag}"'})

    async def complete_multipart(self) -> None:
        try:
            doc = ET.fromstring(await self._drain())
        except ET.ParseError:
            raise S3Error("MalformedXML", "the body is not the XML S3 expects") from None
        parts = []
        for part in (e for e in doc.iter() if e.tag.endswith("Part")):
            number = next(c.text for c in part if c.tag.endswith("PartNumber"))
            etag = next(c.text for c in part if c.tag.endswith("ETag"))
            parts.append((int(number or 0), etag or ""))
        stored = await self.objects.complete_multipart(
            self.tenant, self.bucket, self.key, self.query["uploadId"], parts
        )
        root = _el("CompleteMultipartUploadResult")
        ET.SubElement(root, "Location").text = f"/{self.bucket}/{self.key}"
        ET.SubElement(root, "Bucket").text = self.bucket
        ET.SubElement(root, "Key").text = self.key
        ET.SubElement(root, "ETag").text = f'"{stored.etag}"'
        extra = {"x-amz-version-id": stored.version_id} if stored.version_id != "null" else {}
        await _xml(self.send, root, extra)


def _object_headers(obj: StoredObject, *, with_size: bool = True) -> dict[str, str]:
    headers = {"ETag": f'"{obj.etag}"', "Accept-Ranges": "bytes"}
    if obj.version_id != "null":
        headers["x-amz-version-id"] = obj.version_id
    if with_size:
        headers["Content-Type"] = obj.content_type or "binary/octet-stream"
        if obj.created_at is not None:
            headers["Last-Modified"] = obj.created_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
        for k, v in obj.metadata.items():
            headers[f"x-amz-meta-{k}"] = v
    return headers


def _el(tag: str) -> ET.Element:
    return ET.Element(tag, xmlns=NS)


def _iso(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z") if when else ""


async def _start(send: Send, status: int, headers: Mapping[str, str]) -> None:
    raw = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})


async def _respond(send: Send, status: int, headers: Mapping[str, Any], body: bytes = b"") -> None:
    await _start(send, status, {**headers, "Content-Length": str(len(body))})
    await send({"type": "http.response.body", "body": body})


async def _xml(send: Send, root: ET.Element, headers: Mapping[str, str] | None = None) -> None:
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)
    await _respond(send, 200, {**(headers or {}), "Content-Type": "application/xml"}, body)


async def _error(send: Send, method: str, code: str, message: str, request_id: str) -> None:
    root = ET.Element("Error")
    for tag, value in (("Code", code), ("Message", message), ("RequestId", request_id)):
        ET.SubElement(root, tag).text = value
    body = (
        b""
        if method == "HEAD"
        else (b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root))
    )
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    await _start(send, STATUS.get(code, 400), {**headers, "Content-Length": str(len(body))})
    await send({"type": "http.response.body", "body": body})
