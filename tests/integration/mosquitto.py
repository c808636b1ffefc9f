"""otahub's gateway on the local Mosquitto, for tests that drive it in-process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.external import ExternalBroker


@asynccontextmanager
async def gateway_on_mosquitto(bridge: DeviceBridge) -> AsyncIterator[tuple[ExternalBroker, str]]:
    """A running gateway, connected, in a share group of its own (another test's
    gateway must not take its messages); yields it and the tag in its names."""
    tag = uuid.uuid4().hex[:8]
    ext = ExternalBroker(
        "mqtt://127.0.0.1:1883", bridge, client_id=f"otahub-{tag}", share_group=f"g{tag}"
    )
    stop = asyncio.Event()
    task = asyncio.create_task(ext.run(stop))
    try:
        await asyncio.wait_for(ext.connected.wait(), 10)
        yield ext, tag
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
