"""otahub as a client of an external broker (Mosquitto, EMQX) in production.

Subscribes with shared subscriptions (`$share/otahub/...`) so that several otahub
processes split the device traffic, keeps a persistent session at QoS 1,
resubscribes after reconnecting, and tells the outbox publisher whether it is
connected so that notifications are drained only while they can be delivered.

Mosquitto 2.0 never delivers a topic that starts with `$` (every AWS device
topic: `$aws/things/...`) to a shared subscription. So the `$aws` requests are
subscribed plainly, by one process at a time: the one `owns_aws_topics()` says
holds that role (a PostgreSQL advisory lock when several processes run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import zlib
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from otahub.core.outbox import Notification
from otahub.domain.entities import Device
from otahub.gateway.bridge import DeviceBridge
from otahub.gateway.frames import no_delay, queue_frames
from otahub.gateway.messages import Outgoing

log = logging.getLogger("otahub.gateway.external")

# Only the topics devices publish requests on: never the ones otahub answers on,
# which it would otherwise receive back.
AWS_REQUEST_TOPICS = (
    "$aws/things/+/jobs/get",
    "$aws/things/+/jobs/start-next",
    "$aws/things/+/jobs/+/get",
    "$aws/things/+/jobs/+/update",
    "$aws/things/+/streams/+/describe/+",
    "$aws/things/+/streams/+/get/+",
)
SHARED_REQUEST_TOPICS = (
    "/ota/device/inform/+/+",
    "/ota/device/progress/+/+",
    "/sys/+/+/thing/ota/firmware/get",
    "/sys/+/+/thing/file/download",
)
WORKERS = 256  # messages of one device stay in order: each device maps to one worker
IN_FLIGHT = 200  # QoS 1 publishes awaiting their PUBACK at once


class NotConnected(Exception):
    """Raised to the outbox publisher so that it keeps the batch for later."""


class ExternalBroker:
    def __init__(
        self,
        url: str,
        bridge: DeviceBridge,
        *,
        client_id: str,
        share_group: str = "otahub",
        owns_aws_topics: Callable[[], bool] = lambda: True,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError("broker URL must be mqtt://… or mqtts://…")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.tls = ssl.create_default_context() if parts.scheme == "mqtts" else None
        self.bridge = bridge
        self.client_id = client_id
        self.share_group = share_group
        self.owns_aws_topics = owns_aws_topics
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self._queues: list[asyncio.Queue[aiomqtt.Message]] = [
            asyncio.Queue(maxsize=1000) for _ in range(WORKERS)
        ]

    def is_connected(self) -> bool:
        return self.connected.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        workers = [asyncio.create_task(self._work(q)) for q in self._queues]
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    backoff = 0.5
                except aiomqtt.MqttError as exc:
                    log.warning("broker connection lost: %s; reconnecting", exc)
                except Exception:
                    # A bug in a session must not end the gateway: the devices
                    # are served again after a reconnection.
                    log.exception("broker session failed; reconnecting")
                finally:
                    self.connected.clear()
                    self.client = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 10)
        finally:
            for w in workers:
                w.cancel()

    async def _session(self, stop: asyncio.Event) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        async with aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            tls_context=self.tls,
            keepalive=30,
            max_inflight_messages=IN_FLIGHT,
        ) as client:
            client.pending_calls_threshold = 2 * IN_FLIGHT
            no_delay(client)
            for topic in SHARED_REQUEST_TOPICS:
                await client.subscribe(f"$share/{self.share_group}/{topic}", qos=1)
            aws = await self._set_aws_role(client, subscribed=False)
            self.client = client
            self.connected.set()
            log.info("connected to broker %s:%d", self.host, self.port)
            workers: list[asyncio.Task[None]] = [
                asyncio.create_task(self._read(client)),
                asyncio.create_task(self._follow_aws_role(client, aws)),
            ]
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*workers, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            errors = [t.exception() for t in workers if t in done and not t.cancelled()]
            for task in workers:
                if task not in done:
                    task.cancel()
            for error in errors:
                if error is not None:
                    raise error  # the connection error: reconnect
            if stopper in done:
                await self._leave(client)

    async def _leave(self, client: aiomqtt.Client) -> None:
        """On a clean stop, leave the subscriptions: the broker would otherwise keep
        handing this persistent session its share of device requests until the
        session expires, and they would wait there unanswered."""
        try:
            for topic in SHARED_REQUEST_TOPICS:
                await client.unsubscribe(f"$share/{self.share_group}/{topic}")
            for topic in AWS_REQUEST_TOPICS:
                await client.unsubscribe(topic)
        except aiomqtt.MqttError:
            log.info("left the broker without unsubscribing")

    async def _follow_aws_role(self, client: aiomqtt.Client, subscribed: bool) -> None:
        """Keep the `$aws` subscriptions in step with this process's role."""
        while True:
            await asyncio.sleep(1)
            subscribed = await self._set_aws_role(client, subscribed)

    async def _set_aws_role(self, client: aiomqtt.Client, subscribed: bool) -> bool:
        owner = self.owns_aws_topics()
        if owner and not subscribed:
            for topic in AWS_REQUEST_TOPICS:
                await client.subscribe(topic, qos=1)
            log.info("handling AWS device topics")
        elif subscribed and not owner:
            for topic in AWS_REQUEST_TOPICS:
                await client.unsubscribe(topic)
            log.info("no longer handling AWS device topics")
        return owner

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            await self._queues[zlib.crc32(_device_key(topic).encode()) % WORKERS].put(message)

    async def _work(self, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        while True:
            message = await queue.get()
            try:
                answers = await self.bridge.on_message(
                    None, str(message.topic), _payload(message), message.qos
                )
                errors = await self.publish_all(answers)
            except Exception:
                # The bridge answers bad input itself; this is a bug, and the worker
                # must go on serving the other devices mapped to it.
                log.exception("handling a device message failed")
                continue
            finally:
                queue.task_done()
            if any(isinstance(e, NotConnected | aiomqtt.MqttError) for e in errors):
                log.warning("a response was lost to a disconnect", extra={"topic": message.topic})
            elif errors:
                log.error("sending a response failed", exc_info=errors[0])

    async def publish_all(self, answers: Sequence[Outgoing]) -> list[BaseException]:
        """Send the answers to one request; returns what failed. Those at QoS 0 (a
        stream window a device asked for at QoS 0) are framed here and handed to
        the connection in one write; the others go one by one at QoS 1, pipelined
        and acknowledged together."""
        quick = [out for out in answers if out.qos == 0]
        acked = [out for out in answers if out.qos != 0]
        errors: list[BaseException] = []
        if quick:
            client = self.client
            if client is None or not self.connected.is_set():
                errors.append(NotConnected())
            else:
                queue_frames(client, quick)
        if acked:
            results = await asyncio.gather(
                *(self.publish(out) for out in acked), return_exceptions=True
            )
            errors += [r for r in results if isinstance(r, BaseException)]
        return errors

    async def publish(self, out: Outgoing) -> None:
        client = self.client
        if client is None or not self.connected.is_set():
            raise NotConnected
        await client.publish(out.topic, out.payload, qos=1)

    async def deliver(self, device: Device, out: Outgoing) -> None:
        del device  # the topic addresses it
        await self.publish(out)

    async def sink(self, batch: Sequence[Notification]) -> None:
        """The outbox sink: raises NotConnected (the batch stays unsent) when down.
        Publishes are pipelined, IN_FLIGHT at a time, each acknowledged at QoS 1."""
        if not self.connected.is_set():
            raise NotConnected
        messages = await self.bridge.render(batch)
        for start in range(0, len(messages), IN_FLIGHT):
            window = messages[start : start + IN_FLIGHT]
            await asyncio.gather(*(self.deliver(device, out) for device, out in window))


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode() if payload is not None else b""


def _device_key(topic: str) -> str:
    parts = topic.split("/")
    if topic.startswith("$aws/things/"):
        return parts[2]
    if topic.startswith("/ota/device/"):
        return "/".join(parts[4:6])
    return "/".join(parts[2:4])
