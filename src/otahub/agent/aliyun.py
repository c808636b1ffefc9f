"""A reference Alibaba IoT device: logs in with the device-secret HMAC that linkkit
uses, reports its version, takes an upgrade push (or asks with firmware/get),
downloads over HTTP with resume or over MQTT download frames (CRC-16 checked),
verifies the MD5 or SHA-256 the push names, writes the inactive A/B slot, boots it,
self-tests, and reports its new version; every failure is a negative progress step.

The service, not the device, decides success: from the version report.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import aiomqtt
import httpx

from otahub.agent.aliyun_wire import (
    DEFAULT_MODULE,
    FrameError,
    ProgressFailure,
    TopicKind,
    ota_topic,
    parse_download_reply,
)
from otahub.agent.http_download import DownloadFailed, download
from otahub.agent.mqtt_rpc import TopicRouter
from otahub.agent.slots import SlotStore

log = logging.getLogger("otahub.agent.aliyun")

_DIGESTS: dict[str, Callable[[], Any]] = {"Md5": hashlib.md5, "SHA256": hashlib.sha256}


def linkkit_login(
    product_key: str,
    device_name: str,
    secret: str,
    *,
    tls: bool = False,
    timestamp: int | None = None,
) -> tuple[str, str, str]:
    """(client id, username, password) exactly as linkkit 1.2.13 logs in (specs §5.2)."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    head = f"{product_key}&{device_name}"
    mode = 2 if tls else 3
    client_id = f"{head}|securemode={mode},signmethod=hmacsha1,timestamp={ts}|"
    text = f"clientId{head}deviceName{device_name}productKey{product_key}timestamp{ts}"
    password = hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()
    return client_id, f"{device_name}&{product_key}", password


def mqtt_client(
    product_key: str,
    device_name: str,
    secret: str,
    host: str,
    port: int,
    *,
    tls_context: ssl.SSLContext | None = None,
) -> aiomqtt.Client:
    """An MQTT 3.1.1 client logged in as the device (use it as `async with`)."""
    client_id, username, password = linkkit_login(
        product_key, device_name, secret, tls=tls_context is not None
    )
    return aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=tls_context,
        keepalive=60,
    )


