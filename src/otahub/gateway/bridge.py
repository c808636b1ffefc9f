"""The device bridge: routes device messages to the cloud's handler that owns the
topic and turns outbox notifications into messages, whatever broker carries them.

The clouds' device topics are handed in by the caller (runtime.py), so that this
module knows neither. A transport (the embedded broker, or a client of an external
broker) feeds it inbound publishes and delivers what it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from otahub.core.outbox import Notification
from otahub.core.services import Services
from otahub.domain.entities import Device, Execution
from otahub.domain.limits import Refused, check_text
from otahub.gateway.messages import Outgoing

log = logging.getLogger("otahub.gateway")

# How long a device fetching a file window after window is taken as found: only
# its name and tenant serve there; a device deleted still gets blocks this long.
STREAM_SENDER_S = 1.0


class TopicHandler(Protocol):
    """One cloud's device requests on some topics: answers them."""

    def handles(self, topic: str) -> bool: ...

    async def on_message(
        self, device: Device, topic: str, payload: bytes, qos: int
    ) -> list[Outgoing]: ...

    async def device_for_topic(self, tenant_id: int, topic: str) -> Device | None:
        """The device `topic` names, for a broker that does not say who sent it:
        in tenant `tenant_id` (or its account, as the cloud's names reach)."""
        ...


class Notifier(Protocol):
    """One cloud's devices: renders outbox notifications into messages for them."""

    # Render the devices of one batch concurrently (what they share is looked up
    # once), rather than one after another (each finds what the one before cached).
    concurrent: bool

    def renders(self, device: Device) -> bool: ...

    async def notifications(
        self, device: Device, kinds: Sequence[str], pending: list[Execution]
    ) -> list[Outgoing]:
        """`pending`: the device's released pending executions."""
        ...


class DeviceBridge:
    def __init__(
        self,
        services: Services,
        handlers: Sequence[TopicHandler],
        notifiers: Sequence[Notifier],
        *,
        default_tenant: int | None = None,
    ) -> None:
        self.services = services
        self.handlers = list(handlers)
        self.notifiers = list(notifiers)
        self.default_tenant = default_tenant

    def _handler(self, topic: str) -> TopicHandler | None:
        return next((h for h in self.handlers if h.handles(topic)), None)

    def _notifier(self, device: Device) -> Notifier | None:
        return next((n for n in self.notifiers if n.renders(device)), None)

    async def on_message(
        self, device: Device | None, topic: str, payload: bytes, qos: int = 1
    ) -> list[Outgoing]:
        """A device published `payload` on `topic` at `qos`. `device` is the
        authenticated sender (embedded broker) or None (external broker: the topic
        names it)."""
        handler = self._handler(topic)
        if device is None:
            device = await self.device_for_topic(topic)
            if device is None:
                log.info("message for an unknown device dropped", extra={"topic": topic})
                return []
        if handler is None:
            return []
        try:
            return await handler.on_message(device, topic, payload, qos)
        except Exception:
            log.exception("device message failed", extra={"topic": topic})
        return []

    async def device_for_topic(self, topic: str) -> Device | None:
        """The device a topic belongs to (external brokers), in the default tenant or
        as far as its cloud's names reach."""
        if self.default_tenant is None or not _storable(topic):
            return None
        handler = self._handler(topic)
        if handler is None:
            return None
        return await handler.device_for_topic(self.default_tenant, topic)

    async def render(self, batch: Sequence[Notification]) -> list[tuple[Device, Outgoing]]:
        """Messages for a batch of outbox notifications, one round per device."""
        kinds: dict[int, list[str]] = defaultdict(list)
        for n in batch:
            kinds[n.device_id].append(n.kind)
        found = await self.services.registry.get_devices(list(kinds))
        notifier = {d.id: to for d in found if (to := self._notifier(d)) is not None}
        wanted = list(notifier)
        pending = await self.services.executions.pending_for_devices(wanted) if wanted else {}

        async def messages(device: Device) -> list[tuple[Device, Outgoing]]:
            try:
                out = await notifier[device.id].notifications(
                    device, kinds[device.id], pending[device.id]
                )
            except Exception:
                log.exception("rendering notifications failed", extra={"device": device.id})
                return []
            return [(device, m) for m in out]

        together = [d for d in found if d.id in notifier and notifier[d.id].concurrent]
        rendered = dict(
            zip(
                (d.id for d in together),
                await asyncio.gather(*(messages(d) for d in together)),
                strict=True,
            )
        )
        out: list[tuple[Device, Outgoing]] = []
        for device in found:
            if device.id in rendered:
                out.extend(rendered[device.id])
            elif device.id in notifier:
                out.extend(await messages(device))
        return out


def _storable(topic: str) -> bool:
    """A topic whose names may be looked up: MQTT forbids NUL in topics, but a
    broker that lets one through must not make the lookup fail."""
    try:
        check_text(topic, "topic")
    except Refused:
        return False
    return True
