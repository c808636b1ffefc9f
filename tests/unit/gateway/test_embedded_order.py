"""The embedded broker hands each client's messages to one worker, in order: a
device's progress report is applied before the version report it sent after it."""

from __future__ import annotations

import asyncio

from otahub.gateway.embedded.broker import EmbeddedBroker
from otahub.gateway.embedded.identity import Identity


async def test_messages_of_one_client_are_handled_in_order() -> None:
    seen: list[tuple[str, bytes]] = []
    done = asyncio.Event()

    async def on_message(
        identity: Identity, client_id: str, topic: str, payload: bytes, qos: int
    ) -> None:
        # The first message of each client is the slowest: order must still hold.
        await asyncio.sleep(0.05 if payload == b"0" else 0)
        seen.append((client_id, payload))
        if len(seen) == 40:
            done.set()

    async def nothing(*args: object) -> None:
        return None

    broker = EmbeddedBroker(
        host="127.0.0.1",
        port=0,
        authenticate=nothing,  # type: ignore[arg-type]
        on_message=on_message,
        on_presence=nothing,
        workers=4,
    )
    tasks = [asyncio.create_task(broker._work(q)) for q in broker.inbound]
    try:
        who = Identity("aliyun", 1)
        for n in range(10):
            for client in ("a", "b", "c", "d"):
                broker.enqueue(who, client, "/t", str(n).encode())
        await asyncio.wait_for(done.wait(), 5)
    finally:
        for t in tasks:
            t.cancel()
    for client in ("a", "b", "c", "d"):
        assert [p for c, p in seen if c == client] == [str(n).encode() for n in range(10)]
