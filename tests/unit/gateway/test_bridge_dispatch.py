"""The bridge dispatches to the topic handlers and notifiers its caller hands it,
knowing no cloud: stand-ins here for the AWS and Alibaba topics."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from otahub.core.outbox import Notification
from otahub.core.services import Services
from otahub.domain.entities import Device, Execution
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.messages import Outgoing


class Handler:
    """Answers topics under `prefix`; finds the device the topic's next segment names."""

    def __init__(self, prefix: str, services: Services, *, fails: bool = False) -> None:
        self.prefix = prefix
        self.services = services
        self.fails = fails
        self.seen: list[tuple[int, str, bytes, int]] = []

    def handles(self, topic: str) -> bool:
        return topic.startswith(self.prefix)

    async def on_message(
        self, device: Device, topic: str, payload: bytes, qos: int
    ) -> list[Outgoing]:
        if self.fails:
            raise RecursionError("a bug deep in a decoder")
        self.seen.append((device.id, topic, payload, qos))
        return [Outgoing(topic + "/reply", payload)]

    async def device_for_topic(self, tenant_id: int, topic: str) -> Device | None:
        name = topic[len(self.prefix) :].split("/", 1)[0]
        return await self.services.registry.find_device(tenant_id, name)


class Notifier:
    def __init__(self, names: set[str], *, concurrent: bool) -> None:
        self.names = names
        self.concurrent = concurrent
        self.rendered: list[tuple[str, list[str]]] = []

    def renders(self, device: Device) -> bool:
        return device.name in self.names

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution]
    ) -> list[Outgoing]:
        self.rendered.append((device.name, list(kinds)))
        if device.name == "broken":
            raise ValueError("cannot render")
        return [Outgoing(f"{device.name}/notify", ",".join(kinds).encode(), to_requester=False)]


async def test_a_message_goes_to_the_handler_of_its_topic(services: Services) -> None:
    tenant = (await services.accounts.tenant("123456789012")).id
    dev = await services.registry.create_device(tenant, "dev-1")
    a, b = Handler("a/", services), Handler("b/", services)
    bridge = DeviceBridge(services, [a, b], [], default_tenant=tenant)

    answers = await bridge.on_message(dev, "b/dev-1/x", b"hi", 0)
    assert answers == [Outgoing("b/dev-1/x/reply", b"hi")]
    assert (a.seen, b.seen) == ([], [(dev.id, "b/dev-1/x", b"hi", 0)])
    # No handler: nothing answered, nothing raised.
    assert await bridge.on_message(dev, "c/dev-1/x", b"hi") == []


async def test_an_external_broker_message_finds_its_device_through_the_handler(
    services: Services,
) -> None:
    tenant = (await services.accounts.tenant("123456789012")).id
    dev = await services.registry.create_device(tenant, "dev-1")
    a = Handler("a/", services)
    bridge = DeviceBridge(services, [a], [], default_tenant=tenant)

    assert await bridge.on_message(None, "a/dev-1/x", b"1") == [Outgoing("a/dev-1/x/reply", b"1")]
    assert a.seen == [(dev.id, "a/dev-1/x", b"1", 1)]
    assert await bridge.on_message(None, "a/nobody/x", b"1") == []
    assert await bridge.on_message(None, "a/dev\x00/x", b"1") == []  # never looked up
    assert await bridge.device_for_topic("z/dev-1/x") is None  # no handler names it
    without_tenant = DeviceBridge(services, [a], [])
    assert await without_tenant.on_message(None, "a/dev-1/x", b"1") == []


async def test_a_failing_handler_is_logged_not_raised(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = (await services.accounts.tenant("123456789012")).id
    dev = await services.registry.create_device(tenant, "dev-1")
    bridge = DeviceBridge(services, [Handler("a/", services, fails=True)], [])
    assert await bridge.on_message(dev, "a/dev-1/x", b"") == []
    assert "device message failed" in caplog.text


async def test_notifications_are_rendered_by_the_notifier_of_each_device(
    services: Services,
) -> None:
    tenant = (await services.accounts.tenant("123456789012")).id
    names = ["t1", "s1", "t2", "broken", "nobody's", "s2"]
    devices = [await services.registry.create_device(tenant, n) for n in names]
    together = Notifier({"t1", "t2"}, concurrent=True)
    in_turn = Notifier({"s1", "s2", "broken"}, concurrent=False)
    bridge = DeviceBridge(services, [], [together, in_turn], default_tenant=tenant)

    batch = [Notification(d.id, None, None, "released", None) for d in devices]
    batch.append(Notification(devices[0].id, None, None, "changed", None))
    out = await bridge.render(batch)

    # One round per device, in no particular order of devices.
    assert sorted((d.name, m.topic, m.payload) for d, m in out) == [
        ("s1", "s1/notify", b"released"),
        ("s2", "s2/notify", b"released"),
        ("t1", "t1/notify", b"released,changed"),
        ("t2", "t2/notify", b"released"),
    ]
    assert sorted(together.rendered) == [("t1", ["released", "changed"]), ("t2", ["released"])]
    assert sorted(in_turn.rendered) == [
        ("broken", ["released"]),
        ("s1", ["released"]),
        ("s2", ["released"]),
    ]
