"""A fleet of simulated Alibaba IoT devices in one process:
`await run_aliyun_fleet(AliyunFleetConfig(...))`.

The mirror of `otahub.agent.fleet` (the AWS fleet) for the Alibaba dialect, with the
same fault shares, live states and report. Setup goes through the Alibaba API
(`aliyun_fleet_setup`): a product, the devices by batch registration, the firmware
through the upload form, a static upgrade job. Each device then logs in to the
broker with its own linkkit HMAC login (one MQTT connection per device, which the
embedded broker checks against the registry and Mosquitto lets through), reports its
version on `/ota/device/inform`, takes the upgrade push (or asks with
`firmware/get`), downloads over HTTPS (Range resume) or MQTT blocks (CRC-16), checks
the SHA-256 the push names, reports progress and, last, its new version: the version
report, not a progress step, settles the task on the server.

Faults, as Alibaba devices show them:
- fail: the image installs but the self-test fails; progress -4, the task FAILED.
- reject: Alibaba devices cannot refuse a task, so a rejecting device *declines*:
  progress -1 before downloading anything. The device counts it REJECTED; the server
  records the task FAILED (its TaskDesc says "declined by the device").
- hang: progress 1, then silence; the task stays IN_PROGRESS until the job's
  TimeoutInMinutes (counted from that first progress) makes it FAILED.
- disconnect: the link drops mid-download. Over MQTT the device really disconnects,
  logs in again, reports its version and asks for the missing blocks; over HTTPS the
  transfer breaks off and resumes with a Range request.
- throttle: the download runs at `throttle_kbps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import httpx

from otahub.agent.aliyun import Offer, linkkit_login
from otahub.agent.aliyun_fleet_setup import (
    create_firmware,
    create_job,
    create_product,
    device_secrets,
    list_tasks,
    register_devices,
    server_counts,
)
from otahub.agent.aliyun_rpc import AsyncAliyunClient
from otahub.agent.aliyun_wire import (
    FrameError,
    ProgressFailure,
    ota_topic,
    parse_download_reply,
)
from otahub.agent.aws_http import GatedTransport
from otahub.agent.fleet import (
    Faults,
    Fleet,
    FleetConfig,
    FleetReport,
    Snapshot,
    assign_faults,
)
from otahub.agent.http_download import DownloadFailed, download
from otahub.agent.mqtt_rpc import TopicRouter
from otahub.agent.sinks import DigestSink, Pacer

INITIAL_VERSION = "1.0.0"
DECLINED = "declined by the device"


@dataclass
class AliyunFleetConfig(FleetConfig):
    """`FleetConfig` for the Alibaba dialect. `transport` is always MQTT; `files` is
    `http` (HTTPS download, Alibaba's default) or `mqtt` (MQTT download)."""

    region: str = "cn-shanghai"
    product_key: str | None = None  # None: a new product, and the job targets ALL of it
    version: str | None = None  # the firmware's DestVersion (default: a fresh one)
    block_size: int = 5120  # MQTT download block, the C SDK's default
    connect_concurrency: int = 64  # logins in flight while connecting
    # The server may take this long to read the last reports (or the rest of the
    # deadline, if longer) before its counts are taken as they are.
    settle_seconds: float = 30.0

    @property
    def product_name(self) -> str:
        return f"{self.prefix.replace('-', '_')}_product"[:30]


class UpdateFailed(Exception):
    def __init__(self, failure: ProgressFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure


class SimDevice:
    """One simulated Alibaba device on its own MQTT connection, keeping no image."""

    def __init__(
        self,
        fleet: AliyunFleet,
        i: int,
        product_key: str,
        name: str,
        secret: str,
        fault: str | None,
        http: httpx.AsyncClient,
    ) -> None:
        self.fleet = fleet
        self.cfg = fleet.cfg
        self.i = i
        self.product_key = product_key
        self.name = name
        self.secret = secret
        self.fault = fault
        self.http = http
        self.version = INITIAL_VERSION
        self.client: aiomqtt.Client | None = None
        self.router = TopicRouter()
        self.reader: asyncio.Task[None] | None = None
        self._ids = 0
        pk, dn = product_key, name
        self.t_inform = ota_topic("inform", pk, dn)
        self.t_upgrade = ota_topic("upgrade", pk, dn)
        self.t_progress = ota_topic("progress", pk, dn)
        self.t_get = ota_topic("firmware_get", pk, dn)
        self.t_get_reply = ota_topic("firmware_get_reply", pk, dn)
        self.t_download = ota_topic("file_download", pk, dn)
        self.t_download_reply = ota_topic("file_download_reply", pk, dn)

    def _state(self, state: str) -> None:
        self.fleet._set(self.i, state)

    def _id(self) -> str:
        self._ids += 1
        return str(self._ids)

    # -- the connection -------------------------------------------------------------

    async def connect(self) -> None:
        """Log in with the linkkit HMAC, subscribe, and report the version."""
        url = urlsplit(self.cfg.broker)
        client_id, username, password = linkkit_login(self.product_key, self.name, self.secret)
        client = aiomqtt.Client(
            url.hostname or "127.0.0.1",
            url.port or 1883,
            identifier=client_id,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V311,
            keepalive=60,
            timeout=self.cfg.request_timeout,
        )
        await client.__aenter__()
        self.client = client
        self.reader = asyncio.create_task(self._read(client))
        await client.subscribe(
            [(self.t_upgrade, 1), (self.t_get_reply, 1), (self.t_download_reply, 0)]
        )
        await self.inform()

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.router.put(str(message.topic), payload)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
            self.reader = None
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _publish(self, topic: str, body: dict[str, Any], qos: int = 1) -> None:
        assert self.client is not None, "not connected"
        await self.client.publish(topic, json.dumps(body), qos=qos)

    async def inform(self) -> None:
        await self._publish(self.t_inform, {"id": self._id(), "params": {"version": self.version}})

    async def progress(self, step: int, desc: str) -> None:
        body = {"id": self._id(), "params": {"step": str(step), "desc": desc}}
        await self._publish(self.t_progress, body)

    async def ask(self) -> Offer | None:
        """firmware/get: the pending task, or None."""
        request_id = self._id()
        self.router.drain(self.t_get_reply)
        await self._publish(self.t_get, {"id": request_id, "params": {}})
        while True:
            reply = json.loads(await self.router.next(self.t_get_reply, self.cfg.request_timeout))
            if str(reply.get("id")) == request_id:
                return Offer.parse(reply.get("data"))

    # -- one update -----------------------------------------------------------------

    async def next_offer(self, recheck: float) -> Offer:
        """The next push of a version other than ours; `firmware/get` every `recheck`
        seconds in case a push was lost."""
        while True:
            offer: Offer | None
            try:
                message = json.loads(await self.router.next(self.t_upgrade, recheck))
                offer = Offer.parse(message.get("data"))
            except TimeoutError:
                offer = await self.ask()
            if offer is not None and offer.version != self.version:
                return offer

    async def update(self, offer: Offer) -> str:
        """Take one offer; the device-side outcome (SUCCEEDED, FAILED, REJECTED, HUNG)."""
        self._state("received")
        if self.fault == "reject":
            await self.progress(ProgressFailure.UPGRADE_FAILED.value, DECLINED)
            return "REJECTED"
        await self.progress(1, "downloading")
        if self.fault == "hang":
            return "HUNG"
        self._state("download")
        try:
            if offer.sign_method != "SHA256":
                raise UpdateFailed(
                    ProgressFailure.VERIFY_FAILED, f"cannot check a {offer.sign_method} sign"
                )
            sink = DigestSink()
            await self._fetch(offer, sink)
            if sink.sha256() != offer.sign:
                raise UpdateFailed(ProgressFailure.VERIFY_FAILED, "SHA256 mismatch")
            self._state("install")
            await self.progress(90, "installing")
            if self.fault == "fail":
                raise UpdateFailed(ProgressFailure.FLASH_FAILED, "self-test failed; rolled back")
        except UpdateFailed as exc:
            await self.progress(exc.failure.value, str(exc)[:100])
            return "FAILED"
        await self.progress(100, "done")
        self.version = offer.version
        await self.inform()
        return "SUCCEEDED"

    def _interrupt_at(self, size: int) -> int | None:
        if self.fault != "disconnect":
            return None
        rng = random.Random(self.cfg.seed * 1_000_003 + self.i)
        return max(1, int(size * rng.uniform(0.2, 0.8)))

    def _pacer(self) -> Pacer:
        throttled = self.fault == "throttle"
        return Pacer(self.cfg.faults.throttle_kbps * 1000 if throttled else None)

    async def _fetch(self, offer: Offer, sink: DigestSink) -> None:
        interrupt = self._interrupt_at(offer.size)
        if offer.stream_id is not None and offer.stream_file_id is not None:
            await self._mqtt_download(offer, sink, interrupt)
            return
        if not offer.url:
            raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, "no URL in the push")
        try:
            await download(
                self.http,
                offer.url,
                sink,
                expected_size=offer.size,
                interrupt_after=interrupt,
                pacer=self._pacer(),
            )
        except (DownloadFailed, httpx.HTTPError) as exc:
            raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, str(exc)) from None
        if interrupt is not None:
            self._state("disconnected")
            self._state("resumed")

    async def _mqtt_download(self, offer: Offer, sink: DigestSink, interrupt: int | None) -> None:
        """Block by block in order, each CRC-checked and asked again when lost; a
        progress report every quarter of the file."""
        pacer = self._pacer()
        reported = 0
        while sink.size() < offer.size:
            offset = sink.size()
            block = await self._block(offer, offset)
            sink.write(block[: offer.size - offset])
            await pacer.took(len(block))
            percent = sink.size() * 80 // max(offer.size, 1)
            if percent >= reported + 20:
                reported = percent
                await self.progress(max(1, percent), "downloading")
            if interrupt is not None and sink.size() >= interrupt < offer.size:
                interrupt = None
                await self._drop_link()

    async def _drop_link(self) -> None:
        """Lose the connection mid-download, log in again after a while and go on."""
        self._state("disconnected")
        await self.close()
        await asyncio.sleep(self.cfg.reconnect_after)
        self.router = TopicRouter()
        await self.connect()
        self._state("resumed")

    async def _block(self, offer: Offer, offset: int) -> bytes:
        wait = self.cfg.request_timeout
        for _ in range(3):
            request_id = self._id()
            body = offer.block_request(request_id, self.cfg.block_size, offset)
            await self._publish(self.t_download, body)
            try:
                while True:
                    frame = await self.router.next(self.t_download_reply, wait)
                    try:
                        reply = parse_download_reply(frame)
                    except FrameError:
                        break  # a damaged frame: ask again
                    data = reply.header.get("data") or {}
                    if reply.header.get("code") == 200:
                        # An answer to an earlier ask for this block is as good: a
                        # loaded server is not made to send it again.
                        if data.get("bOffset") == offset and reply.block:
                            return reply.block
                    elif str(reply.header.get("id")) == request_id:
                        raise UpdateFailed(
                            ProgressFailure.DOWNLOAD_FAILED,
                            f"download refused: {reply.header.get('msg')}",
                        )
            except TimeoutError:
                wait *= 2  # a loaded server: do not ask again too soon
        raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, f"no block at offset {offset}")


