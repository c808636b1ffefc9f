"""Hand-made authentication cases, each of which must be refused, with nothing
stored: SigV4 headers and presigned URLs bent every way issue 18 lists, a body
swapped under a valid signature, device download URLs, and Alibaba's signature V1."""

from __future__ import annotations

import unittest.mock
import urllib.parse
from datetime import UTC, datetime, timedelta

import botocore.auth
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fuzz.harness import (
    BASE,
    KEY,
    REGION,
    SECRET,
    Campaign,
    LogWatch,
    RawRequest,
    Server,
    Verdict,
    seed_world,
)

pytestmark = pytest.mark.fuzz
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
YEAR_1970 = datetime(1970, 1, 2, tzinfo=UTC)


def get(target: str) -> RawRequest:
    return RawRequest("GET", target, {})


def create_thing(name: str, body: bytes = b"{}") -> RawRequest:
    return RawRequest("POST", f"/things/{name}", {"content-type": "application/json"}, body)


def with_header(request: RawRequest, name: str, value: str | bytes) -> RawRequest:
    headers = {k: v for k, v in request.headers.items() if k.lower() != name.lower()}
    return RawRequest(request.method, request.target, {**headers, name: value}, request.body)


def presigned(server: Server, target: str, at: datetime, expires: int = 3600) -> str:
    """A URL presigned by botocore for S3 at `at`: valid, but for that moment."""
    request = AWSRequest(method="GET", url=BASE + target)
    with unittest.mock.patch.object(
        botocore.auth, "get_current_datetime", return_value=at.replace(tzinfo=None)
    ):
        S3SigV4QueryAuth(Credentials(KEY, SECRET), "s3", REGION, expires=expires).add_auth(request)
    return request.url[len(BASE) :]


