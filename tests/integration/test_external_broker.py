"""otahub as a client of the real Mosquitto: device requests and notifications."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from otahub.core.engine import Engine
from otahub.core.outbox import OutboxPublisher
from otahub.core.services import JobSpec, Services
from otahub.gateway.external import ExternalBroker, NotConnected
from otahub.runtime import device_bridge
from tests.conftest import need_service
from tests.integration.mosquitto import gateway_on_mosquitto

pytestmark = pytest.mark.mosquitto


async def no_blobs(key: str, start: int, length: int) -> bytes:
    raise AssertionError("no stream reads here")


@pytest.fixture
async def broker(services: Services) -> AsyncIterator[tuple[ExternalBroker, int]]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    tenant = await services.accounts.tenant("111111111111")
    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    async with gateway_on_mosquitto(bridge) as (ext, _):
        yield ext, tenant.id


async def next_message(device: aiomqtt.Client, topic_suffix: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        async for message in device.messages:
            if str(message.topic).endswith(topic_suffix):
                assert isinstance(message.payload, bytes)
                body: dict[str, Any] = json.loads(message.payload)
                return body
    raise AssertionError("unreachable")


async def test_device_requests_and_notifications_through_mosquitto(
    broker: tuple[ExternalBroker, int], services: Services, engine: Engine
) -> None:
    ext, tenant = broker
    name = f"thing-{uuid.uuid4().hex[:8]}"
    thing = await services.registry.create_device(tenant, name)
    base = f"$aws/things/{name}/jobs/"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=name) as device:
        await device.subscribe(base + "#", qos=1)
        await device.publish(base + "get", b'{"clientToken":"t1"}', qos=1)
        got = await next_message(device, "get/accepted")
        assert got["clientToken"] == "t1" and got["queuedJobs"] == []

        await services.jobs.create_job(
            tenant, JobSpec(ref="j1", kind="job", device_ids=[thing.id], document='{"v":2}')
        )
        await engine.tick()
        sent = await OutboxPublisher(services.ctx.db, services.ctx.clock, ext.sink).drain()
        assert sent == 1
        nxt = await next_message(device, "notify-next")
        assert nxt["execution"]["jobId"] == "j1" and nxt["execution"]["jobDocument"] == {"v": 2}

        await device.publish(
            base + "j1/update", b'{"status":"SUCCEEDED","clientToken":"t2"}', qos=1
        )
        upd = await next_message(device, "j1/update/accepted")
        assert upd["clientToken"] == "t2"
    job = await services.jobs.get_job(tenant, "j1")
    ex = await services.executions.get(job.id, thing.id)
    assert ex.status.value == "SUCCEEDED"


async def test_outbox_stays_unsent_while_disconnected(services: Services, engine: Engine) -> None:
    tenant = await services.accounts.tenant("111111111111")
    bridge = device_bridge(services, services.ctx.clock, no_blobs, default_tenant=tenant.id)
    ext = ExternalBroker("mqtt://127.0.0.1:1", bridge, client_id="never")
    thing = await services.registry.create_device(tenant.id, "offline-thing")
    await services.jobs.create_job(
        tenant.id, JobSpec(ref="j2", kind="job", device_ids=[thing.id], document="{}")
    )
    await engine.tick()
    publisher = OutboxPublisher(services.ctx.db, services.ctx.clock, ext.sink)
    with pytest.raises(NotConnected):
        await publisher.drain()
    ok: list[int] = []

    async def sink(batch: Any) -> None:
        ok.extend(n.device_id for n in batch)

    assert await OutboxPublisher(services.ctx.db, services.ctx.clock, sink).drain() == 1
    assert ok == [thing.id]


class CountingBridge:
    """Records the messages on one topic that a broker client hands over (the shared
    Mosquitto may carry other tests' traffic too)."""

    def __init__(self, topic: str, expect: int) -> None:
        self.topic = topic
        self.topics: list[str] = []
        self.expect = expect
        self.all_there = asyncio.Event()

    async def on_message(self, device: Any, topic: str, payload: bytes, qos: int = 1) -> list[Any]:
        if topic != self.topic:
            return []
        self.topics.append(topic)
        if len(self.topics) >= self.expect:
            self.all_there.set()
        return []


async def test_a_stopped_process_leaves_its_share_of_device_traffic() -> None:
    """Two otahub processes share the Alibaba topics; once one stops cleanly, every
    device message reaches the other instead of waiting in the stopped one's
    persistent session."""
    need_service("Mosquitto", "127.0.0.1", 1883)
    tag = uuid.uuid4().hex[:8]
    topic = f"/ota/device/inform/pk{tag}/dev"
    bridges = [CountingBridge(topic, 10), CountingBridge(topic, 10)]
    stops = [asyncio.Event(), asyncio.Event()]
    clients = [
        ExternalBroker(
            "mqtt://127.0.0.1:1883",
            bridge,  # type: ignore[arg-type]
            client_id=f"otahub-{tag}-{i}",
            share_group=f"g{tag}",
        )
        for i, bridge in enumerate(bridges)
    ]
    runs = [asyncio.create_task(c.run(s)) for c, s in zip(clients, stops, strict=True)]
    for c in clients:
        await asyncio.wait_for(c.connected.wait(), 10)
    stops[0].set()
    await asyncio.wait_for(runs[0], 10)

    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"dev-{tag}") as device:
        for i in range(10):
            await device.publish(topic, json.dumps({"id": i}).encode(), qos=1)
    await asyncio.wait_for(bridges[1].all_there.wait(), 10)
    assert bridges[0].topics == [] and bridges[1].topics == [topic] * 10
    stops[1].set()
    await asyncio.wait_for(runs[1], 10)
