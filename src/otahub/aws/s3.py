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
from urllib.parse import parse_qsl, quote, unquote
from xml.parsers import expat

from starlette.types import Receive, Scope, Send

from otahub.aws.wire import sigv4
from otahub.aws.wire.errors import AwsError
from otahub.blobs.ranges import RangeNotSatisfiable, parse_range
from otahub.core.services import Services
from otahub.core.services.objects import (
    MAX_PARTS,
    ObjectService,
    StoredObject,
    check_key_length,
    listable,
)
from otahub.domain.clock import Clock
from otahub.domain.errors import AlreadyExists, Conflict, InvalidRequest, NotFound, OtahubError
from otahub.domain.limits import INT32_MAX, INT32_MIN, Refused, parse_int

log = logging.getLogger("otahub.aws.s3")
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
    "InvalidPartNumber": 416,
    "MethodNotAllowed": 405,
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
# Larger than any request document S3 takes (a CompleteMultipartUpload of 10,000
# parts with checksums is under 2 MB), small enough to hold in memory.
MAX_DOCUMENT = 4 * 1024 * 1024
# No S3 request document nests more than a few elements, and the largest (that
# same CompleteMultipartUpload) holds under 100,000: past either, a body is no S3
# document, and ElementTree never builds it.
MAX_DOCUMENT_DEPTH = 16
MAX_DOCUMENT_ELEMENTS = 100_000
MAX_METADATA_BYTES = 2048  # S3's bound on the x-amz-meta-* names and values together
MAX_BUCKETS_PAGE = 10_000
MALFORMED_XML = (
    "The XML you provided was not well-formed or did not validate against our published schema"
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
            headers = _headers(scope)
            raw_path = _uri_text(scope.get("raw_path") or scope["path"].encode())
            raw_query = _uri_text(scope.get("query_string", b""))
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
            query = _query(raw_query)
            bucket, key = _bucket_and_key(raw_path)
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


def _invalid_uri() -> S3Error:
    return S3Error("InvalidURI", "Couldn't parse the specified URI.")


def _uri_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise _invalid_uri() from None


def _bucket_and_key(raw_path: str) -> tuple[str, str]:
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_uri() from None
    bucket, slash, key = path.removeprefix("/").partition("/")
    if slash and not bucket:  # "//name" names no bucket; it is not the bucket "name"
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.")
    return bucket, key


def _query(raw_query: str) -> dict[str, str]:
    """The query's parameters; every name and value is text an S3 answer can echo."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_uri() from None
    if not all(listable(name) and listable(value) for name, value in pairs):
        raise S3Error(
            "InvalidArgument", "Query parameters may not contain NUL or control characters."
        )
    return dict(pairs)


def _headers(scope: Scope) -> dict[str, str]:
    try:
        return {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "Header values must be UTF-8 text.") from None


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
        if m == "PUT" and "x-amz-copy-source" in self.headers:  # CopyObject, UploadPartCopy
            raise S3Error("NotImplemented", "otahub does not implement copying objects")
        if self.key:
            check_key_length(self.key)
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
                return await self.create_bucket()
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
            if m in ("GET", "HEAD") and "uploadId" not in q:  # with one: ListParts
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
        """A small body whole (a request document): MaxMessageLengthExceeded past
        MAX_DOCUMENT, so no client can make the server hold more."""
        body = bytearray()
        async for chunk in self._body():
            body += chunk
            if len(body) > MAX_DOCUMENT:
                raise S3Error("MaxMessageLengthExceeded", "Your request was too big.")
        return bytes(body)

    async def _document(self, root: str) -> ET.Element:
        return _parse_document(await self._drain(), root)

    def _metadata(self) -> dict[str, str]:
        metadata = {
            k[len("x-amz-meta-") :]: v
            for k, v in self.headers.items()
            if k.startswith("x-amz-meta-")
        }
        size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
        if size > MAX_METADATA_BYTES:
            raise S3Error(
                "MetadataTooLarge",
                f"Your metadata headers exceed the maximum allowed metadata size "
                f"of {MAX_METADATA_BYTES} bytes",
            )
        return metadata

    # -- operations -----------------------------------------------------------------

    async def list_buckets(self) -> None:
        """The tenant's buckets in name order; with `max-buckets`, a page of them and
        the token (the last name given) that continues after it."""
        q = self.query
        limit = _max_buckets(q["max-buckets"]) if "max-buckets" in q else None
        prefix, after = q.get("prefix", ""), q.get("continuation-token", "")
        # Sorted here, not by the database's collation, so that pages follow `after`.
        owned = sorted(await self.objects.list_buckets(self.tenant), key=lambda b: b.name)
        found = [b for b in owned if b.name.startswith(prefix) and b.name > after]
        page = found if limit is None else found[:limit]
        root = _el("ListAllMyBucketsResult")
        owner = ET.SubElement(root, "Owner")
        ET.SubElement(owner, "ID").text = str(self.tenant)
        items = ET.SubElement(root, "Buckets")
        for b in page:
            node = ET.SubElement(items, "Bucket")
            ET.SubElement(node, "Name").text = b.name
            ET.SubElement(node, "CreationDate").text = _iso(b.created_at)
        if len(page) < len(found):
            ET.SubElement(root, "ContinuationToken").text = page[-1].name
        if "prefix" in q:
            ET.SubElement(root, "Prefix").text = prefix
        await _xml(self.send, root)

    async def create_bucket(self) -> None:
        body = await self._drain()
        if body:  # an empty body is the default configuration
            _parse_document(body, "CreateBucketConfiguration")
        await self.objects.create_bucket(self.tenant, self.bucket)
        await _respond(self.send, 200, {"Location": f"/{self.bucket}"})

    async def put_versioning(self) -> None:
        doc = await self._document("VersioningConfiguration")
        status = _child_text(doc, "Status")
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
        part = self._part_asked()
        obj = await self.objects.get(
            self.tenant, self.bucket, self.key, self.query.get("versionId")
        )
        if part is not None:
            _check_whole_object_part(obj, part)
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

    def _part_asked(self) -> int | None:
        """The part a GetObject or HeadObject names with `partNumber`, if any."""
        if "partNumber" not in self.query:
            return None
        number = _part_number(self.query["partNumber"])
        if "range" in self.headers:
            raise S3Error(
                "InvalidRequest", "Cannot specify both Range header and partNumber query parameter"
            )
        return number

    async def list_objects(self) -> None:
        q = self.query
        encoded = _key_encoding(q.get("encoding-type"))
        after = q.get("continuation-token") or q.get("start-after") or None
        limit = min(_max_keys(q.get("max-keys", "1000")), 1000)
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
            ("Prefix", encoded(q.get("prefix", ""))),
            ("KeyCount", str(len(listing.objects) + len(listing.prefixes))),
            ("MaxKeys", str(limit)),
            ("IsTruncated", "true" if listing.truncated else "false"),
        ):
            ET.SubElement(root, tag).text = value
        if "encoding-type" in q:
            ET.SubElement(root, "EncodingType").text = "url"
        if listing.next_marker:
            ET.SubElement(root, "NextContinuationToken").text = listing.next_marker
        for o in listing.objects:
            node = ET.SubElement(root, "Contents")
            ET.SubElement(node, "Key").text = encoded(o.key)
            ET.SubElement(node, "LastModified").text = _iso(o.created_at)
            ET.SubElement(node, "ETag").text = f'"{o.etag}"'
            ET.SubElement(node, "Size").text = str(o.size)
            ET.SubElement(node, "StorageClass").text = "STANDARD"
        for p in listing.prefixes:
            ET.SubElement(ET.SubElement(root, "CommonPrefixes"), "Prefix").text = encoded(p)
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
        number = _part_number(self.query["partNumber"])
        etag = await self.objects.upload_part(
            self.tenant, self.bucket, self.key, self.query["uploadId"], number, self._body()
        )
        await _respond(self.send, 200, {"ETag": f'"{etag}"'})

    async def complete_multipart(self) -> None:
        doc = await self._document("CompleteMultipartUpload")
        parts = [_part(node) for node in doc if _local(node.tag) == "Part"]
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


def _part_number(text: str) -> int:
    try:
        return parse_int(text, "partNumber", 1, MAX_PARTS)
    except Refused:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive",
        ) from None


def _check_whole_object_part(obj: StoredObject, number: int) -> None:
    """`number` names the whole object: its only part. The catalog keeps no part
    bounds of an object uploaded in several, so no single one of them is served."""
    etag = obj.etag or ""
    parts = int(etag.rpartition("-")[2]) if "-" in etag else 1  # ETag: md5-<part count>
    if number > parts:
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable")
    if parts > 1:
        raise S3Error("NotImplemented", "otahub does not serve single parts of an object")


def _max_buckets(text: str) -> int:
    try:
        return parse_int(text, "max-buckets", 1, MAX_BUCKETS_PAGE)
    except Refused:
        raise S3Error(
            "InvalidArgument",
            f"max-buckets must be an integer between 1 and {MAX_BUCKETS_PAGE}, inclusive",
        ) from None


def _max_keys(text: str) -> int:
    try:
        return parse_int(text, "max-keys", 0, INT32_MAX)
    except Refused:
        raise S3Error(
            "InvalidArgument", "Provided max-keys not an integer or within integer range"
        ) from None


def _key_encoding(requested: str | None) -> Callable[[str], str]:
    """How a listing writes keys and prefixes: as they are, or percent-encoded
    (`encoding-type=url`, which botocore asks for and decodes)."""
    if requested is None:
        return str
    if requested != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return _url_encoded


def _url_encoded(text: str) -> str:
    return quote(text, safe="/")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child_text(node: ET.Element, name: str) -> str | None:
    """The text of `node`'s first child called `name` (any namespace), or None."""
    return next((child.text or "" for child in node if _local(child.tag) == name), None)


def _part(node: ET.Element) -> tuple[int, str]:
    """(PartNumber, ETag) of a CompleteMultipartUpload's Part."""
    number, etag = _child_text(node, "PartNumber"), _child_text(node, "ETag")
    if number is None or etag is None:
        raise S3Error("MalformedXML", MALFORMED_XML)
    try:
        return parse_int(number, "PartNumber", INT32_MIN, INT32_MAX), etag
    except Refused:
        raise S3Error("MalformedXML", MALFORMED_XML) from None


def _refuse_declaration(*_: object) -> None:
    raise S3Error("MalformedXML", MALFORMED_XML)


class _Shape:
    """Counts a document's elements and nesting as expat reads it, refusing past
    the bounds of any S3 document."""

    def __init__(self) -> None:
        self.depth = 0
        self.elements = 0

    def start(self, *_: object) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > MAX_DOCUMENT_DEPTH or self.elements > MAX_DOCUMENT_ELEMENTS:
            raise S3Error("MalformedXML", MALFORMED_XML)

    def end(self, *_: object) -> None:
        self.depth -= 1


def _parse_document(body: bytes, root: str) -> ET.Element:
    """A request document whose root element is `root`; MalformedXML otherwise.

    S3 takes no DTD, so a DOCTYPE is refused before expat reads a declaration
    from it: no entity is ever defined, and so none is expanded. Nor is a tree
    built of a document deeper or larger than S3 takes."""
    scan, shape = expat.ParserCreate(), _Shape()
    scan.StartDoctypeDeclHandler = _refuse_declaration
    scan.EntityDeclHandler = _refuse_declaration
    scan.StartElementHandler = shape.start
    scan.EndElementHandler = shape.end
    try:
        scan.Parse(body, True)
        doc = ET.fromstring(body)
    except (expat.ExpatError, ET.ParseError):
        raise S3Error("MalformedXML", MALFORMED_XML) from None
    if _local(doc.tag) != root:
        raise S3Error("MalformedXML", MALFORMED_XML)
    return doc


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


def _render(root: ET.Element) -> bytes:
    """The document, valid XML 1.0 whatever text it carries: a character XML cannot
    hold (say, in a key an error message echoes) becomes U+FFFD, and CR is written as a
    reference, which parsers keep (a literal CR they would read as LF)."""
    for node in root.iter():
        if node.text and not listable(node.text):
            node.text = "".join(ch if listable(ch) else "\ufffd" for ch in node.text)
    document = ET.tostring(root)  # ASCII: any other character as a reference
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + document.replace(b"\r", b"&#13;")


async def _xml(send: Send, root: ET.Element, headers: Mapping[str, str] | None = None) -> None:
    body = _render(root)
    await _respond(send, 200, {**(headers or {}), "Content-Type": "application/xml"}, body)


async def _error(send: Send, method: str, code: str, message: str, request_id: str) -> None:
    root = ET.Element("Error")
    for tag, value in (("Code", code), ("Message", message), ("RequestId", request_id)):
        ET.SubElement(root, tag).text = value
    body = b"" if method == "HEAD" else _render(root)
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    await _start(send, STATUS.get(code, 400), {**headers, "Content-Length": str(len(body))})
    await send({"type": "http.response.body", "body": body})