def replace_param(target: str, name: str, value: str) -> str:
    path, _, query = target.partition("?")
    pairs = [(k, value if k == name else v) for k, v in urllib.parse.parse_qsl(query)]
    return path + "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def aws_cases(server: Server) -> list[tuple[str, RawRequest]]:
    now = server.clock.now()
    good = server.aws_signed("iot", create_thing("fz-auth-0"))
    auth = str(good.headers["Authorization"])
    signature = auth.rsplit("Signature=", 1)[1]
    cases = [
        ("no signature at all", create_thing("fz-auth-1")),
        ("Authorization garbage", with_header(good, "Authorization", "AWS4-HMAC-SHA256 garbage")),
        ("signature not hex", with_header(good, "Authorization", auth.replace(signature, "z" * 9))),
        (
            "signature non-ASCII",
            with_header(good, "Authorization", auth.replace(signature, "é" * 64).encode()),
        ),
        (
            "Authorization not UTF-8",
            with_header(good, "Authorization", auth.encode()[:-64] + b"\xff\xfe" * 32),
        ),
        ("signature too short", with_header(good, "Authorization", auth[:-10])),
        ("unknown key", server.aws_signed("iot", create_thing("fz-auth-2"), key="AKIDNOBODY")),
        ("wrong secret", server.aws_signed("iot", create_thing("fz-auth-3"), secret="wrong")),
        ("signed in 9999", server.aws_signed("iot", create_thing("fz-auth-4"), at=YEAR_9999)),
        (
            "signed a day ahead",
            server.aws_signed("iot", create_thing("fz-auth-5"), at=now + timedelta(days=1)),
        ),
        ("signed in 1970", server.aws_signed("iot", create_thing("fz-auth-6"), at=YEAR_1970)),
        ("X-Amz-Date garbage", with_header(good, "X-Amz-Date", "garbage")),
        ("X-Amz-Date 9999", with_header(good, "X-Amz-Date", "99991231T235959Z")),
    ]
    signed = server.aws_signed("iot", create_thing("fz-auth-7", b'{"attributePayload": {}}'))
    swapped = RawRequest(signed.method, signed.target, signed.headers, b'{"thingTypeName": "x"}')
    cases.append(("iot body swapped under the signature", swapped))
    put = RawRequest("PUT", "/fz-bucket/swapped.bin", {}, b"the signed firmware")
    signed_put = server.aws_signed("s3", put, s3=True)
    cases.append(
        (
            "S3 body swapped under x-amz-content-sha256",
            RawRequest("PUT", put.target, signed_put.headers, b"a different firmware"),
        )
    )
    unsigned = with_header(signed_put, "x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    cases.append(("x-amz-content-sha256 changed after signing", unsigned))
    url = presigned(server, "/fz-bucket/fw.bin", YEAR_9999)
    v2 = f"/fz-bucket/fw.bin?AWSAccessKeyId={KEY}"
    cases += [
        ("presigned in 9999", get(url)),
        ("presigned garbage signature", get(replace_param(url, "X-Amz-Signature", "x"))),
        ("presigned non-ASCII signature", get(replace_param(url, "X-Amz-Signature", "é" * 64))),
        ("presigned X-Amz-Date garbage", get(replace_param(url, "X-Amz-Date", "9999"))),
        ("presigned Expires past 64 bits", get(replace_param(url, "X-Amz-Expires", "9" * 30))),
        ("presigned X-Amz-Expires -1", get(replace_param(url, "X-Amz-Expires", "-1"))),
        ("presigned Credential garbage", get(replace_param(url, "X-Amz-Credential", "\x00/x"))),
        ("presigned V2 Expires 1e30", get(f"{v2}&Signature=x&Expires=1e30")),
        ("presigned V2 Expires past 64 bits", get(f"{v2}&Signature=%C3%A9&Expires={'9' * 30}")),
    ]
    expired = presigned(server, "/fz-bucket/fw.bin", now - timedelta(hours=2), expires=60)
    cases.append(("presigned and expired", get(expired)))
    for label, query in [
        ("download URL garbage", "device=1&expires=99999999999999&signature=x"),
        ("download URL expires past 64 bits", f"device=1&expires={'9' * 30}&signature=x"),
        ("download URL non-ASCII signature", "device=1&expires=4102444800&signature=%C3%A9"),
        ("download URL no signature", "device=1&expires=4102444800"),
        ("download URL NUL device", "device=%00&expires=4102444800&signature=x"),
    ]:
        cases.append((label, get(f"/dl/fz-bucket/fw.bin?{query}")))
    return cases


def aliyun_cases(server: Server) -> list[tuple[str, RawRequest]]:
    def product(n: int, **extra: str) -> dict[str, str]:
        return {"Action": "CreateProduct", "ProductName": f"fzauth{n}", "NodeType": "0", **extra}

    def signed(n: int, **extra: str) -> str:
        return server.aliyun_target(product(n, **extra))

    def resigned_after(n: int, name: str, value: str) -> str:
        return replace_param(signed(n), name, value)

    cases = [
        ("wrong signature", resigned_after(1, "Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
        ("non-ASCII signature", resigned_after(2, "Signature", "é" * 28)),
        ("NUL in the signature", resigned_after(3, "Signature", "\x00")),
        ("empty signature", resigned_after(4, "Signature", "")),
        ("unknown AccessKeyId", resigned_after(5, "AccessKeyId", "LTAInobody")),
        ("Timestamp garbage", resigned_after(6, "Timestamp", "garbage")),
        ("signed for 9999", signed(7, Timestamp="9999-12-31T23:59:59Z")),
        ("signed for 1970", signed(8, Timestamp="1970-01-01T00:00:00Z")),
        ("Timestamp garbage, signed", signed(9, Timestamp="2026-13-45T99:99:99Z")),
        ("HMAC-MD5", signed(10, SignatureMethod="HMAC-MD5")),
        ("SignatureVersion 2.0", signed(11, SignatureVersion="2.0")),
        ("no AccessKeyId", resigned_after(12, "AccessKeyId", "")),
        ("NUL in the nonce, signed", signed(13, SignatureNonce="\x00")),
    ]
    return [(label, RawRequest("POST", target, {})) for label, target in cases]


async def test_auth(fuzz_server: tuple[Server, LogWatch]) -> None:
    server, watch = fuzz_server
    await seed_world(server)
    campaign = Campaign(server, "auth", watch)
    for label, request in [*aws_cases(server), *aliyun_cases(server)]:
        await campaign.http(request, Verdict(label))
    replayed = server.aliyun_target({"Action": "QueryProduct", "ProductKey": "x"})
    await campaign.http(RawRequest("POST", replayed, {}))
    await campaign.http(RawRequest("POST", replayed, {}), Verdict("a replayed nonce"))
    await campaign.check_still_serving()
    assert not campaign.failed, campaign.report()
