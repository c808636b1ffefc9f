"""The embedded broker as otahub's device transport: logins checked against the
registry, device messages to the bridge, answers back to the asking client, outbox
notifications out, presence into the registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from otahub.core.outbox import Notification
from otahub.core.services import Services
from otahub.domain.entities import Device
from otahub.gateway.bridge import STREAM_SENDER_S, DeviceBridge
from otahub.gateway.embedded.broker import EmbeddedBroker
from otahub.gateway.embedded.identity import Identity
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.frames import publish_frames
from otahub.gateway.logins import DeviceLogins
from otahub.gateway.recent import Recent

log = logging.getLogger("otahub.gateway.embedded")


class EmbeddedTransport:
    def __init__(
        self,
        services: Services,
        bridge: DeviceBridge,
        *,
        tenant_id: int,
        host: str,
        port: int,
        tls_port: int | None,
        ca: CertificateAuthority | None,
        service_password: str,
        tls_names: Sequence[str] = (),
    ) -> None:
        self.services = services
        self.bridge = bridge
        self.tenant_id = tenant_id
        self.logins = DeviceLogins(services, tenant_id, service_password)
        # The senders of stream requests, as found a moment ago (bridge.py's reason).
        self._senders: Recent[Device] = Recent(STREAM_SENDER_S)
        tls = None
        if ca is not None and tls_port:
            cert, key = ca.server_files(list(tls_names))
            tls = {"certfile": str(cert), "keyfile": str(key), "cafile": str(ca.path)}
        self.broker = EmbeddedBroker(
            host=host,
            port=port,
            tls=tls,
            tls_port=tls_port,
            authenticate=self._authenticate,
            on_message=self._on_message,
            on_presence=self._on_presence,
        )

    async def start(self) -> None:
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    def is_connected(self) -> bool:
        return self.broker.is_running()

    async def _authenticate(
        self, client_id: str, username: str | None, password: str | None, peer_der: bytes | None
    ) -> Identity | None:
        return await self.logins.login(client_id, username, password, peer_der)

    async def _device(self, identity: Identity) -> Device | None:
        if identity.device_id is None:
            return None
        found = await self.services.registry.get_devices([identity.device_id])
        return found[0] if found else None

    async def _on_message(
        self, identity: Identity, client_id: str, topic: str, payload: bytes, qos: int = 1
    ) -> None:
        stream = "/streams/" in topic
        device = self._senders.get(identity.device_id) if stream else None
        if device is None:
            device = await self._device(identity)
            if device is None:
                return
            if stream:  # a device fetching a file asks window after window
                self._senders.put(identity.device_id, device)
        answers = await self.bridge.on_message(device, topic, payload, qos)
        # A stream window asked for at QoS 0: framed here, written in one go.
        quick = [out for out in answers if out.to_requester and out.qos == 0]
        if quick:
            await self.broker.write_to(client_id, publish_frames(quick, v5=False))
        for out in answers:
            if out.to_requester and out.qos == 0:
                continue
            if out.to_requester:
                await self.broker.send_to(client_id, out.topic, out.payload, out.qos)
            else:
                await self.broker.publish(out.topic, out.payload)

    async def _on_presence(self, identity: Identity, connected: bool) -> None:
        if identity.device_id is not None:
            await self.services.registry.set_connected(identity.device_id, connected)

    async def sink(self, batch: Sequence[Notification]) -> None:
        for _, out in await self.bridge.render(batch):
            await self.broker.publish(out.topic, out.payload)


async def wait_until_listening(port: int, host: str = "127.0.0.1", seconds: float = 5) -> None:
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