@dataclass(frozen=True)
class Offer:
    """One task as the push or the firmware/get answer describes it."""

    version: str
    size: int
    sign: str
    sign_method: str
    module: str = DEFAULT_MODULE
    url: str | None = None
    stream_id: int | None = None
    stream_file_id: int | None = None
    ext: dict[str, Any] = field(default_factory=dict)

    def block_request(self, request_id: str, size: int, offset: int) -> dict[str, Any]:
        """The `thing/file/download` request for one block of this offer's file."""
        return {
            "id": request_id,
            "version": "1.0",
            "params": {
                "fileToken": "default",
                "fileInfo": {"streamId": self.stream_id, "fileId": self.stream_file_id},
                "fileBlock": {"size": size, "offset": offset},
            },
        }

    @classmethod
    def parse(cls, data: Any) -> Offer | None:
        """None for an empty answer or a shape this device cannot take (multi-file)."""
        if not isinstance(data, dict) or not data.get("version") or "files" in data:
            return None
        try:
            mqtt = data.get("dProtocol") == "mqtt"
            return cls(
                version=str(data["version"]),
                size=int(data["size"]),
                sign=str(data["sign"]),
                sign_method=str(data["signMethod"]),
                module=str(data.get("module") or DEFAULT_MODULE),
                url=None if mqtt else str(data["url"]),
                stream_id=int(data["streamId"]) if mqtt else None,
                stream_file_id=int(data["streamFileId"]) if mqtt else None,
                ext=dict(data.get("extData") or {}),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Outcome:
    version: str
    step: int  # 100, or the negative step reported
    reason: str

    @property
    def succeeded(self) -> bool:
        return self.step == 100


class UpdateFailed(Exception):
    def __init__(self, failure: ProgressFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass
class AliyunAgentConfig:
    product_key: str
    device_name: str
    workdir: Path
    initial_version: str = "1.0.0"  # before any update was installed
    module: str = DEFAULT_MODULE
    block_size: int = 5120  # MQTT download block, the C SDK's default
    timeout: float = 10.0
    attempts: int = 3  # per MQTT block, as the C SDK
    self_test: Callable[[Path], bool] = field(default=lambda image: image.stat().st_size > 0)
    interrupt_http_after: int | None = None  # rehearse a broken download once


class AliyunAgent:
    def __init__(
        self,
        client: aiomqtt.Client,
        config: AliyunAgentConfig,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.client = client
        self.cfg = config
        self.http = http
        self.router = TopicRouter(client)
        self.slots = SlotStore(config.workdir / "slots")
        pk, dn = config.product_key, config.device_name
        self.topics = {kind: ota_topic(kind, pk, dn) for kind in get_args(TopicKind)}
        self._ids = 0

    @property
    def version(self) -> str:
        return self.slots.state().version or self.cfg.initial_version

    async def start(self) -> None:
        for kind in ("upgrade", "firmware_get_reply", "file_download_reply"):
            await self.client.subscribe(self.topics[kind], qos=1)
        self.router.start()

    async def stop(self) -> None:
        await self.router.stop()

    # -- the protocol ---------------------------------------------------------------

    def _id(self) -> str:
        self._ids += 1
        return str(self._ids)

    def _params(self, **params: Any) -> dict[str, Any]:
        if self.cfg.module != DEFAULT_MODULE:
            params["module"] = self.cfg.module
        return params

    async def report_version(self) -> None:
        body = {"id": self._id(), "params": self._params(version=self.version)}
        await self.client.publish(self.topics["inform"], json.dumps(body), qos=1)

    async def report_progress(self, step: int, desc: str = "") -> None:
        body = {"id": self._id(), "params": self._params(step=str(step), desc=desc)}
        await self.client.publish(self.topics["progress"], json.dumps(body), qos=1)

    async def ask(self) -> Offer | None:
        """firmware/get: the pending task, or None."""
        request_id = self._id()
        reply_topic = self.topics["firmware_get_reply"]
        self.router.drain(reply_topic)
        body = {"id": request_id, "params": self._params()}
        await self.client.publish(self.topics["firmware_get"], json.dumps(body), qos=1)
        while True:
            reply = json.loads(await self.router.next(reply_topic, self.cfg.timeout))
            if str(reply.get("id")) == request_id:
                return Offer.parse(reply.get("data"))

    async def next_push(self, seconds: float) -> Offer:
        """The next upgrade push (TimeoutError after `seconds`)."""
        while True:
            message = json.loads(await self.router.next(self.topics["upgrade"], seconds))
            offer = Offer.parse(message.get("data"))
            if offer is not None:
                return offer

    async def run(
        self,
        stop: asyncio.Event,
        *,
        on_outcome: Callable[[Outcome], None] | None = None,
        once: bool = False,
    ) -> list[Outcome]:
        """Report the version, ask for a task, then take pushes until `stop` (or
        after the first update with `once`)."""
        done: list[Outcome] = []
        await self.report_version()
        offer = await self.ask()
        while not stop.is_set():
            if offer is not None and offer.version != self.version:
                outcome = await self.apply(offer)
                done.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
                if once:
                    break
            offer = None
            waiter = asyncio.create_task(self.next_push(3600))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                offer = waiter.result()
            else:
                waiter.cancel()
        return done

    # -- one update -----------------------------------------------------------------

    async def apply(self, offer: Offer) -> Outcome:
        """Download, verify, install, self-test; report progress and the outcome."""
        previous = self.slots.state().version
        try:
            if offer.sign_method not in _DIGESTS:
                raise UpdateFailed(
                    ProgressFailure.VERIFY_FAILED, f"unknown sign method {offer.sign_method}"
                )
            await self.report_progress(1, "downloading")
            image = await self._fetch(offer)
            if _digest(image, offer.sign_method) != offer.sign:
                raise UpdateFailed(ProgressFailure.VERIFY_FAILED, f"{offer.sign_method} mismatch")
            await self.report_progress(90, "installing")
            installed = await self.slots.write_inactive(_chunks(image))
            self.slots.boot_inactive(offer.version)
            if not self.cfg.self_test(installed):
                self.slots.roll_back(previous)
                raise UpdateFailed(ProgressFailure.FLASH_FAILED, "self-test failed; rolled back")
            self.slots.confirm()
        except UpdateFailed as exc:
            await self.report_progress(exc.failure.value, exc.reason)
            return Outcome(offer.version, exc.failure.value, exc.reason)
        await self.report_progress(100, "done")
        await self.report_version()
        return Outcome(offer.version, 100, f"running {offer.version}")

    async def _fetch(self, offer: Offer) -> Path:
        dest = self.cfg.workdir / "download" / f"{offer.module}-{offer.version}.bin"
        if dest.exists():
            dest.unlink()
        dest.parent.mkdir(parents=True, exist_ok=True)
        if offer.stream_id is not None and offer.stream_file_id is not None:
            await self._mqtt_download(offer, dest)
            return dest
        if self.http is None or not offer.url:
            raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, "no HTTP client or URL")
        try:
            await download(
                self.http,
                offer.url,
                dest,
                expected_size=offer.size,
                interrupt_after=self.cfg.interrupt_http_after,
            )
        except (DownloadFailed, httpx.HTTPError) as exc:
            raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, str(exc)) from None
        return dest

    async def _mqtt_download(self, offer: Offer, dest: Path) -> None:
        """Block by block in order, each CRC-checked and re-asked up to `attempts`
        times; progress every 10 % of the file."""
        reported = 0
        with dest.open("wb") as out:
            offset = 0
            while offset < offer.size:
                block = await self._block(offer, offset)
                out.write(block)
                offset += len(block)
                percent = offset * 80 // max(offer.size, 1)
                if percent >= reported + 10:
                    reported = percent
                    await self.report_progress(max(1, percent), "downloading")

    async def _block(self, offer: Offer, offset: int) -> bytes:
        reply_topic = self.topics["file_download_reply"]
        for _ in range(self.cfg.attempts):
            request_id = self._id()
            body = offer.block_request(request_id, self.cfg.block_size, offset)
            await self.client.publish(self.topics["file_download"], json.dumps(body), qos=1)
            try:
                while True:
                    frame = await self.router.next(reply_topic, self.cfg.timeout)
                    try:
                        reply = parse_download_reply(frame)
                    except FrameError as exc:
                        log.info("bad download frame: %s", exc)
                        break  # ask again
                    if str(reply.header.get("id")) != request_id:
                        continue
                    data = reply.header.get("data") or {}
                    if reply.header.get("code") != 200:
                        raise UpdateFailed(
                            ProgressFailure.DOWNLOAD_FAILED,
                            f"download refused: {reply.header.get('msg')}",
                        )
                    if data.get("bOffset") == offset and reply.block:
                        return reply.block
            except TimeoutError:
                log.info("no answer for the block at %d; asking again", offset)
                continue
        raise UpdateFailed(ProgressFailure.DOWNLOAD_FAILED, f"no block at offset {offset}")


def _digest(path: Path, sign_method: str) -> str:
    h = _DIGESTS[sign_method]()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return str(h.hexdigest())


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            yield block


# -- as a command ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceIdentity:
    product_key: str
    device_name: str
    secret: str


def identity_from(options: Any) -> DeviceIdentity:
    """The device a command's options name: `product_key`/`device_name`/
    `device_secret` attributes, or `thing` as `{pk}/{dn}` with the secret in
    OTAHUB_DEVICE_SECRET."""
    pk = getattr(options, "product_key", None)
    dn = getattr(options, "device_name", None)
    if not (pk and dn):
        pk, _, dn = str(getattr(options, "thing", "")).partition("/")
    secret = getattr(options, "device_secret", None) or os.environ.get("OTAHUB_DEVICE_SECRET")
    if not (pk and dn and secret):
        raise ValueError(
            "an Alibaba device needs --thing PRODUCT_KEY/DEVICE_NAME and its secret "
            "in OTAHUB_DEVICE_SECRET"
        )
    return DeviceIdentity(pk, dn, secret)


def run_device(options: Any) -> None:
    """`otahub device run --dialect aliyun`: takes updates until SIGTERM (or one with
    `once`), printing one JSON line per update; exits 1 when `once` did not succeed.
    Reads `broker` (mqtt:// or mqtts:// with `ca`), `slot_dir`, `fail_self_test`,
    `once` and `wait` from the options, like the AWS device."""
    outcomes = asyncio.run(_run_device(options))
    if getattr(options, "once", False) and not (outcomes and outcomes[0].succeeded):
        raise SystemExit(1)


async def _run_device(options: Any) -> list[Outcome]:
    who = identity_from(options)
    url = urlsplit(getattr(options, "broker", None) or "mqtt://127.0.0.1:1883")
    tls = None
    if url.scheme == "mqtts":
        ca = getattr(options, "ca", None)
        tls = ssl.create_default_context(cafile=str(ca) if ca else None)
    fail = bool(getattr(options, "fail_self_test", False))
    config = AliyunAgentConfig(
        who.product_key,
        who.device_name,
        Path(options.slot_dir),
        self_test=(lambda image: False) if fail else (lambda image: image.stat().st_size > 0),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    once = bool(getattr(options, "once", False))
    if once:
        loop.call_later(float(getattr(options, "wait", 60.0)), stop.set)
    port = url.port or (8883 if tls else 1883)
    async with (
        httpx.AsyncClient(timeout=30) as http,
        mqtt_client(
            who.product_key,
            who.device_name,
            who.secret,
            url.hostname or "127.0.0.1",
            port,
            tls_context=tls,
        ) as client,
    ):
        agent = AliyunAgent(client, config, http)
        await agent.start()
        try:
            return await agent.run(stop, on_outcome=_print_outcome, once=once)
        finally:
            await agent.stop()


def _print_outcome(outcome: Outcome) -> None:
    print(json.dumps({**outcome.__dict__, "succeeded": outcome.succeeded}), flush=True)
