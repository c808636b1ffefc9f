"""The device bridge: routes device messages to the dialect that owns the topic and
turns outbox notifications into messages, whatever broker carries them.

A transport (the embedded broker, or a client of an external broker) feeds it
inbound publishes and delivers what it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from otahub.aws.devices.jobs_mqtt import JobsTopics, Outgoing, RenderDocument
from otahub.aws.devices.streams_mqtt import ReadRange, StreamTopics
from otahub.core.outbox import Notification
from otahub.core.services import Services
from otahub.domain.clock import Clock
from otahub.domain.entities import Device, Execution
from otahub.domain.limits import Refused, check_text
from otahub.gateway.recent import Recent

log = logging.getLogger("otahub.gateway")

AWS_PREFIX = "$aws/things/"
STREAM_SENDER_S = 1.0


class Dialect(Protocol):
    """A cloud's device topics: answers requests and renders notifications."""

    async def handle(self, device: Device, topic: str, payload: bytes) -> list[Outgoing]: ...

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution] | None = None
    ) -> list[Outgoing]:
        """`pending`: the device's released pending executions, when the caller has them."""
        ...


Deliver = Callable[[Device, Outgoing], Awaitable[None]]


class DeviceBridge:
    def __init__(
        self,
        services: Services,
        clock: Clock,
        read_range: ReadRange,
        *,
        default_tenant: int | None = None,
        aliyun: Dialect | None = None,
        render_document: RenderDocument | None = None,
    ) -> None:
        self.services = services
        self.jobs = JobsTopics(services, clock, render_document)
        self.streams = StreamTopics(services, read_range)
        self.aliyun = aliyun
        self.default_tenant = default_tenant
        self._stream_senders: Recent[Device] = Recent(STREAM_SENDER_S)

    async def on_message(
        self, device: Device | None, topic: str, payload: bytes, qos: int = 1
    ) -> list[Outgoing]:
        """A device published `payload` on `topic` at `qos`. `device` is the
        authenticated sender (embedded broker) or None (external broker: the topic
        names it)."""
        if device is None:
            device = await self._sender(topic)
            if device is None:
                log.info("message for an unknown device dropped", extra={"topic": topic})
                return []
        try:
            if topic.startswith(AWS_PREFIX):
                if "/jobs/" in topic:
                    return await self.jobs.handle(device, topic, payload)
                if "/streams/" in topic:
                    return await self.streams.handle(device, topic, payload, qos)
                return []
            if self.aliyun is not None:
                return await self.aliyun.handle(device, topic, payload)
        except Exception:
            log.exception("device message failed", extra={"topic": topic})
        return []

    async def _sender(self, topic: str) -> Device | None:
        """The device a topic names; for a stream request, as found a moment ago:
        a device fetching a file asks window after window. Only its name and
        tenant serve there; a device deleted still gets blocks for STREAM_SENDER_S."""
        if "/streams/" not in topic or not topic.startswith(AWS_PREFIX):
            return await self.device_for_topic(topic)
        name = topic[len(AWS_PREFIX) :].split("/", 1)[0]
        device = self._stream_senders.get(name)
        if device is None:
            device = await self.device_for_topic(topic)
            if device is not None:
                self._stream_senders.put(name, device)
        return device

    async def device_for_topic(self, topic: str) -> Device | None:
        """The device a topic belongs to (external brokers): an AWS thing in the
        default tenant, an Alibaba device in any tenant of its account."""
        if self.default_tenant is None or not _storable(topic):
            return None
        if topic.startswith(AWS_PREFIX):
            name = topic[len(AWS_PREFIX) :].split("/", 1)[0]
            return await self.services.registry.find_device(self.default_tenant, name)
        parts = topic.split("/")
        # /ota/device/{kind}/{pk}/{dn} and /sys/{pk}/{dn}/...
        if topic.startswith("/ota/device/") and len(parts) >= 6:
            pk, dn = parts[4], parts[5]
        elif topic.startswith("/sys/") and len(parts) >= 4:
            pk, dn = parts[2], parts[3]
        else:
            return None
        # Alibaba devices: in any instance of the account (product keys are unique).
        return await self.services.registry.find_by_product_key(self.default_tenant, pk, dn)

    async def render(self, batch: Sequence[Notification]) -> list[tuple[Device, Outgoing]]:
        """Messages for a batch of outbox notifications, one round per device."""
        kinds: dict[int, list[str]] = defaultdict(list)
        for n in batch:
            kinds[n.device_id].append(n.kind)
        found = await self.services.registry.get_devices(list(kinds))
        wanted = [d.id for d in found if d.is_aws_thing or self.aliyun is not None]
        pending = await self.services.executions.pending_for_devices(wanted) if wanted else {}

        async def messages(device: Device) -> list[tuple[Device, Outgoing]]:
            try:
                if device.is_aws_thing:
                    out = await self.jobs.notifications(
                        device, kinds[device.id], pending[device.id]
                    )
                elif self.aliyun is not None:
                    out = await self.aliyun.notifications(
                        device, kinds[device.id], pending[device.id]
                    )
                else:
                    return []
            except Exception:
                log.exception("rendering notifications failed", extra={"device": device.id})
                return []
            return [(device, m) for m in out]

        # AWS things are rendered together, so that what they share (the job and its
        # document's object) is looked up once; Alibaba devices one after another,
        # so that each finds what the one before cached.
        things = [d for d in found if d.is_aws_thing]
        rendered = dict(
            zip(
                (d.id for d in things),
                await asyncio.gather(*(messages(d) for d in things)),
                strict=True,
            )
        )
        out: list[tuple[Device, Outgoing]] = []
        for device in found:
            out.extend(rendered[device.id] if device.is_aws_thing else await messages(device))
        return out


def _storable(topic: str) -> bool:
    """A topic whose names may be looked up: MQTT forbids NUL in topics, but a
    broker that lets one through must not make the lookup fail."""
    try:
        check_text(topic, "topic")
    except Refused:
        return False
    return True
