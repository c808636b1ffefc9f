"""The embedded broker under hostile clients: a refused login never touches the
session of the client id it claims, an accepted one takes it over, and garbage ends
a connection with a log line or two, never a flood or a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from otahub.gateway.embedded.broker import EmbeddedBroker
from otahub.gateway.embedded.identity import Identity
from tests.integration.server import free_port
from tests.unit.gateway.embedded.mqtt_wire import (
    CONNACK,
    PUBACK,
    Connection,
    connect_packet,
    login,
    open_connection,
    packet,
)

DEVICE = Identity("aliyun", 7, product_key="pk", device_name="dev")
TOPIC = "/sys/pk/dev/thing/service/property/set"
PASSWORD = "right"


@dataclass
class Gateway:
    broker: EmbeddedBroker
    port: int
    presence: list[bool] = field(default_factory=list)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async def authenticate(
        client_id: str, username: str | None, password: str | None, peer: bytes | None
    ) -> Identity | None:
        return DEVICE if (client_id, password) == ("dev", PASSWORD) else None

    async def on_message(*args: object) -> None:
        return None

    async def on_presence(identity: Identity, connected: bool) -> None:
        gw.presence.append(connected)

    port = free_port()
    broker = EmbeddedBroker(
        host="127.0.0.1",
        port=port,
        authenticate=authenticate,
        on_message=on_message,
        on_presence=on_presence,
        workers=1,
    )
    gw = Gateway(broker, port)
    await broker.start()
    try:
        yield gw
    finally:
        await broker.stop()


async def subscribed_device(gw: Gateway, *, clean: bool = True) -> Connection:
    device, code = await login(gw.port, "dev", "u", PASSWORD, clean=clean)
    assert code == 0
    assert await device.subscribe(TOPIC) == 0
    return device


async def still_receives(gw: Gateway, device: Connection, payload: bytes) -> None:
    await gw.broker.publish(TOPIC, payload, qos=0)
    assert await device.next_publish() == (TOPIC, payload)


def visible(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records `otahub serve` prints (otahub.logs: libraries from WARNING)."""
    shown = [r for r in records if r.levelno >= logging.WARNING]
    return shown + [r for r in records if r.name.startswith("otahub") and r.levelno == logging.INFO]


@pytest.mark.parametrize("clean", [True, False])
async def test_a_device_survives_100_failed_logins_with_its_client_id(
    gateway: Gateway, clean: bool
) -> None:
    device = await subscribed_device(gateway, clean=clean)
    for attempt in range(100):
        wrong = "" if attempt % 3 == 0 else f"guess-{attempt}"
        intruder, code = await login(gateway.port, "dev", "u", wrong, clean=attempt % 2 == 0)
        assert code == 5  # not authorized
        assert await intruder.closed_by_broker()
    await still_receives(gateway, device, b"after 100 refused logins")
    assert gateway.broker.identities["dev"] == DEVICE
    assert gateway.presence == [True]  # refused logins never showed as a disconnect
    device.close()


async def test_an_accepted_login_takes_the_session_over(gateway: Gateway) -> None:
    old = await subscribed_device(gateway)
    new = await subscribed_device(gateway)
    assert await old.closed_by_broker()
    await still_receives(gateway, new, b"to the new connection")
    assert gateway.broker.identities["dev"] == DEVICE
    assert gateway.presence == [True, False, True]
    new.close()


async def test_a_persistent_session_is_resumed_only_by_an_accepted_login(
    gateway: Gateway,
) -> None:
    first = await subscribed_device(gateway, clean=False)
    first.close()
    intruder, code = await login(gateway.port, "dev", "u", "wrong", clean=False)
    assert code == 5
    intruder.close()
    # The refused login left the stored subscription as it was: a resumed session
    # receives on it without subscribing again.
    resumed, code = await login(gateway.port, "dev", "u", PASSWORD, clean=False)
    assert code == 0
    await still_receives(gateway, resumed, b"kept")
    resumed.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 20 * 1024,
        packet(PUBACK, (7).to_bytes(2, "big")) * 5 * 1024,  # acknowledging no message
        connect_packet("dev", "u", PASSWORD) * 512,
    ],
    ids=["zeros", "stray-pubacks", "connects"],
)
async def test_a_valid_connect_then_garbage_is_closed_with_a_log_line_or_two(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    device = await subscribed_device(gateway)
    caplog.clear()
    await device.send(garbage)
    assert await device.closed_by_broker()
    lines = visible(caplog.records)
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 20 * 1024,  # reserved packet type, no CONNECT at all
        b"\xff" * 4096,
        b"\x10\xff\xff\xff\xff\x7f",  # a CONNECT whose length is invalid
        b"\x10\x05\x00\x04MQ",  # a truncated CONNECT, then silence till hang-up
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["zeros", "ones", "bad-length", "truncated", "http"],
)
async def test_garbage_instead_of_connect_is_closed_without_a_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    conn = await open_connection(gateway.port)
    await conn.send(garbage)
    if garbage.startswith(b"\x10\x05"):
        conn.writer.write_eof()
    assert await conn.closed_by_broker()
    assert len(visible(caplog.records)) <= 2, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_connection_that_hangs_up_before_connect_leaves_no_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(3):
        conn = await open_connection(gateway.port)
        conn.close()
    # One accepted login afterwards: the broker is still serving, and by then it has
    # handled the hang-ups queued before it.
    device = await subscribed_device(gateway)
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.exc_info]
    device.close()


async def test_oversized_and_invalid_credentials_get_a_refusing_connack(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = await subscribed_device(gateway)
    hostile: list[tuple[bytes | str, bytes | str]] = [
        ("dev", "ü" * 30_000),
        ("dev", b"\xff\xfe\x00"),  # not UTF-8
        (b"d\x00ev", PASSWORD),
        (b"\xc3\x28", PASSWORD),
        ("d" * 60_000, PASSWORD),
    ]
    for client_id, password in hostile:
        conn = await open_connection(gateway.port)
        await conn.send(connect_packet(client_id, "u", password))
        kind, body = await conn.read_packet()
        assert (kind, body[1]) == (CONNACK, 5)
        assert await conn.closed_by_broker()
    assert not [r for r in caplog.records if r.exc_info]
    await still_receives(gateway, device, b"undisturbed")
    device.close()


async def test_a_connection_that_never_sends_connect_is_closed(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    assert gateway.broker.broker is not None
    gateway.broker.broker.connect_timeout = 0.01  # 10 s in service; a test waits no longer
    silent = await open_connection(gateway.port)
    assert await silent.closed_by_broker()
    assert not [r for r in caplog.records if r.exc_info]
