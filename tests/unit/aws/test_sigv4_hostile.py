"""SigV4 and S3 presigned auth under hostile input: a body swapped under a valid
signature, dates no calendar holds, signatures of any characters, bytes that are not
text. Each is refused with the API's own auth error (403, or S3's XML), never a 500,
and a refused request stores nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from otahub.aws.wire import sigv4
from otahub.aws.wire.sigv4 import SignatureError
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from tests.unit.aws import harness
from tests.unit.aws.harness import AwsConsole, aws_console, error_of
from tests.unit.aws.test_sigv4 import KEY, PATH, SECRET, SIGNED_AT, lookup_with

# -- the verifier alone -------------------------------------------------------------


def presigned_query(
    *, date: str = "20260301T120000Z", expires: str = "300", signature: str = "0" * 64
) -> str:
    return urllib.parse.urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{KEY}/{date[:8]}/us-east-1/iot-jobs-data/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": signature,
        },
        errors="surrogatepass",
    )


async def refusal(
    raw_query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    now: datetime = SIGNED_AT,
) -> SignatureError:
    with pytest.raises(SignatureError) as err:
        await sigv4.verify(
            "GET", PATH, raw_query, {"host": "h", **(headers or {})}, body, lookup_with(SECRET), now
        )
    return err.value


def signed(body: bytes, *, declared: str | None = None) -> dict[str, str]:
    """Headers of a GET carrying `body` as botocore signs it, `declared` as its
    x-amz-content-sha256 (which botocore then signs as the payload hash)."""
    req = AWSRequest(
        method="GET",
        url=f"http://h{PATH}",
        data=body,
        headers={} if declared is None else {"x-amz-content-sha256": declared},
    )
    at = SIGNED_AT.replace(tzinfo=None)  # botocore's clock is naive UTC
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        SigV4Auth(Credentials(KEY, SECRET), "iot-jobs-data", "us-east-1").add_auth(req)
    return {"host": "h", **{k.lower(): v for k, v in req.headers.items()}}


async def test_a_declared_payload_hash_must_be_the_body_received() -> None:
    good, evil = b'{"status": "SUCCEEDED"}', b'{"status": "FAILED"}'
    headers = signed(good, declared=hashlib.sha256(good).hexdigest())
    await sigv4.verify("GET", PATH, "", headers, good, lookup_with(SECRET), SIGNED_AT)
    err = await refusal(headers=headers, body=evil)
    assert (err.code, err.status) == ("InvalidSignatureException", 403)


async def test_unsigned_payload_is_for_s3_only() -> None:
    headers = signed(b"{}", declared="UNSIGNED-PAYLOAD")
    err = await refusal(headers=headers, body=b"{}")
    assert err.code == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("declared", "s3_code"),
    [(None, "InvalidRequest"), ("garbage", "InvalidArgument"), ("A" * 64, "InvalidArgument")],
)
async def test_s3_needs_a_payload_hash_it_can_check_the_stream_against(
    declared: str | None, s3_code: str
) -> None:
    """S3 signs the declared hash and checks its streamed body against it: without one
    (or with one that is no hash) the body would be covered by nothing."""
    headers = {k: v for k, v in signed(b"").items() if k != "x-amz-content-sha256"}
    if declared is not None:
        headers["x-amz-content-sha256"] = declared
    with pytest.raises(SignatureError) as err:
        await sigv4.verify(
            "PUT", PATH, "", headers, b"", lookup_with(SECRET), SIGNED_AT, double_encode=False
        )
    assert err.value.s3_code == s3_code


@pytest.mark.parametrize("date", ["99991231T235959Z", "99991231T000000Z"])
async def test_presigned_url_dated_9999_is_refused(date: str) -> None:
    err = await refusal(presigned_query(date=date, expires="604800"))
    assert (err.code, err.status) == ("InvalidSignatureException", 403)


async def test_presigned_url_from_year_1_has_expired() -> None:
    err = await refusal(presigned_query(date="00010101T000000Z"))
    assert "expired" in err.message


@pytest.mark.parametrize(
    "expires", ["0", "-1", "604801", "9" * 30, "9" * 5000, "soon", "", "1e3", "\u0661\u0662", "1_0"]
)
async def test_presigned_expiry_outside_one_second_to_a_week_is_refused(expires: str) -> None:
    err = await refusal(presigned_query(expires=expires))
    assert (err.code, err.s3_code) == (
        "IncompleteSignatureException",
        "AuthorizationQueryParametersError",
    )


@pytest.mark.parametrize(
    "date", ["\uff12\uff10\uff12\uff16\uff10\uff13\uff10\uff11T120000Z", "20260301T120000Z\n", "x"]
)
async def test_garbage_amz_dates_are_refused(date: str) -> None:
    for err in (
        await refusal(presigned_query(date=date)),
        await refusal(headers={**signed(b""), "x-amz-date": date}),
    ):
        assert err.code in ("IncompleteSignatureException", "InvalidSignatureException")


@pytest.mark.parametrize("minutes", [6, -6, 60 * 24 * 365 * 7000])
async def test_the_header_form_holds_five_minutes_either_way(minutes: int) -> None:
    headers = signed(b"")
    await sigv4.verify(
        "GET", PATH, "", headers, b"", lookup_with(SECRET), SIGNED_AT + timedelta(minutes=4)
    )
    err = await refusal(headers=headers, now=SIGNED_AT + timedelta(minutes=minutes))
    assert err.s3_code == "RequestTimeTooSkewed"


@pytest.mark.parametrize("signature", ["é" * 64, "\u0660" * 64, "0" * 63 + "\udc80", "0" * 65, "z"])
async def test_signatures_of_any_characters_are_compared_as_bytes(signature: str) -> None:
    err = await refusal(presigned_query(signature=signature))
    assert (err.code, err.status) == ("InvalidSignatureException", 403)
    auth = signed(b"")["authorization"][:-64] + signature
    err = await refusal(headers={**signed(b""), "authorization": auth})
    assert err.code == "InvalidSignatureException"


async def test_an_unparsable_authorization_header_is_incomplete() -> None:
    err = await refusal(headers={"authorization": "AWS4-HMAC-SHA256 Credential=é"})
    assert (err.code, err.status) == ("IncompleteSignatureException", 403)


async def test_an_access_key_the_store_cannot_hold_is_unknown_without_asking() -> None:
    async def lookup(key: str) -> tuple[str, str] | None:
        raise AssertionError(f"asked the store for {key!r}")

    query = presigned_query().replace(KEY, "AK%00ID")
    with pytest.raises(SignatureError) as err:
        await sigv4.verify("GET", PATH, query, {"host": "h"}, b"", lookup, SIGNED_AT)
    assert err.value.code == "UnrecognizedClientException"


def v2_query(expires: str, signature: str = "AAAA") -> str:
    return urllib.parse.urlencode(
        {"AWSAccessKeyId": KEY, "Expires": expires, "Signature": signature}
    )


@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        (str(int(SIGNED_AT.timestamp()) + 60), "é"),  # non-ASCII signature
        (str(int(SIGNED_AT.timestamp()) + 60), "\u0661"),
        ("9" * 25, "AAAA"),  # past 64 bits
        ("253402300799", "AAAA"),  # 9999-12-31: a URL that never expires
        ("-1", "AAAA"),
        ("soon", "AAAA"),
    ],
)
async def test_v2_presigned_urls_of_any_characters_or_expiry_are_refused(
    expires: str, signature: str
) -> None:
    with pytest.raises(SignatureError) as err:
        await sigv4.verify_v2_presigned(
            "GET", "/b/k", v2_query(expires, signature), {}, lookup_with(SECRET), SIGNED_AT
        )
    assert err.value.status == 403
    assert err.value.s3_code in ("AccessDenied", "SignatureDoesNotMatch")


# -- the whole chain, on both databases ----------------------------------------------

BUCKET = "fw-auth"


@pytest.fixture
async def aws(services: Services, clock: FakeClock, tmp_path: Path) -> AsyncIterator[AwsConsole]:
    async with aws_console(services, clock, tmp_path) as console:
        yield console


def blob_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def signed_by_botocore(
    aws: AwsConsole,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    service: str = "iot",
    s3: bool = False,
) -> dict[str, Any]:
    """The headers botocore sends with this request (S3SigV4Auth when `s3`: it
    declares the payload's SHA-256 in x-amz-content-sha256)."""
    request = AWSRequest(
        method=method, url=harness.BASE + path, data=body, headers=dict(headers or {})
    )
    signer = (S3SigV4Auth if s3 else SigV4Auth)(
        Credentials(harness.KEY, harness.SECRET), "s3" if s3 else service, harness.REGION
    )
    at = aws.clock.now().replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        signer.add_auth(request)
    return dict(request.headers.items())


async def send_signed(
    aws: AwsConsole,
    service: str,
    method: str,
    path: str,
    *,
    signed_body: bytes,
    sent_body: bytes,
    headers: Mapping[str, str] | None = None,
    s3: bool = False,
) -> Any:
    """Sign a request carrying `signed_body`, then send `sent_body` in its place."""
    sent = signed_by_botocore(aws, method, path, signed_body, headers, service=service, s3=s3)
    return await aws.http.request(method, harness.BASE + path, content=sent_body, headers=sent)


async def test_create_thing_with_a_swapped_body_is_refused_and_creates_nothing(
    aws: AwsConsole,
) -> None:
    good = json.dumps({"attributePayload": {"attributes": {"owner": "ops"}}}).encode()
    evil = json.dumps({"attributePayload": {"attributes": {"owner": "mallory"}}}).encode()
    for declared in (hashlib.sha256(good).hexdigest(), "UNSIGNED-PAYLOAD"):
        reply = await send_signed(
            aws,
            "iot",
            "POST",
            "/things/swapped",
            signed_body=good,
            sent_body=evil,
            headers={"x-amz-content-sha256": declared},
        )
        assert error_of(reply) == (403, "InvalidSignatureException"), reply.text
    assert (await aws.ok("iot", "ListThings"))["things"] == []
    reply = await send_signed(
        aws, "iot", "POST", "/things/honest", signed_body=good, sent_body=good
    )
    assert reply.status_code == 200, reply.text


async def s3_ok(aws: AwsConsole, method: str, path: str, body: bytes = b"") -> Any:
    reply = await send_signed(aws, "s3", method, path, signed_body=body, sent_body=body, s3=True)
    assert reply.status_code < 300, reply.text
    return reply


def s3_code(reply: Any) -> str:
    return reply.text.split("<Code>")[1].split("</Code>")[0]


async def test_put_object_with_a_swapped_body_stores_nothing(
    aws: AwsConsole, tmp_path: Path
) -> None:
    await s3_ok(aws, "PUT", f"/{BUCKET}")
    good, evil = b"signed firmware", b"evil firmware!!"
    declared = await send_signed(
        aws, "s3", "PUT", f"/{BUCKET}/fw.bin", signed_body=good, sent_body=evil, s3=True
    )
    assert (declared.status_code, s3_code(declared)) == (400, "XAmzContentSHA256Mismatch")
    # Signed with no x-amz-content-sha256 at all: the empty payload is what was signed.
    undeclared = await send_signed(
        aws, "s3", "PUT", f"/{BUCKET}/fw.bin", signed_body=b"", sent_body=evil
    )
    assert 400 <= undeclared.status_code < 500 and s3_code(undeclared) == "InvalidRequest"
    listing = await s3_ok(aws, "GET", f"/{BUCKET}")
    assert "<Contents>" not in listing.text
    assert blob_files(tmp_path) == []


async def test_upload_part_with_a_swapped_body_keeps_no_part(
    aws: AwsConsole, tmp_path: Path
) -> None:
    await s3_ok(aws, "PUT", f"/{BUCKET}")
    started = await s3_ok(aws, "POST", f"/{BUCKET}/big.bin?uploads")
    upload = started.text.split("<UploadId>")[1].split("</UploadId>")[0]
    reply = await send_signed(
        aws,
        "s3",
        "PUT",
        f"/{BUCKET}/big.bin?partNumber=1&uploadId={upload}",
        signed_body=b"part one",
        sent_body=b"part 1!!",
        s3=True,
    )
    assert (reply.status_code, s3_code(reply)) == (400, "XAmzContentSHA256Mismatch")
    assert blob_files(tmp_path) == []
    document = (
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        b'<ETag>"x"</ETag></Part></CompleteMultipartUpload>'
    )
    reply = await send_signed(
        aws,
        "s3",
        "POST",
        f"/{BUCKET}/big.bin?uploadId={upload}",
        signed_body=document,
        sent_body=document,
        s3=True,
    )
    assert s3_code(reply) == "InvalidPart", reply.text


async def test_aws_chunked_uploads_are_refused_and_store_nothing(
    aws: AwsConsole, tmp_path: Path
) -> None:
    await s3_ok(aws, "PUT", f"/{BUCKET}")
    for declared in ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
        reply = await send_signed(
            aws,
            "s3",
            "PUT",
            f"/{BUCKET}/chunked.bin",
            signed_body=b"5\r\nhello\r\n0\r\n\r\n",
            sent_body=b"5\r\nhello\r\n0\r\n\r\n",
            headers={"x-amz-content-sha256": declared, "content-encoding": "aws-chunked"},
        )
        assert s3_code(reply) == "NotImplemented", reply.text
    assert blob_files(tmp_path) == []


def presigned_path(path: str, service: str, date: str, signature: str = "0" * 64) -> str:
    credential = f"{harness.KEY}/{date[:8]}/{harness.REGION}/{service}/aws4_request"
    query = urllib.parse.urlencode(
        {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": credential,
            "X-Amz-Date": date,
            "X-Amz-Expires": "604800",
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": signature,
        }
    )
    return f"{path}?{query}"


async def test_presigned_urls_dated_9999_get_403(aws: AwsConsole) -> None:
    reply = await aws.http.get(presigned_path("/things", "iot", "99991231T235959Z"))
    assert error_of(reply) == (403, "InvalidSignatureException")
    reply = await aws.http.get(presigned_path(f"/{BUCKET}/k", "s3", "99991231T235959Z"))
    assert (reply.status_code, s3_code(reply)) == (403, "AccessDenied")


async def test_non_ascii_signatures_get_403(aws: AwsConsole) -> None:
    today = aws.clock.now().strftime("%Y%m%dT%H%M%SZ")
    reply = await aws.http.get(presigned_path("/things", "iot", today, "é" * 64))
    assert error_of(reply) == (403, "InvalidSignatureException")
    reply = await aws.http.get(presigned_path(f"/{BUCKET}/k", "s3", today, "é" * 64))
    assert (reply.status_code, s3_code(reply)) == (403, "SignatureDoesNotMatch")
    expires = int(aws.clock.now().timestamp()) + 60
    reply = await aws.http.get(
        f"/{BUCKET}/k?AWSAccessKeyId={harness.KEY}&Expires={expires}&Signature=%C3%A9"
    )
    assert (reply.status_code, s3_code(reply)) == (403, "SignatureDoesNotMatch")


async def test_non_utf8_authorization_gets_403(aws: AwsConsole) -> None:
    headers = signed_by_botocore(aws, "GET", "/things")
    assert (await aws.http.get("/things", headers=headers)).status_code == 200
    broken = headers["Authorization"].encode()[:-2] + b"\xff\xfe"
    reply = await aws.http.get("/things", headers={**headers, "Authorization": broken})
    assert error_of(reply) == (403, "IncompleteSignatureException")
    reply = await aws.http.get("/things", headers={**headers, "x-custom": b"\xc3\x28"})
    assert error_of(reply) == (403, "IncompleteSignatureException")
    # Sent to S3: S3 reads its own bytes and answers in its own XML.
    headers = signed_by_botocore(aws, "GET", f"/{BUCKET}", s3=True)
    reply = await aws.http.get(f"/{BUCKET}", headers={**headers, "x-custom": b"\xc3\x28"})
    assert 400 <= reply.status_code < 500 and s3_code(reply), reply.text


async def test_an_access_key_with_nul_is_unknown_on_every_store(aws: AwsConsole) -> None:
    today = aws.clock.now().strftime("%Y%m%dT%H%M%SZ")
    path = presigned_path("/things", "iot", today).replace(harness.KEY, "AK%00ID", 1)
    reply = await aws.http.get(path)
    assert error_of(reply) == (403, "UnrecognizedClientException")

