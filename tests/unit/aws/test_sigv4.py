"""SigV4 verification keeps each scope's signing key; that must never let a wrong
signature, a stale date or an old secret through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from otahub.aws.wire import sigv4
from otahub.aws.wire.sigv4 import SignatureError

KEY, SECRET, ACCOUNT = "AKIDSIGV4TEST", "sigv4-test-secret", "123456789012"
PATH = "/things/dev-1/jobs"
SIGNED_AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def signed_headers(when: datetime = SIGNED_AT, secret: str = SECRET) -> dict[str, str]:
    """Headers of a GET as botocore signs it at `when` (lower-cased, as ASGI gives them)."""
    import unittest.mock

    req = AWSRequest(method="GET", url=f"http://127.0.0.1:8080{PATH}")
    at = when.replace(tzinfo=None)  # botocore's clock is naive UTC
    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=at):
        SigV4Auth(Credentials(KEY, secret), "iot-jobs-data", "us-east-1").add_auth(req)
    return {"host": "127.0.0.1:8080", **{k.lower(): v for k, v in req.headers.items()}}


def lookup_with(secret: str):  # type: ignore[no-untyped-def]
    async def lookup(key: str) -> tuple[str, str] | None:
        return (secret, ACCOUNT) if key == KEY else None

    return lookup


async def verify(headers: dict[str, str], now: datetime, secret: str = SECRET) -> sigv4.Signed:
    return await sigv4.verify("GET", PATH, "", headers, b"", lookup_with(secret), now)


async def test_good_signature_passes_and_its_key_is_kept() -> None:
    headers = signed_headers()
    assert headers["x-amz-date"] == "20260301T120000Z"
    first = await verify(headers, SIGNED_AT)
    assert (first.account_id, first.region, first.service) == (
        ACCOUNT,
        "us-east-1",
        "iot-jobs-data",
    )
    hits = sigv4._key.cache_info().hits
    await verify(signed_headers(SIGNED_AT + timedelta(seconds=30)), SIGNED_AT)
    assert sigv4._key.cache_info().hits == hits + 1


async def test_wrong_signature_is_refused_with_the_key_cached() -> None:
    headers = signed_headers()
    await verify(headers, SIGNED_AT)  # the scope's key is now kept
    sig = headers["authorization"][-64:]
    wrong = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    tampered = {**headers, "authorization": headers["authorization"][:-64] + wrong}
    with pytest.raises(SignatureError) as err:
        await verify(tampered, SIGNED_AT)
    assert err.value.code == "InvalidSignatureException"
    # Another path under the same signature does not hold either.
    with pytest.raises(SignatureError):
        await sigv4.verify(
            "GET", "/things/dev-2/jobs", "", headers, b"", lookup_with(SECRET), SIGNED_AT
        )


async def test_stale_date_is_refused_with_the_key_cached() -> None:
    headers = signed_headers()
    await verify(headers, SIGNED_AT)
    with pytest.raises(SignatureError) as err:
        await verify(headers, SIGNED_AT + timedelta(minutes=6))
    assert err.value.code == "InvalidSignatureException"
    assert err.value.s3_code == "RequestTimeTooSkewed"
    with pytest.raises(SignatureError):
        await verify(headers, SIGNED_AT - timedelta(minutes=6))


async def test_scope_date_must_be_the_request_date() -> None:
    """A request dated today signed with yesterday's (kept) key is refused."""
    yesterday = signed_headers(SIGNED_AT - timedelta(days=1))
    await verify(yesterday, SIGNED_AT - timedelta(days=1))
    today = signed_headers()
    forged = {
        **today,
        "authorization": yesterday["authorization"],  # yesterday's scope and signature
    }
    with pytest.raises(SignatureError) as err:
        await verify(forged, SIGNED_AT)
    assert "Credential scope" in err.value.message


async def test_a_changed_secret_does_not_use_the_old_key() -> None:
    headers = signed_headers()
    await verify(headers, SIGNED_AT)
    with pytest.raises(SignatureError):
        await verify(headers, SIGNED_AT, secret="rotated-secret")
    await verify(signed_headers(secret="rotated-secret"), SIGNED_AT, secret="rotated-secret")


@pytest.mark.parametrize("bad", ["2026-03-01T12:00:00Z", "20260301T120000", "20261301T120000Z", ""])
async def test_bad_dates_are_refused(bad: str) -> None:
    headers = {**signed_headers(), "x-amz-date": bad}
    with pytest.raises(SignatureError) as err:
        await verify(headers, SIGNED_AT)
    assert err.value.code == "IncompleteSignatureException"
