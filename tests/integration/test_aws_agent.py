"""The reference AWS device takes an OTA job through Mosquitto: an MQTT stream in
CBOR or HTTP with a resumed download, a signature check, A/B slots, self-test."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from otahub.agent.aws import AwsAgent, AwsAgentConfig
from otahub.blobs.download import make_download_app
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import JobSpec, Services
from otahub.core.services.streams import StreamFile
from otahub.runtime import device_bridge
from otahub.signing import (
    certificate_to_pem,
    create_code_signing_certificate,
    generate_private_key,
    sign_digest,
    signature_to_base64,
)
from tests.conftest import need_service
from tests.integration.mosquitto import gateway_on_mosquitto

pytestmark = pytest.mark.mosquitto

FIRMWARE = os.urandom(300_000)


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def otahub_side(services: Services, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    store = FilesystemBlobStore(tmp_path / "blobs")
    await store.put_stream("fw/1", one(FIRMWARE))

    async def read_range(key: str, start: int, length: int) -> bytes:
        return b"".join([c async for c in store.open_range(key, start, start + length)])

    tenant = await services.accounts.tenant("222222222222")
    bridge = device_bridge(services, services.ctx.clock, read_range, default_tenant=tenant.id)
    key = generate_private_key("ECDSA")
    cert = certificate_to_pem(create_code_signing_certificate(key, "otahub test signer"))
    async with gateway_on_mosquitto(bridge) as (_, tag):
        yield {"tenant": tenant.id, "store": store, "key": key, "cert": cert, "tag": tag}


async def ota_job(
    services: Services, side: dict[str, Any], thing: str, *, signature: bytes | None = None
) -> None:
    tenant = side["tenant"]
    device = await services.registry.create_device(tenant, thing)
    stream = f"AFR_OTA-{uuid.uuid4()}"
    await services.streams.create(tenant, stream, [StreamFile(0, "fw/1", len(FIRMWARE), {})])
    digest = hashlib.sha256(FIRMWARE).digest()
    sig = signature if signature is not None else sign_digest(side["key"], digest)
    doc = {
        "version": "2.0.0",
        "afr_ota": {
            "protocols": ["MQTT", "HTTP"],
            "streamname": stream,
            "files": [
                {
                    "filepath": "/fw.bin",
                    "filesize": len(FIRMWARE),
                    "fileid": 0,
                    "certfile": "/cert.pem",
                    "update_data_url": "http://otahub/dl/fw/1",
                    "auth_scheme": "aws.s3.presigned",
                    "sig-sha256-ecdsa": signature_to_base64(sig),
                }
            ],
        },
    }
    await services.jobs.create_job(
        tenant,
        JobSpec(
            ref=f"AFR_OTA-{thing}", kind="ota", device_ids=[device.id], document=json.dumps(doc)
        ),
    )


async def run_agent(
    services: Services, side: dict[str, Any], engine: Any, thing: str, tmp_path: Path, **cfg: Any
) -> tuple[Any, AwsAgent]:
    await engine.tick()

    class Strip(httpx.AsyncBaseTransport):
        """The download app as it will be mounted at /dl."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            request.url = request.url.copy_with(path=request.url.path.removeprefix("/dl"))
            return await inner.handle_async_request(request)

    inner = httpx.ASGITransport(app=make_download_app(side["store"], None))
    client = httpx.AsyncClient(transport=Strip())
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{thing}-{side['tag']}") as mqtt:
        agent = AwsAgent(
            mqtt,
            AwsAgentConfig(
                thing=thing, workdir=tmp_path / thing, trusted_certificate=side["cert"], **cfg
            ),
            client,
        )
        await agent.start()
        try:
            outcome = await asyncio.wait_for(agent.process_next(), 60)
        finally:
            await agent.stop()
            await client.aclose()
    return outcome, agent


async def test_mqtt_stream_in_cbor_with_signature(
    services: Services, engine: Any, otahub_side: dict[str, Any], tmp_path: Path
) -> None:
    thing = f"dev-{otahub_side['tag']}-m"
    await ota_job(services, otahub_side, thing)
    outcome, agent = await run_agent(
        services, otahub_side, engine, thing, tmp_path, prefer=("MQTT",)
    )
    assert outcome.status == "SUCCEEDED", outcome
    state = agent.slots.state()
    assert state.active == "b" and state.version == "2.0.0" and state.pending is None
    assert agent.slots.image("b").read_bytes() == FIRMWARE
    job = await services.jobs.get_job(otahub_side["tenant"], f"AFR_OTA-{thing}")
    device = await services.registry.get_device(otahub_side["tenant"], thing)
    ex = await services.executions.get(job.id, device.id)
    assert ex.status.value == "SUCCEEDED" and ex.status_details == {"reason": "accepted 2.0.0"}


async def test_http_download_resumes_after_interruption(
    services: Services, engine: Any, otahub_side: dict[str, Any], tmp_path: Path
) -> None:
    thing = f"dev-{otahub_side['tag']}-h"
    await ota_job(services, otahub_side, thing)
    outcome, agent = await run_agent(
        services,
        otahub_side,
        engine,
        thing,
        tmp_path,
        prefer=("HTTP",),
        interrupt_http_after=100_000,
    )
    assert outcome.status == "SUCCEEDED", outcome
    assert agent.slots.image("b").read_bytes() == FIRMWARE


async def test_bad_signature_and_failed_self_test(
    services: Services, engine: Any, otahub_side: dict[str, Any], tmp_path: Path
) -> None:
    forged = f"dev-{otahub_side['tag']}-s"
    other_key = generate_private_key("ECDSA")
    await ota_job(
        services,
        otahub_side,
        forged,
        signature=sign_digest(other_key, hashlib.sha256(FIRMWARE).digest()),
    )
    outcome, agent = await run_agent(services, otahub_side, engine, forged, tmp_path)
    assert (outcome.status, outcome.reason) == ("FAILED", "signature verification failed")
    assert agent.slots.state().version is None  # nothing installed

    broken = f"dev-{otahub_side['tag']}-t"
    await ota_job(services, otahub_side, broken)
    outcome, agent = await run_agent(
        services, otahub_side, engine, broken, tmp_path, self_test=lambda image: False
    )
    assert outcome.status == "FAILED" and "rolled back" in outcome.reason
    state = agent.slots.state()
    assert state.active == "a" and state.pending is None
