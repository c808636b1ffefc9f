"""Alibaba RPC signatures under hostile input: timestamps no calendar holds,
signatures of any characters, access keys the store cannot hold, bytes that are not
UTF-8. Each is refused with the gateway's own error (Code, Message, RequestId),
never a 500, and a refused call changes nothing (on SQLite and PostgreSQL)."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from otahub.aliyun.protocol.errors import GatewayError
from otahub.aliyun.protocol.nonces import MemoryNonceStore
from otahub.aliyun.protocol.signature import Authenticator, sign, string_to_sign
from otahub.core.services import Services
from otahub.domain.clock import FakeClock
from otahub.store.tables import products

from .sdk import AK, SECRET, authenticator
from .test_rollout_inprocess import KEY, Console
from .test_rollout_inprocess import SECRET as CONSOLE_SECRET


def params_at(
    timestamp: str, *, key: str = AK, secret: str = SECRET, nonce: str | None = None
) -> dict[str, str]:
    """A ListOTAFirmware call's parameters, signed over `timestamp` whatever it says."""
    params = {
        "Action": "ListOTAFirmware",
        "Version": "2018-01-20",
        "Format": "JSON",
        "AccessKeyId": key,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": timestamp,
        "CurrentPage": "1",
        "PageSize": "10",
    }
    params["Signature"] = sign(string_to_sign("POST", params), secret)
    return params


def now_text(clock: FakeClock) -> str:
    return clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")


async def refused(
    params: dict[str, str], clock: FakeClock, auth: Authenticator | None = None
) -> str:
    with pytest.raises(GatewayError) as info:
        await (auth or authenticator(clock))("POST", params)
    assert 400 <= info.value.http_status < 500
    return info.value.code


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-01-01T00:00:00Z\n",  # `$` would let the newline through
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # full-width digits
        "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",  # Arabic-Indic digits
        "2026-02-30T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "99999-01-01T00:00:00Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:00Z" * 1000,
    ],
)
async def test_timestamps_no_calendar_holds_are_refused_though_signed(timestamp: str) -> None:
    clock = FakeClock()
    assert await refused(params_at(timestamp), clock) == "InvalidTimeStamp.Format"


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
async def test_timestamps_far_from_now_have_expired(timestamp: str) -> None:
    assert await refused(params_at(timestamp), FakeClock()) == "InvalidTimeStamp.Expired"


@pytest.mark.parametrize("signature", ["é" * 28, "\u0661" * 28, "\udc80", "x" * 10_000, "=="])
async def test_signatures_of_any_characters_do_not_match(signature: str) -> None:
    clock = FakeClock()
    params = {**params_at(now_text(clock)), "Signature": signature}
    assert await refused(params, clock) == "SignatureDoesNotMatch"


@pytest.mark.parametrize("key", ["A\x00K", "\ud800", "AK\udc80"])
async def test_access_keys_the_store_cannot_hold_are_unknown_without_asking(key: str) -> None:
    def lookup(asked: str) -> str | None:
        raise AssertionError(f"asked the store for {asked!r}")

    clock = FakeClock()
    auth = Authenticator(lookup, clock, MemoryNonceStore(clock))
    params = {**params_at(now_text(clock)), "AccessKeyId": key}
    assert await refused(params, clock, auth) == "InvalidAccessKeyId.NotFound"


# -- the whole face, on both databases --------------------------------------------


def signed_query(console: Console, action: str, **params: str) -> dict[str, str]:
    query = {
        **params_at(now_text(console.clock), key=KEY, secret=CONSOLE_SECRET),
        "Action": action,
        **params,
    }
    del query["CurrentPage"], query["PageSize"]
    query["Signature"] = sign(string_to_sign("POST", query), CONSOLE_SECRET)
    return query


async def post(console: Console, query: dict[str, str] | str, body: bytes = b"") -> Any:
    text = query if isinstance(query, str) else urllib.parse.urlencode(query)
    headers = {"content-type": "application/x-www-form-urlencoded"} if body else {}
    reply: httpx.Response = await console.http.post("/?" + text, content=body, headers=headers)
    assert reply.status_code < 500, reply.text
    return reply


async def products_named(services: Services, name: str) -> int:
    async with services.ctx.db.read() as conn:
        query = select(func.count()).select_from(products).where(products.c.name == name)
        return int((await conn.execute(query)).scalar_one())


async def test_an_access_key_with_nul_is_unknown_on_every_store(console: Console) -> None:
    query = {**signed_query(console, "ListOTAFirmware"), "AccessKeyId": "LTAI\x00x"}
    reply = await post(console, query)
    assert (reply.status_code, reply.json()["Code"]) == (404, "InvalidAccessKeyId.NotFound")


async def test_non_ascii_and_non_utf8_signatures_do_not_match(console: Console) -> None:
    base = urllib.parse.urlencode(
        {k: v for k, v in signed_query(console, "ListOTAFirmware").items() if k != "Signature"}
    )
    for signature in ("%C3%A9%C3%A9", "%FF%FE", "%ED%A0%80"):
        reply = await post(console, f"{base}&Signature={signature}")
        assert (reply.status_code, reply.json()["Code"]) == (400, "SignatureDoesNotMatch")


async def test_non_utf8_bytes_in_a_form_body_are_refused(
    console: Console, services: Services
) -> None:
    query = signed_query(console, "CreateProduct", ProductName="meters", NodeType="0")
    body = urllib.parse.urlencode({"Description": "x"}).encode() + b"\xff\xfe"
    reply = await post(console, query, body)
    assert reply.json()["Code"] == "SignatureDoesNotMatch"
    assert await products_named(services, "meters") == 0


async def test_a_refused_call_changes_nothing_and_keeps_its_nonce(
    console: Console, services: Services
) -> None:
    query = signed_query(console, "CreateProduct", ProductName="meters", NodeType="0")
    for tampered in (
        {**query, "ProductName": "mallory"},
        {**query, "Signature": "é"},
        {**query, "Timestamp": "9999-12-31T23:59:59Z"},
    ):
        reply = await post(console, tampered)
        assert reply.status_code in (400, 403), reply.text
    assert await products_named(services, "meters") == 0
    reply = await post(console, query)  # the same nonce, honestly signed
    assert reply.json()["Success"] is True, reply.text
