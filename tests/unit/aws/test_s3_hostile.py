"""Hostile input to the S3 face, in process, on both databases: every bad request gets
S3's own 400 in S3's XML error shape, stores nothing, and no key can make a later
listing (or an error echoing it) invalid XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from sqlalchemy import func, select

from otahub.aws.s3 import MAX_DOCUMENT
from otahub.core.services import Services
from otahub.core.services.objects import MIN_PART
from otahub.domain.clock import FakeClock
from otahub.store.tables import objects
from tests.unit.aws.harness import BASE, KEY, REGION, SECRET, AwsConsole, aws_console

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
BUCKET = "fw-hostile"
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<VersioningConfiguration><Status>&lol3;</Status></VersioningConfiguration>"
)
# S3 takes no DTD: an entity is refused even where its expansion would be a valid value.
ENABLED_BY_ENTITY = (
    b'<!DOCTYPE v [<!ENTITY e "Enabled">]>'
    b"<VersioningConfiguration><Status>&e;</Status></VersioningConfiguration>"
)


class S3:
    """Requests signed as boto3's s3 client signs them (S3SigV4Auth: the path as sent,
    the payload's SHA-256 in x-amz-content-sha256), sent through the in-process app."""

    def __init__(self, aws: AwsConsole, clock: FakeClock, blobs: Path) -> None:
        self.aws, self.clock, self.blobs = aws, clock, blobs
        self.credentials = botocore.credentials.Credentials(KEY, SECRET)

    async def send(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        url = BASE + path + (f"?{query}" if query else "")
        signed = self.sign(method, url, body, headers)
        return await self.aws.http.request(method, url, content=body, headers=signed)

    def sign(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The headers to send, with the signature, dated by the fake clock."""
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        at = self.clock.now().replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            botocore.auth.S3SigV4Auth(self.credentials, "s3", REGION).add_auth(request)
        return dict(request.headers.items())

    async def ok(self, method: str, path: str, query: str = "", body: bytes = b"") -> Any:
        reply = await self.send(method, path, query, body)
        assert reply.status_code < 300, reply.text
        return reply

    async def keys(self, query: str = "list-type=2") -> list[str]:
        """The keys of a listing, which must parse as XML 1.0."""
        reply = await self.ok("GET", f"/{BUCKET}", query)
        doc = ET.fromstring(reply.content)
        return [k.text or "" for k in doc.iter(f"{NS}Key")]

    def stored_blobs(self) -> list[Path]:
        return [p for p in (self.blobs / "objects").rglob("*") if p.is_file()]


def error_of(reply: Any) -> tuple[int, str]:
    """(status, S3 error code) of a reply, whose body must be well-formed XML."""
    doc = ET.fromstring(reply.content)
    return reply.status_code, doc.findtext("Code") or ""


@pytest.fixture
async def s3(
    services: Services, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[S3]:
    async with aws_console(services, clock, tmp_path) as aws:
        client = S3(aws, clock, tmp_path / "blobs")
        await client.ok("PUT", f"/{BUCKET}")
        yield client
    failed = [r for r in caplog.records if r.name == "otahub.aws.s3"]
    assert not failed, "a request failed with a traceback"


async def _upload_id(s3: S3, key: str) -> str:
    reply = await s3.ok("POST", f"/{BUCKET}/{key}", "uploads")
    return ET.fromstring(reply.content).findtext(f"{NS}UploadId") or ""


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"",
        b"<Other/>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>9223372036854775808</PartNumber>"
        b"<ETag>e</ETag></Part></CompleteMultipartUpload>",
        BILLION_LAUGHS.replace(b"VersioningConfiguration", b"CompleteMultipartUpload"),
    ],
    ids=["truncated", "empty", "wrong-root", "no-etag", "garbage-number", "int64", "entities"],
)
async def test_a_malformed_complete_multipart_is_malformed_xml_and_stores_nothing(
    s3: S3, body: bytes
) -> None:
    upload = await _upload_id(s3, "fw.bin")
    await s3.ok("PUT", f"/{BUCKET}/fw.bin", f"partNumber=1&uploadId={upload}", b"part")
    reply = await s3.send("POST", f"/{BUCKET}/fw.bin", f"uploadId={upload}", body)
    assert error_of(reply) == (400, "MalformedXML")
    assert await s3.keys() == []


@pytest.mark.parametrize(
    "body",
    [b"<VersioningConfiguration><Status>Enabled", b"<x", BILLION_LAUGHS, ENABLED_BY_ENTITY],
    ids=["truncated", "garbage", "billion-laughs", "entity"],
)
async def test_a_malformed_versioning_document_is_malformed_xml(s3: S3, body: bytes) -> None:
    reply = await s3.send("PUT", f"/{BUCKET}", "versioning", body)
    assert error_of(reply) == (400, "MalformedXML")
    got = await s3.ok("GET", f"/{BUCKET}", "versioning")
    assert ET.fromstring(got.content).findtext(f"{NS}Status") is None


async def test_a_document_past_the_limit_is_refused_unread(s3: S3) -> None:
    body = b"<VersioningConfiguration>" + b" " * MAX_DOCUMENT + b"</VersioningConfiguration>"
    reply = await s3.send("PUT", f"/{BUCKET}", "versioning", body)
    assert error_of(reply) == (400, "MaxMessageLengthExceeded")


@pytest.mark.parametrize(
    "name",
    [
        "192.168.1.1",
        "10.0.0.255",
        "xn--bucket",
        "sthree-bucket",
        "amzn-s3-demo-bucket",
        "bucket-s3alias",
        "bucket--ol-s3",
        "bucket--x-s3",
        "ab",
        "a" * 64,
        "a..b",
        "Upper",
        "-start",
        "end-",
        "under_score",
        "trailing%0A",
        "nul%00bucket",
    ],
)
async def test_a_bucket_name_s3_refuses_is_invalid_bucket_name(s3: S3, name: str) -> None:
    reply = await s3.send("PUT", f"/{name}")
    assert error_of(reply) == (400, "InvalidBucketName")
    listing = ET.fromstring((await s3.ok("GET", "/")).content)
    assert [n.text for n in listing.iter(f"{NS}Name")] == [BUCKET]


async def test_bucket_names_s3_allows_still_work(s3: S3) -> None:
    for name in ("a.b-c", "1.2.3", "192.168.1.1.5", "abc", "x" * 63):
        await s3.ok("PUT", f"/{name}")


@pytest.mark.parametrize("key", ["a%00b", "%00", "a%01b", "a%1Fb", "%EF%BF%BE"])
async def test_a_key_no_listing_could_carry_is_refused_and_stores_nothing(s3: S3, key: str) -> None:
    await s3.ok("PUT", f"/{BUCKET}/plain.bin", body=b"ok")
    reply = await s3.send("PUT", f"/{BUCKET}/{key}", body=b"data")
    assert error_of(reply) == (400, "InvalidArgument")
    reply = await s3.send("POST", f"/{BUCKET}/{key}", "uploads")
    assert error_of(reply) == (400, "InvalidArgument")
    assert await s3.keys() == ["plain.bin"]
    assert len(s3.stored_blobs()) == 1


async def test_a_key_that_is_not_utf8_is_an_invalid_uri(s3: S3) -> None:
    reply = await s3.send("PUT", f"/{BUCKET}/fw%FF.bin", body=b"data")
    assert error_of(reply) == (400, "InvalidURI")
    assert await s3.keys() == []


async def test_an_error_that_echoes_a_control_character_key_is_valid_xml(s3: S3) -> None:
    reply = await s3.send("GET", f"/{BUCKET}/a%01b")
    assert error_of(reply) == (404, "NoSuchKey")


async def test_keys_with_tab_lf_and_cr_list_back_exactly(s3: S3) -> None:
    key = "dir/a b+c\t\n\r%.bin"
    await s3.ok("PUT", f"/{BUCKET}/dir/a%20b%2Bc%09%0A%0D%25.bin", body=b"x")
    assert await s3.keys() == [key]
    listing = ET.fromstring((await s3.ok("GET", f"/{BUCKET}", "encoding-type=url")).content)
    assert listing.findtext(f"{NS}EncodingType") == "url"
    assert listing.findtext(f"{NS}Contents/{NS}Key") == "dir/a%20b%2Bc%09%0A%0D%25.bin"
    reply = await s3.send("GET", f"/{BUCKET}", "encoding-type=base64")
    assert error_of(reply) == (400, "InvalidArgument")


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&max-keys=9223372036854775808",
        "list-type=2&max-keys=99999999999999999999999999999",
        "list-type=2&max-keys=-1",
        "list-type=2&max-keys=ten",
        "list-type=2&prefix=%00",
        "list-type=2&start-after=a%00",
        "list-type=2&delimiter=%01",
        "list-type=2&prefix=%FF",
    ],
)
async def test_bad_listing_parameters_are_400s(s3: S3, query: str) -> None:
    reply = await s3.send("GET", f"/{BUCKET}", query)
    status, code = error_of(reply)
    assert status == 400 and code in ("InvalidArgument", "InvalidURI")


@pytest.mark.parametrize("number", ["9223372036854775808", "0", "10001", "1e3", "%D9%A3"])
async def test_a_part_number_out_of_range_is_invalid_argument(s3: S3, number: str) -> None:
    upload = await _upload_id(s3, "fw.bin")
    query = f"partNumber={number}&uploadId={upload}"
    reply = await s3.send("PUT", f"/{BUCKET}/fw.bin", query, b"part")
    assert error_of(reply) == (400, "InvalidArgument")


async def test_nul_in_an_upload_id_or_version_id_is_refused(s3: S3) -> None:
    reply = await s3.send("PUT", f"/{BUCKET}/fw.bin", "partNumber=1&uploadId=%00", b"part")
    assert error_of(reply) == (400, "InvalidArgument")
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "versionId=a%00")
    assert error_of(reply) == (400, "InvalidArgument")


async def test_nul_in_metadata_or_content_type_stores_nothing(s3: S3) -> None:
    for headers in ({"x-amz-meta-build": "4\x002"}, {"content-type": "text/\x00"}):
        reply = await s3.send("PUT", f"/{BUCKET}/fw.bin", body=b"data", headers=headers)
        assert error_of(reply) == (400, "InvalidArgument")
        reply = await s3.send("POST", f"/{BUCKET}/fw.bin", "uploads", headers=headers)
        assert error_of(reply) == (400, "InvalidArgument")
    assert await s3.keys() == []
    assert s3.stored_blobs() == []


async def test_list_parts_is_not_served_as_get_object(s3: S3) -> None:
    await s3.ok("PUT", f"/{BUCKET}/fw.bin", body=b"image")
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "uploadId=abc")
    assert error_of(reply) == (501, "NotImplemented")


async def test_a_header_that_is_not_utf8_is_a_400(s3: S3) -> None:
    url = f"{BASE}/{BUCKET}/fw.bin"
    headers = [(k.encode(), v.encode()) for k, v in s3.sign("PUT", url, b"x").items()]
    headers.append((b"x-amz-meta-a", b"\xff"))
    reply = await s3.aws.http.request("PUT", url, content=b"x", headers=headers)
    assert error_of(reply) == (400, "InvalidArgument")
    assert await s3.keys() == []


# -- every request that names a key holds it to S3's 1,024 bytes ------------------------

LONG_KEY = "k" * 1025
VERSIONING_ENABLED = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"


async def _stored_rows(s3: S3) -> int:
    """Rows of the object catalog, delete markers included."""
    async with s3.aws.objects.ctx.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(objects))).scalar_one())


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("DELETE", ""),
        ("GET", ""),
        ("GET", "versionId=v1"),
        ("PUT", ""),
        ("POST", "uploads"),
        ("PUT", "partNumber=1&uploadId=u1"),
        ("POST", "uploadId=u1"),
        ("DELETE", "uploadId=u1"),
    ],
)
async def test_a_key_past_1024_bytes_is_key_too_long_on_every_call_and_stores_nothing(
    s3: S3, method: str, query: str, versioned: bool
) -> None:
    if versioned:  # where a delete writes a marker
        await s3.ok("PUT", f"/{BUCKET}", "versioning", VERSIONING_ENABLED)
    reply = await s3.send(method, f"/{BUCKET}/{LONG_KEY}", query, b"data")
    assert error_of(reply) == (400, "KeyTooLongError")
    head = await s3.send("HEAD", f"/{BUCKET}/{LONG_KEY}")
    assert head.status_code == 400
    assert await _stored_rows(s3) == 0
    assert s3.stored_blobs() == []


async def test_a_key_of_1024_multibyte_bytes_is_stored_and_one_more_is_too_long(s3: S3) -> None:
    fits = "%C3%BC" * 512  # ü, two bytes in UTF-8
    await s3.ok("PUT", f"/{BUCKET}/{fits}", body=b"x")
    await s3.ok("DELETE", f"/{BUCKET}/{fits}")
    reply = await s3.send("DELETE", f"/{BUCKET}/{fits}a")
    assert error_of(reply) == (400, "KeyTooLongError")


async def test_a_content_type_longer_than_its_column_is_refused_and_stores_nothing(
    s3: S3,
) -> None:
    headers = {"content-type": "application/" + "x" * 250}
    reply = await s3.send("PUT", f"/{BUCKET}/fw.bin", body=b"data", headers=headers)
    assert error_of(reply) == (400, "InvalidArgument")
    reply = await s3.send("POST", f"/{BUCKET}/fw.bin", "uploads", headers=headers)
    assert error_of(reply) == (400, "InvalidArgument")
    assert await _stored_rows(s3) == 0
    assert s3.stored_blobs() == []


async def test_metadata_past_2_kb_is_metadata_too_large_and_stores_nothing(s3: S3) -> None:
    fits = {"x-amz-meta-a": "v" * 2047}
    await s3.ok("PUT", f"/{BUCKET}/fits.bin", body=b"x")
    reply = await s3.send("PUT", f"/{BUCKET}/fits.bin", body=b"x", headers=fits)
    assert reply.status_code == 200
    too_large = {"x-amz-meta-a": "v" * 2048}
    reply = await s3.send("PUT", f"/{BUCKET}/fw.bin", body=b"data", headers=too_large)
    assert error_of(reply) == (400, "MetadataTooLarge")
    assert await s3.keys() == ["fits.bin"]


@pytest.mark.parametrize(
    ("path", "query"),
    [("/" + "b" * 64, ""), ("/" + "b" * 64 + "/fw.bin", ""), ("/" + "b" * 64, "list-type=2")],
)
async def test_a_bucket_name_past_63_characters_is_invalid_on_every_call(
    s3: S3, path: str, query: str
) -> None:
    for method in ("GET", "DELETE"):
        reply = await s3.send(method, path, query)
        assert error_of(reply) == (400, "InvalidBucketName")


async def test_a_path_with_an_empty_bucket_names_no_bucket(s3: S3) -> None:
    reply = await s3.send("PUT", "//fzbucket", "partNumber=1&uploadId=u1")
    assert error_of(reply) == (400, "InvalidBucketName")
    reply = await s3.send("GET", "//fw.bin")
    assert error_of(reply) == (400, "InvalidBucketName")
    listing = ET.fromstring((await s3.ok("GET", "/")).content)
    assert [n.text for n in listing.iter(f"{NS}Name")] == [BUCKET]


async def test_a_copy_is_not_served_as_an_empty_put(s3: S3) -> None:
    await s3.ok("PUT", f"/{BUCKET}/fw.bin", body=b"image")
    copy = {"x-amz-copy-source": f"/{BUCKET}/fw.bin"}
    reply = await s3.send("PUT", f"/{BUCKET}/copy.bin", headers=copy)
    assert error_of(reply) == (501, "NotImplemented")
    upload = await _upload_id(s3, "big.bin")
    query = f"partNumber=1&uploadId={upload}"
    reply = await s3.send("PUT", f"/{BUCKET}/big.bin", query, headers=copy)
    assert error_of(reply) == (501, "NotImplemented")
    assert await s3.keys() == ["fw.bin"]


# -- request documents --------------------------------------------------------------------

DEEP = b"<a>" * 3000 + b"</a>" * 3000


@pytest.mark.parametrize(
    "body",
    [
        b"<CreateBucketConfiguration><LocationConstraint>eu-west-1",
        b"\xff\xfe\x00garbage",
        b'<!DOCTYPE a [<!ENTITY x "eu-west-1">]><CreateBucketConfiguration>'
        b"<LocationConstraint>&x;</LocationConstraint></CreateBucketConfiguration>",
        DEEP,
        b"<CreateBucketConfiguration>" + DEEP + b"</CreateBucketConfiguration>",
        b"<VersioningConfiguration/>",
    ],
    ids=["truncated", "not-xml", "entity", "deep", "deep-inside", "wrong-root"],
)
async def test_a_malformed_create_bucket_configuration_is_malformed_xml(
    s3: S3, body: bytes
) -> None:
    reply = await s3.send("PUT", "/fw-new", body=body)
    assert error_of(reply) == (400, "MalformedXML")
    assert (await s3.send("HEAD", "/fw-new")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<CreateBucketConfiguration xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
        b"<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>",
    ],
    ids=["empty", "location"],
)
async def test_create_bucket_takes_an_empty_body_or_a_configuration(s3: S3, body: bytes) -> None:
    await s3.ok("PUT", "/fw-new", body=body)
    await s3.ok("HEAD", "/fw-new")


@pytest.mark.parametrize(
    "junk",
    [b"<a>" * 3000 + b"</a>" * 3000, b"<a/>" * 100_001],
    ids=["3000-deep", "100001-elements"],
)
async def test_a_document_deeper_or_larger_than_s3_takes_is_malformed_xml(
    s3: S3, junk: bytes
) -> None:
    body = b"<VersioningConfiguration><Status>Enabled</Status>" + junk
    reply = await s3.send("PUT", f"/{BUCKET}", "versioning", body + b"</VersioningConfiguration>")
    assert error_of(reply) == (400, "MalformedXML")
    got = await s3.ok("GET", f"/{BUCKET}", "versioning")
    assert ET.fromstring(got.content).findtext(f"{NS}Status") is None


# -- integer query values -----------------------------------------------------------------

NOT_PART_NUMBERS = ["NaN", "Infinity", "1e309", "18446744073709551616", "0", "10001", "true"]


@pytest.mark.parametrize("number", NOT_PART_NUMBERS)
async def test_get_or_head_with_a_part_number_out_of_range_is_invalid_argument(
    s3: S3, number: str
) -> None:
    await s3.ok("PUT", f"/{BUCKET}/fw.bin", body=b"image")
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", f"partNumber={number}")
    assert error_of(reply) == (400, "InvalidArgument")
    head = await s3.send("HEAD", f"/{BUCKET}/fw.bin", f"partNumber={number}")
    assert head.status_code == 400


async def test_part_numbers_of_an_object_stored_whole(s3: S3) -> None:
    await s3.ok("PUT", f"/{BUCKET}/fw.bin", body=b"image")
    reply = await s3.ok("GET", f"/{BUCKET}/fw.bin", "partNumber=1")
    assert reply.content == b"image"
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "partNumber=2")
    assert error_of(reply) == (416, "InvalidPartNumber")
    ranged = {"range": "bytes=0-1"}
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "partNumber=1", headers=ranged)
    assert error_of(reply) == (400, "InvalidRequest")


async def _multipart(s3: S3, key: str, *parts: bytes) -> None:
    upload = await _upload_id(s3, key)
    listed = ""
    for number, part in enumerate(parts, 1):
        query = f"partNumber={number}&uploadId={upload}"
        etag = (await s3.ok("PUT", f"/{BUCKET}/{key}", query, part)).headers["etag"]
        listed += f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
    document = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>"
    await s3.ok("POST", f"/{BUCKET}/{key}", f"uploadId={upload}", document.encode())


async def test_a_part_of_a_multipart_object_is_not_served_as_the_whole(s3: S3) -> None:
    await _multipart(s3, "fw.bin", b"a" * MIN_PART, b"b")
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "partNumber=1")
    assert error_of(reply) == (501, "NotImplemented")
    reply = await s3.send("GET", f"/{BUCKET}/fw.bin", "partNumber=3")
    assert error_of(reply) == (416, "InvalidPartNumber")
    await _multipart(s3, "one.bin", b"whole")
    assert (await s3.ok("GET", f"/{BUCKET}/one.bin", "partNumber=1")).content == b"whole"


@pytest.mark.parametrize("count", ["true", "NaN", "Infinity", "18446744073709551616", "0", "10001"])
async def test_list_buckets_with_max_buckets_out_of_range_is_invalid_argument(
    s3: S3, count: str
) -> None:
    reply = await s3.send("GET", "/", f"max-buckets={count}")
    assert error_of(reply) == (400, "InvalidArgument")


async def test_list_buckets_pages_by_max_buckets(s3: S3) -> None:
    for name in ("fw-a", "fw-b", "other"):
        await s3.ok("PUT", f"/{name}")
    seen: list[str] = []
    token = ""
    while True:
        query = "max-buckets=2&prefix=fw-" + (f"&continuation-token={token}" if token else "")
        page = ET.fromstring((await s3.ok("GET", "/", query)).content)
        seen += [n.text or "" for n in page.iter(f"{NS}Name")]
        assert page.findtext(f"{NS}Prefix") == "fw-"
        token = page.findtext(f"{NS}ContinuationToken") or ""
        if not token:
            break
    assert seen == ["fw-a", "fw-b", BUCKET]
