"""A reference AWS IoT device: takes OTA jobs (`afr_ota` documents) over the Jobs
MQTT API or the HTTP jobs data plane, downloads the file over an MQTT stream (CBOR,
bitmap requests) or HTTP with resume, verifies its signature, installs it into the
inactive A/B slot, boots it, runs a self-test, and only then reports SUCCEEDED; a
failed self-test rolls back and reports FAILED.

The same class is the fleet simulator's device: with no work directory it keeps
nothing on disk, and `Rehearsal` makes it misbehave on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import cbor2
import httpx

from otahub.agent.http_download import StreamDownloader, download
from otahub.agent.jobs import JobsChannel, MqttJobs, UpdateRejected
from otahub.agent.mqtt_rpc import DedicatedLink, DeviceLink
from otahub.agent.sinks import DigestSink, FileSink, Pacer, Sink
from otahub.agent.slots import MemorySlots, SlotStore
from otahub.signing import parse_afr_signature_key, verify_file_signature

__all__ = ["AwsAgent", "AwsAgentConfig", "Outcome", "Rehearsal", "UpdateRejected"]


@dataclass(frozen=True)
class Rehearsal:
    """Misbehaviour on purpose, to rehearse what a fleet does to a rollout."""

    reject: bool = False  # refuse the job (REJECTED) without downloading it
    hang: bool = False  # report IN_PROGRESS, then never speak of the job again
    interrupt_at: float | None = None  # share of the file after which the link drops once
    reconnect_after: float = 0.5  # seconds offline after that drop
    throttle_bps: int | None = None  # download no faster than this


@dataclass
class AwsAgentConfig:
    thing: str
    workdir: Path | None  # None: a simulated device that keeps nothing on disk
    trusted_certificate: str | None = None  # PEM; None: signatures are not checked
    prefer: tuple[str, ...] = ("MQTT", "HTTP")
    block_size: int = 4096
    blocks_per_request: int = 32
    timeout: float = 10.0
    self_test: Callable[[Path], bool] = field(default=lambda image: image.stat().st_size > 0)
    interrupt_http_after: int | None = None  # rehearse a broken download once (bytes)
    rehearsal: Rehearsal = field(default_factory=Rehearsal)
    on_state: Callable[[str], None] | None = None  # told each step: download, install, ...


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # SUCCEEDED / FAILED / REJECTED, or HUNG for a rehearsed hang
    reason: str


class AwsAgent:
    def __init__(
        self,
        link: aiomqtt.Client | DeviceLink | None,
        config: AwsAgentConfig,
        http: httpx.AsyncClient | None = None,
        *,
        jobs: JobsChannel | None = None,
        downloader: StreamDownloader | None = None,
    ) -> None:
        """`link` carries MQTT (jobs, streams); without it `jobs` must be given (the
        HTTP data plane) and files come over HTTP: through `downloader` when given
        (a fleet's shared one), else through `http`."""
        self.downloader = downloader
        self._own_link: DedicatedLink | None = None
        if isinstance(link, aiomqtt.Client):
            link = self._own_link = DedicatedLink(link)
        self.link: DeviceLink | None = link
        self.cfg = config
        self.http = http
        if jobs is None:
            if link is None:
                raise ValueError("a device needs an MQTT link or a jobs channel")
            jobs = MqttJobs(link, config.thing, timeout=config.timeout)
        self.jobs = jobs
        self.slots: SlotStore | MemorySlots = (
            SlotStore(config.workdir / "slots") if config.workdir is not None else MemorySlots()
        )
        self.base = f"$aws/things/{config.thing}"

    async def start(self) -> None:
        if self._own_link is not None:
            self._own_link.start()
        await self.jobs.start()

    async def stop(self) -> None:
        if self._own_link is not None:
            await self._own_link.stop()

    async def run(self, stop: asyncio.Event) -> list[Outcome]:
        """Take jobs until `stop` is set, waiting for a notification (or the next
        poll) between them."""
        done: list[Outcome] = []
        while not stop.is_set():
            outcome = await self.process_next()
            if outcome is not None:
                done.append(outcome)
                continue
            waiter = asyncio.create_task(self.jobs.wait_for_work(3600))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stopper):
                t.cancel()
        return done

    def _state(self, name: str) -> None:
        if self.cfg.on_state is not None:
            self.cfg.on_state(name)

    async def process_next(self) -> Outcome | None:
        """Run the next pending job, if any."""
        execution = await self.jobs.next_execution()
        if execution is None:
            return None
        return await self.process(execution)

    async def process(self, execution: dict[str, Any]) -> Outcome:
        job_id = execution["jobId"]
        self._state("received")
        document = execution.get("jobDocument") or {}
        ota = document.get("afr_ota") if isinstance(document, dict) else None
        rehearsal = self.cfg.rehearsal
        if not isinstance(ota, dict) or not ota.get("files"):
            return await self._finish(job_id, "REJECTED", "not an afr_ota job")
        if rehearsal.reject:
            return await self._finish(job_id, "REJECTED", "rejected on purpose")
        if (
            execution.get("status") != "IN_PROGRESS"
            or (execution.get("statusDetails") or {}).get("step") != "download"
        ):
            await self.jobs.update(job_id, "IN_PROGRESS", {"step": "download"})
        if rehearsal.hang:
            self._state("hung")
            return Outcome(job_id, "HUNG", "went silent on purpose")
        self._state("download")
        try:
            sink = await self._fetch(ota, ota["files"][0])
            self._verify(ota["files"][0], sink.sha256())
        except UpdateRejected as exc:
            return await self._finish(job_id, "FAILED", str(exc)[:1000])
        version = str(document.get("version") or job_id)
        previous = self.slots.state().version
        self._state("install")
        installed = await self.slots.write_inactive(sink.chunks())
        self.slots.boot_inactive(version)
        await self.jobs.update(job_id, "IN_PROGRESS", {"step": "self-test"})
        if self.cfg.self_test(installed):
            self.slots.confirm()
            return await self._finish(job_id, "SUCCEEDED", f"accepted {version}")
        self.slots.roll_back(previous)
        return await self._finish(job_id, "FAILED", "self-test failed; rolled back")

    async def _finish(self, job_id: str, status: str, reason: str) -> Outcome:
        await self.jobs.update(job_id, status, {"reason": reason[:1000]})
        self._state(status)
        return Outcome(job_id, status, reason)

    # -- files ----------------------------------------------------------------------

    def _sink(self, file_id: int) -> Sink:
        if self.cfg.workdir is None:
            # Without a trusted certificate nothing checks the hash (see `_verify`).
            return DigestSink(hashing=self.cfg.trusted_certificate is not None)
        sink = FileSink(self.cfg.workdir / "download" / f"file{file_id}.bin")
        sink.reset()
        return sink

    async def _fetch(self, ota: dict[str, Any], file: dict[str, Any]) -> Sink:
        protocols = [p for p in self.cfg.prefer if p in ota.get("protocols", [])]
        if protocols and protocols[0] == "MQTT" and self.link is None:
            protocols = protocols[1:]
        if not protocols:
            raise UpdateRejected("no protocol this device supports")
        file_id = int(file.get("fileid", 0))
        sink = self._sink(file_id)
        size = int(file["filesize"])
        rehearsal = self.cfg.rehearsal
        pacer = Pacer(rehearsal.throttle_bps)
        interrupt = self.cfg.interrupt_http_after
        if rehearsal.interrupt_at is not None:
            interrupt = max(1, int(size * rehearsal.interrupt_at))
        if protocols[0] == "MQTT":
            await self._stream(str(ota["streamname"]), file_id, size, sink, pacer, interrupt)
            return sink
        if (self.http is None and self.downloader is None) or not file.get("update_data_url"):
            raise UpdateRejected("no HTTP URL for the file")
        if self.downloader is not None:
            await self.downloader(
                file["update_data_url"],
                sink,
                expected_size=size,
                interrupt_after=interrupt,
                pacer=pacer,
            )
        else:
            assert self.http is not None
            await download(
                self.http,
                file["update_data_url"],
                sink,
                expected_size=size,
                interrupt_after=interrupt,
                pacer=pacer,
            )
        if rehearsal.interrupt_at is not None:
            self._state("resumed")
        return sink

    async def _stream(
        self,
        stream: str,
        file_id: int,
        size: int,
        sink: Sink,
        pacer: Pacer,
        interrupt_after: int | None,
    ) -> None:
        """Fetch every block with CBOR requests, each asking for the missing blocks
        of a window by bitmap, until none is missing."""
        assert self.link is not None
        link = self.link
        base = f"{self.base}/streams/{stream}"
        data_topic, rejected_topic = f"{base}/data/cbor", f"{base}/rejected/cbor"
        # QoS 0: a lost block is simply asked for again, and a broker queues nothing.
        await link.subscribe([data_topic, rejected_topic], qos=0)
        block = self.cfg.block_size
        total = (size + block - 1) // block
        blocks: dict[int, bytes] = {}
        received = stalls = 0
        try:
            while len(blocks) < total:
                missing = [i for i in range(total) if i not in blocks]
                offset = missing[0]
                window = [i for i in missing if i < offset + 8 * 16][: self.cfg.blocks_per_request]
                bitmap = bytearray((window[-1] - offset) // 8 + 1)
                for i in window:
                    bitmap[(i - offset) // 8] |= 1 << ((i - offset) % 8)
                request = {
                    "c": "rdy",
                    "f": file_id,
                    "l": block,
                    "o": offset,
                    "b": bytes(bitmap),
                    "n": len(window),
                }
                await link.publish(f"{base}/get/cbor", cbor2.dumps(request), qos=0)
                # Waits double while blocks do not come, so that a loaded server is
                # not sent the same request again and again.
                wait = self.cfg.timeout * 2 ** min(stalls, 3)
                for _ in window:
                    try:
                        raw = await link.router.next(data_topic, wait)
                    except TimeoutError:
                        stalls += 1
                        break  # ask again for what is still missing
                    msg = cbor2.loads(raw)
                    if int(msg.get("f", file_id)) != file_id:
                        continue
                    payload = bytes(msg["p"])
                    blocks[int(msg["i"])] = payload
                    received += len(payload)
                    await pacer.took(len(payload))
                    if interrupt_after is not None and received >= interrupt_after:
                        interrupt_after = None
                        await self._drop_link(link, [data_topic, rejected_topic])
                        break
                rejected = link.router.queue(rejected_topic)
                if not rejected.empty():
                    raise UpdateRejected(f"stream rejected: {cbor2.loads(rejected.get_nowait())}")
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await link.unsubscribe([data_topic, rejected_topic])
            link.router.forget(base)
        for i in range(total):
            sink.write(blocks[i][: max(0, size - i * block)])

    async def _drop_link(self, link: DeviceLink, topics: list[str]) -> None:
        """Lose the stream mid-download: what is in flight is gone; coming back, the
        device asks only for the blocks it still misses."""
        self._state("disconnected")
        await link.unsubscribe(topics)
        await asyncio.sleep(self.cfg.rehearsal.reconnect_after)
        for t in topics:
            link.router.drain(t)
        await link.subscribe(topics, qos=0)
        self._state("resumed")

    def _verify(self, file: dict[str, Any], sha256_hex: str) -> None:
        if self.cfg.trusted_certificate is None:
            return
        sig_keys = [k for k in file if k.startswith("sig-")]
        if not sig_keys or not file[sig_keys[0]]:
            raise UpdateRejected("the file is not signed")
        _, algorithm = parse_afr_signature_key(sig_keys[0])
        ok = verify_file_signature(
            self.cfg.trusted_certificate, file[sig_keys[0]], sha256_hex, algorithm
        )
        if not ok:
            raise UpdateRejected("signature verification failed")
