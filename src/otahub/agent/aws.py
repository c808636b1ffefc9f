"""A reference AWS IoT device: takes OTA jobs (`afr_ota` documents) over the Jobs
MQTT API, downloads the file over an MQTT stream (CBOR) or HTTP with resume,
verifies its signature, installs it into the inactive A/B slot, boots it, runs a
self-test, and only then reports SUCCEEDED; a failed self-test rolls back and
reports FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import cbor2
import httpx

from otahub.agent.http_download import download
from otahub.agent.mqtt_rpc import TopicRouter
from otahub.agent.slots import SlotStore
from otahub.signing import parse_afr_signature_key, verify_file_signature


@dataclass
class AwsAgentConfig:
    thing: str
    workdir: Path
    trusted_certificate: str | None = None  # PEM; None: signatures are not checked
    prefer: tuple[str, ...] = ("MQTT", "HTTP")
    block_size: int = 4096
    blocks_per_request: int = 32
    timeout: float = 10.0
    self_test: Callable[[Path], bool] = field(default=lambda image: image.stat().st_size > 0)
    interrupt_http_after: int | None = None  # rehearse a broken download once


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # SUCCEEDED / FAILED / REJECTED
    reason: str


class UpdateRejected(Exception):
    pass


class AwsAgent:
    def __init__(
        self, client: aiomqtt.Client, config: AwsAgentConfig, http: httpx.AsyncClient | None = None
    ) -> None:
        self.client = client
        self.cfg = config
        self.http = http
        self.router = TopicRouter(client)
        self.slots = SlotStore(config.workdir / "slots")
        self.base = f"$aws/things/{config.thing}"

    async def start(self) -> None:
        jobs = f"{self.base}/jobs"
        for t in (
            "notify-next",
            "$next/get/accepted",
            "$next/get/rejected",
            "+/update/accepted",
            "+/update/rejected",
        ):
            await self.client.subscribe(f"{jobs}/{t}", qos=1)
        self.router.start()

    async def stop(self) -> None:
        await self.router.stop()

    async def run(self, stop: asyncio.Event) -> list[Outcome]:
        """Take jobs until `stop` is set, waiting on notify-next between them."""
        done: list[Outcome] = []
        while not stop.is_set():
            outcome = await self.process_next()
            if outcome is not None:
                done.append(outcome)
                continue
            waiter = asyncio.create_task(self.router.next(f"{self.base}/jobs/notify-next", 3600))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stopper):
                t.cancel()
        return done

    async def process_next(self) -> Outcome | None:
        """Run the next pending job, if any."""
        execution = await self._next_execution()
        if execution is None:
            return None
        job_id = execution["jobId"]
        document = execution.get("jobDocument") or {}
        ota = document.get("afr_ota") if isinstance(document, dict) else None
        if not isinstance(ota, dict) or not ota.get("files"):
            await self._update(job_id, "REJECTED", {"reason": "not an afr_ota job"})
            return Outcome(job_id, "REJECTED", "not an afr_ota job")
        await self._update(job_id, "IN_PROGRESS", {"step": "download"})
        try:
            image, digest = await self._fetch(ota, ota["files"][0])
            self._verify(ota["files"][0], digest)
        except UpdateRejected as exc:
            await self._update(job_id, "FAILED", {"reason": str(exc)[:1000]})
            return Outcome(job_id, "FAILED", str(exc))
        version = str(document.get("version") or job_id)
        previous = self.slots.state().version

        async def chunks() -> AsyncIterator[bytes]:
            with image.open("rb") as f:
                while block := f.read(1 << 20):
                    yield block

        installed = await self.slots.write_inactive(chunks())
        self.slots.boot_inactive(version)
        await self._update(job_id, "IN_PROGRESS", {"step": "self-test"})
        if self.cfg.self_test(installed):
            self.slots.confirm()
            await self._update(job_id, "SUCCEEDED", {"reason": f"accepted {version}"})
            return Outcome(job_id, "SUCCEEDED", f"accepted {version}")
        self.slots.roll_back(previous)
        await self._update(job_id, "FAILED", {"reason": "self-test failed; rolled back"})
        return Outcome(job_id, "FAILED", "self-test failed; rolled back")

    # -- jobs -----------------------------------------------------------------------

    async def _next_execution(self) -> dict[str, Any] | None:
        topic = f"{self.base}/jobs/$next/get"
        token = uuid.uuid4().hex[:16]
        self.router.drain(topic + "/accepted")
        await self.client.publish(topic, json.dumps({"clientToken": token}), qos=1)
        while True:
            reply = json.loads(await self.router.next(topic + "/accepted", self.cfg.timeout))
            if reply.get("clientToken") == token:
                execution: dict[str, Any] | None = reply.get("execution")
                return execution

    async def _update(self, job_id: str, status: str, details: dict[str, str]) -> None:
        topic = f"{self.base}/jobs/{job_id}/update"
        token = uuid.uuid4().hex[:16]
        body = {"status": status, "statusDetails": details, "clientToken": token}
        await self.client.publish(topic, json.dumps(body), qos=1)
        accepted = asyncio.create_task(self._wait_token(topic + "/accepted", token))
        rejected = asyncio.create_task(self._wait_token(topic + "/rejected", token))
        done, _ = await asyncio.wait(
            {accepted, rejected}, timeout=self.cfg.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for t in (accepted, rejected):
            t.cancel()
        if rejected in done:
            raise UpdateRejected(f"the service rejected {status}: {rejected.result()}")
        if not done:
            raise TimeoutError(f"no answer to the {status} update")

    async def _wait_token(self, topic: str, token: str) -> dict[str, Any]:
        while True:
            body: dict[str, Any] = json.loads(await self.router.next(topic, 3600))
            if body.get("clientToken") == token:
                return body

    # -- files ----------------------------------------------------------------------

    async def _fetch(self, ota: dict[str, Any], file: dict[str, Any]) -> tuple[Path, str]:
        protocols = [p for p in self.cfg.prefer if p in ota.get("protocols", [])]
        if not protocols:
            raise UpdateRejected("no protocol this device supports")
        dest = self.cfg.workdir / "download" / f"file{file.get('fileid', 0)}.bin"
        if dest.exists():
            dest.unlink()
        size = int(file["filesize"])
        if protocols[0] == "MQTT":
            data = await self._stream(str(ota["streamname"]), int(file.get("fileid", 0)), size)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            return dest, hashlib.sha256(data).hexdigest()
        if self.http is None or not file.get("update_data_url"):
            raise UpdateRejected("no HTTP URL for the file")
        digest = await download(
            self.http,
            file["update_data_url"],
            dest,
            expected_size=size,
            interrupt_after=self.cfg.interrupt_http_after,
        )
        return dest, digest

    async def _stream(self, stream: str, file_id: int, size: int) -> bytes:
        """Fetch every block with CBOR requests, each asking for the missing blocks
        of a window by bitmap, until none is missing."""
        base = f"{self.base}/streams/{stream}"
        await self.client.subscribe(f"{base}/data/cbor", qos=1)
        await self.client.subscribe(f"{base}/rejected/cbor", qos=1)
        block = self.cfg.block_size
        total = (size + block - 1) // block
        blocks: dict[int, bytes] = {}
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
                await self.client.publish(f"{base}/get/cbor", cbor2.dumps(request), qos=0)
                for _ in window:
                    try:
                        raw = await self.router.next(f"{base}/data/cbor", self.cfg.timeout)
                    except TimeoutError:
                        break  # ask again for what is still missing
                    msg = cbor2.loads(raw)
                    blocks[int(msg["i"])] = bytes(msg["p"])
                rejected = self.router.queue(f"{base}/rejected/cbor")
                if not rejected.empty():
                    raise UpdateRejected(f"stream rejected: {cbor2.loads(rejected.get_nowait())}")
        finally:
            await self.client.unsubscribe(f"{base}/data/cbor")
        return b"".join(blocks[i] for i in range(total))[:size]

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
