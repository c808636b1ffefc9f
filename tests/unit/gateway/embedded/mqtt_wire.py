"""A raw MQTT 3.1.1 client for broker tests: every byte of a CONNECT is the test's
choice (invalid UTF-8, NUL, 64 KB fields), and every wait is bounded."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from otahub.gateway.frames import remaining_length

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
WAIT_S = 5.0  # a bound on one round trip to a broker in the same process, never reached


def field(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    return bytes((kind << 4 | flags,)) + remaining_length(len(body)) + body


def connect_packet(
    client_id: bytes | str,
    username: bytes | str | None = None,
    password: bytes | str | None = None,
    *,
    clean: bool = True,
) -> bytes:
    flags = (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    flags |= 0x02 if clean else 0
    body = field("MQTT") + bytes((4, flags)) + (60).to_bytes(2, "big") + field(client_id)
    for value in (username, password):
        if value is not None:
            body += field(value)
    return packet(CONNECT, body)


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read_packet(self) -> tuple[int, bytes]:
        """(packet type, body); raises IncompleteReadError when the broker hangs up."""
        async with asyncio.timeout(WAIT_S):
            first = (await self.reader.readexactly(1))[0]
            length = shift = 0
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            return first >> 4, await self.reader.readexactly(length)

    async def closed_by_broker(self) -> bool:
        """Whether the broker ends the connection (reading what it sends till then)."""
        try:
            async with asyncio.timeout(WAIT_S):
                while await self.reader.read(65536):
                    pass
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return True

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def subscribe(self, topic: str, packet_id: int = 1) -> int:
        """SUBSCRIBE at QoS 0; the return code of its SUBACK."""
        body = packet_id.to_bytes(2, "big") + field(topic) + b"\x00"
        await self.send(packet(SUBSCRIBE, body, flags=0x02))
        kind, ack = await self.read_packet()
        assert kind == SUBACK, kind
        return ack[2]

    async def next_publish(self) -> tuple[str, bytes]:
        while True:
            kind, body = await self.read_packet()
            if kind == PUBLISH:
                size = int.from_bytes(body[:2], "big")
                return body[2 : 2 + size].decode(), body[2 + size :]

    def close(self) -> None:
        self.writer.close()


async def open_connection(port: int, tls: ssl.SSLContext | None = None) -> Connection:
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    return Connection(reader, writer)


async def login(
    port: int,
    client_id: bytes | str,
    username: bytes | str | None = None,
    password: bytes | str | None = None,
    *,
    clean: bool = True,
    tls: ssl.SSLContext | None = None,
) -> tuple[Connection, int]:
    """A connection and its CONNACK's return code (0: accepted)."""
    conn = await open_connection(port, tls)
    await conn.send(connect_packet(client_id, username, password, clean=clean))
    kind, body = await conn.read_packet()
    assert kind == CONNACK, kind
    return conn, body[1]
