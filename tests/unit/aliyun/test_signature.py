"""Signature verification against requests signed by the real aliyun-python-sdk-core."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
from aliyunsdkiot.request.v20180120.BatchCheckDeviceNamesRequest import (
    BatchCheckDeviceNamesRequest,
)
from aliyunsdkiot.request.v20180120.CreateOTAFirmwareRequest import CreateOTAFirmwareRequest
from aliyunsdkiot.request.v20180120.ListOTAModuleByProductRequest import (
    ListOTAModuleByProductRequest,
)

from otahub.aliyun.protocol.errors import GatewayError
from otahub.aliyun.protocol.nonces import MemoryNonceStore
from otahub.aliyun.protocol.parser import merge_params
from otahub.aliyun.protocol.signature import (
    MISMATCH_MESSAGE,
    authenticate,
    check_signature,
    parse_timestamp,
    sign,
    string_to_sign,
)
from otahub.domain.clock import FakeClock

from .sdk import AK, SECRET, Signed, authenticator, real_now_clock, sign_offline


def firmware_request() -> CreateOTAFirmwareRequest:
    request = CreateOTAFirmwareRequest()
    request.set_FirmwareName("fw-1 (beta)")
    request.set_DestVersion("2.0.0")
    request.set_ProductKey("a1pk")
    request.set_FirmwareDesc("ünïcødé * ~ / + % = & spaces")
    request.set_NeedToVerify(True)
    request.set_MultiFiless([{"Name": "a.bin", "Url": "http://x/a?b=c&d"}])
    return request


def params_of(signed: Signed) -> dict[str, str]:
    return merge_params(signed.query, signed.body, signed.content_type)


async def verify(signed: Signed, clock: FakeClock, **overrides: str) -> str:
    params = {**params_of(signed), **overrides}
    caller = await authenticator(clock)(signed.method, params)
    return caller.access_key_id


async def expect_code(
    signed: Signed, clock: FakeClock, code: str, **overrides: str
) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        await verify(signed, clock, **overrides)
    assert info.value.code == code
    return info.value


async def test_sdk_signed_post_is_accepted() -> None:
    signed = sign_offline(firmware_request())
    assert signed.method == "POST" and signed.body == b""
    assert await verify(signed, real_now_clock()) == AK


async def test_sdk_signed_get_is_accepted() -> None:
    request = ListOTAModuleByProductRequest()
    request.set_ProductKey("a1pk")
    signed = sign_offline(request)
    assert signed.method == "GET"
    assert await verify(signed, real_now_clock()) == AK


async def test_form_body_parameters_are_signed() -> None:
    request = BatchCheckDeviceNamesRequest()
    request.set_ProductKey("a1pk")
    request.set_DeviceNames(["dev one", "dev*2"])
    request.set_DeviceNameLists([{"DeviceName": "dev3", "DeviceNickname": "ñick"}])
    signed = sign_offline(request)
    assert b"DeviceName.1=" in signed.body
    clock = real_now_clock()
    assert await verify(signed, clock) == AK
    # Verifying the query alone must fail: the body is part of the signature.
    query_only = merge_params(signed.query)
    with pytest.raises(GatewayError) as info:
        await authenticator(clock)(signed.method, query_only)
    assert info.value.code == "SignatureDoesNotMatch"


async def test_do_action_format_none_is_signed_as_sent() -> None:
    request = firmware_request()
    signed = sign_offline(request, fmt=None)  # type: ignore[arg-type]
    assert "Format=None" in signed.query
    assert await verify(signed, real_now_clock()) == AK


def test_our_string_to_sign_equals_the_sdks() -> None:
    signed = sign_offline(firmware_request())
    params = params_of(signed)
    assert string_to_sign("POST", params) == signed.string_to_sign
    assert sign(signed.string_to_sign, SECRET) == params["Signature"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("DestVersion", "2.0.1"), ("FirmwareDesc", "other"), ("SignatureType", "x")],
)
async def test_tampered_value_is_refused(name: str, value: str) -> None:
    signed = sign_offline(firmware_request())
    await expect_code(signed, real_now_clock(), "SignatureDoesNotMatch", **{name: value})


async def test_added_parameter_is_refused() -> None:
    signed = sign_offline(firmware_request())
    await expect_code(signed, real_now_clock(), "SignatureDoesNotMatch", ModuleName="MCU")


async def test_other_http_method_is_refused() -> None:
    signed = sign_offline(firmware_request())
    with pytest.raises(GatewayError) as info:
        await authenticator(real_now_clock())("GET", params_of(signed))
    assert info.value.code == "SignatureDoesNotMatch"


async def test_wrong_secret_message_carries_the_string_to_sign() -> None:
    signed = sign_offline(firmware_request(), secret="WRONG")
    error = await expect_code(signed, real_now_clock(), "SignatureDoesNotMatch")
    assert error.http_status == 400
    assert error.message == MISMATCH_MESSAGE + signed.string_to_sign
    # The SDK's own check: the text after the first ':' is its string to sign.
    assert error.message.split(":")[1] == signed.string_to_sign


async def test_unknown_access_key() -> None:
    signed = sign_offline(firmware_request(), ak="NOBODY")
    error = await expect_code(signed, real_now_clock(), "InvalidAccessKeyId.NotFound")
    assert error.http_status == 404


@pytest.mark.parametrize("minutes", [16, -16])
async def test_stale_or_future_timestamp_is_expired(minutes: int) -> None:
    signed = sign_offline(firmware_request())
    clock = real_now_clock()
    clock.advance(minutes=minutes)
    await expect_code(signed, clock, "InvalidTimeStamp.Expired")


async def test_timestamp_within_window_is_accepted() -> None:
    signed = sign_offline(firmware_request())
    clock = real_now_clock()
    clock.advance(minutes=14)
    assert await verify(signed, clock) == AK


@pytest.mark.parametrize("text", ["2026-01-01 00:00:00", "2026-13-01T00:00:00Z", "yesterday", "1"])
async def test_malformed_timestamp(text: str) -> None:
    signed = sign_offline(firmware_request())
    await expect_code(signed, real_now_clock(), "InvalidTimeStamp.Format", Timestamp=text)


def test_timestamp_with_milliseconds_parses() -> None:
    assert parse_timestamp("2026-01-01T00:00:01.250Z") == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


async def test_replayed_nonce_is_refused() -> None:
    signed = sign_offline(firmware_request())
    clock = real_now_clock()
    auth = authenticator(clock)
    params = params_of(signed)
    await auth(signed.method, params)
    with pytest.raises(GatewayError) as info:
        await auth(signed.method, params)
    assert info.value.code == "SignatureNonceUsed"


async def test_bad_signature_does_not_burn_the_nonce() -> None:
    signed = sign_offline(firmware_request())
    clock = real_now_clock()
    auth = authenticator(clock)
    params = params_of(signed)
    with pytest.raises(GatewayError):
        await auth(signed.method, {**params, "Signature": "bogus"})
    assert (await auth(signed.method, params)).access_key_id == AK


async def test_nonce_is_per_access_key() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock)
    expires = clock.now() + timedelta(minutes=15)
    assert await store.claim("A", "n1", expires)
    assert await store.claim("B", "n1", expires)
    assert not await store.claim("A", "n1", expires)


@pytest.mark.parametrize(
    "name", ["Signature", "AccessKeyId", "SignatureNonce", "Timestamp", "SignatureMethod"]
)
async def test_missing_signature_parameter(name: str) -> None:
    signed = sign_offline(firmware_request())
    params = params_of(signed)
    del params[name]
    with pytest.raises(GatewayError) as info:
        await authenticator(real_now_clock())(signed.method, params)
    assert info.value.code == f"Missing{name}"


async def test_other_signature_method_is_refused() -> None:
    signed = sign_offline(firmware_request())
    await expect_code(
        signed, real_now_clock(), "InvalidSignatureMethod", SignatureMethod="HMAC-SHA256"
    )


async def test_unsupported_http_method() -> None:
    signed = sign_offline(firmware_request())
    with pytest.raises(GatewayError) as info:
        await authenticator(real_now_clock())("PUT", params_of(signed))
    assert info.value.code == "UnsupportedHTTPMethod"


async def test_async_secret_lookup() -> None:
    signed = sign_offline(firmware_request())
    clock = real_now_clock()

    async def lookup(access_key_id: str) -> str | None:
        return SECRET if access_key_id == AK else None

    caller = await authenticate(
        signed.method,
        params_of(signed),
        lookup_secret=lookup,
        clock=clock,
        nonces=MemoryNonceStore(clock),
    )
    assert caller.access_key_id == AK


def test_reference_vector_from_specs() -> None:
    # Percent-encoding corner cases; the expected value is computed independently here.
    params = {"A": "a b*~", "Signature": "ignored", "SignatureType": ""}
    sts = string_to_sign("post", params)
    assert sts == "POST&%2F&" + urllib.parse.quote("A=a%20b%2A~&SignatureType=", safe="")
    check_signature("POST", {**params, "Signature": sign(sts, "s")}, "s")