class AliyunFleet(Fleet):
    cfg: AliyunFleetConfig

    def __init__(self, config: AliyunFleetConfig) -> None:
        if config.transport != "mqtt":
            raise ValueError("Alibaba devices take their OTA tasks over MQTT only")
        if not config.register and not config.product_key:
            raise ValueError("devices registered beforehand need their product_key")
        super().__init__(config)
        self.files = config.files or "http"

    async def run(self, observer: Callable[[Snapshot], None] | None) -> FleetReport:
        cfg = self.cfg
        started = time.monotonic()
        cpu_at_start = time.process_time()
        ticker = asyncio.create_task(self._tick(observer, started)) if observer else None
        devices: list[SimDevice] = []
        register_s = connect_s = 0.0
        rollout_at = last = time.monotonic()
        server: dict[str, int] = {}
        settle_s: float | None = None
        try:
            async with httpx.AsyncClient(
                transport=GatedTransport(cfg.http_connections),
                timeout=httpx.Timeout(60.0, pool=None),
            ) as http:
                api = AsyncAliyunClient(
                    http,
                    cfg.endpoint,
                    access_key=cfg.access_key,
                    secret_key=cfg.secret_key,
                    region=cfg.region,
                )
                names = [cfg.thing(i) for i in range(cfg.devices)]
                self.phase = "registering"
                t0 = time.monotonic()
                product_key = cfg.product_key or await create_product(api, cfg.product_name)
                if cfg.register:
                    secrets = await register_devices(api, product_key, names, progress=self._reg)
                else:
                    secrets = await device_secrets(api, product_key, names)
                register_s = time.monotonic() - t0

                self.phase = "connecting"
                t0 = time.monotonic()
                faults = assign_faults(cfg.devices, cfg.faults, cfg.seed)
                devices = [
                    SimDevice(self, i, product_key, n, secrets[n], faults[i], http)
                    for i, n in enumerate(names)
                ]
                gate = asyncio.Semaphore(max(1, cfg.connect_concurrency))
                await asyncio.gather(*(self._start_device(d, gate) for d in devices))
                connect_s = time.monotonic() - t0

                self.phase = "rolling out"
                rollout_at = time.monotonic()
                rng = random.Random(cfg.seed)
                tasks = [asyncio.create_task(self._run_device(d, rng.random())) for d in devices]
                if cfg.rollout:
                    self.job_id = await self._rollout(api, http, product_key, names)
                waiter = None
                if cfg.wait_timed_out and self.job_id:
                    waiter = asyncio.create_task(self._await_time_outs(api, self.job_id, devices))
                left = cfg.deadline - (time.monotonic() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_done.wait(), max(1.0, left))
                for t in [*tasks, *([waiter] if waiter else [])]:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                last = max((d for d in self.done_at if d is not None), default=rollout_at)
                self.phase = "counting"
                if self.job_id:
                    server, settled = await self._settled_counts(
                        api, self.job_id, started + cfg.deadline
                    )
                    if settled:
                        settle_s = time.monotonic() - last
                self.phase = "done"
        finally:
            await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
            await self._stop_ticker(ticker, observer, started)
        return self._report(
            "mqtt",
            register_s=register_s,
            connect_s=connect_s,
            seconds_to_done=last - rollout_at,
            server=server,
            cpu_seconds=time.process_time() - cpu_at_start,
            dialect="aliyun",
            settle_seconds=settle_s,
        )

    async def _rollout(
        self, api: AsyncAliyunClient, http: httpx.AsyncClient, product_key: str, names: list[str]
    ) -> str:
        cfg = self.cfg
        tag = uuid.uuid4().hex[:8]
        firmware_id = await create_firmware(
            api,
            http,
            product_key,
            os.urandom(cfg.firmware_size),
            name=f"sim-{tag}",
            version=cfg.version or f"2.0.0-{tag}",
        )
        return await create_job(
            api,
            http,
            product_key,
            firmware_id,
            # A product of our own: all of it; someone else's: our devices by name.
            devices=names if cfg.product_key else None,
            download_protocol="MQTT" if self.files == "mqtt" else "HTTPS",
            max_per_minute=cfg.max_per_minute,
            timeout_minutes=cfg.in_progress_timeout_minutes,
        )

    async def _settled_counts(
        self, api: AsyncAliyunClient, job_id: str, deadline: float
    ) -> tuple[dict[str, int], bool]:
        """The server's TaskStatus counts once it has read what the devices sent, and
        whether it had by `deadline` (at least `settle_seconds` from now).

        An Alibaba device's reports are MQTT messages that nothing answers: the
        server settles a task some time after the device is done. Wait until it has
        settled as many tasks as devices finished and sees the hung ones IN_PROGRESS.
        The counts come from one call per status, so a task that moves between two
        calls is counted twice or not at all: only a reading whose counts add up to
        one task per device is taken."""
        finished = sum(self.counts[s] for s in ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT"))
        hung = self.counts["HUNG"]
        deadline = max(deadline, time.monotonic() + self.cfg.settle_seconds)
        while True:
            counts = await server_counts(api, job_id)
            settled = sum(counts.get(s, 0) for s in ("SUCCEEDED", "FAILED", "CANCELED"))
            consistent = sum(counts.values()) == self.cfg.devices
            if consistent and settled >= finished and counts.get("IN_PROGRESS", 0) >= hung:
                return counts, True
            if time.monotonic() > deadline:
                return counts, False
            await asyncio.sleep(1.0)

    async def _start_device(self, device: SimDevice, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                await device.connect()
            self._set(device.i, "idle")
        except Exception as exc:
            self._error(device.i, exc)

    async def _run_device(self, device: SimDevice, offset: float) -> None:
        if self.state[device.i] == "ERROR":
            return
        try:
            # Pushes wake the devices; a rare look (spread over the fleet) stays in
            # case one was lost.
            offer = await device.next_offer(self.cfg.idle_recheck * (0.5 + offset))
            outcome = await device.update(offer)
            self._set(device.i, outcome)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(device.i, exc)

    async def _await_time_outs(
        self, api: AsyncAliyunClient, job_id: str, devices: list[SimDevice]
    ) -> None:
        """Hung devices become TIMED_OUT once the server has failed their tasks (the
        job's TimeoutInMinutes): a device cannot see that itself."""
        while True:
            await asyncio.sleep(self.cfg.poll_interval)
            hung = {d.name: d for d in devices if self.state[d.i] == "HUNG"}
            names = list(hung)
            for at in range(0, len(names), 50):
                for task in await list_tasks(api, job_id, names[at : at + 50]):
                    if task["TaskStatus"] == "FAILED":
                        self._set(hung[task["DeviceName"]].i, "TIMED_OUT")


def expected_server_states(
    devices: int, faults: Faults, *, wait_timed_out: bool = False
) -> dict[str, int]:
    """The TaskStatus counts a run with these faults should end in: declined and
    failed devices are both FAILED; a hung one IN_PROGRESS until timed out (FAILED)."""
    c = faults.counts(devices)
    hung = "FAILED" if wait_timed_out else "IN_PROGRESS"
    out = {"SUCCEEDED": devices - c["fail"] - c["reject"] - c["hang"], "FAILED": 0, hung: 0}
    out["FAILED"] += c["fail"] + c["reject"]
    out[hung] += c["hang"]
    return {k: v for k, v in out.items() if v}


async def run_aliyun_fleet(
    config: AliyunFleetConfig, observer: Callable[[Snapshot], None] | None = None
) -> FleetReport:
    """Register, connect and update a simulated Alibaba fleet; `observer` is called
    four times a second with the devices' states."""
    return await AliyunFleet(config).run(observer)
